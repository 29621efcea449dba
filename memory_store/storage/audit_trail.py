"""The audit database: its rows, their one codec, and the reads over the trail.

Records are stored column for column as audit.AuditRecord has them (memory ids as a JSON
list); `RECORD_COLUMNS` is that order, so one tuple <-> record codec serves every read and the
writer's insert. The chain's head is one row (`audit_head`): the last record's seq and hash,
and the Merkle tree's frontier over records 1..seq, moved by the writer
(storage/audit_writer.py) with each batch it commits.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

from audit import GENESIS, AuditRecord, Frontier, TreeCheckpoint
from memory_store.domain import AuditQuery
from memory_store.storage.rawdb import RawDB

# AuditRecord's fields, in order, are the table's columns: a row read back builds the record
# positionally.
RECORD_COLUMNS = tuple(field.name for field in fields(AuditRecord))
_SEQ = RECORD_COLUMNS.index("seq")
_SELECT_RECORDS = f"SELECT {', '.join(RECORD_COLUMNS)} FROM audit_records "  # noqa: S608 (fixed)
INSERT_RECORD = (
    f"INSERT INTO audit_records ({', '.join(RECORD_COLUMNS)}) "  # noqa: S608 (fixed names)
    f"VALUES ({', '.join('?' * len(RECORD_COLUMNS))})"
)
READ_HEAD = "SELECT seq, hash, frontier FROM audit_head WHERE id = 1"
MOVE_HEAD = (
    "UPDATE audit_head SET seq = ?, hash = ?, frontier = ? WHERE id = 1 AND seq = ? AND hash = ?"
)
_CHECKPOINT_COLUMNS = "seq, hash, at, key_id, signature, note, frontier"


@dataclass(frozen=True)
class Head:
    """The end of the chain as committed: the last record, and the tree over 1..seq (None
    when the stored frontier does not fit: records were missing below the head when the tree
    was first built; the chain goes on, no checkpoint is signed, verify says where it breaks)."""

    seq: int
    hash: str
    frontier: Frontier | None


def head_of(row: Sequence[Any]) -> Head:
    """A Head from (seq, hash, frontier)."""
    seq = int(row[0])
    try:
        frontier: Frontier | None = Frontier.decode(seq, str(row[2]))
    except ValueError:
        frontier = None
    return Head(seq, str(row[1]), frontier)


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint row as stored (see tables.AuditCheckpointRow): `note` is the signed note,
    or None for a legacy v1 checkpoint. Parsed by whoever reads it (it may be tampered with)."""

    seq: int
    hash: str
    at: str
    key_id: str
    signature: str
    note: str | None
    frontier: str | None


def record_row(record: AuditRecord) -> tuple[Any, ...]:
    """The parameters of INSERT_RECORD."""
    return (
        record.at,
        record.actor_id,
        record.actor_role,
        record.request_id,
        record.action,
        record.outcome,
        record.subject,
        json.dumps(list(record.memory_ids)) if record.memory_ids else "[]",
        record.target,
        record.purpose,
        record.reason,
        record.result_count,
        record.seq,
        record.prev,
        record.hash,
    )


def row_record(row: Sequence[Any]) -> AuditRecord:
    """A record from a row in RECORD_COLUMNS order."""
    memory_ids = () if row[7] == "[]" else tuple(json.loads(row[7]))
    return AuditRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        memory_ids,
        row[8],
        row[9],
        row[10],
        row[11],
        row[12],
        row[13],
        row[14],
    )


class AuditTrailStore:
    """Reads over the trail (filtered pages, the whole chain in order, checkpoints), the
    checkpoints' inserts, and the head row."""

    def __init__(self, raw: RawDB) -> None:
        self._raw = raw

    def ensure_head(self) -> None:
        """Create the chain's head row on a new database (another process may race us)."""
        with self._raw.transaction() as cursor:
            cursor.execute(
                self._raw.sql(
                    "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, ?) ON CONFLICT DO NOTHING"
                ),
                (GENESIS,),
            )

    def head(self) -> Head:
        """The chain's last committed record and tree, as any process committed them."""
        row = self._raw.one(READ_HEAD, ())
        if row is None:
            return Head(0, GENESIS, Frontier())
        return head_of(row)

    def has_records(self) -> bool:
        return self._raw.one("SELECT 1 FROM audit_records LIMIT 1", ()) is not None

    def page(self, query: AuditQuery, *, limit: int, before_seq: int | None) -> list[AuditRecord]:
        """Matching records, newest first."""
        conditions: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("actor_id", query.actor_id),
            ("action", query.action),
            ("purpose", query.purpose),
            ("outcome", query.outcome),
        ):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        for column, values in (("action", query.actions), ("subject", query.subjects)):
            if values is None:
                continue
            if values:
                conditions.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(str(value) for value in values)
            else:
                conditions.append("1 = 0")
        if query.since is not None:
            conditions.append("at >= ?")
            params.append(query.since)
        if query.until is not None:
            conditions.append("at < ?")
            params.append(query.until)
        if before_seq is not None:
            conditions.append("seq < ?")
            params.append(before_seq)
        where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
        statement = _SELECT_RECORDS + where + "ORDER BY seq DESC LIMIT ?"
        return [row_record(row) for row in self._raw.all(statement, [*params, limit])]

    def iter_records(self, *, batch_size: int = 5000) -> Iterator[AuditRecord]:
        """Every record, in sequence order, read in batches (keyset by seq), nothing held
        between batches: the verifier reads the whole trail through here."""
        after = 0
        statement = _SELECT_RECORDS + "WHERE seq > ? ORDER BY seq LIMIT ?"
        while True:
            rows = self._raw.all(statement, (after, batch_size))
            if not rows:
                return
            for row in rows:
                yield row_record(row)
            after = rows[-1][_SEQ]

    def hashes(self, *, after: int, through: int, batch_size: int = 5000) -> Iterator[bytes]:
        """The chain hashes of records after..through, raw, in order: the Merkle tree's leaves."""
        statement = (
            "SELECT seq, hash FROM audit_records WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
        )
        while after < through:
            rows = self._raw.all(statement, (after, through, batch_size))
            if not rows:
                return
            for _seq, digest in rows:
                yield bytes.fromhex(digest)
            after = int(rows[-1][0])

    def checkpoints(self) -> list[StoredCheckpoint]:
        rows = self._raw.all(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY seq",  # noqa: S608
            (),
        )
        return [StoredCheckpoint(int(row[0]), *row[1:]) for row in rows]

    def checkpoint_frontier(self, size: int) -> str | None:
        """The frontier stored with the signed tree of `size` records, if any."""
        row = self._raw.one(
            "SELECT frontier FROM audit_checkpoints WHERE seq = ? AND note IS NOT NULL", (size,)
        )
        return str(row[0]) if row is not None and row[0] is not None else None

    def record(self, seq: int) -> AuditRecord | None:
        row = self._raw.one(_SELECT_RECORDS + "WHERE seq = ?", (seq,))
        return row_record(row) if row is not None else None

    def tree_checkpoint(self, size: int) -> StoredCheckpoint | None:
        """The signed note of the tree of `size` records, if one was stored."""
        row = self._raw.one(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM audit_checkpoints "  # noqa: S608
            "WHERE note IS NOT NULL AND seq = ?",
            (size,),
        )
        return StoredCheckpoint(int(row[0]), *row[1:]) if row is not None else None

    def latest_tree_checkpoint(self, *, covering: int) -> StoredCheckpoint | None:
        """The largest signed note of a tree holding record `covering`, if any."""
        row = self._raw.one(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM audit_checkpoints "  # noqa: S608
            "WHERE note IS NOT NULL AND seq >= ? ORDER BY seq DESC LIMIT 1",
            (covering,),
        )
        return StoredCheckpoint(int(row[0]), *row[1:]) if row is not None else None

    def add_checkpoint(self, checkpoint: TreeCheckpoint, *, at: str, frontier: Frontier) -> bool:
        """Store a signed checkpoint and its tree's frontier; False when one for that size is
        already there."""
        line = checkpoint.signatures[0]  # the log's own: it signs each note alone
        with self._raw.transaction() as cursor:
            cursor.execute(
                self._raw.sql(
                    f"INSERT INTO audit_checkpoints ({_CHECKPOINT_COLUMNS}) "  # noqa: S608
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
                ),
                (
                    checkpoint.size,
                    checkpoint.root.hex(),
                    at,
                    line.key_id.hex(),
                    base64.b64encode(line.key_id + line.signature).decode(),
                    checkpoint.note,
                    frontier.encode(),
                ),
            )
            return bool(cursor.rowcount == 1)
