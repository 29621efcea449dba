"""Passwords, passphrases, PINs and door codes, when a text states one.

The words alone prove nothing: "she forgot her password yesterday", "the pin is broken on her
brooch" and "prefers a PIN pad at checkout" are facts. A secret is stated when the word is
followed, perhaps after what it is for ("the password for gmail"), perhaps after a link ("is",
":", "="), by a value that looks like one:

- a PIN or a door code only ever by digits ("PIN 4821", "pin code: 0000");
- a password by anything quoted, or by a token with a digit, a symbol or mixed case
  ("hunter22", "Tr0ub4dor&3"), with or without a link;
- a password by a plain word only after a link, and not a word that describes the password
  instead ("her password is weak", "the password is on the fridge").

Texts arrive normalised (normalise.py).
"""

from __future__ import annotations

import re

_NAMES_OF_PASSWORDS = (
    r"pass(?:words?|wd|phrases?|codes?|keys?)|pass[ -](?:word|phrase|code)s?|pswd|psw|pwd|pw|p/w"
    r"|wi-?fi (?:key|code)|network key|wpa2? key"
    # The same word in the languages an assistant's users are likely to write in.
    r"|passwort|kennwort|contrase[ñn]a|mot de passe|senha|wachtwoord|has[łl]o|l[öo]senord"
    r"|salasana"
)
_CODE_WORDS = (
    r"pins?(?:[ -]?(?:codes?|numbers?|no\.?|#))?|pincode"
    r"|(?:door|gate|alarm|entry|access|security|lock|safe|keypad|garage|locker|unlock"
    r"|verification|one-time|2fa|otp|backup|recovery|building|house|front door|lockbox)"
    r" ?codes?|otp|cvv2?|cvc2?|csc|combination"
)
_WORD = re.compile(
    rf"(?<![\w-])(?:(?P<password>{_NAMES_OF_PASSWORDS})|(?P<code>{_CODE_WORDS})|(?P<pass>pass))\b",
    re.I,
)
# "pass" alone is a password only after a service's name ("gmail pass: hunter22"), never
# after what a pass is for ("boarding pass: 14C", "ski pass: 2025-26").
_NOT_A_PASSWORD_PASS = re.compile(
    r"(?:boarding|bus|train|rail|metro|transit|travel|season|day|week|month|year|annual|ski"
    r"|gym|hall|free|backstage|press|guest|visitor|parking|museum|park|festival|ferry|pool"
    r"|access|work|bike|hospital|library|event|vip|concert|stadium)\W*$",
    re.I,
)
# A lock's combination: two to five small numbers ("12-34-56").
_COMBINATION = re.compile(r"\d{1,3}(?:[ -]\d{1,3}){2,4}")
_LOCKS = re.compile(r"\b(?:safe|lock|locker|padlock|vault)\b", re.I)

# A link: "is", "was", ":", "=", "->", or a change of value ("changed to", "set to").
_LINK = (
    r"(?::|=>?|->|-(?=\s)|(?:\b(?:is|was|are|were)(?: still| now| just| actually)?\b"
    r"|\b(?:will be|would be|has been set to|set to|changed to|reset to)\b)(?:\s*:)?)"
)
# After the word: what it is for ("for gmail", "to the back door", up to four words) and then
# a link, which it needs; or a link alone; or a space ("password/PIN" states nothing).
_TAIL = re.compile(
    r"(?:\s+(?:for|to|of|on|at|in)\s+(?P<subject>[^\s:=]+(?:\s+[^\s:=]+){0,3}?)"
    rf"\s*(?P<after>{_LINK})\s*|\s*(?P<link>{_LINK})\s*|\s+)"
    r"(?P<value>\"[^\"\n]{1,200}\"|'[^'\n]{1,200}'|`[^`\n]{1,200}`|\S+)",
    re.I,
)
# A login and its password together: "login is alice / hunter22", "alice@example.com / hunter22".
_LOGIN_PAIR = re.compile(
    r"(?:\b(?:login|log-in|sign-in|credentials|creds)\b\s*(?::|=|\bis\b|\bare\b)?\s*[^\s/|]+"
    r"|(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+)\s*[/|]\s*(?P<value>[^\s/|]+)",
    re.I,
)
_TRAILING = ".,;:!?)]}>"
_LEADING = "([{<"
# What follows a number that counts something about the password rather than being it.
_UNIT = re.compile(
    r"\s+(?:characters?|chars?|letters?|digits?|symbols?|numbers?|words?|long|days?|weeks?"
    r"|months?|years?|times?|attempts?|tries)\b",
    re.I,
)
# Six digits after "pin code" not starting with 0 are an Indian postal code.
_POSTAL_PIN = re.compile(r"pin ?code", re.I)

# Words that say something about a password instead of being one.
_DESCRIPTIONS = frozenset(
    """
    a an the my her his their our your its this that these those i you he she it we they them
    him same different another none unknown empty blank n/a na nothing something anything one
    not no too very so still also always never now just on in at under behind inside with from
    by for of to here there somewhere everywhere weak strong long short simple easy hard complex
    complicated secure insecure safe unsafe old new wrong right correct incorrect invalid valid
    required optional missing lost forgotten temporary default standard shared personal private
    secret confidential sensitive important mandatory needed set ready known fine good bad great
    terrible ok okay tricky memorable random unique encrypted hashed impossible annoying what
    which who where when how why and or but if because as like
    """.split()  # noqa: SIM905 (a list of words reads best as words)
)
_DESCRIPTIVE_ENDINGS = ("ed", "ing", "ly", "able", "ible", "ful", "less", "ous", "ive")
_LINK_WORDS = frozenset({"is", "was", "are", "were", "will", "would", "has", "set", "changed"})


def _looks_like_password(token: str) -> bool:
    """A digit, a symbol (beyond a hyphen or an apostrophe) or a capital after the first."""
    if token.isdigit():
        return len(token) >= 4
    return (
        any(char.isdigit() for char in token)
        or any(not char.isalnum() and char not in "-'" for char in token)
        or (not token.isupper() and any(char.isupper() for char in token[1:]))
    )


def _plain_word_is_a_password(word: str) -> bool:
    lowered = word.lower()
    return (
        len(word) >= 3
        and lowered not in _DESCRIPTIONS
        and lowered not in _LINK_WORDS
        and not lowered.endswith(_DESCRIPTIVE_ENDINGS)
    )


def _password_value(raw: str, link: str | None, rest: str) -> bool:
    if raw[0] in "\"'`" and raw[-1] == raw[0] and len(raw) >= 2:
        inner = raw[1:-1].strip()
        if link is not None:
            return len(inner) >= 3 and inner.lower() not in _DESCRIPTIONS
        return len(inner) >= 3 and _looks_like_password(inner)
    value = raw.lstrip(_LEADING).rstrip(_TRAILING) or raw
    if value.lower() in _DESCRIPTIONS or _UNIT.match(rest):
        return False
    if _looks_like_password(value):
        return len(value) >= 3
    if link is None:
        return False  # "password manager", "password reset"
    if link[-1] in ":=>":  # a label: whatever follows is the value
        return _plain_word_is_a_password(value)
    # After "is": a plain word ends its clause ("her password is swordfish.").
    ends_clause = raw != value or not rest.strip() or re.match(r"\s+(?:and|but)\b", rest)
    return bool(ends_clause) and _plain_word_is_a_password(value)


def _code_value(raw: str, word: str, rest: str) -> bool:
    digits = raw.lstrip(_LEADING).rstrip(_TRAILING).rstrip("#*")
    if word.lower() == "combination":
        return bool(_COMBINATION.fullmatch(digits))
    if not (digits.isascii() and digits.isdigit()) or _UNIT.match(rest):
        return False
    if word.lower().startswith(("cvv", "cvc", "csc")):
        return len(digits) in (3, 4)
    if _POSTAL_PIN.fullmatch(word) and len(digits) == 6 and digits[0] != "0":
        return False
    return 4 <= len(digits) <= 12


def _login_pair(text: str) -> bool:
    if "/" not in text and "|" not in text:
        return False  # no pair to look for: the pattern is costly on every word
    for found in _LOGIN_PAIR.finditer(text):
        value = found.group("value").rstrip(_TRAILING)
        if "@" not in value and len(value) >= 6 and _looks_like_password(value):
            return True
    return False


def stated_password(text: str) -> bool:
    """Whether `text` states a password, passphrase, PIN or code together with its value."""
    for found in _WORD.finditer(text):
        tail = _TAIL.match(text, found.end())
        if tail is None:
            continue
        raw, rest = tail.group("value"), text[tail.end() :]
        link = tail.group("after") or tail.group("link")
        if found.group("code") is not None:
            word = found.group("code")
            # A combination needs its lock: "combination for the safe", "locker combination".
            lock = _LOCKS.search(
                tail.group("subject") or text[max(0, found.start() - 12) : found.start()]
            )
            if (word.lower() != "combination" or lock) and _code_value(raw, word, rest):
                return True
        elif found.group("pass") is not None:
            if (
                link is not None
                and link[-1] in ":="
                and not _NOT_A_PASSWORD_PASS.search(text[: found.start()])
                and _looks_like_password(value := raw.rstrip(_TRAILING))
                and len(value) >= 6
            ):
                return True
        elif _password_value(raw, link, rest):
            return True
    return _login_pair(text)
