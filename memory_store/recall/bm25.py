"""Ranking memories against a query: Okapi BM25 over the words of one user's memories.

It runs per request over the memories the policy lets the request see, after decryption, so
it keeps no index: nothing outlives the request, and forgetting needs no index clean-up.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "he",
        "her",
        "his",
        "i",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "she",
        "that",
        "the",
        "their",
        "them",
        "they",
        "this",
        "to",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "will",
        "with",
        "you",
        "your",
    ]
)
K1, B = 1.2, 0.75


def stem(word: str) -> str:
    """A light English stemmer: enough for "seats" to meet "seat", "flying" "fly" and
    "speaker" "speak"."""
    for suffix, keep in (
        ("ies", "y"),
        ("ing", ""),
        ("ers", ""),
        ("er", ""),
        ("ed", ""),
        ("es", ""),
        ("s", ""),
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + keep
    return word


def terms(text: str) -> list[str]:
    return [stem(word) for word in _WORD.findall(text.casefold()) if word not in _STOP]


def bm25(query: str, documents: Sequence[str]) -> list[float]:
    """A score per document; 0 for one that shares no term with the query."""
    query_terms = set(terms(query))
    if not query_terms or not documents:
        return [0.0] * len(documents)
    bags = [Counter(terms(document)) for document in documents]
    lengths = [sum(bag.values()) for bag in bags]
    average = sum(lengths) / len(lengths) or 1.0
    count = len(documents)
    having = {term: sum(1 for bag in bags if term in bag) for term in query_terms}
    idf = {term: math.log(1 + (count - n + 0.5) / (n + 0.5)) for term, n in having.items()}
    scores = []
    for bag, length in zip(bags, lengths, strict=True):
        norm = K1 * (1 - B + B * length / average)
        scores.append(
            sum(
                idf[term] * bag[term] * (K1 + 1) / (bag[term] + norm)
                for term in query_terms
                if bag.get(term)
            )
        )
    return scores
