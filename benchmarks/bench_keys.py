"""What per-memory item keys cost, in-process, one caller at a time (SQLite).

1. Write: writes per second with the item key committed to the key store (as the service
   does), against the same writes with that commit skipped, interleaved run by run; the
   ratio is the median of the per-run ratios.
2. List 20: the share of a list spent on item keys (one key-store query for the page, one
   unwrap per row), against the whole list.
3. Forget one memory, and forget a category of a fifth of them, for a user holding 10,000
   memories: the item keys deleted and the user's key re-issued, every other item key
   rewrapped under it, in one key-store transaction.

Forgetting everything with 10,000 memories (and their 10,000 item keys) is in `inprocess`.
"""

from __future__ import annotations

import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.bench_inprocess import (
    ASSISTANT,
    CATEGORIES,
    PURPOSE,
    _filler,
    _open,
    _sqlite,
    _write,
    _write_many,
)
from benchmarks.common import Row, median_us, per_second, target
from memory_store.domain import Principal, Role
from memory_store.keys.envelope import new_item_key
from memory_store.pending import Pending
from memory_store.runtime import Runtime
from memory_store.services.memories import ListQuery

HELD = 10_000  # memories of the user who forgets
WRITERS = 100


def _me(user_id: str) -> Principal:
    return Principal(token_id=f"t-{user_id}", name=user_id, role=Role.user, user_id=user_id)


# -- 1. write, with and without the item key's commit ---------------------------------------------


def _write_cost(runtime: Runtime, seconds: float, runs: int) -> list[Row]:
    for n in range(WRITERS):  # every writer's key exists: the steady state
        _write(runtime, f"writer-{n}", "warm-up", "preferences")
    turn = iter(range(10**9))

    def write() -> None:
        _write(runtime, f"writer-{next(turn) % WRITERS}", "likes tea", "preferences")

    keyring = runtime.keyring
    store = keyring.begin_storing_item_keys
    with_keys, without = [], []
    try:
        for _ in range(runs):
            keyring.begin_storing_item_keys = store  # type: ignore[method-assign]
            with_keys.append(per_second(write, seconds=seconds))
            keyring.begin_storing_item_keys = lambda *_a, **_k: Pending.done(None)  # type: ignore[method-assign]
            without.append(per_second(write, seconds=seconds))
    finally:
        keyring.begin_storing_item_keys = store  # type: ignore[method-assign]
    ratio = statistics.median(w / o for w, o in zip(with_keys, without, strict=True))
    return [
        Row("write: with its item key committed", statistics.median(with_keys), "op/s"),
        Row("write: the same, item key not stored", statistics.median(without), "op/s"),
        Row("write: with / without the item key", ratio, "ratio", "1.0 = free"),
    ]


# -- 2. the item keys' share of a list ------------------------------------------------------------


def _list_share(runtime: Runtime, runs: int) -> list[Row]:
    _write_many(runtime, "lena", [(f"fact {n}", CATEGORIES[n % 6]) for n in range(200)])

    def page() -> object:
        return runtime.memories.list_for_purpose(ASSISTANT, "lena", PURPOSE, ListQuery())

    ids = [memory.id for memory in page().items]  # type: ignore[attr-defined]
    key = runtime.keyring.key_for_read("lena")
    assert len(ids) == 20 and key is not None

    def item_keys() -> object:
        return runtime.keyring.item_keys(key, ids).every()

    whole = median_us(page, calls=300, runs=runs)
    keys = median_us(item_keys, calls=300, runs=runs)
    return [
        Row("list 20: whole", whole, "us"),
        Row("list 20: of which item keys (query + 20 unwraps)", keys, "us"),
        Row("list 20: item keys' share", keys / whole, "ratio"),
    ]


# -- 3. forget one, forget a category, for a user holding 10,000 ----------------------------------


def _holding(runtime: Runtime, database: Path, user_id: str, held: int) -> str:
    """The user holds `held` memories: one real write (returned), and held - 1 rows with
    their item keys, bulk-made (their ciphertexts are never read)."""
    first = _write(runtime, user_id, "the one to forget", "preferences")
    key = runtime.keyring.key_for_read(user_id)
    assert key is not None
    ids = ["mem_" + secrets.token_urlsafe(16) for _ in range(held - 1)]
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        runtime.keyring.store_item_keys(key, [new_item_key(key, m, 1) for m in chunk])
    rows = list(_filler(_owned(user_id), held - 1, datetime.now(UTC)))
    with _sqlite(database) as conn:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO memories (id, user_id, category, key_id, ciphertext, version, "
            "created_at, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)",
            [(ids[n], *row[1:3], key.key_id, *row[4:]) for n, row in enumerate(rows)],
        )
        conn.execute("COMMIT")
    return first


def _owned(user_id: str) -> Iterator[str]:
    while True:
        yield user_id


def _forgets(tmp: Path, runs: int) -> list[Row]:
    runtime = _open(tmp / "forget")
    one, category = [], []
    try:
        for run in range(runs):
            user_id = f"fay-{run}"
            first = _holding(runtime, tmp / "forget" / "memory.db", user_id, HELD)
            started = time.perf_counter()
            runtime.memories.delete_own(_me(user_id), first)
            one.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            deleted, _ = runtime.memories.delete_category_own(_me(user_id), CATEGORIES[1])
            category.append((time.perf_counter() - started) * 1000)
            assert deleted == (HELD - 1) // len(CATEGORIES) + 1 or deleted > 0
    finally:
        runtime.close()
    forget_one = statistics.median(one)
    return [
        Row(
            f"forget one memory of {HELD:,}: answered",
            forget_one,
            "ms",
            target(forget_one <= 100, "<= 100 ms") + f"; {HELD - 1:,} item keys rewrapped",
        ),
        Row(
            f"forget a category ({HELD // len(CATEGORIES):,} of {HELD - 1:,}): answered",
            statistics.median(category),
            "ms",
        ),
    ]


def run(quick: bool = False) -> list[Row]:
    seconds, runs = (0.3, 3) if quick else (1.0, 5)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMPDIR")) as name:
        tmp = Path(name)
        runtime = _open(tmp / "service")
        try:
            rows += _write_cost(runtime, seconds, runs)
            rows += _list_share(runtime, runs)
        finally:
            runtime.close()
        rows += _forgets(tmp, runs)
    return rows
