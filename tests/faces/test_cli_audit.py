"""`memory-store audit verify|export|checkpoint|public-key` on a real trail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from audit import Checkpoint, load_public_key
from audit.__main__ import main as offline_verify
from memory_store.cli import main
from memory_store.config import Settings
from memory_store.domain import OPERATOR
from memory_store.runtime import open_runtime
from memory_store.storage.engines import make_engine


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


def test_export_then_offline_verify_is_intact(
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
    assert offline_verify(["verify", str(export), "--public-key", str(key)]) == 0


def test_verify_says_intact_then_names_the_tampered_record(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "verify"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    tamper("UPDATE audit_records SET action = 'memory.read' WHERE seq = 7")
    assert main(["audit", "verify"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["first_bad_seq"] == 7
    assert "TAMPERED at record 7" in captured.err


def test_a_kept_checkpoint_catches_a_cut_tail(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "checkpoint"]) == 0
    signed = Checkpoint.from_dict(json.loads(capsys.readouterr().out))
    kept = tmp_path / "checkpoint.json"
    kept.write_text(json.dumps(signed.to_dict()))
    tamper(
        "DELETE FROM audit_records WHERE seq > 15",
        "DELETE FROM audit_checkpoints",
        "UPDATE audit_head SET seq = 15, hash = (SELECT hash FROM audit_records WHERE seq = 15)",
    )
    assert main(["audit", "verify", "--checkpoint", str(kept)]) == 1
    err = capsys.readouterr().err
    assert "TAMPERED" in err and ("cut off" in err or "rewritten" in err)


def test_verify_with_an_unreadable_checkpoint_file_is_a_usage_error(
    data_dir: Path, tmp_path: Path
) -> None:
    garbage = tmp_path / "checkpoint.json"
    garbage.write_text("{not json")
    assert main(["audit", "verify", "--checkpoint", str(garbage)]) == 2
    assert main(["audit", "verify", "--checkpoint", str(tmp_path / "missing.json")]) == 2


def test_checkpoint_on_an_empty_trail_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEMORY_STORE_DATA_DIR", str(tmp_path / "empty"))
    assert main(["audit", "checkpoint"]) == 1
    assert "empty" in capsys.readouterr().err


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
