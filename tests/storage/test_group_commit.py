"""The memory database's group commit: writes waiting together share one transaction, each
caller hears back only after the commit, and one failing write does not undo the others."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, text

from memory_store.runtime import Runtime
from memory_store.storage.group_commit import GroupCommitter, WriteFailed


@pytest.fixture
def engine(runtime: Runtime) -> Iterator[Engine]:
    with runtime.engine.begin() as conn:
        conn.execute(text("CREATE TABLE scratch (n INTEGER PRIMARY KEY)"))
    yield runtime.engine


def insert(n: int) -> Any:
    def job(cursor: Any) -> int:
        cursor.execute(f"INSERT INTO scratch (n) VALUES ({n:d})")
        return n

    return job


def stored(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return sorted(conn.execute(text("SELECT n FROM scratch")).scalars())


def test_writes_waiting_together_share_one_commit(engine: Engine) -> None:
    writer = GroupCommitter(engine, name="test-writer")
    release = threading.Event()

    def slow(cursor: Any) -> int:
        release.wait(10)  # holds the writer while the others queue up
        cursor.execute("INSERT INTO scratch (n) VALUES (0)")
        return 0

    try:
        with ThreadPoolExecutor(11) as pool:
            first = pool.submit(writer.run, slow)
            while writer._queue.qsize() > 0:  # the writer has taken the slow one
                time.sleep(0.01)
            rest = [pool.submit(writer.run, insert(n)) for n in range(1, 11)]
            deadline = time.monotonic() + 10
            while writer._queue.qsize() < 10 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert not any(f.done() for f in rest)  # nobody hears back before the commit
            release.set()
            assert first.result() == 0
            assert [f.result() for f in rest] == list(range(1, 11))
        assert writer.batches_committed == 2
        assert stored(engine) == list(range(11))
    finally:
        writer.close()


def test_a_failing_write_is_undone_alone_and_raises_its_own_error(engine: Engine) -> None:
    writer = GroupCommitter(engine, name="test-writer")
    release = threading.Event()

    def hold(cursor: Any) -> None:
        release.wait(10)

    def half_then_fail(cursor: Any) -> None:
        cursor.execute("INSERT INTO scratch (n) VALUES (100)")
        raise ValueError("refused")

    try:
        with ThreadPoolExecutor(4) as pool:
            held = pool.submit(writer.run, hold)
            while writer._queue.qsize() > 0:
                time.sleep(0.01)
            good = pool.submit(writer.run, insert(1))
            bad = pool.submit(writer.run, half_then_fail)
            also_good = pool.submit(writer.run, insert(2))
            while writer._queue.qsize() < 3:
                time.sleep(0.01)
            release.set()
            held.result()
            assert good.result() == 1 and also_good.result() == 2
            with pytest.raises(ValueError, match="refused"):
                bad.result()
        assert stored(engine) == [1, 2]  # 100 was rolled back with its savepoint
        # Alone in its batch, a failing write is rolled back and raises as it is, too.
        with pytest.raises(ValueError, match="refused"):
            writer.run(half_then_fail)
        assert stored(engine) == [1, 2]
        assert writer.run(insert(3)) == 3
    finally:
        writer.close()


def test_a_failed_commit_fails_every_write_of_the_batch_and_the_writer_recovers(
    engine: Engine,
) -> None:
    writer = GroupCommitter(engine, name="test-writer")
    try:
        assert writer.run(insert(1)) == 1
        writer._conn.close()  # the connection dies under the writer
        with pytest.raises(WriteFailed):
            writer.run(insert(2))
        assert writer.run(insert(3)) == 3  # a fresh connection
        assert stored(engine) == [1, 3]
    finally:
        writer.close()
    with pytest.raises(WriteFailed):
        writer.run(insert(4))
