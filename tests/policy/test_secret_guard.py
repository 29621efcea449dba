"""The write-time guard: what looks like a secret is refused with a clear problem and stored
nowhere; ordinary facts that merely mention such things go through."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from memory_store.policy.secret_guard import PASSWORD, luhn_valid, refuse_secrets, secret_kind
from memory_store.policy.secret_guard.normalise import MAX_RUNS, base64_texts, normalise
from memory_store.runtime import Runtime
from tests.conftest import PURPOSE, assert_problem, bearer, write_memory
from tests.policy.secret_corpus import b64

SECRETS = {
    "card with spaces": ("my card is 4111 1111 1111 1111, exp 12/29", "a payment card number"),
    "card, plain digits": ("visa 4012888888881881", "a payment card number"),
    "amex": ("amex 378282246310005", "a payment card number"),
    "amex, grouped": ("amex 3782 822463 10005", "a payment card number"),
    "card with dashes": ("4111-1111-1111-1111 is the company card", "a payment card number"),
    "US SSN": ("SSN 123-45-6789", "a national identity number"),
    "UK NI number": ("NI number AB 12 34 56 C", "a national identity number"),
    "password": ("her wifi password is hunter2!", "a password"),
    "pin": ("bank PIN: 4921", "a password"),
    "OpenAI-style key": ("sk-proj-abcdefghijklmnopqrstuvwxyz123456", "an API key or access token"),
    "AWS key": ("AKIAIOSFODNN7EXAMPLE is the deploy key", "an API key or access token"),
    "GitHub token": ("ghp_" + "a1B2" * 9, "an API key or access token"),
    "generic api key": ("api_key = 9f8e7d6c5b4a39281706", "an API key or access token"),
    "private key": ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=", "a private key"),
}

ORDINARY = [
    "uses a password manager and wants reminders to rotate passwords",
    "her phone number ends in 4567; call after 6pm",
    "order number 1234 5678 9012 3456 arrived late",  # 16 digits, fails the Luhn check
    # Luhn-valid digits, but split where no card number is split: a count next to a reference.
    "step 17 100000000009 of the import",
    "flight LH 1234 leaves at 06:15 on 2026-03-14",
    "has a 4-digit pin pad at the office door",
    "asked about API keys in general, for a blog post",
    "budget is 1800 euros a month",
]


@pytest.mark.parametrize(("content", "kind"), SECRETS.values(), ids=list(SECRETS))
def test_a_secret_is_refused_naming_its_kind_and_stored_nowhere(
    client: TestClient, runtime: Runtime, assistant_token: str, content: str, kind: str
) -> None:
    response = client.post(
        "/v1/users/alice/memories",
        params={"purpose": PURPOSE},
        json={"content": content, "category": "finance"},
        headers=bearer(assistant_token),
    )
    body = assert_problem(response, 422, "secret-refused")
    assert body["kind"] == kind
    assert content not in response.text and content[:12] not in response.text
    with runtime.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM memories")).scalar_one() == 0


@pytest.mark.parametrize("content", ORDINARY)
def test_ordinary_facts_that_mention_such_things_are_kept(
    client: TestClient, assistant_token: str, content: str
) -> None:
    assert write_memory(client, assistant_token, content=content, category="work")["content"]


def test_a_secret_in_the_source_or_in_a_users_edit_is_refused_too(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    response = client.post(
        "/v1/users/alice/memories",
        params={"purpose": PURPOSE},
        json={"content": "likes tea", "category": "preferences", "source": "pwd: tea4two"},
        headers=bearer(assistant_token),
    )
    assert_problem(response, 422, "secret-refused")
    memory = write_memory(client, assistant_token)
    edit = client.patch(
        f"/v1/me/memories/{memory['id']}",
        json={"content": "card 5555 5555 5555 4444"},
        headers=bearer(alice_token),
    )
    assert_problem(edit, 422, "secret-refused")


@given(st.lists(st.integers(0, 9), min_size=12, max_size=18))
def test_luhn_accepts_exactly_one_check_digit_per_number(body: list[int]) -> None:
    digits = "".join(map(str, body))
    valid = [d for d in "0123456789" if luhn_valid(digits + d)]
    assert len(valid) == 1


def test_refuse_secrets_passes_empty_and_none() -> None:
    refuse_secrets(None, "", "plain text")


def test_text_is_read_as_it_looks() -> None:
    # Fullwidth letters, a zero-width space, no-break and thin spaces, Arabic-Indic digits.
    disguised = "\uff50\uff41\uff53\uff53\u200bword\u00a0\u00a0is\u2009\u0664\u0668\u0662\u0661"
    assert normalise(disguised) == "password is 4821"
    assert normalise("line one\nline\ttwo") == "line one\nline two"


def test_base64_is_read_one_level_deep_and_a_bounded_number_of_runs() -> None:
    assert secret_kind(b64("pw: hunter22")) == PASSWORD
    assert secret_kind(b64(b64("pw: hunter22"))) is None
    many = " ".join(b64(f"note number {n}") for n in range(3 * MAX_RUNS))
    assert len(list(base64_texts(many))) == MAX_RUNS
    # Words, even long capitalised ones, are not decoded and spend none of the budget.
    assert list(base64_texts("Recommendations internationalization ALLCAPSWORDS")) == []


@pytest.mark.parametrize(
    "content",
    [
        "her staging db is postgres://app:****@db.internal:5432/app",
        "the docs say postgres://user:<password>@localhost/db",
        "release2024candidate.finalversion01.signedoff is the build tag",
        "IBAN DE00 3704 0044 0532 0130 00 failed the bank's check",
        "sk-the-best-skiing-holidays-are-in-march",
    ],
)
def test_look_alikes_that_fail_their_checks_are_kept(content: str) -> None:
    assert secret_kind(content) is None


def test_a_lower_case_hex_word_that_passes_mod_97_is_no_iban() -> None:
    """Found under load: a hex token starting "be12", read on into the next word, passed
    mod 97 (one in 97 do). An IBAN's country code is written in capitals."""
    token = "be1200000061"  # BE12 0000 0061 ABOU passes the IBAN check digits
    compact = (token + "abou").upper()
    assert int("".join(str(int(c, 36)) for c in compact[4:] + compact[:4])) % 97 == 1
    assert secret_kind(f"load-canary {token} about alice") is None
    assert secret_kind("my IBAN is BE71 0961 2345 6769") is not None


@given(st.binary(min_size=6, max_size=6))
def test_no_hex_token_in_a_sentence_is_a_secret(raw: bytes) -> None:
    assert secret_kind(f"load-canary {raw.hex()} about alice") is None
