"""The assistant's routes: POST/GET /v1/users/{user_id}/memories[/{id}]."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time
from sqlalchemy import text

from memory_store.runtime import Runtime
from tests.conftest import PURPOSE, assert_problem, bearer, write_memory

MEMORIES = "/v1/users/alice/memories"


def count_rows(runtime: Runtime) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM memories")).scalar_one())


# -- write ---------------------------------------------------------------------------------


def test_write_returns_201_with_the_memory_and_its_location(
    client: TestClient, assistant_token: str
) -> None:
    response = client.post(
        MEMORIES,
        params={"purpose": PURPOSE},
        json={"content": "prefers window seats", "category": "preferences", "source": "chat"},
        headers=bearer(assistant_token),
    )
    assert response.status_code == 201
    body = response.json()
    assert body["content"] == "prefers window seats"
    assert body["source"] == "chat"
    assert body["category"] == "preferences"
    assert body["user_id"] == "alice"
    assert body["version"] == 1
    assert body["id"].startswith("mem_") and len(body["id"]) > 20
    assert response.headers["location"].startswith(f"{MEMORIES}/{body['id']}")


def test_memory_ids_are_random_not_sequential(client: TestClient, assistant_token: str) -> None:
    ids = [write_memory(client, assistant_token, content=f"fact {i}")["id"] for i in range(3)]
    assert len(set(ids)) == 3
    assert sorted(ids) != ids or sorted(ids, reverse=True) != ids or len({i[:8] for i in ids}) > 1


def test_write_without_token_is_401_and_stores_nothing(
    client: TestClient, runtime: Runtime
) -> None:
    response = client.post(
        MEMORIES, params={"purpose": PURPOSE}, json={"content": "x", "category": "preferences"}
    )
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"
    assert count_rows(runtime) == 0


@pytest.mark.parametrize(
    "header",
    [
        "Bearer mst_not-a-real-token",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "mst_abc",
        "Bearer " + "x" * 200,
    ],
)
def test_write_with_a_bad_token_is_401(client: TestClient, header: str) -> None:
    response = client.post(
        MEMORIES,
        params={"purpose": PURPOSE},
        json={"content": "x", "category": "preferences"},
        headers={"Authorization": header},
    )
    assert_problem(response, 401, "unauthenticated")


def test_revoked_token_is_refused_on_the_next_request(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    write_memory(client, assistant_token)
    token_id = runtime.tokens.authenticate(f"Bearer {assistant_token}").token_id
    assert runtime.tokens.revoke(token_id)
    response = client.get(MEMORIES, params={"purpose": PURPOSE}, headers=bearer(assistant_token))
    assert_problem(response, 401, "unauthenticated")


@pytest.mark.parametrize("token_name", ["compliance_token", "admin_token"])
def test_write_by_a_role_that_may_not_is_403(
    client: TestClient, runtime: Runtime, token_name: str, request: pytest.FixtureRequest
) -> None:
    token = request.getfixturevalue(token_name)
    response = client.post(
        MEMORIES,
        params={"purpose": PURPOSE},
        json={"content": "x", "category": "preferences"},
        headers=bearer(token),
    )
    assert_problem(response, 403, "forbidden")
    assert count_rows(runtime) == 0


def test_a_user_writing_through_the_assistant_route_is_403_for_self_404_for_others(
    client: TestClient, runtime: Runtime, alice_token: str
) -> None:
    body = {"content": "x", "category": "preferences"}
    own = client.post(MEMORIES, params={"purpose": PURPOSE}, json=body, headers=bearer(alice_token))
    assert_problem(own, 403, "forbidden")
    other = client.post(
        "/v1/users/bob/memories",
        params={"purpose": PURPOSE},
        json=body,
        headers=bearer(alice_token),
    )
    assert_problem(other, 404, "not-found")
    assert count_rows(runtime) == 0


@pytest.mark.parametrize(
    ("params", "body", "status", "type_slug"),
    [
        ({}, {"content": "x", "category": "preferences"}, 422, "invalid-request"),
        (
            {"purpose": "marketing"},
            {"content": "x", "category": "preferences"},
            422,
            "unknown-purpose",
        ),
        ({"purpose": PURPOSE}, {"content": "x", "category": "gossip"}, 422, "unknown-category"),
        ({"purpose": PURPOSE}, {"category": "preferences"}, 422, "invalid-request"),
        ({"purpose": PURPOSE}, {"content": "x"}, 422, "invalid-request"),
        ({"purpose": PURPOSE}, {"content": 5, "category": "preferences"}, 422, "invalid-request"),
        ({"purpose": PURPOSE}, {"content": "", "category": "preferences"}, 422, "invalid-request"),
        (
            {"purpose": PURPOSE},
            {"content": "   ", "category": "preferences"},
            422,
            "invalid-request",
        ),
        (
            {"purpose": PURPOSE},
            {"content": "x" * 4097, "category": "preferences"},
            422,
            "invalid-request",
        ),
        (
            {"purpose": PURPOSE},
            {"content": "x", "category": "preferences", "extra": 1},
            422,
            "invalid-request",
        ),
        ({"purpose": PURPOSE}, ["content"], 422, "invalid-request"),
        (
            {"purpose": PURPOSE},
            {"content": "x", "category": "preferences", "expires_at": "tomorrow"},
            422,
            "invalid-request",
        ),
        (
            {"purpose": PURPOSE},
            {"content": "x", "category": "preferences", "expires_at": "2030-01-01T00:00:00"},
            422,
            "invalid-request",
        ),
    ],
)
def test_bad_write_input_gets_a_problem_and_stores_nothing(
    client: TestClient,
    runtime: Runtime,
    assistant_token: str,
    params: dict[str, str],
    body: object,
    status: int,
    type_slug: str,
) -> None:
    response = client.post(MEMORIES, params=params, json=body, headers=bearer(assistant_token))
    problem = assert_problem(response, status, type_slug)
    assert "x" * 50 not in response.text  # the content is never echoed back
    for error in problem.get("errors", []):
        assert set(error) <= {"loc", "type", "msg"}  # pydantic's "input" would echo contents
    assert count_rows(runtime) == 0


def test_content_of_exactly_4096_characters_is_accepted(
    client: TestClient, assistant_token: str
) -> None:
    body = write_memory(client, assistant_token, content="é" * 4096)
    assert body["content"] == "é" * 4096


def test_malformed_json_is_400(client: TestClient, runtime: Runtime, assistant_token: str) -> None:
    response = client.post(
        MEMORIES,
        params={"purpose": PURPOSE},
        content=b'{"content": "x", "category":',
        headers={**bearer(assistant_token), "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "malformed-body")
    assert count_rows(runtime) == 0


def test_body_over_64_kib_is_413_and_stores_nothing(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    payload = b'{"content": "' + b"a" * (64 * 1024) + b'", "category": "preferences"}'
    response = client.post(
        MEMORIES,
        params={"purpose": PURPOSE},
        content=payload,
        headers={**bearer(assistant_token), "Content-Type": "application/json"},
    )
    assert_problem(response, 413, "body-too-large")
    assert count_rows(runtime) == 0


def test_chunked_body_over_the_limit_is_413_whatever_content_length_said(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"content": "'
        for _ in range(70):
            yield b"a" * 1024
        yield b'", "category": "preferences"}'

    response = client.post(
        MEMORIES,
        params={"purpose": PURPOSE},
        content=chunks(),
        headers={**bearer(assistant_token), "Content-Type": "application/json"},
    )
    assert_problem(response, 413, "body-too-large")
    assert count_rows(runtime) == 0


@pytest.mark.parametrize(
    "user_id",
    [
        "al ice",
        "a" * 129,
        "al/ice",
        "älice",
        "alice%00",
        "alice;drop",
        "ALICE",  # user ids are lower case: "ALICE" is never a second "alice"
        "Alice",
        ".",  # must start with a letter or digit: never a path's "." or ".."
        "..",
        ".alice",
        "-alice",
        "@alice",
    ],
)
def test_bad_user_ids_are_422(client: TestClient, assistant_token: str, user_id: str) -> None:
    response = client.get(
        f"/v1/users/{user_id}/memories",
        params={"purpose": PURPOSE},
        headers=bearer(assistant_token),
    )
    assert response.status_code in (404, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "user_id", ["a", "a" * 128, "alice.smith@example.com", "u-1_2", "7alice", "a..b"]
)
def test_user_ids_of_the_allowed_alphabet_are_accepted(
    client: TestClient, assistant_token: str, user_id: str
) -> None:
    assert write_memory(client, assistant_token, user_id=user_id)["user_id"] == user_id


# -- retention on write ------------------------------------------------------------------------


def test_expires_at_defaults_to_the_category_retention_limit(
    client: TestClient, assistant_token: str
) -> None:
    with freeze_time("2026-01-01T00:00:00Z"):
        body = write_memory(client, assistant_token, category="schedule")
    assert body["expires_at"] == "2026-01-31T00:00:00Z"


def test_expires_at_beyond_the_retention_limit_or_in_the_past_is_422(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    now = datetime.now(UTC)
    for expires in (now + timedelta(days=31), now - timedelta(seconds=1)):
        response = client.post(
            MEMORIES,
            params={"purpose": PURPOSE},
            json={"content": "x", "category": "schedule", "expires_at": expires.isoformat()},
            headers=bearer(assistant_token),
        )
        assert_problem(response, 422, "invalid-request")
    assert count_rows(runtime) == 0


def test_an_earlier_expires_at_is_kept_and_the_memory_vanishes_after_it(
    client: TestClient, assistant_token: str
) -> None:
    with freeze_time("2026-01-01T00:00:00Z"):
        body = write_memory(client, assistant_token, expires_at="2026-01-02T00:00:00Z")
        assert body["expires_at"] == "2026-01-02T00:00:00Z"
    path = f"{MEMORIES}/{body['id']}"
    with freeze_time("2026-01-01T23:59:59Z"):
        assert client.get(
            path, params={"purpose": PURPOSE}, headers=bearer(assistant_token)
        ).is_success
    with freeze_time("2026-01-02T00:00:01Z"):
        gone = client.get(path, params={"purpose": PURPOSE}, headers=bearer(assistant_token))
        assert_problem(gone, 404, "not-found")


# -- read ----------------------------------------------------------------------------------------


def test_get_returns_the_decrypted_memory(client: TestClient, assistant_token: str) -> None:
    written = write_memory(
        client, assistant_token, content="allergic to peanuts", category="profile"
    )
    response = client.get(
        f"{MEMORIES}/{written['id']}", params={"purpose": PURPOSE}, headers=bearer(assistant_token)
    )
    assert response.status_code == 200
    assert response.json() == written


def test_get_without_token_is_401(client: TestClient, assistant_token: str) -> None:
    written = write_memory(client, assistant_token)
    response = client.get(f"{MEMORIES}/{written['id']}", params={"purpose": PURPOSE})
    assert_problem(response, 401, "unauthenticated")


def test_get_of_another_users_memory_id_is_404(client: TestClient, assistant_token: str) -> None:
    written = write_memory(client, assistant_token, user_id="bob")
    response = client.get(
        f"{MEMORIES}/{written['id']}", params={"purpose": PURPOSE}, headers=bearer(assistant_token)
    )
    assert_problem(response, 404, "not-found")


def test_get_of_an_unknown_id_is_404(client: TestClient, assistant_token: str) -> None:
    response = client.get(
        f"{MEMORIES}/mem_nope", params={"purpose": PURPOSE}, headers=bearer(assistant_token)
    )
    assert_problem(response, 404, "not-found")


def test_get_by_compliance_is_403_and_by_another_user_404(
    client: TestClient, assistant_token: str, compliance_token: str, bob_token: str
) -> None:
    written = write_memory(client, assistant_token)
    path = f"{MEMORIES}/{written['id']}"
    assert_problem(
        client.get(path, params={"purpose": PURPOSE}, headers=bearer(compliance_token)), 403
    )
    bob = client.get(path, params={"purpose": PURPOSE}, headers=bearer(bob_token))
    assert_problem(bob, 404, "not-found")
    assert "window" not in bob.text


def test_get_needs_a_known_purpose(client: TestClient, assistant_token: str) -> None:
    written = write_memory(client, assistant_token)
    path = f"{MEMORIES}/{written['id']}"
    assert_problem(client.get(path, headers=bearer(assistant_token)), 422, "invalid-request")
    assert_problem(
        client.get(path, params={"purpose": "spying"}, headers=bearer(assistant_token)),
        422,
        "unknown-purpose",
    )


def test_list_returns_the_users_memories_newest_first(
    client: TestClient, assistant_token: str
) -> None:
    with freeze_time("2026-03-01T00:00:00Z", tick=True):
        first = write_memory(client, assistant_token, content="first")
        second = write_memory(client, assistant_token, content="second")
    write_memory(client, assistant_token, user_id="bob", content="bob's")
    response = client.get(MEMORIES, params={"purpose": PURPOSE}, headers=bearer(assistant_token))
    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body["items"]] == [second["id"], first["id"]]
    assert body["next_cursor"] is None


def test_list_without_token_is_401_and_for_compliance_403(
    client: TestClient, compliance_token: str, admin_token: str
) -> None:
    assert_problem(client.get(MEMORIES, params={"purpose": PURPOSE}), 401)
    for token in (compliance_token, admin_token):
        assert_problem(
            client.get(MEMORIES, params={"purpose": PURPOSE}, headers=bearer(token)), 403
        )


def test_list_of_another_user_by_a_user_token_is_404(
    client: TestClient, assistant_token: str, bob_token: str
) -> None:
    write_memory(client, assistant_token)
    response = client.get(MEMORIES, params={"purpose": PURPOSE}, headers=bearer(bob_token))
    assert_problem(response, 404, "not-found")


def test_list_pages_with_opaque_cursors_cover_every_memory_once(
    client: TestClient, assistant_token: str
) -> None:
    with freeze_time("2026-03-01T00:00:00Z") as frozen:
        written = []
        for i in range(7):
            written.append(write_memory(client, assistant_token, content=f"fact {i}")["id"])
            if i % 3 == 0:  # some memories share a timestamp: the id breaks ties
                frozen.tick(timedelta(seconds=1))
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {"purpose": PURPOSE, "limit": "3", **({"cursor": cursor} if cursor else {})}
            body = client.get(MEMORIES, params=params, headers=bearer(assistant_token)).json()
            seen += [item["id"] for item in body["items"]]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
    assert pages == 3
    assert sorted(seen) == sorted(written)
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize("cursor", ["garbage", "e30", "eyJ0Ijoibm9wZSIsImkiOjF9", "%%%"])
def test_a_cursor_this_service_did_not_issue_is_422(
    client: TestClient, assistant_token: str, cursor: str
) -> None:
    response = client.get(
        MEMORIES, params={"purpose": PURPOSE, "cursor": cursor}, headers=bearer(assistant_token)
    )
    assert_problem(response, 422, "invalid-cursor")


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "101"}, {"limit": "ten"}, {"q": "x" * 257}, {"category": "gossip"}],
)
def test_bad_list_parameters_are_422(
    client: TestClient, assistant_token: str, params: dict[str, str]
) -> None:
    response = client.get(
        MEMORIES, params={"purpose": PURPOSE, **params}, headers=bearer(assistant_token)
    )
    assert_problem(response, 422)


def test_list_filters_by_category(client: TestClient, assistant_token: str) -> None:
    write_memory(client, assistant_token, content="likes jazz", category="interests")
    work = write_memory(client, assistant_token, content="works at Acme", category="work")
    body = client.get(
        MEMORIES, params={"purpose": PURPOSE, "category": "work"}, headers=bearer(assistant_token)
    ).json()
    assert [item["id"] for item in body["items"]] == [work["id"]]


def test_list_q_matches_every_keyword_case_insensitively(
    client: TestClient, assistant_token: str
) -> None:
    hit = write_memory(client, assistant_token, content="Prefers WINDOW seats on long flights")
    write_memory(client, assistant_token, content="prefers aisle seats on short flights")
    write_memory(client, assistant_token, content="has a window cleaner business")
    body = client.get(
        MEMORIES,
        params={"purpose": PURPOSE, "q": "window  seats"},
        headers=bearer(assistant_token),
    ).json()
    assert [item["id"] for item in body["items"]] == [hit["id"]]


def test_search_pages_through_more_rows_than_one_scan_batch(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    with freeze_time("2026-03-01T00:00:00Z", tick=True):
        for i in range(230):
            write_memory(
                client, assistant_token, content=f"note {i} {'needle' if i % 50 == 0 else ''}"
            )
    seen: list[str] = []
    cursor = None
    while True:
        params = {
            "purpose": PURPOSE,
            "q": "needle",
            "limit": "2",
            **({"cursor": cursor} if cursor else {}),
        }
        body = client.get(MEMORIES, params=params, headers=bearer(assistant_token)).json()
        seen += [item["content"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(f"note {i} needle" for i in range(0, 230, 50))
