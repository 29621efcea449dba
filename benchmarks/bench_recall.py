"""Recall: how often the right memory comes first (or in the first three), and how long a
/context call takes.

1. Quality on the evaluation set (benchmarks/recall/set.json: memories of invented users
   in English and French, and questions naming the memory they should find; half of them
   paraphrases sharing no content word with it, checked here): top-1 and top-3 hit rates of
   lexical (BM25, stemmed), vector and hybrid (the two fused by reciprocal rank, as the
   service ranks), for the configured embedder and for each built-in candidate, with what
   each costs (load, one question, one memory).
2. The same hit rate through `/context`'s use case (MemoryService.context: the policy, the
   encrypted vectors, the index), top-3; and how often it says that nothing is relevant
   (`match: none`) to the set's `unrelated` questions, asked of every user.
3. `/context` in-process (MemoryService.context, SQLite) for a user with 1,000 memories: the
   p50 with the user's recall index warm, and the first call with it cold (dropped, as
   after a forget or an eviction); the indexer's lag after the writes, and its catch-up.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.bench_inprocess import ASSISTANT, PURPOSE, _write_many
from benchmarks.common import Row, target
from memory_store.config import Settings
from memory_store.recall.bm25 import bag, bm25_bags
from memory_store.recall.embedders import BUILTIN, load_embedder, normalised
from memory_store.recall.fusion import fuse, similarities
from memory_store.recall.text import terms
from memory_store.runtime import open_runtime
from memory_store.services.recall import FLOORS

SET = Path(__file__).resolve().parent / "recall" / "set.json"
CONFIGURED = Settings().recall_embedder
HELD = 1000  # memories of the user whose /context is timed


def load_set() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SET.read_text())
    contents = {m["id"]: m["content"] for m in data["memories"]}
    for query in data["queries"]:
        shared = set(terms(query["q"])) & set(terms(contents[query["expect"]]))
        if query["kind"] == "paraphrase" and shared:
            raise ValueError(f"paraphrase {query['q']!r} shares {shared} with its memory")
    return data


def hit_rates(name: str, data: dict[str, Any]) -> tuple[dict[tuple[str, str], float], float]:
    """{(ranker, "all"|"paraphrase"|"lexical"): top-1 and top-3 rates}, and the seconds
    spent embedding the memories."""
    embedder = load_embedder(name)
    assert embedder is not None
    by_user: dict[str, list[dict[str, str]]] = defaultdict(list)
    for memory in data["memories"]:
        by_user[memory["user"]].append(memory)
    vectors = {}
    started = time.perf_counter()
    for memories in by_user.values():
        matrix = normalised(embedder.embed([m["content"] for m in memories]))
        vectors.update({m["id"]: v for m, v in zip(memories, matrix, strict=True)})
    embed_seconds = time.perf_counter() - started
    counts: dict[tuple[str, str, int], int] = defaultdict(int)
    totals: dict[str, int] = defaultdict(int)
    floor = FLOORS.get(embedder.name, 0.5)
    for query in data["queries"]:
        memories = by_user[query["user"]]
        query_terms = set(terms(query["q"]))
        bags = [bag(m["content"]) for m in memories]
        question = normalised(embedder.embed([query["q"]], query=True))[0]
        cosines = similarities(question, [vectors[m["id"]] for m in memories])
        lexical = bm25_bags(query_terms, bags)
        ids = [m["id"] for m in memories]
        rankings = {
            "lexical": [
                ids[i] for i in sorted(range(len(ids)), key=lambda i: -lexical[i]) if lexical[i] > 0
            ],
            "vector": [ids[i] for i in sorted(range(len(ids)), key=lambda i: -(cosines[i] or 0))],
            "hybrid": [ids[r.index] for r in fuse(lexical, cosines, floor=floor)],
        }
        for kind in ("all", query["kind"]):
            totals[kind] += 1
            for ranker, ranked in rankings.items():
                for k in (1, 3):
                    counts[(ranker, kind, k)] += query["expect"] in ranked[:k]
    rates = {(r, kind, k): n / totals[kind] for (r, kind, k), n in counts.items()}
    return {(f"{r} top-{k}", kind): v for (r, kind, k), v in rates.items()}, embed_seconds


def _quality(data: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    n = len(data["queries"])
    paraphrases = sum(q["kind"] == "paraphrase" for q in data["queries"])
    rates, _ = hit_rates(CONFIGURED, data)
    for ranker in ("lexical", "vector", "hybrid"):
        for k in (1, 3):
            name = f"{ranker} top-{k}"
            note = f"{CONFIGURED}, {n} queries"
            if (ranker, k) == ("hybrid", 3):
                note = target(rates[(name, "all")] >= 0.90, ">= 0.90")
            rows.append(Row(f"{name}, all", rates[(name, "all")], "rate", note))
            rows.append(
                Row(
                    f"{name}, paraphrases",
                    rates[(name, "paraphrase")],
                    "rate",
                    f"{paraphrases} paraphrases",
                )
            )
    gain = rates[("hybrid top-3", "paraphrase")] - rates[("lexical top-3", "paraphrase")]
    rows.append(
        Row("hybrid - lexical top-3, paraphrases", gain, "rate", target(gain >= 0.3, ">= 0.30"))
    )
    for name in BUILTIN:  # the candidates, side by side: what chose the default
        started = time.perf_counter()
        load_embedder.cache_clear()
        embedder = load_embedder(name)
        load_seconds = time.perf_counter() - started
        assert embedder is not None
        candidate, embed_seconds = hit_rates(name, data)
        started = time.perf_counter()
        for query in data["queries"]:
            embedder.embed([query["q"]], query=True)
        per_query = (time.perf_counter() - started) / n
        rows += [
            Row(
                f"{name}: hybrid top-3",
                candidate[("hybrid top-3", "all")],
                "rate",
                f"paraphrases {candidate[('hybrid top-3', 'paraphrase')]:.2f}",
            ),
            Row(f"{name}: load", load_seconds * 1e3, "ms"),
            Row(f"{name}: embed one question", per_query * 1e3, "ms"),
            Row(
                f"{name}: embed one memory",
                embed_seconds / len(data["memories"]) * 1e3,
                "ms",
                "in batches of a user's memories",
            ),
        ]
    load_embedder.cache_clear()
    return rows


def _through_the_service(tmp: Path, data: dict[str, Any]) -> list[Row]:
    """The same set through MemoryService.context (policy, encryption, index, indexer)."""
    runtime = open_runtime(
        Settings(data_dir=tmp, retention_sweep_seconds=0, recall_index_seconds=0)
    )
    try:
        ids: dict[str, str] = {}
        for memory in data["memories"]:
            ids[memory["id"]] = _write_many(
                runtime, memory["user"], [(memory["content"], "profile")]
            )[0]
        runtime.indexer.catch_up()
        hits = {"all": 0, "paraphrase": 0}
        totals = {"all": 0, "paraphrase": 0}
        for query in data["queries"]:
            found = runtime.memories.context(
                ASSISTANT, query["user"], PURPOSE, q=query["q"], limit=3, max_chars=10_000
            )
            hit = ids[query["expect"]] in [item.id for item in found.items]
            for kind in {"all", query["kind"]} & set(hits):
                hits[kind] += hit
                totals[kind] += 1
        rate = hits["all"] / totals["all"]
        # Questions about nothing the user said: the answer should say so (match "none").
        users = sorted({memory["user"] for memory in data["memories"]})
        said_none = [
            runtime.memories.context(
                ASSISTANT, user, PURPOSE, q=question, limit=3, max_chars=10_000
            ).match
            == "none"
            for user in users
            for question in data["unrelated"]
        ]
        return [
            Row("/context top-3, all", rate, "rate", target(rate >= 0.90, ">= 0.90")),
            Row(
                "/context top-3, paraphrases",
                hits["paraphrase"] / totals["paraphrase"],
                "rate",
                "through the service",
            ),
            Row(
                "/context says none, unrelated questions",
                sum(said_none) / len(said_none),
                "rate",
                f"{len(data['unrelated'])} questions x {len(users)} users",
            ),
        ]
    finally:
        runtime.close()


def _latency(tmp: Path, data: dict[str, Any], held: int) -> list[Row]:
    runtime = open_runtime(
        Settings(data_dir=tmp, retention_sweep_seconds=0, recall_index_seconds=0)
    )
    try:
        user = "bench-recall"
        contents = [m["content"] for m in data["memories"]]
        categories = ("preferences", "profile", "interests")
        _write_many(
            runtime,
            user,
            [
                (f"{contents[i % len(contents)]} ({i})", categories[i % len(categories)])
                for i in range(held)
            ],
        )
        lag = runtime.indexer.lag()
        started = time.perf_counter()
        runtime.indexer.catch_up()
        catch_up = time.perf_counter() - started
        queries = [q["q"] for q in data["queries"]]

        def call(i: int) -> float:
            started = time.perf_counter()
            runtime.memories.context(
                ASSISTANT, user, PURPOSE, q=queries[i % len(queries)], limit=5, max_chars=2000
            )
            return (time.perf_counter() - started) * 1e3

        call(0)  # warms the index
        warm = statistics.median(call(i) for i in range(60))
        embedder = runtime.memories.recall.embedder
        question = 0.0
        if embedder is not None:  # the part of a call that is the model's, timed alike
            question = statistics.median(
                _timed(lambda q=q: embedder.embed([q], query=True)) for q in queries[:60]
            )
        colds = []
        for i in range(5):
            runtime.memories.recall.index.evict(user)
            colds.append(call(i))
        cold = statistics.median(colds)
        return [
            Row("indexer lag after the writes", lag, "mem", f"{held} written, none embedded"),
            Row("indexer catch-up", catch_up, "s", f"{held / catch_up:.0f} memories/s"),
            Row(f"/context p50, {held} memories, warm", warm, "ms", target(warm <= 20, "<= 20")),
            Row("  of which: embedding the question (p50)", question, "ms", "the model"),
            Row(
                f"/context first call, {held} memories, cold",
                cold,
                "ms",
                target(cold <= 200, "<= 200"),
            ),
            Row("indexer lag after catch-up", runtime.indexer.lag(), "mem"),
        ]
    finally:
        runtime.close()


def _timed(operation: Any) -> float:
    started = time.perf_counter()
    operation()
    return (time.perf_counter() - started) * 1e3


def run(*, quick: bool = False) -> list[Row]:
    data = load_set()
    rows = _quality(data)
    with tempfile.TemporaryDirectory() as tmp:
        rows += _through_the_service(Path(tmp) / "set", data)
        rows += _latency(Path(tmp) / "held", data, 200 if quick else HELD)
    return rows
