"""What an attacker with write access to the audit database alone does to it, for the tamper
tests of the endpoint, the CLI and the offline verifier."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy import text as sqltext

from audit import GENESIS, AuditRecord, MerkleLog, seal
from memory_store.storage.audit_trail import INSERT_RECORD, AuditTrailStore, record_row
from memory_store.storage.rawdb import RawDB


def stored_records(engine: Engine) -> list[AuditRecord]:
    return list(AuditTrailStore(RawDB(engine)).iter_records())


def sql(engine: Engine, *statements: str) -> None:
    """Change the trail directly in its database."""
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sqltext(statement))


def rechain(records: list[AuditRecord]) -> list[AuditRecord]:
    """Seal records again from the start, as one who rewrites the trail does."""
    sealed, prev = [], GENESIS
    for seq, record in enumerate(records, start=1):
        sealed.append(seal(record, seq=seq, prev=prev))
        prev = sealed[-1].hash
    return sealed


def _set_head(raw: RawDB, cursor: object, records: list[AuditRecord]) -> None:
    tree = MerkleLog()
    for record in records:
        tree.append(bytes.fromhex(record.hash))
    cursor.execute(  # type: ignore[attr-defined]
        raw.sql("UPDATE audit_head SET seq = ?, hash = ?, frontier = ? WHERE id = 1"),
        (len(records), records[-1].hash if records else GENESIS, tree.frontier().encode()),
    )


def replace_trail(engine: Engine, forged: list[AuditRecord]) -> None:
    """The thorough attacker: `forged` in place of every record, the head mended (its seq, hash
    and Merkle frontier, so that appends go on) and the stored checkpoints deleted."""
    raw = RawDB(engine)
    with raw.transaction() as cursor:
        cursor.execute("DELETE FROM audit_records")
        cursor.execute("DELETE FROM audit_checkpoints")
        for record in forged:
            cursor.execute(raw.sql(INSERT_RECORD), record_row(record))
        _set_head(raw, cursor, forged)


def mend_head(engine: Engine) -> None:
    """Point the head at the records as they now are (after an insertion)."""
    raw = RawDB(engine)
    records = stored_records(engine)
    with raw.transaction() as cursor:
        _set_head(raw, cursor, records)
