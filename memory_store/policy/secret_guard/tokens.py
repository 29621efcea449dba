"""Keys and tokens: by the prefix their issuer gives them, by their shape (a JWT, a PEM block,
a URL with a password in it), or by a label beside a long random-looking value.

The prefixes are the issuers' own, as documented by them and as the common secret scanners
(detect-secrets, gitleaks) list them. Texts arrive normalised (normalise.py).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter

_ISSUED = re.compile(
    r"(?<![A-Za-z0-9_])(?:"
    r"(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}"  # Stripe secret and restricted keys
    r"|whsec_[0-9A-Za-z+/]{24,}"  # Stripe webhook signing secrets
    r"|xox[abposre]-[0-9A-Za-z-]{10,}|xapp-\d-[0-9A-Za-z-]{10,}"  # Slack tokens
    r"|hooks\.slack\.com/services/T[0-9A-Z]+/B[0-9A-Z]+/[0-9A-Za-z]{16,}"  # Slack webhooks
    r"|gh[pousr]_[0-9A-Za-z]{30,}|github_pat_[0-9A-Za-z_]{30,}"  # GitHub
    r"|glpat-[0-9A-Za-z_-]{20,}"  # GitLab
    r"|(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?![0-9A-Za-z])"  # AWS access key ids
    r"|AIza[0-9A-Za-z_-]{35}|GOCSPX-[0-9A-Za-z_-]{28}|ya29\.[0-9A-Za-z_-]{30,}"  # Google
    r"|AccountKey=[0-9A-Za-z+/]{40,}"  # Azure storage connection strings
    r"|sk-(?:ant-)?[0-9A-Za-z_-]{20,}"  # OpenAI and Anthropic API keys
    r"|hf_[0-9A-Za-z]{30,}"  # Hugging Face
    r"|npm_[0-9A-Za-z]{36}|pypi-AgEIcHlwaS5vcmc[0-9A-Za-z_-]{50,}"  # package registries
    r"|SG\.[0-9A-Za-z_-]{22}\.[0-9A-Za-z_-]{43}"  # SendGrid
    r"|dop_v1_[0-9a-f]{64}|shp(?:at|ca|pa|ss)_[0-9a-fA-F]{32}"  # DigitalOcean, Shopify
    r"|sq0(?:atp|csp)-[0-9A-Za-z_-]{22,}|[0-9a-f]{32}-us\d{1,2}"  # Square, Mailchimp
    r"|\d{8,10}:AA[0-9A-Za-z_-]{33}"  # Telegram bots
    r"|mst_[0-9A-Za-z_-]{40,}"  # this service's own bearer tokens
    r")"
)

_PRIVATE_KEY = re.compile(
    r"-{5}\s*BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?\s*-{5}"  # PEM, PGP
    r"|PuTTY-User-Key-File-\d|AGE-SECRET-KEY-1[0-9A-Z]{50,}"
    r"|b3BlbnNzaC1rZXktdjE",  # an OpenSSH private key's body ("openssh-key-v1") on its own
    re.I,
)

# Three base64url parts; the first must decode to a JSON header naming its algorithm.
_JWT = re.compile(r"(?<![\w-])([0-9A-Za-z_-]{10,})\.[0-9A-Za-z_-]{10,}\.[0-9A-Za-z_-]*")
_MAX_HEADER_CHARS = 1024

# scheme://user:password@host. A placeholder in the password's place is documentation.
_URL_CREDENTIALS = re.compile(
    r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@]*:(?P<password>[^\s/@]+)@[^\s/@]+", re.I
)
_PLACEHOLDER = re.compile(
    r"[*x.]+|<[^>]*>|\{[^}]*\}|\$\{?\w+\}?|%s|password|pass|pwd|secret|changeme|\.\.\.", re.I
)

# A key, token or secret named as such; "the token" or "a key" alone need a link after them.
_LABEL = re.compile(
    r"(?<!\w)(?:(?P<compound>(?:api|app|access|auth|client|consumer|master|private|secret|session"
    r"|signing|refresh|webhook|encryption|license|licence|personal access|deploy|bot|service"
    r"|account)[_ .-]?(?:keys?|tokens?|secrets?)|apikey|aws_secret_access_key|bearer)"
    r"|(?P<bare>keys?|tokens?|secrets?))\b",
    re.I,
)
_LABEL_TAIL = re.compile(
    r"(?:\s+(?:for|to|of|on)\s+[^\s:=]+(?:\s+[^\s:=]+){0,3}?\s*(?P<after>:|=|\bis\b|\bwas\b)"
    r"|\s*(?P<link>:|=|\bis\b|\bwas\b)|(?P<none>))"
    r"\s*[\"'`]?(?P<value>[0-9A-Za-z+/=_.~-]{16,})"
)
# Bits per character a random value has and a word or an id does not (detect-secrets uses
# 3.0 for hex and 4.5 for base64 on unlabelled strings; a label beside the value lets us
# ask for less).
_MIN_ENTROPY = 3.0


def issued_key(text: str) -> bool:
    for match in _ISSUED.finditer(text):
        token = match.group()
        # "sk-" starts ordinary hyphenated words too; a key mixes letters and digits.
        if not token.startswith("sk-") or (
            any(char.isdigit() for char in token[3:]) and any(char.isalpha() for char in token[3:])
        ):
            return True
    return False


def private_key(text: str) -> bool:
    return bool(_PRIVATE_KEY.search(text))


def _json_header(part: str) -> object:
    if len(part) > _MAX_HEADER_CHARS:
        return None
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        return json.loads(raw) if raw.lstrip().startswith(b"{") else None
    # UnicodeDecodeError and JSONDecodeError are ValueErrors; nesting can exhaust the stack.
    except (binascii.Error, ValueError, RecursionError):
        return None


def json_web_token(text: str) -> bool:
    for match in _JWT.finditer(text):
        header = _json_header(match.group(1))
        if isinstance(header, dict) and "alg" in header:
            return True
    return False


def url_with_password(text: str) -> bool:
    return any(
        not _PLACEHOLDER.fullmatch(match.group("password"))
        for match in _URL_CREDENTIALS.finditer(text)
    )


def entropy(value: str) -> float:
    """Shannon entropy of `value`, in bits per character."""
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def labelled_key(text: str) -> bool:
    for found in _LABEL.finditer(text):
        tail = _LABEL_TAIL.match(text, found.end())
        if tail is None:
            continue
        if found.group("bare") is not None and tail.group("none") is not None:
            continue  # "the token 1234..." without a link is too often an id
        value = tail.group("value").rstrip(".")
        if (
            any(char.isdigit() for char in value)
            and any(char.isalpha() for char in value)
            and entropy(value) >= _MIN_ENTROPY
        ):
            return True
    return False
