"""The hot routes (api/hot_routes.py) answer exactly as FastAPI's routes do, for any request.

Every other test of the assistant's write, list and get goes through the hot routes already
(they are on by default). These tests show that they are the ones serving, and compare both
paths request by request: the same request, sent with the hot routes on and then off, gets
the same status, the same problem or answer (the request id and the fresh parts of a new
memory aside) and the same headers that matter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory_store.api.hot_routes import HOT_ROUTES
from tests.conftest import PURPOSE, bearer, write_memory

FRESH = {"id", "created_at", "updated_at", "expires_at", "request_id"}  # new on every write


@pytest.fixture
def solved(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The paths FastAPI solved dependencies for, from now on."""
    paths: list[str] = []
    solve = fastapi.routing.solve_dependencies  # type: ignore[attr-defined]

    async def counting(*args: Any, **kwargs: Any) -> Any:
        paths.append(kwargs["request"].url.path)
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    yield paths


def test_every_hot_route_is_a_documented_route(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    for hot in HOT_ROUTES:
        assert hot.method.lower() in paths[hot.path], hot.path


def test_the_hot_routes_are_served_without_fastapis_dependencies(
    app: FastAPI, client: TestClient, assistant_token: str, alice_token: str, solved: list[str]
) -> None:
    memory = write_memory(client, assistant_token)
    alice = "/v1/users/alice/memories"
    for path in (alice, f"{alice}/{memory['id']}"):
        answer = client.get(path, params={"purpose": PURPOSE}, headers=bearer(assistant_token))
        assert answer.status_code == 200
    for path in ("/v1/me/memories", f"/v1/me/memories/{memory['id']}"):
        assert client.get(path, headers=bearer(alice_token)).status_code == 200
    assert solved == []  # the write, the lists and the gets: none through FastAPI's routing

    client.get(
        "/v1/users/alice/context", params={"purpose": PURPOSE}, headers=bearer(assistant_token)
    )
    assert solved == ["/v1/users/alice/context"]  # another route: FastAPI's

    app.state.hot_routes = False
    client.get(alice, params={"purpose": PURPOSE}, headers=bearer(assistant_token))
    assert solved[-1] == alice


def test_a_malformed_request_is_left_to_fastapi(
    client: TestClient, assistant_token: str, solved: list[str]
) -> None:
    """A parameter that does not validate: FastAPI answers it (422), not the hot route."""
    answer = client.get(
        "/v1/users/alice/memories",
        params={"purpose": PURPOSE, "limit": "0"},
        headers=bearer(assistant_token),
    )
    assert answer.status_code == 422
    assert solved == ["/v1/users/alice/memories"]


def _seen(answer: Any) -> tuple[Any, ...]:
    """What a client sees of an answer, less what differs between two identical requests."""
    kind = answer.headers.get("content-type")
    body: Any = answer.json() if kind and "json" in kind else answer.text
    if isinstance(body, dict):
        body = {key: value for key, value in body.items() if key not in FRESH}
        if body.get("next_cursor"):  # sealed afresh each time: only whether there is one
            body["next_cursor"] = "(a cursor)"
    location = answer.headers.get("location", "")
    return (
        answer.status_code,
        kind,
        body,
        answer.headers.get("www-authenticate"),
        answer.headers.get("retry-after"),
        location.split("/memories/")[0],
    )


def _both(app: FastAPI, client: TestClient, method: str, url: str, **kwargs: Any) -> None:
    app.state.hot_routes = True
    hot = client.request(method, url, **kwargs)
    app.state.hot_routes = False
    try:
        documented = client.request(method, url, **kwargs)
    finally:
        app.state.hot_routes = True
    assert _seen(hot) == _seen(documented), (method, url, kwargs)


# Each strategy leans towards a well-formed request (the first choice, half the time), so
# that both answers and refusals of every kind are compared.
VALUES = st.one_of(
    st.sampled_from(["", "0", "1", "5", "20", "100", "101", "-1", "2.0", " 5", "x", PURPOSE]),
    st.sampled_from(["preferences", "health", "nope", "support", "analytics", "a" * 65]),
    st.text(max_size=20),
)
PAIRS = st.lists(
    st.tuples(st.sampled_from(["category", "q", "limit", "cursor", "purpose", "other"]), VALUES),
    max_size=3,
)
PURPOSES = st.one_of(
    st.just([("purpose", PURPOSE)]),
    st.sampled_from([[], [("purpose", "")], [("purpose", "support")], [("purpose", "x" * 65)]]),
)
QUERIES = st.builds(lambda first, more: first + more, PURPOSES, PAIRS)
USERS = st.one_of(
    st.just("alice"),
    st.sampled_from(["bob", "Alice", "a" * 129, "al ice", "\u00e9"]),
    st.text(max_size=10),
)
TOKENS = st.one_of(st.just("assistant"), st.sampled_from(["alice", "none", "garbage"]))
ONCE_ENOUGH = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _headers(token: str, tokens: dict[str, str]) -> dict[str, str]:
    if token == "none":
        return {}
    if token == "garbage":
        return {"Authorization": "Bearer mst_not-a-token"}
    return bearer(tokens[token])


@pytest.fixture
def tokens(assistant_token: str, alice_token: str, bob_token: str) -> dict[str, str]:
    return {"assistant": assistant_token, "alice": alice_token, "bob": bob_token}


def _url(user: str, query: list[tuple[str, str]], tail: str = "") -> str:
    path = f"/v1/users/{quote(user, safe='')}/memories{tail}"
    return f"{path}?{urlencode(query)}" if query else path


# One thing wrong (or unusual) at a time, on an otherwise well-formed request.
OK = [("purpose", PURPOSE)]
SHARED_CASES: list[tuple[str, str, list[tuple[str, str]]]] = [
    *[(user, "assistant", OK) for user in ["bob", "Alice", "a" * 129, "al ice", "\u00e9"]],
    *[("alice", token, OK) for token in ["alice", "none", "garbage"]],
    ("alice", "assistant", []),
    ("alice", "assistant", [("purpose", "")]),
    ("alice", "assistant", [("purpose", "support")]),
    ("alice", "assistant", [("purpose", "x" * 65)]),
    ("alice", "assistant", [("purpose", "support"), ("purpose", PURPOSE)]),
    ("alice", "assistant", [*OK, ("other", "1")]),
]
LIST_CASES = [
    *[
        ("alice", "assistant", [*OK, (name, value)])
        for name, values in {
            "limit": ["0", "1", "5", "100", "101", "2.0", " 5", "x", ""],
            "category": ["preferences", "health", "nope", ""],
            "q": ["tea", "", "x" * 257],
            "cursor": ["abc", ""],
        }.items()
        for value in values
    ],
]
GOOD_BODY = {"content": "likes green tea", "category": "preferences"}
BODY_CASES: list[tuple[str | None, bytes]] = [
    *[
        (kind, json.dumps(GOOD_BODY).encode())
        for kind in [
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "text/plain",
            None,
            "application/merge-patch+json",
        ]
    ],
    *[
        ("application/json", json.dumps({**GOOD_BODY, **change}).encode())
        for change in list[dict[str, Any]](
            [
                {"content": ""},
                {"content": "x" * 5000},
                {"category": "health"},
                {"category": "nope"},
                {"extra": 1},
                {"source": None},
                {"source": "chat"},
                {"expires_at": "soon"},
                {"expires_at": "2030-01-01"},
                {"expires_at": "2000-01-01T00:00:00Z"},
                {"expires_at": "2027-01-01T00:00:00Z"},
            ]
        )
    ],
    *[
        ("application/json", raw)
        for raw in [b"", b"{", b"[]", b"null", b"7", "\u00e9".encode("latin-1")]
    ],
]


# Each test below runs its cases on one app, one after the other (a fresh app per case costs
# a second on PostgreSQL); a failure names the case.


def test_a_list_gets_the_same_answer_from_both_paths(
    app: FastAPI, client: TestClient, tokens: dict[str, str]
) -> None:
    for n in range(3):
        write_memory(client, tokens["assistant"], content=f"likes tea {n}")
    for user, token, query in SHARED_CASES + LIST_CASES:
        _both(app, client, "GET", _url(user, query), headers=_headers(token, tokens))


def test_a_get_gets_the_same_answer_from_both_paths(
    app: FastAPI, client: TestClient, tokens: dict[str, str]
) -> None:
    memory = write_memory(client, tokens["assistant"])
    for user, token, query in SHARED_CASES[:1] + SHARED_CASES[5:]:
        for tail in ["/" + memory["id"], "/mem_nothing-here", "/" + "x" * 65, "/"]:
            url = _url(user, query, tail)
            _both(app, client, "GET", url, headers=_headers(token, tokens))


def test_a_write_from_anyone_anywhere_gets_the_same_answer_from_both_paths(
    app: FastAPI, client: TestClient, tokens: dict[str, str]
) -> None:
    for user, token, query in SHARED_CASES:
        url = _url(user, query)
        _both(app, client, "POST", url, json=GOOD_BODY, headers=_headers(token, tokens))


def test_a_write_of_any_body_gets_the_same_answer_from_both_paths(
    app: FastAPI, client: TestClient, tokens: dict[str, str]
) -> None:
    for content_type, body in BODY_CASES:
        headers = bearer(tokens["assistant"])
        if content_type is not None:
            headers["Content-Type"] = content_type
        _both(app, client, "POST", _url("alice", OK), content=body, headers=headers)


def test_a_users_own_reads_get_the_same_answer_from_both_paths(
    app: FastAPI, client: TestClient, tokens: dict[str, str]
) -> None:
    memory = write_memory(client, tokens["assistant"])
    for n in range(3):
        write_memory(client, tokens["assistant"], content=f"likes tea {n}")
    lists: list[list[tuple[str, str]]] = (
        [[]] + [query[1:] for _, _, query in LIST_CASES] + [[("limit", "1"), ("limit", "2")]]
    )
    for token in ["alice", "bob", "assistant", "none", "garbage"]:
        headers = _headers(token, tokens)
        for query in lists:
            url = f"/v1/me/memories?{urlencode(query)}" if query else "/v1/me/memories"
            _both(app, client, "GET", url, headers=headers)
        for tail in [memory["id"], "mem_nothing-here", "x" * 65]:
            _both(app, client, "GET", f"/v1/me/memories/{tail}", headers=headers)


# And anything at all, several things wrong at once.
VALUES = st.one_of(
    st.sampled_from(["", "0", "1", "5", "20", "101", "x", PURPOSE, "preferences", "health"]),
    st.text(max_size=20),
)
PAIRS = st.lists(
    st.tuples(st.sampled_from(["category", "q", "limit", "cursor", "purpose", "other"]), VALUES),
    max_size=4,
)
USERS = st.one_of(st.just("alice"), st.text(max_size=10))
TOKENS = st.sampled_from(["assistant", "alice", "none", "garbage"])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(user=USERS, query=PAIRS, token=TOKENS, post=st.booleans(), body=st.binary(max_size=40))
def test_any_request_gets_the_same_answer_from_both_paths(
    app: FastAPI,
    client: TestClient,
    tokens: dict[str, str],
    user: str,
    query: list[tuple[str, str]],
    token: str,
    post: bool,
    body: bytes,
) -> None:
    headers = _headers(token, tokens)
    if post:
        headers["Content-Type"] = "application/json"
        _both(app, client, "POST", _url(user, query), content=body, headers=headers)
    else:
        _both(app, client, "GET", _url(user, query), headers=headers)


def test_a_failure_inside_a_hot_route_is_the_same_500(
    app: FastAPI, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug is not a refusal: the hot route leaves it to the server's error middleware,
    which answers 500 (and logs where) as for any route."""
    services = app.state.services

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(services.memories, "begin_list_for_purpose", broken)
    monkeypatch.setattr(services.memories, "list_for_purpose", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        _both(app, client, "GET", _url("alice", OK), headers=bearer(tokens["assistant"]))
        answer = client.get(_url("alice", OK), headers=bearer(tokens["assistant"]))
    assert answer.status_code == 500
    assert answer.json()["type"] == "/problems/internal-error"
    with TestClient(app) as client, pytest.raises(RuntimeError, match="a bug"):
        client.get(_url("alice", OK), headers=bearer(tokens["assistant"]))
