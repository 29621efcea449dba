"""The hot paths' per-thread SQLite connections: one per live thread, closed when the thread
ends (the request thread pool retires idle threads) and when the engine is closed."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

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
