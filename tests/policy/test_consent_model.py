"""A property: whatever sequence of consent changes a user makes, what the assistant may use
is exactly what the shipped policy promises (latest applicable choice wins; defaults per
purpose; sensitive categories only by a grant naming them)."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory_store.domain import Principal, Role
from memory_store.runtime import Runtime

PURPOSES = ["personalization", "analytics"]
CATEGORIES = ["work", "location", "health", "beliefs"]  # two ordinary, two sensitive
SENSITIVE = {"health", "beliefs"}

changes = st.lists(
    st.tuples(st.sampled_from(PURPOSES), st.sampled_from([*CATEGORIES, "*"]), st.booleans()),
    max_size=12,
)
_users = itertools.count()


def expected(history: list[tuple[str, str, bool]], purpose: str, category: str) -> bool:
    """The reference model of policies/policy.csv, written independently of the code."""
    applicable = [(c, g) for p, c, g in history if p == purpose and c in (category, "*")]
    if category in SENSITIVE:
        return bool(applicable) and applicable[-1] == (category, True)
    if not applicable:
        return purpose == "personalization"
    return applicable[-1][1]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=changes)
def test_effective_consent_matches_the_policy_model(
    runtime: Runtime, history: list[tuple[str, str, bool]]
) -> None:
    user_id = f"prop-{next(_users)}"  # a fresh user per example, in one database
    user = Principal(token_id="t", name="t", role=Role.user, user_id=user_id)
    for purpose, category, granted in history:
        runtime.consents.choose(user, purpose, category, granted=granted, channel="api")
    overview = {
        (item.purpose, item.category): item.granted
        for item in runtime.consents.overview(user).items
    }
    for purpose in PURPOSES:
        for category in CATEGORIES:
            assert overview[(purpose, category)] == expected(history, purpose, category), (
                purpose,
                category,
            )
    events = runtime.consents.history(user, limit=100, cursor=None).items
    assert [e.version for e in events] == list(range(len(history), 0, -1))
