"""Okapi BM25 over the terms of one user's memories (recall/text.py makes the terms).

The bags of terms are made once per memory version and kept in the user's recall index
(recall/index.py), so a query costs a pass over counters, not a pass over texts."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from memory_store.recall.text import DEFAULT_LANGUAGES, terms

K1, B = 1.2, 0.75


def bag(text: str, languages: Sequence[str] = DEFAULT_LANGUAGES) -> Counter[str]:
    return Counter(terms(text, languages))


def bm25_bags(query_terms: set[str], bags: Sequence[Counter[str]]) -> list[float]:
    """A score per bag; 0 for one that shares no term with the query."""
    if not query_terms or not bags:
        return [0.0] * len(bags)
    lengths = [bag.total() for bag in bags]
    average = sum(lengths) / len(lengths) or 1.0
    count = len(bags)
    having = {term: sum(1 for bag in bags if term in bag) for term in query_terms}
    idf = {term: math.log(1 + (count - n + 0.5) / (n + 0.5)) for term, n in having.items() if n}
    if not idf:
        return [0.0] * len(bags)
    scores = []
    for bag_, length in zip(bags, lengths, strict=True):
        norm = K1 * (1 - B + B * length / average)
        scores.append(
            sum(
                weight * bag_[term] * (K1 + 1) / (bag_[term] + norm)
                for term, weight in idf.items()
                if term in bag_
            )
        )
    return scores


def bm25(query: str, documents: Sequence[str]) -> list[float]:
    """A score per document; 0 for one that shares no term with the query."""
    return bm25_bags(set(terms(query)), [bag(document) for document in documents])
