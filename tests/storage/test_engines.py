"""SQLite files are put in WAL mode once, when an engine is made, waiting for a lock another
process holds instead of failing; connections then only set their own PRAGMAs."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from memory_store.storage.engines import make_engine

pytestmark = pytest.mark.sqlite_only


def test_a_new_database_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "state" / "memory.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            synchronous = conn.exec_driver_sql("PRAGMA synchronous").scalar()
            secure_delete = conn.exec_driver_sql("PRAGMA secure_delete").scalar()
        assert (mode, synchronous, secure_delete) == ("wal", 2, 1)  # FULL is 2
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
    finally:
        engine.dispose()


def test_making_an_engine_waits_for_a_lock_another_connection_holds(tmp_path: Path) -> None:
    """Switching a file to WAL needs its write lock: an engine made while another process
    holds it (a server mid-write) waits for it, as any statement would, and then works."""
    path = tmp_path / "memory.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (i INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO t VALUES (1)")
    released = threading.Event()

    def release_later() -> None:
        time.sleep(0.5)
        holder.execute("COMMIT")
        released.set()

    thread = threading.Thread(target=release_later)
    thread.start()
    try:
        engine = make_engine(f"sqlite:///{path}")
        assert released.is_set()  # it waited for the lock rather than fail
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
        engine.dispose()
    finally:
        thread.join()
        holder.close()
