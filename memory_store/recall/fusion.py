"""Hybrid ranking: BM25 and vector similarity, fused by reciprocal rank (RRF).

Each memory gets 1/(K + its rank) from each list it is in: the BM25 list holds the memories
that share a term with the query; the vector list those whose cosine similarity to the
question reaches the embedder's floor. A memory in neither is not relevant. Ranks, not raw
scores, are fused: BM25 scores and cosines are on scales that do not compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memory_store.recall.embedders import Matrix

K = 60  # RRF's constant (Cormack et al., 2009): damps the weight of the very first ranks


@dataclass(frozen=True, slots=True)
class Ranked:
    index: int  # into the candidates given
    score: float  # the fused score (higher is better)
    lexical: float  # BM25 (0: no shared term)
    similarity: float | None  # cosine to the question (None: no vector for it yet)


def similarities(
    query: Matrix, vectors: Sequence[Matrix | None], stacked: Matrix | None = None
) -> list[float | None]:
    """The cosine of each vector (unit length) with the query's (None where there is none).
    `stacked`: the vectors there are, already stacked (recall/index.py keeps the last)."""
    present = [i for i, vector in enumerate(vectors) if vector is not None]
    found: list[float | None] = [None] * len(vectors)
    if present:
        if stacked is None:
            stacked = np.stack([vector for vector in vectors if vector is not None])
        for i, value in zip(present, (stacked @ query).tolist(), strict=True):
            found[i] = float(value)
    return found


def fuse(
    lexical: Sequence[float],
    cosines: Sequence[float | None],
    *,
    floor: float,
    lexical_weight: float = 1.0,
    vector_weight: float = 1.0,
) -> list[Ranked]:
    """The relevant candidates, best first (ties: the earlier candidate, i.e. the newer),
    from each one's BM25 score (recall/bm25.py) and cosine."""
    fused: dict[int, float] = {}
    by_lexical = sorted((i for i, s in enumerate(lexical) if s > 0), key=lambda i: -lexical[i])
    for rank, i in enumerate(by_lexical):
        fused[i] = fused.get(i, 0.0) + lexical_weight / (K + rank + 1)
    close = [i for i, c in enumerate(cosines) if c is not None and c >= floor]
    by_vector = sorted(close, key=lambda i: -(cosines[i] or 0.0))
    for rank, i in enumerate(by_vector):
        fused[i] = fused.get(i, 0.0) + vector_weight / (K + rank + 1)
    order = sorted(fused, key=lambda i: (-fused[i], i))
    return [Ranked(i, fused[i], lexical[i], cosines[i]) for i in order]
