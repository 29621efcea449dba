"""Keyed items: PUT /v1/users/{id}/items and the POSTs that read, forget, search and list
them by name. An item is a memory: decided, recorded, encrypted and forgotten as one, its name
never at rest in the clear."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time
from sqlalchemy import text

from memory_store.runtime import Runtime
from tests.conftest import PURPOSE, assert_problem, bearer

ITEMS = "/v1/users/alice/items"
NAME = {"namespace": ["health", "diagnosis"], "key": "asthma-inhaler"}
VALUE = {"z": 1, "a": {"nested": [1, "two", None, True]}, "content": "uses an inhaler daily"}


def put(client: TestClient, token: str, value: dict[str, Any] | None = None, **extra: Any) -> Any:
    body = {**NAME, "value": value or VALUE, "category": "preferences", **extra}
    return client.put(ITEMS, params={"purpose": PURPOSE}, json=body, headers=bearer(token))


def post(client: TestClient, token: str, action: str, body: dict[str, Any]) -> Any:
    return client.post(
        f"{ITEMS}/{action}", params={"purpose": PURPOSE}, json=body, headers=bearer(token)
    )


def test_a_put_creates_then_replaces_and_the_value_comes_back_exactly(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    created = put(client, assistant_token)
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1
    again = put(client, assistant_token, {"z": 2})
    assert again.status_code == 200
    assert (again.json()["id"], again.json()["version"]) == (created.json()["id"], 2)
    back = put(client, assistant_token)  # the same put twice leaves one item, that value
    assert post(client, assistant_token, "lookup", NAME).json()["value"] == VALUE
    assert list(back.json()["value"]) == ["z", "a", "content"]  # key order kept
    # It is one of alice's memories, with its history, as any other.
    mine = client.get("/v1/me/memories", headers=bearer(alice_token)).json()["items"]
    assert [m["content"] for m in mine] == ["uses an inhaler daily"]
    history = client.get(
        f"/v1/me/memories/{created.json()['id']}/history", headers=bearer(alice_token)
    ).json()
    assert [v["version"] for v in history] == [2, 1]


def test_the_name_and_value_are_never_at_rest_in_the_clear(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    assert put(client, assistant_token).status_code == 201
    with runtime.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM memories")).all()
    stored = repr(rows).encode() + b"".join(
        bytes(v) for row in rows for v in row if isinstance(v, bytes | memoryview)
    )
    for plain in (b"diagnosis", b"asthma", b"inhaler", b"nested"):
        assert plain not in stored
    (lookup,) = [row._mapping["lookup"] for row in rows]
    assert len(lookup) == 64 and int(lookup, 16) >= 0


def test_a_lookup_is_404_for_an_unknown_name_and_creates_no_key(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    response = post(client, assistant_token, "lookup", NAME)
    assert_problem(response, 404, "not-found")
    assert runtime.keyring.key_for_read("alice") is None  # a read created nothing
    put(client, assistant_token)
    other = post(client, assistant_token, "lookup", {**NAME, "key": "other"})
    assert_problem(other, 404, "not-found")
    elsewhere = post(
        client, assistant_token, "lookup", {"namespace": ["health"], "key": NAME["key"]}
    )
    assert_problem(elsewhere, 404, "not-found")


def test_items_follow_consent_and_every_read_is_recorded_with_its_purpose(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    refused = put(client, assistant_token, category="health")
    assert_problem(refused, 403, "consent-required")
    put(client, assistant_token)
    assert post(client, assistant_token, "lookup", NAME).status_code == 200
    client.put(
        "/v1/me/consents/personalization/preferences",
        json={"granted": False},
        headers=bearer(alice_token),
    )
    assert post(client, assistant_token, "lookup", NAME).status_code in (403, 404)
    assert post(client, assistant_token, "search", {}).json()["items"] == []
    assert post(client, assistant_token, "namespaces", {}).json()["namespaces"] == []
    log = client.get("/v1/me/access-log", headers=bearer(alice_token)).json()["items"]
    reads = [(e["action"], e["purpose"], e["outcome"]) for e in log if e["action"] != "auth"]
    assert ("memory.read", PURPOSE, "allowed") in reads
    assert ("memory.read", PURPOSE, "denied") in reads
    assert ("memory.search", PURPOSE, "allowed") in reads
    assert ("memory.list", PURPOSE, "allowed") in reads


@pytest.mark.parametrize(
    "body",
    [
        {**NAME, "value": [1, 2], "category": "preferences"},
        {**NAME, "value": "text", "category": "preferences"},
        {**NAME, "value": {"x": "y" * 20_000}, "category": "preferences"},
        {**NAME, "value": {}, "category": "nonsense"},
        {"namespace": ["a"] * 17, "key": "k", "value": {}, "category": "preferences"},
        {"namespace": [""], "key": "k", "value": {}, "category": "preferences"},
        {"namespace": ["a"], "key": "", "value": {}, "category": "preferences"},
        {"namespace": ["a"], "key": "k" * 257, "value": {}, "category": "preferences"},
        {**NAME, "value": {}, "category": "preferences", "extra": 1},
        {**NAME, "category": "preferences"},
    ],
)
def test_bad_puts_are_422_and_store_nothing(
    client: TestClient, runtime: Runtime, assistant_token: str, body: dict[str, Any]
) -> None:
    response = client.put(
        ITEMS, params={"purpose": PURPOSE}, json=body, headers=bearer(assistant_token)
    )
    assert_problem(response, 422)
    with runtime.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM memories")).scalar_one() == 0


def test_a_secret_anywhere_in_an_item_is_refused(client: TestClient, assistant_token: str) -> None:
    secret = {"card": {"number": "4111 1111 1111 1111"}}
    assert_problem(put(client, assistant_token, secret), 422, "secret-refused")
    named = client.put(
        ITEMS,
        params={"purpose": PURPOSE},
        json={"namespace": ["pw: hunter22"], "key": "k", "value": {}, "category": "preferences"},
        headers=bearer(assistant_token),
    )
    assert_problem(named, 422, "secret-refused")


def test_bad_searches_and_listings_are_4xx(client: TestClient, assistant_token: str) -> None:
    assert_problem(post(client, assistant_token, "search", {"filter": {"a": {"$in": [1]}}}), 422)
    assert_problem(post(client, assistant_token, "search", {"limit": 0}), 422)
    assert_problem(post(client, assistant_token, "search", {"query": ""}), 422)
    assert_problem(post(client, assistant_token, "namespaces", {"max_depth": 0}), 422)
    unknown = client.post(
        f"{ITEMS}/search", params={"purpose": "marketing"}, json={}, headers=bearer(assistant_token)
    )
    assert_problem(unknown, 422, "unknown-purpose")
    assert_problem(client.post(f"{ITEMS}/search", params={"purpose": PURPOSE}, json={}), 401)


def test_search_filters_ranks_and_pages(client: TestClient, assistant_token: str) -> None:
    for key, value in [
        ("a", {"price": 10, "tag": "x", "content": "window seat on the left"}),
        ("b", {"price": 20, "tag": "y", "content": "aisle seat"}),
        ("c", {"price": 30, "tag": "x", "content": "window seat, exit row, window"}),
    ]:
        body = {"namespace": ["travel", key], "key": key, "value": value}
        client.put(
            ITEMS,
            params={"purpose": PURPOSE},
            json={**body, "category": "preferences"},
            headers=bearer(assistant_token),
        )

    def keys(**query: Any) -> list[str]:
        found = post(client, assistant_token, "search", query).json()["items"]
        return [item["key"] for item in found]

    assert sorted(keys(filter={"price": {"$gt": 10, "$lte": 30}})) == ["b", "c"]
    assert sorted(keys(filter={"tag": "x"})) == ["a", "c"]
    assert sorted(keys(filter={"tag": {"$ne": "x"}})) == ["b"]
    assert keys(filter={"price": {"$lt": "zz"}}) == []  # a number is never below a string
    assert keys(query="window", limit=1) == ["c"]
    assert keys(query="window", offset=1, limit=1) == ["a"]
    assert keys(namespace_prefix=["travel", "b"]) == ["b"]
    assert keys(namespace_prefix=["elsewhere"]) == []


def test_namespaces_match_prefix_suffix_and_depth(client: TestClient, assistant_token: str) -> None:
    for namespace in (["a", "b", "c"], ["a", "b", "d"], ["a", "x"], ["q"]):
        client.put(
            ITEMS,
            params={"purpose": PURPOSE},
            json={"namespace": namespace, "key": "k", "value": {}, "category": "preferences"},
            headers=bearer(assistant_token),
        )

    def listed(**query: Any) -> list[list[str]]:
        return post(client, assistant_token, "namespaces", query).json()["namespaces"]  # type: ignore[no-any-return]

    assert listed() == [["a", "b", "c"], ["a", "b", "d"], ["a", "x"], ["q"]]
    assert listed(prefix=["a", "b"]) == [["a", "b", "c"], ["a", "b", "d"]]
    assert listed(suffix=["*", "d"]) == [["a", "b", "d"]]
    assert listed(max_depth=1) == [["a"], ["q"]]
    assert listed(limit=1, offset=2) == [["a", "x"]]


def test_forgetting_an_item_destroys_it_and_forgetting_the_user_unlinks_every_name(
    client: TestClient, runtime: Runtime, assistant_token: str, alice_token: str
) -> None:
    put(client, assistant_token)
    forgotten = post(client, assistant_token, "forget", NAME)
    assert forgotten.status_code == 204
    assert forgotten.headers["location"].startswith("/v1/erasures/")
    assert_problem(post(client, assistant_token, "lookup", NAME), 404)
    assert_problem(post(client, assistant_token, "forget", NAME), 404)

    put(client, assistant_token)
    with runtime.keystore_engine.connect() as conn:
        lookups = "SELECT count(*) FROM item_keys WHERE user_id = 'alice' AND memory_id = 'lookup'"
        assert conn.execute(text(lookups)).scalar_one() == 1
    assert client.delete("/v1/me", headers=bearer(alice_token)).status_code == 200
    with runtime.keystore_engine.connect() as conn:
        assert conn.execute(text(lookups)).scalar_one() == 0
    assert_problem(post(client, assistant_token, "lookup", NAME), 404)


def test_a_users_correction_keeps_the_name_and_reaches_the_value(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    memory_id = put(client, assistant_token).json()["id"]
    edited = client.patch(
        f"/v1/me/memories/{memory_id}",
        json={"content": "uses an inhaler weekly"},
        headers=bearer(alice_token),
    )
    assert edited.status_code == 200, edited.text
    item = post(client, assistant_token, "lookup", NAME).json()
    assert item["value"] == {**VALUE, "content": "uses an inhaler weekly"}
    assert (item["namespace"], item["key"]) == (NAME["namespace"], NAME["key"])


def test_an_expired_item_is_gone_and_its_name_can_be_used_again(
    client: TestClient, assistant_token: str
) -> None:
    start = datetime(2027, 1, 1, tzinfo=UTC)
    with freeze_time(start) as clock:
        soon = (start + timedelta(minutes=5)).isoformat()
        first = put(client, assistant_token, expires_at=soon).json()
        clock.tick(timedelta(minutes=6))
        assert_problem(post(client, assistant_token, "lookup", NAME), 404)
        again = put(client, assistant_token)
        assert again.status_code == 201
        assert again.json()["id"] != first["id"]
        assert post(client, assistant_token, "lookup", NAME).status_code == 200


@pytest.mark.parametrize(("depth", "status"), [(40, 422), (5000, 400)])
def test_deeply_nested_values_and_filters_are_4xx(
    client: TestClient, assistant_token: str, depth: int, status: int
) -> None:
    """Past 32 levels the API refuses (422); far past, the JSON parser already does (400)."""
    deep = '{"a":' * depth + "1" + "}" * depth
    headers = {**bearer(assistant_token), "content-type": "application/json"}
    value = '{"namespace":["x"],"key":"k","category":"preferences","value":' + deep + "}"
    response = client.put(ITEMS, params={"purpose": PURPOSE}, content=value, headers=headers)
    assert_problem(response, status)
    search = '{"filter":' + deep + "}"
    response = client.post(
        f"{ITEMS}/search", params={"purpose": PURPOSE}, content=search, headers=headers
    )
    assert_problem(response, status)


def test_the_users_export_holds_each_items_name_and_value(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    put(client, assistant_token)
    (memory,) = client.get("/v1/me/export", headers=bearer(alice_token)).json()["memories"]
    assert memory["item"] == {**NAME, "value": VALUE}
    assert memory["content"] == "uses an inhaler daily"
