"""The write-time guard: content that looks like a secret is refused, never stored.

Memories are for facts about a person, not for credentials: a card number, a national identity
number, a password, an API key or a private key in a memory would be one more copy of a secret
to leak. Each detector is deliberately narrow (a card number must pass the Luhn check), so that
ordinary facts ("uses a password manager", a phone number) still go through.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from memory_store.errors import SecretRefused

# The ways card numbers are written: 13-19 digits in a row, 4-4-4-4(-3) groups, or the 4-6-5 and
# 4-6-4 groups of Amex and Diners, one separator throughout. Digits split anywhere else (a
# sequence number next to a reference) are not read as one number.
_CARD = re.compile(
    r"(?<![\d-])(?:\d{13,19}"
    r"|\d{4}(?P<s>[ -])\d{4}(?P=s)\d{4}(?P=s)\d{4}(?:(?P=s)\d{3})?"
    r"|\d{4}(?P<t>[ -])\d{6}(?P=t)\d{4,5})(?![\d-])"
)
_US_SSN = re.compile(r"(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)")
_UK_NINO = re.compile(r"\b(?![DFIQUV])[A-Z](?![DFIOQUV])[A-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
_PASSWORD = re.compile(
    r"\b(?:password|passwd|passcode|pwd|pin)\b\s*(?:is|=|:)\s*\S{3,}", re.IGNORECASE
)
_API_KEY = re.compile(
    r"\b(?:sk-(?:proj-|live-|test-)?[A-Za-z0-9_-]{20,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{36,}"
    r"|github_pat_[A-Za-z0-9_]{40,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|mst_[A-Za-z0-9_-]{40,})"
    r"|\b(?:api[_ -]?key|secret[_ -]?key|access[_ -]?token)\b\s*(?:is|=|:)\s*\S{12,}",
    re.IGNORECASE,
)
_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card(text: str) -> bool:
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_valid(digits):
            return True
    return False


DETECTORS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("a payment card number", _card),
    ("a national identity number", lambda t: bool(_US_SSN.search(t) or _UK_NINO.search(t))),
    ("a password", lambda t: bool(_PASSWORD.search(t))),
    ("an API key or access token", lambda t: bool(_API_KEY.search(t))),
    ("a private key", lambda t: bool(_PRIVATE_KEY.search(t))),
)


def refuse_secrets(*texts: str | None) -> None:
    """Raise SecretRefused, naming the kind of secret (never the text), if any text holds one."""
    for text in texts:
        if not text:
            continue
        for kind, detect in DETECTORS:
            if detect(text):
                raise SecretRefused(
                    f"This looks like {kind}; memory-store does not keep secrets",
                    kind=kind,
                )
