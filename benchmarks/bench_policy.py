"""One policy decision with 100,000 users holding consent records, beside one with 100.

A decision is what the service does per request: load the user's consent facts (indexed by
user id) and ask Casbin (consent is a request attribute, not one policy line per user). The
decision's cost must not grow with the number of users, so the ratio should stay near 1.
The two populations are measured interleaved, run by run, so that the noise of a shared
machine falls on both alike; each ratio is the median of the per-run ratios.
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import Row, median_us
from memory_store.config import Settings
from memory_store.domain import Principal, Role
from memory_store.policy import AccessRequest, Action
from memory_store.runtime import Runtime, open_runtime

PURPOSES = ("personalization", "analytics", "model_improvement")
ASSISTANT = Principal(token_id="bench", name="bench", role=Role.assistant, user_id=None)
SMALL, LARGE = 100, 100_000


def _populate(runtime: Runtime, users: int) -> None:
    """Each user has made three consent choices and has a settings row."""
    database = runtime.settings.data_dir / "memory.db"
    categories = list(runtime.catalogue.categories)
    rng = random.Random(users)
    with sqlite3.connect(database) as conn:
        conn.executemany(
            "INSERT INTO consents (user_id, purpose, category, granted, version, updated_at) "
            "VALUES (?, ?, ?, ?, ?, '2026-01-01 00:00:00.000000')",
            (
                (f"user-{u}", purpose, rng.choice(categories), rng.random() < 0.5, i + 1)
                for u in range(users)
                for i, purpose in enumerate(PURPOSES)
            ),
        )
        conn.executemany(
            "INSERT INTO user_settings (user_id, memory_enabled, updated_at) "
            "VALUES (?, 1, '2026-01-01 00:00:00.000000')",
            ((f"user-{u}",) for u in range(users)),
        )


def _operations(runtime: Runtime, users: int) -> dict[str, Callable[[], object]]:
    rng = random.Random(7)
    categories = list(runtime.catalogue.categories)

    def facts() -> object:
        return runtime.consents_repository.facts(f"user-{rng.randrange(users)}")

    def decide(*, cached: bool) -> bool:
        user_id = f"user-{rng.randrange(users)}"
        if not cached:
            runtime.policy.clear_cache()
        return runtime.policy.allows(
            AccessRequest(
                ASSISTANT,
                Action.memory_read,
                user_id,
                rng.choice(PURPOSES),
                rng.choice(categories),
                facts=runtime.consents_repository.facts(user_id),
            )
        )

    # Facts of 1,000 random users, loaded ahead: the decision alone, without the lookup.
    preloaded = [
        (f"user-{u}", runtime.consents_repository.facts(f"user-{u}"))
        for u in rng.sample(range(users), min(users, 1000))
    ]

    def decide_only() -> bool:
        user_id, user_facts = rng.choice(preloaded)
        runtime.policy.clear_cache()
        return runtime.policy.allows(
            AccessRequest(
                ASSISTANT,
                Action.memory_read,
                user_id,
                rng.choice(PURPOSES),
                rng.choice(categories),
                facts=user_facts,
            )
        )

    return {
        "Casbin decision alone, uncached": decide_only,
        "facts lookup alone": facts,
        "decision + facts, Casbin uncached": lambda: decide(cached=False),
        "decision + facts, decision cached": lambda: decide(cached=True),
    }


def run(quick: bool = False) -> list[Row]:
    calls, runs = (200, 3) if quick else (1000, 7)
    with tempfile.TemporaryDirectory() as tmp:
        runtimes = {}
        for users in (SMALL, LARGE):
            settings = Settings(data_dir=Path(tmp) / str(users), retention_sweep_seconds=0)
            runtimes[users] = open_runtime(settings)
            _populate(runtimes[users], users)
        try:
            operations = {users: _operations(rt, users) for users, rt in runtimes.items()}
            rows: list[Row] = []
            for name in operations[SMALL]:
                times: dict[int, list[float]] = {SMALL: [], LARGE: []}
                for _ in range(runs):  # interleaved: small, large, small, large ...
                    for users in (SMALL, LARGE):
                        times[users].append(median_us(operations[users][name], calls=calls, runs=1))
                ratios = [
                    large / small for small, large in zip(times[SMALL], times[LARGE], strict=True)
                ]
                rows += [
                    Row(f"{name}, {SMALL:,} users", statistics.median(times[SMALL]), "us"),
                    Row(f"{name}, {LARGE:,} users", statistics.median(times[LARGE]), "us"),
                    Row(
                        f"{name}, ratio {LARGE:,} / {SMALL:,}",
                        statistics.median(ratios),
                        "x",
                        "~1 = flat",
                    ),
                ]
        finally:
            for runtime in runtimes.values():
                runtime.close()
    return rows
