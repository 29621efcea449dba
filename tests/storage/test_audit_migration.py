"""A trail made before the Merkle tree (audit schema cef8a1e12b7b: a head of seq and hash,
checkpoints v1) brought to the current schema: its head gains the tree's frontier over the
records as they are, its old checkpoints still verify, and the first checkpoint after the
upgrade anchors all of it. A trail missing records below its head gets no frontier, and the
service then fails closed rather than extend it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from audit import AuditRecord, MerkleLog, SigningKey, load_anchors, seal
from memory_store.config import Settings
from memory_store.domain import OPERATOR, Principal, Role
from memory_store.runtime import open_engines, open_runtime
from memory_store.storage import migrate as schema
from memory_store.storage.audit_trail import INSERT_RECORD, record_row
from memory_store.storage.rawdb import RawDB
from memory_store.trail.log import CheckpointRefused

LEGACY = "cef8a1e12b7b"
AT = "2026-11-26T10:00:00.000000Z"
COMPLIANCE = Principal(token_id="t", name="c", role=Role.compliance, user_id=None)


def legacy_trail(settings: Settings, count: int) -> tuple[list[AuditRecord], SigningKey]:
    """`count` records and v1 checkpoints at every fifth, written as the old release did."""
    engines = open_engines(settings)
    engine = engines["audit"]
    try:
        schema.upgrade(engine, "audit", LEGACY)
        key = SigningKey.load_or_create(settings.resolved_audit_key_file(), create=True)
        records, prev = [], "0" * 64
        for n in range(1, count + 1):
            record = AuditRecord(
                at=AT,
                actor_id="tok_old",
                actor_role="admin",
                request_id=f"req-{n}",
                action="test.legacy",
                outcome="allowed",
            )
            records.append(seal(record, seq=n, prev=prev))
            prev = records[-1].hash
        raw = RawDB(engine)
        with raw.transaction() as cursor:
            for record in records:
                cursor.execute(raw.sql(INSERT_RECORD), record_row(record))
            cursor.execute(
                raw.sql("INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)"),
                (count, prev),
            )
            for record in records[4::5]:
                signed = key.sign(seq=record.seq, hash=record.hash, at=AT)
                cursor.execute(
                    raw.sql(
                        "INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature) "
                        "VALUES (?, ?, ?, ?, ?)"
                    ),
                    (signed.seq, signed.hash, signed.at, signed.key_id, signed.signature),
                )
    finally:
        for each in engines.values():
            each.dispose()
    return records, key


def frontier_text(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT frontier FROM audit_head WHERE id = 1")).scalar())


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", retention_sweep_seconds=0, kek_rotate_every=0)


def test_an_old_trail_gains_its_frontier_keeps_its_checkpoints_and_is_anchored_after(
    settings: Settings, tmp_path: Path
) -> None:
    records, key = legacy_trail(settings, 23)
    runtime = open_runtime(settings)  # migrates
    try:
        tree = MerkleLog()
        for record in records:
            tree.append(bytes.fromhex(record.hash))
        assert runtime.audit_store.head().frontier == tree.frontier()
        assert frontier_text(runtime.audit_engine) == tree.frontier().encode()
        # Nothing anchors it yet; its own old checkpoints are checked and hold.
        before = runtime.audit.verify(COMPLIANCE, allow_unanchored=True)
        assert before.ok and before.checkpoints == 4 and not before.anchored
        # A v1 checkpoint kept outside still anchors the old trail.
        kept = tmp_path / "kept.json"
        kept.write_text(json.dumps(key.sign(seq=20, hash=records[19].hash, at=AT).to_dict()))
        anchored = runtime.audit.verify(COMPLIANCE, trusted=load_anchors(kept))
        assert anchored.ok and anchored.anchored_through == 20
        # New records extend the tree the migration built; the next checkpoint covers all.
        runtime.auditor.record(OPERATOR, "test.after")
        signed = runtime.audit_log.checkpoint()
        assert signed is not None and signed.size == runtime.audit_store.head().seq
        after = runtime.audit.verify(COMPLIANCE)
        assert after.ok, after.problem
        assert after.anchored_through == signed.size
    finally:
        runtime.close()


def test_an_old_trail_missing_a_record_below_its_head_is_reported_and_never_signed(
    settings: Settings,
) -> None:
    """Tampered with before the upgrade: no tree fits it. Its chain goes on (reads are not
    refused), no checkpoint is signed over it, and verify names the missing record."""
    legacy_trail(settings, 12)
    engines = open_engines(settings)
    with engines["audit"].begin() as conn:
        conn.execute(text("DELETE FROM audit_records WHERE seq = 4"))
    for engine in engines.values():
        engine.dispose()
    runtime = open_runtime(settings)
    try:
        assert frontier_text(runtime.audit_engine) == ""
        appended = runtime.auditor.record(OPERATOR, "test.after")
        assert appended.seq == 13
        with pytest.raises(CheckpointRefused, match="records are missing"):
            runtime.audit_log.checkpoint()
        result = runtime.audit.verify(COMPLIANCE, allow_unanchored=True)
        assert not result.ok
        assert result.first_bad_seq == 4 and "missing" in (result.problem or "")
    finally:
        runtime.close()
    assert not settings.resolved_audit_witness_dir().exists()
