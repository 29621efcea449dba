"""Crafted cursors and times: whatever a client makes up answers 422 with a clear problem,
never 500, on every route that takes one. Cursors are signed by the service: one it did not
issue is refused unread; and one it did sign (as if its secret leaked) is still checked for
range, which is what the signed cases below exercise."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from memory_store.runtime import Runtime
from tests.conftest import PURPOSE, assert_problem, bearer, write_memory


def unsigned(document: Any) -> str:
    """A cursor as a client would make one up: the shape of a real one, without its tag."""
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


@pytest.fixture(params=["unsigned", "signed"])
def crafted(request: pytest.FixtureRequest, runtime: Runtime) -> Callable[[Any], str]:
    if request.param == "unsigned":
        return unsigned
    return runtime.cursors.encode


POSITIONS = [
    {"t": "0001-01-01T00:00:00+05:00", "i": "x"},  # before year 1 in UTC
    {"t": "9999-12-31T23:59:59-05:00", "i": "x"},  # after year 9999 in UTC
    {"t": "2026-01-01T00:00:00", "i": "x"},  # no zone
    {"t": "2026-01-01T00:00:00Z", "i": 7},
    {"t": "2026-01-01T00:00:00Z", "i": "x" * 100},  # longer than any id
    {"t": "not a time", "i": "x"},
]
NUMBERS = [1e30, 10**30, -1, True, "5", None]


@pytest.mark.parametrize("position", POSITIONS)
def test_a_crafted_memory_cursor_is_refused_on_both_lists(
    client: TestClient,
    assistant_token: str,
    alice_token: str,
    position: dict[str, Any],
    crafted: Callable[[Any], str],
) -> None:
    write_memory(client, assistant_token)
    cursor = crafted(position)
    for response in (
        client.get(
            "/v1/users/alice/memories",
            params={"purpose": PURPOSE, "cursor": cursor},
            headers=bearer(assistant_token),
        ),
        client.get("/v1/me/memories", params={"cursor": cursor}, headers=bearer(alice_token)),
        client.get(
            "/v1/me/memories", params={"cursor": cursor, "q": "window"}, headers=bearer(alice_token)
        ),
    ):
        assert_problem(response, 422, "invalid-cursor")


@pytest.mark.parametrize("number", NUMBERS)
def test_a_crafted_number_cursor_is_refused_on_every_numbered_list(
    client: TestClient,
    alice_token: str,
    compliance_token: str,
    number: Any,
    crafted: Callable[[Any], str],
) -> None:
    pages = [
        ("/v1/me/consents/history", crafted({"v": number}), alice_token),
        ("/v1/me/access-log", crafted({"s": number}), alice_token),
        ("/v1/audit/events", crafted({"s": number}), compliance_token),
    ]
    for path, cursor, token in pages:
        response = client.get(path, params={"cursor": cursor}, headers=bearer(token))
        assert_problem(response, 422, "invalid-cursor")


@pytest.mark.parametrize("moment", ["2026-13-45T99:99:99Z", "2026-02-30T00:00:00Z"])
def test_a_time_of_the_right_shape_that_is_no_time_is_refused(
    client: TestClient, compliance_token: str, moment: str
) -> None:
    for name in ("since", "until"):
        response = client.get(
            "/v1/audit/events", params={name: moment}, headers=bearer(compliance_token)
        )
        body = assert_problem(response, 422, "invalid-request")
        assert moment not in response.text and "since and until" in body["detail"]


def test_a_real_time_still_filters(client: TestClient, compliance_token: str) -> None:
    response = client.get(
        "/v1/audit/events",
        params={"since": "2000-01-01T00:00:00Z", "until": "2999-12-31T23:59:59.5Z"},
        headers=bearer(compliance_token),
    )
    assert response.status_code == 200, response.text


def test_a_cursor_the_service_issued_pages_on_and_any_change_to_it_is_refused(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    for n in range(3):
        write_memory(client, assistant_token, content=f"fact {n}")
    first = client.get("/v1/me/memories", params={"limit": 2}, headers=bearer(alice_token))
    cursor = first.json()["next_cursor"]
    assert cursor and "." in cursor
    rest = client.get("/v1/me/memories", params={"cursor": cursor}, headers=bearer(alice_token))
    assert [m["content"] for m in rest.json()["items"]] == ["fact 0"]
    body, _, tag = cursor.rpartition(".")
    flipped = "A" if tag[0] != "A" else "B"
    for altered in (f"{body}.{flipped}{tag[1:]}", body, f"{body}.", "x.y" * 150, cursor + "x"):
        response = client.get(
            "/v1/me/memories", params={"cursor": altered}, headers=bearer(alice_token)
        )
        assert_problem(response, 422, "invalid-cursor")
