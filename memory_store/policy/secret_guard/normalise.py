"""Text as the detectors read it, and the base64 runs inside it.

A secret can be disguised without changing what a person sees: digits from another script,
a no-break space or a zero-width character between the groups of a card, a fullwidth letter.
`normalise` undoes all of that before any detector runs. Its result is only ever read, never
stored or shown: the memory keeps the text as written.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Iterator

# Invisible format characters that can sit inside a word or a number unseen: soft hyphen,
# combining grapheme joiner, Arabic letter mark, Hangul fillers, Mongolian vowel separator and
# free variation selectors, zero-width space and joiners, direction marks and embeddings, word
# joiner and invisible operators, variation selectors, the byte order mark, tag characters.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e0fff]"
)
# NFKC already turns the no-break, narrow and thin spaces into a plain space; what is left is
# collapsed so that "4111  1111" and "4111\t1111" read like "4111 1111". Line breaks stay.
_SPACES = re.compile(r"[^\S\n]+")
# Dashes and middle dots that NFKC leaves alone but a writer may put between digit groups.
_PUNCTUATION = str.maketrans(
    {
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2e3a\u2e3b", "-"),
        **dict.fromkeys("\u00b7\u2027\u2219\u22c5\u30fb\u3002", "."),
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033", '"'),
    }
)
# A decimal digit of any script that is not an ASCII one (re's \d is Unicode-aware).
_OTHER_DIGIT = re.compile(r"(?![0-9])\d")

# Base64 (standard or URL-safe alphabet) long enough to hide a short secret: "cvv 737" is 10
# characters once encoded, and two padding signs.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{10,}={0,2}")
# Bounds on the work one text can ask for: runs decoded, and the length of each.
MAX_RUNS = 64
MAX_RUN_CHARS = 8192
# Control characters: what random bytes that happen to be UTF-8 decode to, and text does not.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]")


def normalise(text: str) -> str:
    """NFKC, every decimal digit in ASCII, invisible characters gone, spaces collapsed."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        text = _INVISIBLE.sub("", text).translate(_PUNCTUATION)
        text = _OTHER_DIGIT.sub(lambda match: str(unicodedata.decimal(match.group())), text)
    return _SPACES.sub(" ", text)


def base64_texts(text: str) -> Iterator[str]:
    """The printable texts hidden in the base64 runs of `text`: at most MAX_RUNS, one level."""
    looked_at = 0
    for match in _BASE64_RUN.finditer(text):
        run = match.group().rstrip("=")
        # A plain word ("recommendations", "Bengaluru") is not base64 worth decoding.
        if run.isalpha() and (run[1:].islower() or run.isupper()):
            continue
        looked_at += 1
        if looked_at > MAX_RUNS:
            return
        decoded = _decode(run[:MAX_RUN_CHARS])
        if decoded is not None:
            yield decoded


def _decode(run: str) -> str | None:
    if len(run) % 4 == 1:
        run = run[:-1]  # a stray character past the last whole byte
    urlsafe = "-" in run or "_" in run
    if urlsafe and ("+" in run or "/" in run):
        return None  # two alphabets at once: not base64
    padded = run + "=" * (-len(run) % 4)
    try:
        raw = base64.b64decode(padded, altchars=b"-_" if urlsafe else None, validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not decoded.strip() or _CONTROL.search(decoded):
        return None
    return decoded
