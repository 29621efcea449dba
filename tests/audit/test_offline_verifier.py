"""`python -m audit verify`: the offline verifier a reviewer runs on an export (audit/ only)."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from audit.__main__ import main
from audit.chain import seal
from audit.export import record_line
from audit.note import signature_line
from tests.audit.helpers import AT, chain, export_lines, new_key, sign_tree, simple_record

KEY = new_key()
RECORDS = chain([simple_record(n) for n in range(1, 10)])  # seq 1..9
CHECKPOINTS = [sign_tree(RECORDS, KEY, size) for size in (3, 6, 9)]
VENV_PYTHON = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python"


@dataclass
class Trail:
    export: Path
    public_key: Path
    checkpoint: Path  # the checkpoint at seq 9, saved outside the export
    witness: Path  # a witness directory: the checkpoints at 3, 6 and 9, one note each
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
    checkpoint = tmp_path / "checkpoint-9.note"
    checkpoint.write_text(CHECKPOINTS[-1].note)
    witness = tmp_path / "witness"
    witness.mkdir()
    for signed in CHECKPOINTS:
        (witness / f"checkpoint-{signed.size:012d}.note").write_text(signed.note)
    result = Trail(tmp_path / "export.jsonl", public_key, checkpoint, witness, lines)
    result.write(lines)
    return result


def run(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, dict[str, Any], str]:
    code = main(["verify", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def anchored(capsys: pytest.CaptureFixture[str], trail: Trail) -> tuple[int, dict[str, Any], str]:
    """Verify the export as written, against the public key and the witness directory."""
    return run(
        capsys, trail.export, "--public-key", trail.public_key, "--checkpoints", trail.witness
    )


def _edit_record(line: str, **changes: Any) -> str:
    document = json.loads(line)
    document["record"].update(changes)
    return json.dumps(document) + "\n"


# --- intact -----------------------------------------------------------------------------------


def test_an_intact_export_anchored_by_the_witness_exits_0_and_says_how_far(
    trail: Trail, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result, err = anchored(capsys, trail)
    assert code == 0, err
    assert result["ok"] is True
    assert result["records"] == 9
    assert result["checkpoints"] == 3  # the export's three are the witness's: checked once
    assert result["trusted_checkpoints"] == 3
    assert result["last_seq"] == 9
    assert result["last_hash"] == RECORDS[-1].hash
    assert result["first_bad_seq"] is None
    assert result["anchored"] is True
    assert result["anchored_through"] == 9
    assert result["unanchored_tail"] == 0
    assert result["origin"] == KEY.origin
    assert "intact: 9 records, 3 checkpoints" in err
    assert "anchored through record 9" in err


def test_records_after_the_last_trusted_checkpoint_are_reported_as_the_unanchored_tail(
    trail: Trail, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    earlier = tmp_path / "checkpoint-4.note"
    earlier.write_text(sign_tree(RECORDS, KEY, 4).note)
    code, result, err = run(
        capsys, trail.export, "--public-key", trail.public_key, "--checkpoint", earlier
    )
    assert code == 0, err
    assert (result["anchored_through"], result["unanchored_tail"]) == (4, 5)
    assert "5 record(s) after it unanchored" in err


def test_an_export_without_trusted_checkpoints_anchors_nothing_and_exits_1(
    trail: Trail, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its own checkpoints are what the database held: they vouch for nothing."""
    code, result, err = run(capsys, trail.export, "--public-key", trail.public_key)
    assert code == 1
    assert result["ok"] is False
    assert result["first_bad_seq"] is None
    assert result["anchored"] is False and result["unanchored_tail"] == 9
    assert "NOT VERIFIED: nothing is anchored" in err


def test_allow_unanchored_accepts_an_intact_unanchored_export_and_says_so(
    trail: Trail, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result, err = run(
        capsys, trail.export, "--public-key", trail.public_key, "--allow-unanchored"
    )
    assert code == 0
    assert result["ok"] is True and result["anchored_through"] == 0
    assert "NOT ANCHORED" in err


def test_an_export_read_from_stdin_is_verified(
    trail: Trail, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(trail.lines)))
    code, result, _ = run(
        capsys, "-", "--public-key", trail.public_key, "--checkpoints", trail.checkpoint
    )
    assert code == 0
    assert result["records"] == 9


def test_a_witness_cosignature_on_a_trusted_checkpoint_is_ignored(
    trail: Trail, capsys: pytest.CaptureFixture[str]
) -> None:
    cosigned = CHECKPOINTS[-1].note + signature_line("witness.example/w", b"wit1", b"\x07" * 64)
    trail.checkpoint.write_text(cosigned)
    code, result, err = run(
        capsys, trail.export, "--public-key", trail.public_key, "--checkpoints", trail.checkpoint
    )
    assert code == 0, err
    assert result["anchored_through"] == 9


def test_a_legacy_export_with_legacy_checkpoints_still_verifies_and_anchors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Format 1 (no origin in the header, v1 checkpoints): trails cut before the Merkle tree.
    A v1 checkpoint kept outside anchors them through its seq."""
    legacy = [KEY.sign(seq=seq, hash=RECORDS[seq - 1].hash, at=AT) for seq in (3, 6)]
    lines = [
        json.dumps(
            {
                "type": "header",
                "format": "memory-store-audit/1",
                "exported_at": AT,
                "key_id": KEY.key_id,
            }
        )
        + "\n",
        *export_lines(RECORDS, legacy, KEY)[1:],
    ]
    export = tmp_path / "legacy.jsonl"
    export.write_text("".join(lines))
    (tmp_path / "key.pem").write_bytes(KEY.public_pem())
    kept = tmp_path / "checkpoint-6.json"
    kept.write_text(json.dumps(legacy[1].to_dict()))
    code, result, err = run(
        capsys, export, "--public-key", tmp_path / "key.pem", "--checkpoint", kept
    )
    assert code == 0, err
    assert result["checkpoints"] == 2  # 3 and 6: the kept copy of 6 is the export's
    assert (result["anchored_through"], result["unanchored_tail"]) == (6, 3)


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
    code, result, err = anchored(capsys, trail)
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
    code, result, err = anchored(capsys, trail)
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
    code, result, err = anchored(capsys, trail)
    assert code == 1
    assert result["first_bad_seq"] == first
    assert f"TAMPERED at record {first}" in err


def test_an_inserted_record_line_exits_1_where_it_was_inserted(
    trail: Trail, capsys: pytest.CaptureFixture[str]
) -> None:
    """A forged record sealed onto record 4, put before the genuine record 5."""
    forged = seal(replace(simple_record(99), action="memory.purge"), seq=5, prev=RECORDS[3].hash)
    lines = list(trail.lines)
    lines.insert(trail.line_of(5), record_line(forged))
    trail.write(lines)
    code, result, err = anchored(capsys, trail)
    assert code == 1
    assert result["first_bad_seq"] == 5
    assert "TAMPERED at record 5" in err


def test_a_tail_cut_below_an_anchor_exits_1_only_with_the_witness_checkpoints(
    trail: Trail, capsys: pytest.CaptureFixture[str]
) -> None:
    """The cut also removes the checkpoints inside the export, so the export alone still
    verifies (unanchored); the witness's (up to 9) catch it and name record 5."""
    trail.write(trail.lines[: trail.line_of(4) + 1])
    code, result, _ = run(
        capsys, trail.export, "--public-key", trail.public_key, "--allow-unanchored"
    )
    assert code == 0
    assert result["last_seq"] == 4

    code, result, err = anchored(capsys, trail)
    assert code == 1
    assert result["last_seq"] == 4
    assert result["first_bad_seq"] == 5
    assert result["anchored_through"] == 3  # what still holds: the checkpoint at 3
    assert "TAMPERED at record 5" in err
    assert "cut off" in err


def test_a_rewritten_and_rechained_tail_with_its_checkpoints_deleted_exits_1(
    trail: Trail, capsys: pytest.CaptureFixture[str]
) -> None:
    """Record 5 changed, every record after it sealed again, the checkpoints after 4
    dropped from the export: the chain and the remaining checkpoint hold, the witness's
    checkpoint at 6 does not, and says which records are in doubt."""
    edited = [*RECORDS[:4], replace(RECORDS[4], outcome="denied", reason="no consent")]
    rewritten = chain(edited + RECORDS[5:])
    assert rewritten[:4] == RECORDS[:4] and rewritten[4].hash != RECORDS[4].hash
    trail.write(export_lines(rewritten, CHECKPOINTS[:1], KEY))
    code, result, _ = run(
        capsys, trail.export, "--public-key", trail.public_key, "--allow-unanchored"
    )
    assert code == 0  # the database alone cannot tell

    code, result, err = anchored(capsys, trail)
    assert code == 1
    assert result["first_bad_seq"] == 4  # records 1-3 are anchored: 4-6 hold the rewrite
    assert "records 4 to 6 differ from signed checkpoint 6" in result["problem"]
    assert "TAMPERED at record 4" in err


def test_a_trail_forged_from_scratch_exits_1_with_or_without_the_witness(
    trail: Trail, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the issue found: three records made up and chained, no checkpoint, the real
    public key. Without checkpoints from outside nothing anchors it; with them it differs."""
    forged = chain([replace(simple_record(n), actor_id="nobody") for n in range(1, 4)])
    trail.write(export_lines(forged, [], KEY))
    code, result, err = run(capsys, trail.export, "--public-key", trail.public_key)
    assert code == 1
    assert result["checkpoints"] == 0 and result["anchored"] is False
    assert "nothing is anchored" in err

    code, result, err = anchored(capsys, trail)
    assert code == 1
    assert result["first_bad_seq"] == 1
    assert "TAMPERED at record 1" in err


def test_verifying_with_another_public_key_exits_1(
    trail: Trail, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The header names the key the export was made under: another key is refused outright,
    and none of the checkpoints verify under it."""
    other = tmp_path / "other.pem"
    other.write_bytes(new_key().public_pem())
    code, result, _ = run(
        capsys, trail.export, "--public-key", other, "--checkpoints", trail.witness
    )
    assert code == 1
    assert result["first_bad_seq"] == 3
    assert "is of another log" in result["problem"]  # the origin is the key's


def test_a_header_naming_another_key_exits_1(
    trail: Trail, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = list(trail.lines)
    header = json.loads(lines[0])
    header["key_id"] = "0123456789abcdef"
    lines[0] = json.dumps(header) + "\n"
    trail.write(lines)
    code, result, err = anchored(capsys, trail)
    assert code == 1
    assert result["first_bad_seq"] is None
    assert "names signing key '0123456789abcdef'" in err
    assert KEY.key_id in err


@pytest.mark.parametrize(
    "header",
    [
        None,
        {"type": "header", "format": "memory-store-audit/9", "key_id": KEY.key_id},
        {"type": "header", "format": "memory-store-audit/2", "key_id": KEY.key_id, "origin": "x"},
    ],
    ids=["missing", "unknown-format", "other-origin"],
)
def test_an_export_without_its_header_or_with_a_foreign_one_exits_1(
    trail: Trail, capsys: pytest.CaptureFixture[str], header: dict[str, Any] | None
) -> None:
    lines = list(trail.lines)
    lines[0:1] = [] if header is None else [json.dumps(header) + "\n"]
    trail.write(lines)
    code, result, err = anchored(capsys, trail)
    assert code == 1
    assert result["ok"] is False and "NOT VERIFIED" in err


def test_a_second_header_is_a_malformed_line(
    trail: Trail, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = list(trail.lines)
    lines.insert(trail.line_of(5), lines[0])
    trail.write(lines)
    code, result, _ = anchored(capsys, trail)
    assert code == 1
    assert result["first_bad_seq"] == 5


@pytest.mark.parametrize("which", ["other-key", "bad-signature", "other-origin"])
def test_a_trusted_checkpoint_not_signed_by_this_log_exits_1(
    trail: Trail, capsys: pytest.CaptureFixture[str], which: str
) -> None:
    genuine = CHECKPOINTS[-1].note
    body, signature = genuine.split("\n\n")
    if which == "other-key":
        forged = new_key().sign_tree(9, CHECKPOINTS[-1].root).note
    elif which == "bad-signature":
        raw = bytearray(base64.b64decode(signature.rsplit(" ", 1)[1]))
        raw[10] ^= 1
        forged = f"{body}\n\n{signature.rsplit(' ', 1)[0]} {base64.b64encode(raw).decode()}\n"
    else:
        forged = genuine.replace(KEY.origin + "\n", "memory-store.local/audit/other\n", 1)
    trail.checkpoint.write_text(forged)
    code, result, err = run(
        capsys, trail.export, "--public-key", trail.public_key, "--checkpoints", trail.checkpoint
    )
    assert code == 1
    assert result["first_bad_seq"] == 9
    assert "TAMPERED at record 9" in err


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
        '{"type": "checkpoint", "note": "not a note"}',
        '{"type": "checkpoint", "note": 42}',
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
    code, result, err = anchored(capsys, trail)
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
    code, result, _ = anchored(capsys, trail)
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
        CHECKPOINTS[-1].note.split("\n\n")[0] + "\n",  # a note without its signature
        CHECKPOINTS[-1].note.replace("\n9\n", "\nnine\n"),
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
        "unsigned-note",
        "note-with-a-bad-size",
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


def test_a_witness_directory_holding_a_file_that_is_no_checkpoint_exits_2(
    trail: Trail, capsys: pytest.CaptureFixture[str]
) -> None:
    (trail.witness / ".checkpoint-000000000012.note.123.tmp").write_text("half a")
    code, _, _ = anchored(capsys, trail)
    assert code == 0  # a writer's hidden temporary file is not read
    (trail.witness / "notes.txt").write_text("memory-store.local/audit/x\n1\n")
    code, result, err = anchored(capsys, trail)
    assert code == 2
    assert result == {}
    assert "notes.txt" in err


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
