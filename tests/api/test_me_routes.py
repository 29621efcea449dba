"""A user's own routes: GET /v1/me/memories and GET /v1/me/memories/{id}."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import assert_problem, bearer, write_memory


def test_a_user_lists_only_their_own_memories(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    mine = write_memory(client, assistant_token, user_id="alice", content="likes tea")
    write_memory(client, assistant_token, user_id="bob", content="likes coffee")
    response = client.get("/v1/me/memories", headers=bearer(alice_token))
    assert response.status_code == 200
    assert response.json() == {"items": [mine], "next_cursor": None}


def test_a_user_with_no_memories_gets_an_empty_list(client: TestClient, bob_token: str) -> None:
    response = client.get("/v1/me/memories", headers=bearer(bob_token))
    assert response.json() == {"items": [], "next_cursor": None}


def test_a_user_searches_and_filters_their_memories(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    hit = write_memory(
        client, assistant_token, content="flies to Lisbon in May", category="schedule"
    )
    write_memory(client, assistant_token, content="flies kites", category="interests")
    by_q = client.get("/v1/me/memories", params={"q": "lisbon"}, headers=bearer(alice_token))
    assert [item["id"] for item in by_q.json()["items"]] == [hit["id"]]
    by_category = client.get(
        "/v1/me/memories", params={"category": "schedule"}, headers=bearer(alice_token)
    )
    assert [item["id"] for item in by_category.json()["items"]] == [hit["id"]]


def test_a_user_gets_one_of_their_memories(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    mine = write_memory(client, assistant_token)
    response = client.get(f"/v1/me/memories/{mine['id']}", headers=bearer(alice_token))
    assert response.status_code == 200
    assert response.json() == mine


def test_a_user_asking_for_another_users_memory_gets_404(
    client: TestClient, assistant_token: str, bob_token: str
) -> None:
    alices = write_memory(client, assistant_token, user_id="alice", content="secret diary")
    response = client.get(f"/v1/me/memories/{alices['id']}", headers=bearer(bob_token))
    assert_problem(response, 404, "not-found")
    assert "secret diary" not in response.text


@pytest.mark.parametrize("path", ["/v1/me/memories", "/v1/me/memories/mem_x"])
def test_me_routes_without_a_token_are_401(client: TestClient, path: str) -> None:
    assert_problem(client.get(path), 401, "unauthenticated")


@pytest.mark.parametrize("token_name", ["assistant_token", "compliance_token", "admin_token"])
@pytest.mark.parametrize("path", ["/v1/me/memories", "/v1/me/memories/mem_x"])
def test_me_routes_are_403_for_tokens_not_bound_to_a_user(
    client: TestClient, request: pytest.FixtureRequest, token_name: str, path: str
) -> None:
    token = request.getfixturevalue(token_name)
    assert_problem(client.get(path, headers=bearer(token)), 403, "forbidden")


def test_bad_me_list_parameters_are_422(client: TestClient, alice_token: str) -> None:
    for params in ({"limit": "-1"}, {"cursor": "nope"}, {"category": "gossip"}):
        response = client.get("/v1/me/memories", params=params, headers=bearer(alice_token))
        assert_problem(response, 422)


def test_whoami_names_the_user_the_token_belongs_to(client: TestClient, alice_token: str) -> None:
    response = client.get("/v1/me", headers=bearer(alice_token))
    assert response.json() == {"user_id": "alice", "role": "user", "token_name": "test-user"}


def test_whoami_is_401_without_a_token_and_403_for_service_tokens(
    client: TestClient, assistant_token: str
) -> None:
    assert_problem(client.get("/v1/me"), 401)
    assert_problem(client.get("/v1/me", headers=bearer(assistant_token)), 403, "forbidden")
