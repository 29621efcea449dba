"""The secret guard's labelled corpus: texts an assistant might try to store, each marked as
a secret (with the kind the guard should name) or as an ordinary fact it must keep.

Every key and token here is made up or a vendor's documented test value. The ones with an
issuer's prefix are put together from pieces, so that a secret scanner reading this
repository does not take them for real ones.
"""

from __future__ import annotations

import base64

from memory_store.policy.secret_guard import (
    API_KEY,
    BANK_ACCOUNT,
    CARD,
    NATIONAL_ID,
    PASSWORD,
    PRIVATE_KEY,
)

NBSP, NNBSP, THIN = "\u00a0", "\u202f", "\u2009"
ZWSP, WJ, BOM = "\u200b", "\u2060", "\ufeff"
FULLWIDTH_ZERO, ARABIC_INDIC_ZERO = 0xFF10, 0x0660


def b64(text: str, *, urlsafe: bool = False) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(text.encode()).decode()


def in_script(text: str, zero: int) -> str:
    """`text` with its ASCII digits written in the script whose zero is `zero`."""
    return text.translate({ord(str(d)): chr(zero + d) for d in range(10)})


STRIPE_LIVE = "sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc"
JWT = ".".join(
    (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
        "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ",
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    )
)

PLAIN_SECRETS: list[tuple[str, str]] = [
    # Payment cards: the dotted one, no-break and zero-width separators, other scripts.
    ("4111.1111.1111.1111", CARD),
    (f"card 4111{NBSP}1111{NBSP}1111{NBSP}1111", CARD),
    (f"her visa is 4111{ZWSP}1111{ZWSP}1111{ZWSP}1111", CARD),
    (f"4012{NNBSP}8888{NNBSP}8888{THIN}1881 is the travel card", CARD),
    ("my card is 4111 1111 1111 1111, exp 12/29", CARD),
    ("visa 4012888888881881", CARD),
    ("amex 378282246310005", CARD),
    ("amex 3782 822463 10005", CARD),
    ("4111-1111-1111-1111 is the company card", CARD),
    ("mastercard 5555 5555 5555 4444 exp 09/27", CARD),
    ("card: " + in_script("4111 1111 1111 1111", FULLWIDTH_ZERO), CARD),
    (in_script("5555 5555 5555 4444", ARABIC_INDIC_ZERO) + " on file", CARD),
    ("diners 3056 930902 5904", CARD),
    ("discover 6011-1111-1111-1117", CARD),
    ("4111 1111.1111-1111 for the hotel", CARD),
    ("the spare card is 5105105105105100", CARD),
    (f"jcb 3530{WJ} 1113{BOM} 3330 0000", CARD),
    ("old visa 4222222222222", CARD),
    ("4111 1111 1111 1111 12/29 cvv 123", CARD),
    # Bank accounts and national identity numbers.
    ("IBAN DE89 3704 0044 0532 0130 00", BANK_ACCOUNT),
    ("rent goes to GB82WEST12345698765432", BANK_ACCOUNT),
    ("SSN 123-45-6789", NATIONAL_ID),
    ("NI number AB 12 34 56 C", NATIONAL_ID),
    ("her social security number is 123 45 6789", NATIONAL_ID),
    # Passwords, passphrases, PINs and codes, stated with their values.
    ("the password for gmail is hunter22", PASSWORD),
    ("pw: hunter22", PASSWORD),
    ("my pw: hunter22", PASSWORD),
    ("passcode is 4821", PASSWORD),
    ("PIN 4821", PASSWORD),
    ("pin code: 0000", PASSWORD),
    ("her wifi password is hunter2!", PASSWORD),
    ("bank PIN: 4921", PASSWORD),
    ("pwd: tea4two", PASSWORD),
    ("the wifi password at the cabin is Tr0ub4dor&3", PASSWORD),
    ("password = correcthorse42", PASSWORD),
    ("her netflix password is 'open sesame'", PASSWORD),
    ("the password is swordfish.", PASSWORD),
    ("door code is 4590#", PASSWORD),
    ("gate code 1234", PASSWORD),
    ("the alarm code for the shop is 2580", PASSWORD),
    ("cvv 737", PASSWORD),
    ("Passwort: Sommer2024!", PASSWORD),
    ("contraseña: gato1234", PASSWORD),
    ("her passphrase is \u201ccorrect horse battery staple\u201d", PASSWORD),
    ("the pin for her debit card is 7391", PASSWORD),
    ("login alice, p/w: Hunter!22", PASSWORD),
    ("wifi key: 8f3kd92ls0", PASSWORD),
    ("verification code 482913", PASSWORD),
    (f"pass{ZWSP}word: hunter22", PASSWORD),
    ("\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44\uff1a hunter22", PASSWORD),
    # Connection strings with a password in them.
    ("postgres://admin:s3cr3tPass@db.internal:5432/app", PASSWORD),
    ("mongodb+srv://app:Zx9kLm2q@cluster0.example.net/prod", PASSWORD),
    ("Server=db;User Id=sa;Password=Hunter22;", PASSWORD),
    # Keys and tokens, by their issuer's prefix or their shape.
    (f"session token {JWT}", API_KEY),
    (f"stripe key {STRIPE_LIVE}", API_KEY),
    ("sk_" + "test_" + "51H8xYzAbCdEfGhIjKlMnOpQr", API_KEY),
    ("restricted key " + "rk_" + "live_" + "9aB8cD7eF6gH5iJ4kL3mN2oP", API_KEY),
    ("slack bot " + "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", API_KEY),
    ("xoxp-" + "2718281828-3141592653-1618033988-a1b2c3d4e5f6", API_KEY),
    ("ghp_" + "a1B2" * 9, API_KEY),
    ("github_pat_" + "11ABCDEFG0" + "x9Y8z7W6v5" * 6, API_KEY),
    ("gho_" + "16C7e42F292c6912E7710c838347Ae178B4a", API_KEY),
    ("AKIA" + "IOSFODNN7EXAMPLE is the deploy key", API_KEY),
    ("ASIA" + "Y34FZKBOKMUTVV7A for the session", API_KEY),
    ("aws secret access key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", API_KEY),
    ("maps key " + "AIza" + "SyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI", API_KEY),
    ("sk-" + "proj-abcdefghijklmnopqrstuvwxyz123456", API_KEY),
    ("claude key " + "sk-" + "ant-api03-" + "Xy7Kq2Lm9Np4Rs6Tv8Wz0Ab3Cd5Ef", API_KEY),
    ("api_key = 9f8e7d6c5b4a39281706", API_KEY),
    ("Authorization: Bearer 8a7sd6f5g4h3j2k1l0qwerty", API_KEY),
    ("the token for the weather api is 3f9a8c7e6d5b4a3f2e1d0c9b", API_KEY),
    ("glpat-" + "Zx8Yw7Vu6Ts5Rq4Po3Nm", API_KEY),
    ("hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567", API_KEY),
    ("https://" + "hooks.slack.com/services/T0ABC1DEF/B0GHI2JKL/q1w2e3r4t5y6u7i8o9p0", API_KEY),
    ("SG." + "ngeVfQFYQlKU0ufo8x5d1A.TwL2iGABf9DHoTf-09kqeF8tAmbihYzrnopKc-1s5cr", API_KEY),
    (f"{STRIPE_LIVE[:7]}{ZWSP}{STRIPE_LIVE[7:]}", API_KEY),
    # Private keys.
    ("-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn", PRIVATE_KEY),
    ("-----BEGIN " + "OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=", PRIVATE_KEY),
    ("-----BEGIN " + "EC PRIVATE KEY-----", PRIVATE_KEY),
    ("-----BEGIN " + "PGP PRIVATE KEY BLOCK-----", PRIVATE_KEY),
]
# Secrets wrapped in base64, once.
WRAPPED_SECRETS: list[tuple[str, str]] = [
    (f"note: {b64('password: hunter22')}", PASSWORD),
    (f"saved as {b64('4111 1111 1111 1111')}", CARD),
    (f"config blob {b64('STRIPE=' + STRIPE_LIVE, urlsafe=True)}", API_KEY),
    (f"{b64('PIN 4821')} in the notes app", PASSWORD),
]
SECRETS = PLAIN_SECRETS + WRAPPED_SECRETS

ORDINARY: list[str] = [
    # The words of secrets, used for something else.
    "the pin is broken on her brooch",
    "she forgot her password yesterday",
    "prefers a PIN pad at checkout",
    "went bowling on Friday and knocked down all ten pins twice",
    "wants password manager recommendations for her parents",
    "uses a password manager and wants reminders to rotate passwords",
    "has a 4-digit pin pad at the office door",
    "asked about API keys in general, for a blog post",
    "her password is weak and she wants to change it",
    "the wifi password is on the fridge",
    "the password for her bank is different from her email one",
    "her password must be 12 characters long at work",
    "changes her password every 90 days",
    "password reset emails go to her work address",
    "password: she uses her dog's name, she says",
    "uses passkeys on her phone instead of passwords",
    "the passcode screen on her phone is slow",
    "her PIN was blocked after three wrong tries, so she called the bank",
    "the PIN for her new card arrives by post in 5 days",
    "pin number 3 on the board is loose",
    "pinned the recipe to the fridge",
    "wears a lapel pin from her grandfather's regiment",
    "the chip-and-PIN reader at her shop keeps failing",
    "the door code changes every month, she asks the concierge",
    "her gym locker code changes weekly",
    "the key to her bike lock is in the blue bowl",
    "collects antique keys and keyrings",
    "the key is to start early",
    "wants to learn about public key cryptography",
    "her API key for the weather app expired, she needs a new one",
    "gave a talk on token economics at the conference",
    "the subway token costs 2.90 now",
    "her token for the arcade is in her coat pocket",
    "tokens of appreciation for the team, 25 euros each",
    "the secret to her lasagne is nutmeg",
    "secret ingredient is smoked paprika",
    "keeps a secret santa list every December",
    "bearer bonds were her grandfather's investment",
    "got a boarding pass for seat 14C on the 7:05 flight",
    "her bus pass renews on the 1st of every month",
    "passed her driving test on the second try",
    # Numbers that are not secrets.
    "her phone number ends in 4567; call after 6pm",
    "calls her sister at +44 20 7946 0958 on Sundays",
    "order number 1234 5678 9012 3456 arrived late",
    "step 17 100000000009 of the import",
    "flight LH 1234 leaves at 06:15 on 2026-03-14",
    "budget is 1800 euros a month",
    "staying in room 4111 at the Hilton from 2026-05-02 to 2026-05-06",
    "her house is at 4111 Elm Street, apartment 12",
    "bread recipe: 500 g flour, 350 ml water, 10 g salt, 7 g yeast, 45 min at 230 C",
    "the recipe says 1 1/2 cups of sugar and 2 1/4 tsp of yeast",
    "area code 415, lives in San Francisco",
    "zip code 10001",
    "lives in Bengaluru, pin code 560001",
    "tracking number 9400 1118 9922 3456 7890 12 for the new shoes",
    "order 112-4567890-1234567 from the online shop",
    "wedding on 2026-09-12 at 15:30, 120 guests",
    "son born 2019-04-12, daughter 2021-11-30",
    "her router is at 192.168.1.20",
    "uses version 3.11.4 of Python at work",
    "knows pi to 15 digits: 3.14159265358979",
    "ISBN 978-0-306-40615-7 is the book she wants",
    "the invoice INV-2026-00042 is due on March 3",
    "her employee id is E-20391",
    "booking reference XK7P2Q for the hotel",
    "mortgage of 250000 at 3.9% over 25 years",
    "runs 5k in 24:30, aiming for 23:59",
    "lucky numbers are 4, 8, 15, 16, 23 and 42",
    "allergic to penicillin since 2004",
    "prefers aisle seats, row 12 or earlier",
    "her old card expired in 12/2025",
    "her Wi-Fi network is called HomeNet-5G",
    "her flat is 4B, postcode SW1A 1AA",
    "her github username is octocat-42",
    "the safe in the hotel room did not open",
]
