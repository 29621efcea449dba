"""`python -m audit verify`: the offline verifier a reviewer runs on an export (audit/ only)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from audit.__main__ import main
from tests.audit.helpers import AT, chain, export_lines, new_key, simple_record

KEY = new_key()
RECORDS = chain([simple_record(n) for n in range(1, 10)])  # seq 1..9
CHECKPOINTS = [KEY.sign(seq=seq, hash=RECORDS[seq - 1].hash, at=AT) for seq in (3, 6, 9)]
VENV_PYTHON = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python"


@dataclass
class Trail:
    export: Path
    public_key: Path
    checkpoint: Path  # the checkpoint at seq 9, saved outside the export
    lines: list[str]

    def write(self, lines: list[str]) -> Path:
        self.export.write_text("".join(lines))
        return self.export

    def line_of(self, seq: int) -> int:
        """Index in `lines` of the record line for seq."""
        for index, line in enumerate(self.lines):
            document = json.loads(line)
            if document["type"] == "record" and document["record"]["seq"] == seq:
                return index
        raise AssertionError(seq)


@pytest.fixture
def trail(tmp_path: Path) -> Trail:
    lines = export_lines(RECORDS, CHECKPOINTS, KEY)
    public_key = tmp_path / "audit-public.pem"
    public_key.write_bytes(KEY.public_pem())
    checkpoint = tmp_path / "checkpoint-9.json"
    checkpoint.write_text(json.dumps(CHECKPOINTS[-1].to_dict()))
    result = Trail(tmp_path / "export.jsonl", public_key, checkpoint, lines)
    result.write(lines)
    return result


def run(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, dict[str, Any], str]:
    code = main(["verify", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def _edit_record(line: str, **changes: Any) -> str:
    document = json.loads(line)
    document["record"].update(changes)
    return json.dumps(document) + "\n"


# --- intact -----------------------------------------------------------------------------------


def test_an_intact_export_exits_0_and_counts_records_and_checkpoints(
    trail: Trail, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result, err = run(capsys, trail.export, "--public-key", trail.public_key)
    assert code == 0
    assert result["ok"] is True
    assert result["records"] == 9
    assert result["checkpoints"] == 3
    assert result["last_seq"] == 9
    assert result["last_hash"] == RECORDS[-1].hash
    assert result["first_bad_seq"] is None
    assert "intact: 9 records, 3 checkpoints" in err


def test_an_intact_export_with_external_checkpoints_exits_0(
    trail: Trail, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    earlier = tmp_path / "checkpoint-4.json"
    earlier.write_text(json.dumps(KEY.sign(seq=4, hash=RECORDS[3].hash, at=AT).to_dict()))
    code, result, _ = run(
        capsys,
        trail.export,
        "--public-key",
        trail.public_key,
        "--checkpoint",
        trail.checkpoint,
        "--checkpoint",
        earlier,
    )
    assert code == 0
    assert result["checkpoints"] == 5


def test_an_export_read_from_stdin_is_verified(
    trail: Trail, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(trail.lines)))
    code, result, _ = run(capsys, "-", "--public-key", trail.public_key)
    assert code == 0
    assert result["records"] == 9


# --- tampering: exit 1, naming the first bad record --------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"actor_id": "someone-else"},
        {"outcome": "denied"},
        {"memory_ids": ["m-5"]},
        {"target": "key-v2"},
        {"at": "2026-11-26T10:00:00.000001Z"},
        {"result_count": 0},
        {"subject": None},
        {"prev": "0" * 64},
        {"hash": "f" * 64},
    ],
    ids=lambda changes: next(iter(changes)),
)
def test_an_edited_record_line_exits_1_naming_that_record(
    trail: Trail, capsys: pytest.CaptureFixture[str], changes: dict[str, Any]
) -> None:
    lines = list(trail.lines)
    index = trail.line_of(5)
    lines[index] = _edit_record(lines[index], **changes)
    trail.write(lines)
    code, result, err = run(capsys, trail.export, "--public-key", trail.public_key)
    assert code == 1
    assert result["ok"] is False
    assert result["first_bad_seq"] == 5
    assert "TAMPERED at record 5" in err


def test_a_deleted_record_line_exits_1_naming_the_missing_record(
    trail: Trail, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = list(trail.lines)
    del lines[trail.line_of(4)]
    trail.write(lines)
    code, result, err = run(capsys, trail.export, "--public-key", trail.public_key)
    assert code == 1
    assert result["first_bad_seq"] == 4
    assert "TAMPERED at record 4" in err
    assert "missing" in err


@pytest.mark.parametrize(("first", "second"), [(4, 5), (2, 8)])
def test_reordered_record_lines_exit_1_naming_the_first_out_of_place(
    trail: Trail, capsys: pytest.CaptureFixture[str], first: int, second: int
) -> None:
    lines = list(trail.lines)
    a, b = trail.line_of(first), trail.line_of(second)
    lines[a], lines[b] = lines[b], lines[a]
    trail.write(lines)
    code, result, err = run(capsys, trail.export, "--public-key", trail.public_key)
    assert code == 1
    assert result["first_bad_seq"] == first
    assert f"TAMPERED at record {first}" in err


def test_a_tail_cut_after_a_checkpoint_exits_1_only_with_the_external_checkpoint(
    trail: Trail, capsys: pytest.CaptureFixture[str]
) -> None:
    """The cut also removes the checkpoints inside the export, so the export alone still
    verifies; the checkpoint kept outside (seq 9) catches it and names record 5."""
    trail.write(trail.lines[: trail.line_of(4) + 1])
    code, result, _ = run(capsys, trail.export, "--public-key", trail.public_key)
    assert code == 0
    assert result["last_seq"] == 4

    code, result, err = run(
        capsys, trail.export, "--public-key", trail.public_key, "--checkpoint", trail.checkpoint
    )
    assert code == 1
    assert result["last_seq"] == 4
    assert result["first_bad_seq"] == 5
    assert "TAMPERED at record 5" in err
    assert "cut off" in err


def test_verifying_with_another_public_key_exits_1_at_the_first_checkpoint(
    trail: Trail, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    other = tmp_path / "other.pem"
    other.write_bytes(new_key().public_pem())
    code, result, err = run(capsys, trail.export, "--public-key", other)
    assert code == 1
    assert result["first_bad_seq"] == 3
    assert "bad signature" in err


@pytest.mark.parametrize(
    "bad_line",
    [
        "{not json",
        '{"type": "record", "record": {"seq": 5',
        "null",
        '"a string"',
        "[1, 2]",
        '{"type": "mystery"}',
        '{"no": "type"}',
        '{"type": "record"}',
        '{"type": "record", "record": null}',
        '{"type": "record", "record": {"seq": 5}}',
        '{"type": "record", "record": []}',
        '{"type": "checkpoint", "checkpoint": "x"}',
        '{"type": "checkpoint", "checkpoint": {"seq": true}}',
        "1" * 5000,
    ],
)
def test_a_malformed_export_line_exits_1_naming_the_line_and_next_record(
    trail: Trail, capsys: pytest.CaptureFixture[str], bad_line: str
) -> None:
    lines = list(trail.lines)
    index = trail.line_of(5)
    lines[index] = bad_line + "\n"
    trail.write(lines)
    code, result, err = run(capsys, trail.export, "--public-key", trail.public_key)
    assert code == 1
    assert result["ok"] is False
    assert result["first_bad_seq"] == 5
    assert result["last_seq"] == 4
    assert f"line {index + 1} " in result["problem"]
    assert "TAMPERED at record 5" in err


def test_a_malformed_line_is_named_even_when_an_external_checkpoint_lies_beyond_it(
    trail: Trail, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = list(trail.lines)
    index = trail.line_of(5)
    lines[index] = "{not json\n"
    trail.write(lines)
    code, result, _ = run(
        capsys, trail.export, "--public-key", trail.public_key, "--checkpoint", trail.checkpoint
    )
    assert code == 1
    assert result["first_bad_seq"] == 5
    assert f"line {index + 1} " in result["problem"]


def test_a_deeply_nested_export_line_exits_1_not_a_crash(
    trail: Trail, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = list(trail.lines)
    lines[trail.line_of(5)] = "[" * 100_000 + "]" * 100_000 + "\n"
    trail.write(lines)
    code, result, _ = run(capsys, trail.export, "--public-key", trail.public_key)
    assert code == 1
    assert result["first_bad_seq"] == 5


# --- bad usage: exit 2 --------------------------------------------------------------------------


def _rsa_public_pem() -> bytes:
    return (
        rsa.generate_private_key(65537, 2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def test_a_missing_export_file_exits_2(
    trail: Trail, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, result, err = run(capsys, tmp_path / "nope.jsonl", "--public-key", trail.public_key)
    assert code == 2
    assert result == {}
    assert err.startswith("audit verify:")
    assert "nope.jsonl" in err


@pytest.mark.parametrize(
    "content",
    [None, b"", b"garbage", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"],
    ids=["missing", "empty", "garbage", "bad-pem-body"],
)
def test_a_missing_or_garbage_public_key_file_exits_2(
    trail: Trail, capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes | None
) -> None:
    public_key = tmp_path / "key.pem"
    if content is not None:
        public_key.write_bytes(content)
    code, result, err = run(capsys, trail.export, "--public-key", public_key)
    assert code == 2
    assert result == {}
    assert err.startswith("audit verify:")


def test_a_public_key_that_is_not_ed25519_exits_2(
    trail: Trail, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    public_key = tmp_path / "rsa.pem"
    public_key.write_bytes(_rsa_public_pem())
    code, _, err = run(capsys, trail.export, "--public-key", public_key)
    assert code == 2
    assert "not an Ed25519 public key" in err


@pytest.mark.parametrize(
    "content",
    [
        None,
        "",
        "{not json",
        "[]",
        '"checkpoint"',
        "null",
        json.dumps({"seq": 9, "hash": "ab", "at": AT, "key_id": "k"}),  # no signature
        json.dumps({"seq": True, "hash": "ab", "at": AT, "key_id": "k", "signature": "s"}),
        json.dumps({"seq": "9", "hash": "ab", "at": AT, "key_id": "k", "signature": "s"}),
        json.dumps({"seq": 9, "hash": 1, "at": AT, "key_id": "k", "signature": "s"}),
    ],
    ids=[
        "missing",
        "empty",
        "not-json",
        "list",
        "string",
        "null",
        "no-signature",
        "bool-seq",
        "text-seq",
        "int-hash",
    ],
)
def test_a_missing_or_malformed_checkpoint_file_exits_2(
    trail: Trail, capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str | None
) -> None:
    checkpoint = tmp_path / "bad-checkpoint.json"
    if content is not None:
        checkpoint.write_text(content)
    code, result, err = run(
        capsys, trail.export, "--public-key", trail.public_key, "--checkpoint", checkpoint
    )
    assert code == 2
    assert result == {}
    assert err.startswith("audit verify:")


def test_a_missing_public_key_option_is_a_usage_error_exit_2(
    trail: Trail, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["verify", str(trail.export)])
    assert exit_info.value.code == 2
    assert "--public-key" in capsys.readouterr().err


# --- as a real process --------------------------------------------------------------------------


def test_python_dash_m_audit_verify_as_a_subprocess_exits_0_then_1_naming_the_record(
    trail: Trail,
) -> None:
    python = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
    argv = [python, "-m", "audit", "verify", str(trail.export), "--public-key"]
    argv += [str(trail.public_key), "--checkpoint", str(trail.checkpoint)]

    intact = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert intact.returncode == 0, intact.stderr
    assert json.loads(intact.stdout)["ok"] is True

    lines = list(trail.lines)
    index = trail.line_of(7)
    lines[index] = _edit_record(lines[index], memory_ids=["m-7", "m-8", "m-99"])
    trail.write(lines)
    tampered = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert tampered.returncode == 1, tampered.stderr
    assert json.loads(tampered.stdout)["first_bad_seq"] == 7
    assert "TAMPERED at record 7" in tampered.stderr
    assert "Traceback" not in tampered.stderr
