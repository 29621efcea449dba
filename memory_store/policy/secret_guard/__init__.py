"""The write-time guard: content that looks like a secret is refused, never stored.

Memories are for facts about a person, not for credentials: a card number, a bank account or
national identity number, a password or PIN, an API key or token, a private key in a memory
would be one more copy of a secret to leak. Each detector is deliberately narrow (a card
number must pass the Luhn check, a password must be stated with its value, a labelled key
must look random), so that ordinary facts ("uses a password manager", "the pin is broken on
her brooch", an order number) still go through. tests/policy/secret_corpus.py holds the
labelled texts that measure both.

The text is read as a person would see it (normalise.py: NFKC, digits of any script, no
zero-width characters, one kind of space), then once more inside each base64 run it holds:
a bounded number of runs, one level deep.

Why no detector library: detect-secrets (Yelp), the maintained one that fits in-process, is
written for source files. On the facts an assistant writes it finds the issued keys and JWTs
this package finds with a few prefixes, and none of the rest (a password stated in prose, a
card number with dots or a no-break space, a base64-wrapped secret); its useful entry point
is a per-plugin internal, its settings are process-global, it brings requests and PyYAML,
and it would add about 80 microseconds to every write for nothing found here alone.
Presidio and CredSweeper need language or ML models. So the prefixes are taken from the
issuers' documentation as those scanners list them, and the checks are ours.

Everything here is pure: no I/O, and nothing of the text is logged or put in the refusal.
"""

from __future__ import annotations

from collections.abc import Callable

from memory_store.errors import SecretRefused
from memory_store.policy.secret_guard.credentials import stated_password
from memory_store.policy.secret_guard.normalise import base64_texts, normalise
from memory_store.policy.secret_guard.numbers import (
    card_number,
    iban,
    luhn_valid,
    national_identity_number,
)
from memory_store.policy.secret_guard.tokens import (
    issued_key,
    json_web_token,
    labelled_key,
    private_key,
    url_with_password,
)

CARD = "a payment card number"
BANK_ACCOUNT = "a bank account number"
NATIONAL_ID = "a national identity number"
PASSWORD = "a password"  # noqa: S105 (a kind's name)
API_KEY = "an API key or access token"
PRIVATE_KEY = "a private key"

# In order: the first that matches names the kind. Keys come before passwords, so that
# "api key: sk_live_..." is named for what it is.
DETECTORS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    (PRIVATE_KEY, private_key),
    (API_KEY, issued_key),
    (API_KEY, json_web_token),
    (PASSWORD, url_with_password),
    (CARD, card_number),
    (BANK_ACCOUNT, iban),
    (NATIONAL_ID, national_identity_number),
    (API_KEY, labelled_key),
    (PASSWORD, stated_password),
)

__all__ = [
    "API_KEY",
    "BANK_ACCOUNT",
    "CARD",
    "DETECTORS",
    "NATIONAL_ID",
    "PASSWORD",
    "PRIVATE_KEY",
    "luhn_valid",
    "normalise",
    "refuse_secrets",
    "secret_kind",
]


def _scan(text: str) -> str | None:
    for kind, detect in DETECTORS:
        if detect(text):
            return kind
    return None


def secret_kind(text: str) -> str | None:
    """The kind of secret `text` holds (one of DETECTORS' names), or None."""
    plain = normalise(text)
    kind = _scan(plain)
    if kind is None:
        for decoded in base64_texts(plain):
            kind = _scan(normalise(decoded))
            if kind is not None:
                break
    return kind


def refuse_secrets(*texts: str | None) -> None:
    """Raise SecretRefused, naming the kind of secret (never the text), if any text holds one."""
    for text in texts:
        if not text:
            continue
        kind = secret_kind(text)
        if kind is not None:
            raise SecretRefused(
                f"This looks like {kind}; memory-store does not keep secrets", kind=kind
            )
