"""The secret guard against its labelled corpus (recall and precision, printed with -s and
held), and the disguises it must see through: separators, zero-width characters, digits of
other scripts, base64. Through the API, a refusal names the kind and echoes nothing."""

from __future__ import annotations

import base64
import io
import timeit

from fastapi.testclient import TestClient
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import text

from memory_store.policy.secret_guard import CARD, DETECTORS, luhn_valid, secret_kind
from memory_store.runtime import Runtime
from tests.conftest import PURPOSE, bearer
from tests.policy.secret_corpus import ORDINARY, PLAIN_SECRETS, SECRETS

MIN_RECALL = 0.95
ISSUE_EXAMPLES = [
    "4111.1111.1111.1111",
    "the password for gmail is hunter22",
    "pw: hunter22",
    "the pin is broken on her brooch",
]
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]
SEPARATORS = ["", " ", "-", ".", "\u00a0", "\u202f", "\u2009", "\u200b", " \u200b", "\u2007"]
# The secrets whose digits are the secret: cards, PINs, passcodes.
DIGIT_SECRETS = [
    (t, kind)
    for t, kind in PLAIN_SECRETS
    if kind == CARD or t.startswith(("PIN", "pin", "passcode"))
]
# Digit zeros of other scripts: Arabic-Indic, Devanagari, Bengali, Thai, fullwidth, Osmanya.
ZEROS = [0x0660, 0x0966, 0x09E6, 0x0E50, 0xFF10, 0x104A0]


def test_the_corpus_is_large_varied_and_holds_the_issues_examples() -> None:
    assert len(SECRETS) >= 60 and len(ORDINARY) >= 60
    assert {kind for _, kind in SECRETS} == {kind for kind, _ in DETECTORS}
    corpus = {t for t, _ in SECRETS} | set(ORDINARY)
    assert set(ISSUE_EXAMPLES) <= corpus
    assert len(corpus) == len(SECRETS) + len(ORDINARY), "a text is in the corpus twice"


def test_recall_and_precision_on_the_corpus() -> None:
    caught = [(t, kind, secret_kind(t)) for t, kind in SECRETS]
    refused = [(t, found) for t in ORDINARY if (found := secret_kind(t)) is not None]
    true_positives = sum(found is not None for _, _, found in caught)
    recall = true_positives / len(SECRETS)
    precision = true_positives / (true_positives + len(refused))
    per_call = timeit.timeit(lambda: [secret_kind(t) for t in ORDINARY], number=20) / (
        20 * len(ORDINARY)
    )
    print(
        f"\nsecret corpus: {len(SECRETS)} secrets, {len(ORDINARY)} ordinary facts; "
        f"recall {recall:.3f}, precision {precision:.3f}, "
        f"{per_call * 1e6:.1f} us per ordinary fact"
    )
    for t, kind, found in caught:
        if found is None:
            print(f"  missed ({kind}): {t!r}")
    assert refused == [], "ordinary facts refused"
    assert recall >= MIN_RECALL
    wrong_kind = [(t, kind, found) for t, kind, found in caught if found not in (None, kind)]
    assert wrong_kind == []


@given(
    st.integers(10**14, 10**15 - 1),
    st.lists(st.sampled_from(SEPARATORS), min_size=3, max_size=3),
    st.sampled_from(["", "card ", "her visa is ", "pay with "]),
    st.sampled_from(["", " exp 12/29", ", thanks", " for the hotel"]),
)
@example(411111111111111, [".", ".", "."], "", "")
def test_any_luhn_valid_card_with_any_mix_of_separators_is_caught(
    body: int, separators: list[str], before: str, after: str
) -> None:
    digits = str(body)
    digits += next(d for d in "0123456789" if luhn_valid(digits + d))
    groups = [digits[i : i + 4] for i in range(0, 16, 4)]
    written = groups[0] + "".join(s + g for s, g in zip(separators, groups[1:], strict=True))
    assert secret_kind(before + written + after) == CARD


@given(
    st.integers(10**14, 10**15 - 1),
    st.lists(st.sampled_from(SEPARATORS), min_size=3, max_size=3),
    st.sampled_from(["", "order ", "tracking ", "ref "]),
)
def test_a_number_failing_the_luhn_check_is_no_card(
    body: int, separators: list[str], before: str
) -> None:
    digits = str(body)
    digits += next(d for d in "0123456789" if not luhn_valid(digits + d))
    groups = [digits[i : i + 4] for i in range(0, 16, 4)]
    written = groups[0] + "".join(s + g for s, g in zip(separators, groups[1:], strict=True))
    assert secret_kind(before + written) is None


@given(st.sampled_from(PLAIN_SECRETS), st.data())
def test_zero_width_characters_hide_no_secret(secret: tuple[str, str], data: st.DataObject) -> None:
    content, kind = secret
    positions = data.draw(st.lists(st.integers(0, len(content)), max_size=6))
    for position in sorted(positions, reverse=True):
        content = content[:position] + data.draw(st.sampled_from(INVISIBLE)) + content[position:]
    assert secret_kind(content) == kind


@given(st.sampled_from(DIGIT_SECRETS), st.sampled_from(ZEROS))
def test_digits_of_another_script_hide_no_secret(secret: tuple[str, str], zero: int) -> None:
    content, kind = secret
    other = content.translate({ord(str(d)): chr(zero + d) for d in range(10)})
    assert secret_kind(other) == kind


@given(
    st.sampled_from(PLAIN_SECRETS),
    st.booleans(),
    st.sampled_from(["{}", "note: {}", "saved {} in the app"]),
)
def test_base64_hides_no_secret(secret: tuple[str, str], urlsafe: bool, frame: str) -> None:
    content, kind = secret
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    assert secret_kind(frame.format(encode(content.encode()).decode())) == kind


@given(st.sampled_from(ORDINARY), st.sampled_from(ORDINARY))
def test_two_ordinary_facts_together_are_still_ordinary(first: str, second: str) -> None:
    assert secret_kind(f"{first}. {second}") is None


def test_a_long_text_is_read_in_linear_time() -> None:
    """The content limit is 4096 characters: no pattern may backtrack its way to seconds."""
    hostile = [
        "password for " + "x " * 2000,
        "4111 " * 800,
        "a" * 4096,
        "A1b2" * 1024,
        "key: " + "ab1-" * 1000,
        "x@y.co / " * 450,
        "eyJhbGciOi." * 370,
        "pin " * 1000,
        "postgres://" + "a:" * 2000 + "@",
        "QUJDREVGR0hJSktM " * 240,
    ]
    elapsed = timeit.timeit(lambda: [secret_kind(t) for t in hostile], number=1)
    assert elapsed < 1.0


def test_through_the_api_every_caught_secret_is_refused_and_echoed_nowhere(
    json_logs: io.StringIO, client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    for content, kind in SECRETS:
        if secret_kind(content) is None:
            continue  # counted against recall above
        response = client.post(
            "/v1/users/alice/memories",
            params={"purpose": PURPOSE},
            json={"content": content, "category": "finance"},
            headers=bearer(assistant_token),
        )
        assert response.status_code == 422, content
        body = response.json()
        # Only words of ours: nothing of the content comes back.
        assert set(body) == {"type", "title", "status", "detail", "kind", "request_id"}
        assert body["kind"] == kind
        assert body["detail"] == f"This looks like {kind}; memory-store does not keep secrets"
    logged = json_logs.getvalue()
    values = {
        word
        for content, _ in SECRETS
        for word in content.split()
        if len(word) >= 6 and any(c.isdigit() for c in word) and any(c.isalpha() for c in word)
    }
    assert len(values) > 30
    assert [value for value in values if value in logged] == [], "a secret was logged"
    with runtime.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM memories")).scalar_one() == 0
