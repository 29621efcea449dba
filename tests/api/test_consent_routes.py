"""Consent and settings: /v1/me/consents, /v1/me/consents/history, /v1/me/settings, and
how the user's choices decide what the assistant may read and write."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from memory_store.runtime import Runtime
from tests.conftest import PURPOSE, assert_problem, bearer, write_memory

SENSITIVE = "health"


def put_consent(
    client: TestClient,
    token: str,
    purpose: str,
    category: str,
    granted: bool,
    channel: str | None = None,
) -> dict[str, Any]:
    headers = bearer(token) | ({"X-Consent-Channel": channel} if channel else {})
    response = client.put(
        f"/v1/me/consents/{purpose}/{category}", json={"granted": granted}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def try_write(client: TestClient, token: str, category: str, purpose: str = PURPOSE) -> Any:
    return client.post(
        "/v1/users/alice/memories",
        params={"purpose": purpose},
        json={"content": f"a {category} fact", "category": category},
        headers=bearer(token),
    )


def listed(client: TestClient, token: str, purpose: str = PURPOSE) -> list[str]:
    response = client.get(
        "/v1/users/alice/memories", params={"purpose": purpose}, headers=bearer(token)
    )
    assert response.status_code == 200, response.text
    return [item["content"] for item in response.json()["items"]]


def memory_count(runtime: Runtime) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM memories")).scalar_one())


# -- defaults ----------------------------------------------------------------------------------


def test_ordinary_categories_are_usable_for_personalization_by_default(
    client: TestClient, assistant_token: str
) -> None:
    assert try_write(client, assistant_token, "preferences").status_code == 201
    assert listed(client, assistant_token) == ["a preferences fact"]


def test_a_sensitive_category_is_refused_without_explicit_consent_and_stores_nothing(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    response = try_write(client, assistant_token, SENSITIVE)
    body = assert_problem(response, 403, "consent-required")
    assert body["purpose"] == PURPOSE and body["category"] == SENSITIVE
    assert memory_count(runtime) == 0


def test_sensitive_category_allowed_after_opt_in_and_refused_again_after_withdrawal(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    put_consent(client, alice_token, PURPOSE, SENSITIVE, True)
    written = try_write(client, assistant_token, SENSITIVE)
    assert written.status_code == 201
    memory_id = written.json()["id"]
    assert listed(client, assistant_token) == ["a health fact"]

    put_consent(client, alice_token, PURPOSE, SENSITIVE, False)
    assert_problem(try_write(client, assistant_token, SENSITIVE), 403, "consent-required")
    assert listed(client, assistant_token) == []  # the very next request
    get = client.get(
        f"/v1/users/alice/memories/{memory_id}",
        params={"purpose": PURPOSE},
        headers=bearer(assistant_token),
    )
    assert_problem(get, 403, "consent-required")
    # The user still sees it.
    mine = client.get("/v1/me/memories", headers=bearer(alice_token)).json()["items"]
    assert [item["id"] for item in mine] == [memory_id]


def test_a_grant_for_all_categories_does_not_opt_in_to_sensitive_ones(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    put_consent(client, alice_token, "analytics", "*", True)
    assert try_write(client, assistant_token, "work", purpose="analytics").status_code == 201
    refused = try_write(client, assistant_token, SENSITIVE, purpose="analytics")
    assert_problem(refused, 403, "consent-required")


def test_a_purpose_without_consent_sees_nothing(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    write_memory(client, assistant_token, content="likes jazz", category="interests")
    assert listed(client, assistant_token, purpose="analytics") == []
    assert listed(client, assistant_token, purpose="model_improvement") == []
    put_consent(client, alice_token, "analytics", "interests", True)
    assert listed(client, assistant_token, purpose="analytics") == ["likes jazz"]
    assert listed(client, assistant_token, purpose="model_improvement") == []


def test_withdrawing_personalization_for_all_categories_hides_everything(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    put_consent(client, alice_token, PURPOSE, SENSITIVE, True)
    write_memory(client, assistant_token, content="ordinary", category="work")
    write_memory(client, assistant_token, content="sensitive", category=SENSITIVE)
    assert sorted(listed(client, assistant_token)) == ["ordinary", "sensitive"]
    put_consent(client, alice_token, PURPOSE, "*", False)
    assert listed(client, assistant_token) == []
    # The later, more specific choice wins again.
    put_consent(client, alice_token, PURPOSE, "work", True)
    assert listed(client, assistant_token) == ["ordinary"]


def test_the_list_keeps_only_consented_categories(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    write_memory(client, assistant_token, content="at Acme", category="work")
    write_memory(client, assistant_token, content="likes jazz", category="interests")
    put_consent(client, alice_token, PURPOSE, "work", False)
    assert listed(client, assistant_token) == ["likes jazz"]
    filtered = client.get(
        "/v1/users/alice/memories",
        params={"purpose": PURPOSE, "category": "work"},
        headers=bearer(assistant_token),
    )
    assert filtered.json()["items"] == []


def test_one_users_choices_do_not_touch_another_user(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    put_consent(client, alice_token, PURPOSE, "*", False)
    assert write_memory(client, assistant_token, user_id="bob", content="bob's")["user_id"] == "bob"


# -- the overview --------------------------------------------------------------------------------


def test_overview_shows_every_purpose_and_category_marking_defaults(
    client: TestClient, runtime: Runtime, alice_token: str
) -> None:
    put_consent(client, alice_token, "analytics", "work", True)
    response = client.get("/v1/me/consents", headers=bearer(alice_token))
    assert response.status_code == 200
    body = response.json()
    assert body["memory_enabled"] is True
    items = {(i["purpose"], i["category"]): i for i in body["items"]}
    catalogue = runtime.catalogue
    assert len(items) == len(catalogue.purposes) * len(catalogue.categories)
    assert items[(PURPOSE, "work")] | {} == {
        "purpose": PURPOSE,
        "category": "work",
        "sensitive": False,
        "granted": True,
        "default": True,
        "source": "default",
    }
    assert items[(PURPOSE, SENSITIVE)]["granted"] is False
    assert items[(PURPOSE, SENSITIVE)]["sensitive"] is True
    assert items[("analytics", "work")]["granted"] is True
    assert items[("analytics", "work")]["default"] is False
    assert items[("analytics", "work")]["source"] == "category"
    assert items[("analytics", "profile")]["granted"] is False


def test_put_consent_answers_the_change_and_the_new_effective_state(
    client: TestClient, alice_token: str
) -> None:
    body = put_consent(client, alice_token, PURPOSE, "location", False)
    assert body["change"]["version"] == 1
    assert body["change"]["granted"] is False
    assert body["change"]["previous"] == "default"
    assert body["items"] == [
        {
            "purpose": PURPOSE,
            "category": "location",
            "sensitive": False,
            "granted": False,
            "default": False,
            "source": "category",
        }
    ]
    every = put_consent(client, alice_token, PURPOSE, "*", True)
    assert len(every["items"]) > 10
    assert all(item["source"] == "all_categories" for item in every["items"])


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/me/consents/marketing/work", {"granted": True}, 422),
        ("/v1/me/consents/personalization/gossip", {"granted": True}, 422),
        ("/v1/me/consents/personalization/work", {"granted": "yes"}, 422),
        ("/v1/me/consents/personalization/work", {}, 422),
        ("/v1/me/consents/personalization/work", {"granted": True, "x": 1}, 422),
    ],
)
def test_bad_consent_changes_are_4xx_and_change_nothing(
    client: TestClient, alice_token: str, path: str, body: dict[str, Any], status: int
) -> None:
    assert_problem(client.put(path, json=body, headers=bearer(alice_token)), status)
    assert client.get("/v1/me/consents/history", headers=bearer(alice_token)).json()["items"] == []


def test_an_unknown_consent_channel_is_422(client: TestClient, alice_token: str) -> None:
    response = client.put(
        "/v1/me/consents/personalization/work",
        json={"granted": False},
        headers=bearer(alice_token) | {"X-Consent-Channel": "fax"},
    )
    assert_problem(response, 422)


# -- history -------------------------------------------------------------------------------------


def test_history_records_each_change_with_time_and_channel(
    client: TestClient, alice_token: str, bob_token: str
) -> None:
    put_consent(client, alice_token, PURPOSE, SENSITIVE, True)
    put_consent(client, alice_token, PURPOSE, SENSITIVE, False, channel="web")
    put_consent(client, alice_token, "analytics", "*", True)
    put_consent(client, bob_token, PURPOSE, "work", False)
    response = client.get("/v1/me/consents/history", headers=bearer(alice_token))
    assert response.status_code == 200
    items = response.json()["items"]
    assert [(i["version"], i["purpose"], i["category"], i["granted"]) for i in items] == [
        (3, "analytics", "*", True),
        (2, PURPOSE, SENSITIVE, False),
        (1, PURPOSE, SENSITIVE, True),
    ]
    assert [i["previous"] for i in items] == ["default", "granted", "default"]
    assert [i["channel"] for i in items] == ["api", "web", "api"]
    assert all(i["at"].endswith("Z") for i in items)


def test_history_pages_with_a_cursor(client: TestClient, alice_token: str) -> None:
    for granted in (True, False, True, False, True):
        put_consent(client, alice_token, PURPOSE, "work", granted)
    first = client.get(
        "/v1/me/consents/history", params={"limit": 2}, headers=bearer(alice_token)
    ).json()
    assert [i["version"] for i in first["items"]] == [5, 4]
    versions = [i["version"] for i in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = client.get(
            "/v1/me/consents/history",
            params={"limit": 2, "cursor": cursor},
            headers=bearer(alice_token),
        ).json()
        versions += [i["version"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert versions == [5, 4, 3, 2, 1]
    bad = client.get(
        "/v1/me/consents/history", params={"cursor": "bm9wZQ"}, headers=bearer(alice_token)
    )
    assert_problem(bad, 422, "invalid-cursor")


# -- pause -----------------------------------------------------------------------------------


def test_pause_gives_the_assistant_nothing_and_refuses_its_writes_then_resume(
    client: TestClient, runtime: Runtime, assistant_token: str, alice_token: str
) -> None:
    memory = write_memory(client, assistant_token, content="likes jazz", category="interests")
    paused = client.patch(
        "/v1/me/settings", json={"memory_enabled": False}, headers=bearer(alice_token)
    )
    assert paused.status_code == 200
    assert paused.json()["memory_enabled"] is False

    assert listed(client, assistant_token) == []
    get = client.get(
        f"/v1/users/alice/memories/{memory['id']}",
        params={"purpose": PURPOSE},
        headers=bearer(assistant_token),
    )
    assert_problem(get, 403, "memory-paused")
    assert_problem(try_write(client, assistant_token, "interests"), 403, "memory-paused")
    assert memory_count(runtime) == 1
    # The user still sees and manages everything.
    mine = client.get("/v1/me/memories", headers=bearer(alice_token)).json()["items"]
    assert [item["id"] for item in mine] == [memory["id"]]
    put_consent(client, alice_token, PURPOSE, "work", False)
    assert (
        client.get("/v1/me/consents", headers=bearer(alice_token)).json()["memory_enabled"] is False
    )

    resumed = client.patch(
        "/v1/me/settings", json={"memory_enabled": True}, headers=bearer(alice_token)
    )
    assert resumed.json()["memory_enabled"] is True
    assert listed(client, assistant_token) == ["likes jazz"]


def test_settings_default_to_memory_enabled(client: TestClient, alice_token: str) -> None:
    response = client.get("/v1/me/settings", headers=bearer(alice_token))
    assert response.json() == {"memory_enabled": True, "updated_at": None}


@pytest.mark.parametrize("body", [{}, {"memory_enabled": "maybe"}, {"memory_enabled": None}])
def test_bad_settings_are_422_and_change_nothing(
    client: TestClient, alice_token: str, body: dict[str, Any]
) -> None:
    assert_problem(client.patch("/v1/me/settings", json=body, headers=bearer(alice_token)), 422)
    assert client.get("/v1/me/settings", headers=bearer(alice_token)).json()["updated_at"] is None


# -- who may call these routes -------------------------------------------------------------------

ROUTES = [
    ("GET", "/v1/me/consents", None),
    ("PUT", "/v1/me/consents/personalization/work", {"granted": False}),
    ("GET", "/v1/me/consents/history", None),
    ("GET", "/v1/me/settings", None),
    ("PATCH", "/v1/me/settings", {"memory_enabled": False}),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_consent_and_settings_routes_need_a_token(
    client: TestClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    assert_problem(client.request(method, path, json=body), 401, "unauthenticated")


@pytest.mark.parametrize("token_name", ["assistant_token", "compliance_token", "admin_token"])
@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_consent_and_settings_routes_are_403_for_tokens_not_bound_to_a_user(
    client: TestClient,
    request: pytest.FixtureRequest,
    token_name: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    token = request.getfixturevalue(token_name)
    assert_problem(client.request(method, path, json=body, headers=bearer(token)), 403, "forbidden")


def test_the_assistant_cannot_change_consent_on_a_users_behalf(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    client.put(
        "/v1/me/consents/personalization/health",
        json={"granted": True},
        headers=bearer(assistant_token),
    )
    assert_problem(try_write(client, assistant_token, SENSITIVE), 403, "consent-required")
    history = client.get("/v1/me/consents/history", headers=bearer(alice_token)).json()
    assert history["items"] == []
