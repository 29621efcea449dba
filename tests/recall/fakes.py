"""A deterministic embedder for tests of the Embedder seam: one dimension per word it knows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from memory_store.recall.embedders import Matrix

# Words that mean the same thing share a dimension: enough to recall by meaning.
SENSES = {"cat": 0, "pets": 0, "pet": 0, "miso": 0, "lyon": 1, "live": 1, "lives": 1}


class WordSenses:
    name = "test-word-senses"
    dims = 4

    def embed(self, texts: Sequence[str], *, query: bool = False) -> Matrix:
        matrix = np.zeros((len(texts), self.dims), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.casefold().replace("?", " ").split():
                matrix[row, SENSES.get(word, 3)] += 1.0 if word in SENSES else 0.01
        return matrix


def make() -> WordSenses:
    return WordSenses()
