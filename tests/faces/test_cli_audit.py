"""`memory-store audit verify|export|checkpoint|public-key` on a real trail."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from audit import TreeCheckpoint, load_anchors, load_public_key
from audit.__main__ import main as offline_verify
from memory_store.cli import main
from memory_store.config import Settings
from memory_store.domain import OPERATOR
from memory_store.runtime import open_runtime
from memory_store.storage.engines import make_engine
from tests.trail.helpers import rechain, replace_trail, sql, stored_records


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir with a trail of 20 records, the CLI pointed at it."""
    path = tmp_path / "var"
    monkeypatch.setenv("MEMORY_STORE_DATA_DIR", str(path))
    monkeypatch.setenv("MEMORY_STORE_RETENTION_SWEEP_SECONDS", "0")
    runtime = open_runtime(Settings())
    for _ in range(20):
        runtime.auditor.record(OPERATOR, "test.append")
    runtime.close()
    return path


def tamper(*statements: str) -> None:
    """Change the trail directly in its database, as an attacker with access would."""
    engine = make_engine(Settings().resolved_audit_database_url())
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def witness_dir(data_dir: Path) -> Path:
    return data_dir / "audit-witness"


def audit_engine() -> Engine:
    return make_engine(Settings().resolved_audit_database_url())


def tamper_with(change: Any) -> None:
    """Run `change` on the audit database, as an attacker with access to it alone would."""
    engine = audit_engine()
    try:
        change(engine)
    finally:
        engine.dispose()


def test_export_then_offline_verify_with_the_witness_directory_is_intact(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export, key = tmp_path / "trail.jsonl", tmp_path / "key.pem"
    assert main(["audit", "export", "--output", str(export)]) == 0
    assert main(["audit", "public-key"]) == 0
    key.write_text(capsys.readouterr().out)
    load_public_key(key.read_bytes())  # a real Ed25519 PEM
    lines = export.read_text().splitlines()
    assert json.loads(lines[0])["type"] == "header"
    assert sum(json.loads(line)["type"] == "record" for line in lines) >= 21
    witness = str(witness_dir(data_dir))
    assert offline_verify(["verify", str(export), "--public-key", str(key)]) == 1  # unanchored
    assert (
        offline_verify(["verify", str(export), "--public-key", str(key), "--checkpoints", witness])
        == 0
    )


def test_verify_says_intact_and_anchored_then_names_the_tampered_record(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "verify"]) == 0
    captured = capsys.readouterr()
    verdict = json.loads(captured.out)
    assert verdict["ok"] is True and verdict["anchored_through"] == 20  # the close's checkpoint
    assert "anchored through record 20" in captured.err
    tamper("UPDATE audit_records SET action = 'memory.read' WHERE seq = 7")
    assert main(["audit", "verify"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["first_bad_seq"] == 7
    assert "TAMPERED at record 7" in captured.err


def test_checkpoint_prints_and_publishes_a_signed_note(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "checkpoint"]) == 0
    captured = capsys.readouterr()
    signed = TreeCheckpoint.parse(captured.out)
    assert main(["audit", "public-key"]) == 0
    assert signed.verify(load_public_key(capsys.readouterr().out.encode()))
    assert signed.size >= 20
    published = [c for c in load_anchors(witness_dir(data_dir)) if c.seq == signed.size]
    assert [c.note for c in published if isinstance(c, TreeCheckpoint)] == [signed.note]
    assert str(witness_dir(data_dir)) in captured.err


def test_a_kept_checkpoint_catches_a_cut_tail(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "checkpoint"]) == 0
    kept = tmp_path / "checkpoint.note"
    kept.write_text(capsys.readouterr().out)
    tamper_with(lambda engine: replace_trail(engine, stored_records(engine)[:15]))
    assert main(["audit", "verify", "--checkpoints", str(kept)]) == 1
    err = capsys.readouterr().err
    assert "TAMPERED" in err and ("cut off" in err or "differ from signed checkpoint" in err)
    assert main(["audit", "verify"]) == 1  # the witness directory's catch it too


def _rewrite(engine: Engine) -> None:
    records = stored_records(engine)
    replace_trail(
        engine, rechain([*records[:9], replace(records[9], outcome="denied"), *records[10:]])
    )


def _forge(engine: Engine) -> None:
    replace_trail(
        engine, rechain([replace(r, actor_id="tok_forged") for r in stored_records(engine)[:3]])
    )


@pytest.mark.parametrize(
    "change",
    [
        lambda engine: sql(engine, "UPDATE audit_records SET outcome = 'denied' WHERE seq = 4"),
        lambda engine: sql(engine, "DELETE FROM audit_records WHERE seq = 5"),
        lambda engine: sql(
            engine,
            "UPDATE audit_records SET seq = -1 WHERE seq = 3",
            "UPDATE audit_records SET seq = 3 WHERE seq = 4",
            "UPDATE audit_records SET seq = 4 WHERE seq = -1",
        ),
        _rewrite,
        _forge,
    ],
    ids=["edited", "deleted", "reordered", "rewritten-and-rechained", "forged-from-scratch"],
)
def test_verify_fails_on_tampering_given_the_witness_checkpoints(
    data_dir: Path, capsys: pytest.CaptureFixture[str], change: Any
) -> None:
    """The head mended and the stored checkpoints deleted where the attack calls for it: the
    witness directory's checkpoints (the close's, at 20) still catch it."""
    tamper_with(change)
    assert main(["audit", "verify"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["ok"] is False
    assert "TAMPERED at record" in captured.err


def test_verify_of_an_unanchored_trail_fails_unless_allowed(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for note in witness_dir(data_dir).iterdir():
        note.unlink()
    assert main(["audit", "verify"]) == 1
    assert "NOT VERIFIED: nothing is anchored" in capsys.readouterr().err
    for note in witness_dir(data_dir).iterdir():  # the command's close published one
        note.unlink()
    assert main(["audit", "verify", "--allow-unanchored"]) == 0
    assert "NOT ANCHORED" in capsys.readouterr().err


def test_a_new_process_will_not_sign_a_rewritten_trail(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It starts from the largest published checkpoint (and the tree the database keeps for
    it, proven by the signed root): the rewritten trail does not extend it, so nothing of it
    is signed or published, by `audit checkpoint` or by any command's close."""
    published = sorted(witness_dir(data_dir).iterdir())
    tamper_with(_rewrite)
    assert main(["audit", "checkpoint"]) == 1
    assert "refusing to sign" in capsys.readouterr().err
    assert main(["audit", "verify"]) == 1
    assert sorted(witness_dir(data_dir).iterdir()) == published


def test_verify_with_an_unreadable_checkpoint_file_is_a_usage_error(
    data_dir: Path, tmp_path: Path
) -> None:
    garbage = tmp_path / "checkpoint.json"
    garbage.write_text("{not json")
    assert main(["audit", "verify", "--checkpoint", str(garbage)]) == 2
    assert main(["audit", "verify", "--checkpoints", str(tmp_path / "missing.note")]) == 2
    garbage.write_text("memory-store.local/audit/x\n20\n")
    assert main(["audit", "verify", "--checkpoints", str(tmp_path)]) == 2


def test_checkpoint_on_an_empty_trail_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEMORY_STORE_DATA_DIR", str(tmp_path / "empty"))
    open_runtime(Settings()).close()  # a new store: no record yet
    capsys.readouterr()
    assert main(["audit", "checkpoint"]) == 1
    assert "the trail is empty" in capsys.readouterr().err


def test_verify_and_export_are_decided_by_the_policy_and_recorded_as_operations(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The operator at the console verifies and exports through the same service and Casbin
    check as compliance over HTTP, under its own purpose; each is on the record."""
    assert main(["audit", "verify"]) == 0
    assert main(["audit", "export", "--output", str(tmp_path / "trail.jsonl")]) == 0
    runtime = open_runtime(Settings())
    try:
        trail = list(runtime.audit_store.iter_records())
    finally:
        runtime.close()
    console = [r for r in trail if r.action in {"audit.verify", "audit.export"}]
    assert [(r.action, r.actor_role, r.purpose, r.outcome) for r in console] == [
        ("audit.verify", "admin", "operations", "allowed"),
        ("audit.export", "admin", "operations", "allowed"),
    ]
