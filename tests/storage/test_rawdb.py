"""RawDB: the hot paths' per-thread SQLite connections (one per live thread, closed when the
thread ends, as the request thread pool retires idle threads, and when the engine is closed);
and on either database, reads that leave every pooled connection as transactions need it."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import pytest

from memory_store.config import Settings
from memory_store.storage.engines import make_engine
from memory_store.storage.rawdb import RawDB, _per_engine, close_thread_connections


def test_a_finished_threads_connection_is_closed_and_the_rest_close_with_the_engine(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    raw = RawDB(engine)
    try:
        for _ in range(20):  # twenty short-lived threads, as a retiring pool leaves behind
            thread = threading.Thread(target=lambda: raw.one("SELECT 1", ()))
            thread.start()
            thread.join()
        assert raw.one("SELECT 1", ()) == (1,)
        gc.collect()
        assert len(_per_engine[engine]._held) == 1  # only this thread's is still open
    finally:
        close_thread_connections(engine)
        engine.dispose()
    assert engine not in _per_engine


def test_reads_leave_the_pooled_connection_as_a_transaction_expects_it(settings: Settings) -> None:
    """On PostgreSQL a read runs in autocommit (one round trip, not three): the connection
    must go back to the pool out of autocommit, or the next transaction on it would commit
    statement by statement. Here a transaction that fails after its first insert, on the
    very connection the reads used (one thread, so the pool hands the same one back), must
    leave nothing; so must one after a read that failed."""
    engine = make_engine(settings.resolved_database_url())
    raw = RawDB(engine)
    try:
        raw.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY)", ())
        for _ in range(5):
            assert raw.all("SELECT id FROM probe", ()) == []
        assert raw.one("SELECT count(*) FROM probe", ()) == (0,)
        with pytest.raises(engine.dialect.loaded_dbapi.Error):
            raw.one("SELECT no_such_column FROM probe", ())
        for first in (1, 2):
            with pytest.raises(RuntimeError), raw.transaction() as cursor:
                cursor.execute(raw.sql("INSERT INTO probe (id) VALUES (?)"), (first,))
                raise RuntimeError("fails after its first statement")
            assert raw.all("SELECT id FROM probe", ()) == []
        with raw.transaction() as cursor:
            cursor.execute(raw.sql("INSERT INTO probe (id) VALUES (?)"), (3,))
        assert raw.all("SELECT id FROM probe", ()) == [(3,)]
    finally:
        close_thread_connections(engine)
        engine.dispose()
