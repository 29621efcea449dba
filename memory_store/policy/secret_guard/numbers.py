"""Numbers that are secrets: payment cards, IBANs, national identity numbers.

Each carries its own check (Luhn, mod 97) or a shape no ordinary number has, so that an order
number, a date or a phone number still goes through. Texts arrive normalised (normalise.py).
"""

from __future__ import annotations

import re
from itertools import accumulate

# Digit groups joined by one space, dash or dot each, in any mix: "4111 1111-1111.1111".
_DIGIT_RUN = re.compile(r"\d+(?:[ .-]\d+)*")
_GROUP_SEPARATOR = re.compile(r"[ .-]")
# Where a card number may be split: after every fourth digit (Visa, Mastercard, 13 to 19
# digits), or 4-6-5 and 4-6-4 (Amex, Diners). A writer may leave out any of these splits (or
# a zero-width character may have hidden them) but may not split anywhere else, so "step 17
# 100000000009" is a count next to a reference, not a card.
_CARD_SPLITS = (frozenset({4, 8, 12, 16}), frozenset({4, 10}))
# A group this short at either end of a run is an expiry, a CVV or a count beside the card.
_SHORT_GROUP = 3


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


def _is_card(groups: list[str]) -> bool:
    digits = "".join(groups)
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    splits = set(accumulate(len(group) for group in groups[:-1]))
    return any(splits <= allowed for allowed in _CARD_SPLITS) and luhn_valid(digits)


def card_number(text: str) -> bool:
    for match in _DIGIT_RUN.finditer(text):
        if len(match.group()) < 13:
            continue
        groups = _GROUP_SEPARATOR.split(match.group())
        first, last = 0, len(groups)
        while first < last - 1 and len(groups[first]) <= _SHORT_GROUP:
            first += 1
        while last > first + 1 and len(groups[last - 1]) <= _SHORT_GROUP:
            last -= 1
        candidates = (groups, groups[first:], groups[:last], groups[first:last])
        if any(_is_card(candidate) for candidate in candidates):
            return True
    return False


# Each IBAN country's length (the SWIFT registry), as "CCnn" pairs.
_IBAN_LENGTHS = {
    country: int(length)
    for country, length in re.findall(
        r"([A-Z]{2})(\d\d)",
        "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 "
        "DJ27 DK18 DO28 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HR21 "
        "HU28 IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 "
        "MD24 ME22 MK19 MN20 MR27 MT31 MU30 NI28 NL18 NO15 OM23 PK24 PL28 PS29 QA29 RO24 RS22 "
        "RU33 SA24 SC31 SD18 SE24 SI19 SK24 SM27 SO23 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 "
        "XK20 YE30",
    )
}
# A country code, two check digits, then the account in groups of four (or unbroken).
# The country code as IBANs are written, in capitals: a lower-case word or hex string that
# happens to start "be12" and pass mod 97 (one in 97) is no account number.
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?i:(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,3})?)\b")


def iban(text: str) -> bool:
    for match in _IBAN.finditer(text):
        compact = re.sub(r"[ -]", "", match.group()).upper()
        length = _IBAN_LENGTHS.get(compact[:2])
        if length is None or len(compact) < length:
            continue
        account = compact[:length]  # a word of four letters may have been read on
        rearranged = account[4:] + account[:4]
        if int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1:
            return True
    return False


_US_SSN = re.compile(r"(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)")
# Written with spaces or dots, or unbroken, a social security number needs its name beside it.
_US_SSN_LABELLED = re.compile(
    r"\b(?:ssn|social security(?: number| no\.?| #)?)\W{0,3}(?:is\W{1,3})?"
    r"(?!000|666|9\d\d)\d{3}[ .]?(?!00)\d{2}[ .]?(?!0000)\d{4}(?!\d)",
    re.I,
)
_UK_NINO = re.compile(r"\b(?![DFIQUV])[A-Z](?![DFIOQUV])[A-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")


def national_identity_number(text: str) -> bool:
    return bool(_US_SSN.search(text) or _US_SSN_LABELLED.search(text) or _UK_NINO.search(text))
