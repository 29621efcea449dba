"""Every refusal of an authenticated caller is on the audit trail: one record each, as the
action the route would have taken, denied, with the problem's type as the reason. Refusals
the policy decides were recorded before; these are the ones decided on the request itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from memory_store.runtime import Runtime
from tests.conftest import PURPOSE, bearer, write_memory

Call = Callable[[TestClient, dict[str, str], dict[str, str], str], Any]

# what is refused: (the request, its status, the problem type, the action recorded)
CASES: dict[str, tuple[Call, int, str, str]] = {
    "a secret in a write": (
        lambda c, a, _u, _m: c.post(
            "/v1/users/alice/memories",
            params={"purpose": PURPOSE},
            json={"content": "my card is 4111 1111 1111 1111", "category": "preferences"},
            headers=a,
        ),
        422,
        "secret-refused",
        "memory.write",
    ),
    "an unknown purpose": (
        lambda c, a, _u, _m: c.get(
            "/v1/users/alice/memories", params={"purpose": "marketing"}, headers=a
        ),
        422,
        "unknown-purpose",
        "memory.list",
    ),
    "an unknown category": (
        lambda c, a, _u, _m: c.post(
            "/v1/users/alice/memories",
            params={"purpose": PURPOSE},
            json={"content": "likes figs", "category": "astrology"},
            headers=a,
        ),
        422,
        "unknown-category",
        "memory.write",
    ),
    "a cursor not issued here": (
        lambda c, _a, u, _m: c.get("/v1/me/memories", params={"cursor": "bm90LWlzc3Vl"}, headers=u),
        422,
        "invalid-cursor",
        "memory.list",
    ),
    "a stale version": (
        lambda c, _a, u, m: c.patch(
            f"/v1/me/memories/{m}",
            json={"content": "likes dates"},
            headers={**u, "If-Match": '"7"'},
        ),
        412,
        "version-mismatch",
        "memory.update",
    ),
    "content over the limit": (
        lambda c, a, _u, _m: c.post(
            "/v1/users/alice/memories",
            params={"purpose": PURPOSE},
            json={"content": "x" * 5000, "category": "preferences"},
            headers=a,
        ),
        422,
        "invalid-request",
        "memory.write",
    ),
    "a malformed user id": (
        lambda c, a, _u, _m: c.get(
            "/v1/users/ALICE/memories", params={"purpose": PURPOSE}, headers=a
        ),
        422,
        "invalid-request",
        "memory.list",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_refusal_adds_one_denied_record(
    client: TestClient,
    runtime: Runtime,
    assistant_token: str,
    alice_token: str,
    case: str,
) -> None:
    call, status, slug, action = CASES[case]
    memory = write_memory(client, assistant_token, content="likes figs")
    before = list(runtime.audit_store.iter_records())
    response = call(client, bearer(assistant_token), bearer(alice_token), memory["id"])
    assert response.status_code == status, response.text
    assert response.json()["type"] == f"/problems/{slug}"
    added = list(runtime.audit_store.iter_records())[len(before) :]
    assert [(r.action, r.outcome, r.reason) for r in added] == [(action, "denied", slug)]
    # Nothing of the input: not the card number in any spelling (a bare "4111" also turns up
    # in the records' hex hashes, one run in a few dozen), nor the long value.
    recorded = repr(added)
    assert "4111 1111" not in recorded and "41111111" not in recorded
    assert "card" not in recorded and "x" * 50 not in recorded


def test_a_refusal_the_policy_decided_is_recorded_once(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    before = len(list(runtime.audit_store.iter_records()))
    response = client.post(  # a sensitive category without the user's opt-in: 403
        "/v1/users/alice/memories",
        params={"purpose": PURPOSE},
        json={"content": "x", "category": "health"},
        headers=bearer(assistant_token),
    )
    assert response.status_code == 403
    added = list(runtime.audit_store.iter_records())[before:]
    assert [(r.action, r.reason) for r in added] == [("memory.write", "consent-required")]


def test_a_caller_without_a_token_is_recorded_as_such_not_as_the_routes_action(
    client: TestClient, runtime: Runtime
) -> None:
    before = len(list(runtime.audit_store.iter_records()))
    client.get("/v1/users/alice/memories", params={"purpose": "marketing"})
    added = list(runtime.audit_store.iter_records())[before:]
    assert [(r.action, r.reason) for r in added] == [("auth", "unauthenticated")]
