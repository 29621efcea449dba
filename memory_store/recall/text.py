"""Words to index terms: case folded, stop words of each language dropped, each word stemmed
by the Snowball stemmer of each language (a word gets one term per distinct stem), accents
removed after stemming. The same function makes a query's terms and a memory's, so a
French question meets French memories ("voyages" meets "voyage") and an English one English
memories ("flights" meets "flight"), without guessing the language of a short text."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence

import snowballstemmer  # type: ignore[import-untyped]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
DEFAULT_LANGUAGES = ("english", "french")

_STOP: dict[str, frozenset[str]] = {
    "english": frozenset(
        [
            "a",
            "about",
            "after",
            "all",
            "also",
            "am",
            "an",
            "and",
            "any",
            "are",
            "as",
            "at",
            "be",
            "been",
            "before",
            "being",
            "but",
            "by",
            "can",
            "could",
            "did",
            "do",
            "does",
            "doing",
            "for",
            "from",
            "had",
            "has",
            "have",
            "having",
            "he",
            "her",
            "hers",
            "him",
            "his",
            "how",
            "i",
            "if",
            "in",
            "into",
            "is",
            "it",
            "its",
            "just",
            "me",
            "more",
            "most",
            "my",
            "no",
            "nor",
            "not",
            "of",
            "on",
            "once",
            "only",
            "or",
            "other",
            "our",
            "ours",
            "out",
            "own",
            "s",
            "she",
            "should",
            "so",
            "some",
            "such",
            "t",
            "than",
            "that",
            "the",
            "their",
            "theirs",
            "them",
            "then",
            "there",
            "these",
            "they",
            "this",
            "those",
            "to",
            "too",
            "very",
            "was",
            "we",
            "were",
            "what",
            "when",
            "where",
            "which",
            "while",
            "who",
            "whom",
            "why",
            "will",
            "with",
            "would",
            "you",
            "your",
            "yours",
        ]
    ),
    "french": frozenset(
        [
            "a",
            "à",
            "au",
            "aux",
            "avec",
            "ce",
            "ces",
            "cette",
            "d",
            "dans",
            "de",
            "des",
            "du",
            "elle",
            "elles",
            "en",
            "est",
            "et",
            "eu",
            "il",
            "ils",
            "je",
            "l",
            "la",
            "le",
            "les",
            "leur",
            "leurs",
            "lui",
            "m",
            "ma",
            "mais",
            "me",
            "mes",
            "moi",
            "mon",
            "n",
            "ne",
            "nos",
            "notre",
            "nous",
            "on",
            "ou",
            "où",
            "par",
            "pas",
            "pour",
            "qu",
            "que",
            "quel",
            "quelle",
            "quelles",
            "quels",
            "qui",
            "s",
            "sa",
            "sans",
            "se",
            "ses",
            "si",
            "son",
            "sur",
            "t",
            "ta",
            "te",
            "tes",
            "toi",
            "ton",
            "tu",
            "un",
            "une",
            "vos",
            "votre",
            "vous",
            "y",
            "être",
            "était",
            "sont",
            "ont",
            "avez",
        ]
    ),
}


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


@functools.cache
def _analyser(languages: tuple[str, ...]) -> tuple[frozenset[str], list[object]]:
    stop = frozenset().union(*(_STOP.get(language, frozenset()) for language in languages))
    return stop, [snowballstemmer.stemmer(language) for language in languages]


@functools.lru_cache(maxsize=65536)
def _stems(word: str, languages: tuple[str, ...]) -> tuple[str, ...]:
    _, stemmers = _analyser(languages)
    stems = dict.fromkeys(_fold(s.stemWord(word)) for s in stemmers)  # type: ignore[attr-defined]
    return tuple(stems)


def terms(text: str, languages: Sequence[str] = DEFAULT_LANGUAGES) -> list[str]:
    """The index terms of `text`, in order (a word with two stems gives both)."""
    chosen = tuple(languages)
    stop, _ = _analyser(chosen)
    found: list[str] = []
    for word in _WORD.findall(text.casefold()):
        if word in stop or _fold(word) in stop:
            continue
        found.extend(_stems(word, chosen))
    return found


def check_languages(languages: Sequence[str]) -> None:
    """Raise ValueError for a language Snowball has no stemmer for."""
    known = set(snowballstemmer.algorithms())
    unknown = [language for language in languages if language not in known]
    if unknown:
        raise ValueError(f"no stemmer for {unknown}; known: {sorted(known)}")
