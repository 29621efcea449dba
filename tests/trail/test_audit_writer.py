"""The audit writer: one connection of its own, the chain's head kept in memory and moved by a
conditional UPDATE, a batch chained again when another writer moved the head, a failed batch
failing its callers and the next one starting on a fresh connection."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from audit import GENESIS, AuditRecord, MerkleLog
from memory_store.domain import OPERATOR, AuditQuery
from memory_store.errors import AuditUnavailable
from memory_store.runtime import Runtime
from memory_store.storage.audit_writer import AuditAppendError
from memory_store.trail.log import AuditLog
from memory_store.trail.verification import verify_stored
from memory_store.trail.witness import Witnesses


def record(number: int, memory_ids: tuple[str, ...] = ()) -> AuditRecord:
    return AuditRecord(
        at="2026-11-26T10:00:00.000000Z",
        actor_id="tok_writer",
        actor_role="admin",
        request_id=f"req-{number}",
        action="test.writer",
        outcome="allowed",
        memory_ids=memory_ids,
        result_count=number,
    )


def stored(runtime: Runtime) -> list[AuditRecord]:
    return list(runtime.audit_store.iter_records())


def assert_one_intact_chain(runtime: Runtime) -> list[AuditRecord]:
    """One gap-free chain, and the head's Merkle frontier is the tree of exactly its records
    (whichever writer extended it)."""
    trail = stored(runtime)
    assert [r.seq for r in trail] == list(range(1, len(trail) + 1))
    result = verify_stored(
        runtime.audit_store, runtime.audit_log.signing_key, [], allow_unanchored=True
    )
    assert result.ok, result.problem
    tree = MerkleLog()
    for r in trail:
        tree.append(bytes.fromhex(r.hash))
    committed = runtime.audit_store.head()
    assert (committed.seq, committed.hash) == (len(trail), trail[-1].hash if trail else GENESIS)
    assert committed.frontier == tree.frontier()
    return trail


def head(runtime: Runtime) -> tuple[int, str]:
    with runtime.audit_engine.connect() as conn:
        row = conn.execute(text("SELECT seq, hash FROM audit_head WHERE id = 1")).one()
    return int(row.seq), str(row.hash)


@pytest.fixture
def second_log(runtime: Runtime) -> Iterator[AuditLog]:
    """Another writer on the same database, as another server process would be."""
    log = AuditLog(
        runtime.audit_engine,
        runtime.audit_log.signing_key,
        witnesses=Witnesses(runtime.audit_log.witness_directory),
        checkpoint_every=10**6,
        checkpoint_seconds=3600,
    )
    yield log
    log.close()


def test_two_writers_taking_turns_chain_again_on_the_head_the_other_moved(
    runtime: Runtime, second_log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each turn finds the head moved since its writer last saw it: the conditional UPDATE
    misses, the writer re-reads the head and chains the batch again."""
    writers = [runtime.audit_log, second_log]
    head_reads = [0, 0]
    for i, log in enumerate(writers):
        log.append(record(-1))  # each has its connection, and has read the head once

        def counting(conn: Any, i: int = i, read: Any = log.writer._read_head) -> tuple[int, str]:
            head_reads[i] += 1
            return read(conn)  # type: ignore[no-any-return]

        monkeypatch.setattr(log.writer, "_read_head", counting)
    returned = [writers[n % 3 % 2].append(record(n)) for n in range(20)]
    # Turns where the other writer went last: 7 for the first writer, 7 for the second.
    assert head_reads == [7, 7]
    trail = assert_one_intact_chain(runtime)
    assert trail[-20:] == returned
    assert head(runtime) == (returned[-1].seq, returned[-1].hash)


def test_two_writers_appending_at_once_write_one_gap_free_chain(
    runtime: Runtime, second_log: AuditLog
) -> None:
    returned: list[AuditRecord] = []
    lock = threading.Lock()

    def append_many(log: AuditLog, first: int) -> None:
        for n in range(first, first + 25):
            committed = log.append(record(n))
            with lock:
                returned.append(committed)

    threads = [
        threading.Thread(target=append_many, args=(log, 100 * i))
        for i, log in enumerate([runtime.audit_log, second_log] * 4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trail = assert_one_intact_chain(runtime)
    assert len(returned) == 200
    by_seq = {r.seq: r for r in trail}
    assert all(by_seq[r.seq] == r for r in returned)  # each caller got its record as stored


def test_the_writer_chains_on_the_head_as_stored_never_on_a_stale_copy(runtime: Runtime) -> None:
    """The in-memory head is only a guess: the UPDATE names its hash too, so a head changed
    under the writer (same seq, another hash) is re-read, as the old per-batch SELECT did."""
    first = runtime.audit_log.append(record(1))
    with runtime.audit_engine.begin() as conn:
        conn.execute(text("UPDATE audit_head SET hash = :h WHERE id = 1"), {"h": "f" * 64})
    second = runtime.audit_log.append(record(2))
    assert (second.seq, second.prev) == (first.seq + 1, "f" * 64)


def test_records_read_back_for_the_verifier_are_the_records_committed(runtime: Runtime) -> None:
    """Plain DB-API reads, keyset-paged, rebuild every field (memory ids included)."""
    ids = [(), ("mem_1",), ("mem_1", "mem_2"), ('a"b', "\u00e9\u2028", "[]", "")]
    returned = [runtime.audit_log.append(record(n, memory_ids=m)) for n, m in enumerate(ids)]
    for batch_size in (1, 2, 3, 5000):
        assert list(runtime.audit_store.iter_records(batch_size=batch_size))[-4:] == returned
    newest_first = runtime.audit_store.page(AuditQuery(), limit=4, before_seq=None)
    assert newest_first == returned[::-1]


def test_a_failed_batch_fails_its_caller_commits_nothing_and_the_next_starts_afresh(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = runtime.audit_log
    before = log.append(record(1))
    connection = log.writer._conn
    assert connection is not None
    broken = log.writer._sql.insert.replace("audit_records", "no_such_table")
    monkeypatch.setattr(log.writer._sql, "insert", broken)
    with pytest.raises(AuditAppendError):
        log.append(record(2))
    assert head(runtime) == (before.seq, before.hash)
    assert stored(runtime)[-1] == before
    # The failed batch's connection was closed; the next batch opens another.
    with pytest.raises(runtime.audit_engine.dialect.loaded_dbapi.Error):
        connection.cursor().execute("SELECT 1")
    monkeypatch.undo()
    after = log.append(record(3))
    assert (after.seq, after.prev) == (before.seq + 1, before.hash)
    assert log.writer._conn is not None and log.writer._conn is not connection
    assert_one_intact_chain(runtime)


@pytest.mark.sqlite_only
def test_a_database_refusing_the_insert_fails_closed_and_appends_resume_when_it_accepts(
    runtime: Runtime,
) -> None:
    runtime.auditor.record(OPERATOR, "test.writer")
    path = runtime.settings.data_dir / "audit.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_records "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    with pytest.raises(AuditUnavailable):
        runtime.auditor.record(OPERATOR, "test.writer")
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER refuse")
    runtime.auditor.record(OPERATOR, "test.writer")
    trail = assert_one_intact_chain(runtime)
    assert [r.action for r in trail].count("test.writer") == 2


@pytest.mark.sqlite_only
def test_the_writers_sqlite_connection_has_the_engines_pragmas(runtime: Runtime) -> None:
    runtime.audit_log.append(record(1))
    conn = runtime.audit_log.writer._conn
    assert isinstance(conn, sqlite3.Connection)
    pragmas = {
        name: conn.execute(f"PRAGMA {name}").fetchone()[0]
        for name in ("journal_mode", "synchronous", "busy_timeout", "secure_delete")
    }
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 2,  # FULL
        "busy_timeout": 30000,
        "secure_delete": 1,
    }


def test_a_writer_connection_the_server_dropped_is_replaced_before_the_next_append(
    runtime: Runtime,
) -> None:
    if runtime.audit_engine.dialect.name != "postgresql":
        pytest.skip("a server-side disconnect needs a server")
    log = runtime.audit_log
    first = log.append(record(1))
    assert log.writer._conn is not None
    pid = log.writer._conn.info.backend_pid
    with runtime.audit_engine.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    second = log.append(record(2))
    assert (second.seq, second.prev) == (first.seq + 1, first.hash)
    assert_one_intact_chain(runtime)
