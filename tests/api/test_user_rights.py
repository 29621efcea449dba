"""A user's rights over their memories: edit with history and If-Match, delete one or a
category, export everything, forget everything."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from memory_store.clock import utc_now
from memory_store.domain import Role
from memory_store.runtime import Runtime
from memory_store.services.memory_access import memory_binding, open_row
from memory_store.storage.memories import MemoryRepository
from memory_store.storage.rawdb import RawDB
from memory_store.storage.tables import data_keys
from tests.conftest import PURPOSE, assert_problem, bearer, write_memory
from tests.keys.attempts import assert_opens_with_none


def my(client: TestClient, token: str, path: str = "", **kwargs: Any) -> Any:
    return client.get(f"/v1/me{path}", headers=bearer(token), **kwargs)


def patch(
    client: TestClient, token: str, memory_id: str, body: Any, if_match: str | None = None
) -> Any:
    headers = bearer(token) | ({"If-Match": if_match} if if_match is not None else {})
    return client.patch(f"/v1/me/memories/{memory_id}", json=body, headers=headers)


def rows(runtime: Runtime, table: str, user_id: str = "alice") -> int:
    with runtime.engine.connect() as conn:
        return int(
            conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE user_id = :u"),
                {"u": user_id},
            ).scalar_one()
        )


# -- edit and history ------------------------------------------------------------------------


def test_editing_keeps_the_earlier_versions_in_the_history(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    memory = write_memory(client, assistant_token, content="lives in Oslo", category="location")
    first = patch(client, alice_token, memory["id"], {"content": "lives in Bergen"}, '"1"')
    assert first.status_code == 200, first.text
    assert first.json()["content"] == "lives in Bergen" and first.json()["version"] == 2
    assert first.headers["etag"] == '"2"'
    second = patch(client, alice_token, memory["id"], {"category": "profile"}, '"2"')
    assert second.json()["category"] == "profile" and second.json()["version"] == 3
    history = my(client, alice_token, f"/memories/{memory['id']}/history")
    assert history.status_code == 200
    assert [(v["version"], v["content"], v["category"]) for v in history.json()] == [
        (2, "lives in Bergen", "location"),
        (1, "lives in Oslo", "location"),
    ]
    assert history.json()[0]["valid_until"] == second.json()["updated_at"]
    current = my(client, alice_token, f"/memories/{memory['id']}")
    assert current.json()["content"] == "lives in Bergen" and current.headers["etag"] == '"3"'


def test_a_stale_if_match_is_412_and_changes_nothing(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    memory = write_memory(client, assistant_token, content="original")
    assert patch(client, alice_token, memory["id"], {"content": "first edit"}, '"1"').is_success
    stale = patch(client, alice_token, memory["id"], {"content": "lost update"}, '"1"')
    body = assert_problem(stale, 412, "version-mismatch")
    assert body["current_version"] == 2
    assert my(client, alice_token, f"/memories/{memory['id']}").json()["content"] == "first edit"
    assert len(my(client, alice_token, f"/memories/{memory['id']}/history").json()) == 1


@pytest.mark.parametrize("header", ['W/"1"', "1", "*", None])
def test_if_match_accepts_the_etag_forms_and_its_absence(
    client: TestClient, assistant_token: str, alice_token: str, header: str | None
) -> None:
    memory = write_memory(client, assistant_token)
    assert patch(client, alice_token, memory["id"], {"content": "edited"}, header).is_success


@pytest.mark.parametrize(
    ("body", "if_match"),
    [
        ({}, None),
        ({"content": None}, None),
        ({"content": ""}, None),
        ({"content": "x" * 4097}, None),
        ({"category": "gossip"}, None),
        ({"expires_at": "2099-01-01T00:00:00Z"}, None),
        ({"expires_at": "2000-01-01T00:00:00Z"}, None),
        ({"expires_at": "2030-01-01T00:00:00"}, None),
        ({"user_id": "bob"}, None),
        ({"content": "x"}, "version three"),
    ],
)
def test_bad_edits_are_4xx_and_change_nothing(
    client: TestClient,
    assistant_token: str,
    alice_token: str,
    body: dict[str, Any],
    if_match: str | None,
) -> None:
    memory = write_memory(client, assistant_token, content="unchanged")
    response = patch(client, alice_token, memory["id"], body, if_match)
    assert_problem(response, 422)
    after = my(client, alice_token, f"/memories/{memory['id']}").json()
    assert after["content"] == "unchanged" and after["version"] == 1


def test_moving_to_a_category_with_shorter_retention_brings_expiry_forward(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    memory = write_memory(client, assistant_token, category="preferences")  # 730 days
    moved = patch(client, alice_token, memory["id"], {"category": "schedule"}).json()  # 30 days
    created = datetime.fromisoformat(memory["created_at"])
    assert datetime.fromisoformat(moved["expires_at"]) == created + timedelta(days=30)


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [("PATCH", "", {"content": "x"}), ("GET", "/history", None), ("DELETE", "", None)],
)
def test_edit_history_and_delete_are_401_403_404_as_they_should_be(
    client: TestClient,
    assistant_token: str,
    bob_token: str,
    method: str,
    suffix: str,
    body: Any,
) -> None:
    memory = write_memory(client, assistant_token, content="alice's own")
    path = f"/v1/me/memories/{memory['id']}{suffix}"
    assert_problem(client.request(method, path, json=body), 401, "unauthenticated")
    assert_problem(
        client.request(method, path, json=body, headers=bearer(assistant_token)), 403, "forbidden"
    )
    other = client.request(method, path, json=body, headers=bearer(bob_token))
    assert_problem(other, 404, "not-found")
    assert "alice's own" not in other.text


def test_a_history_ciphertext_cannot_pass_for_the_current_version(
    client: TestClient, runtime: Runtime, assistant_token: str, alice_token: str
) -> None:
    memory = write_memory(client, assistant_token, content="old truth")
    patch(client, alice_token, memory["id"], {"content": "new truth"})
    with runtime.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE memories SET ciphertext = (SELECT ciphertext FROM memory_versions "
                "WHERE memory_id = :id) WHERE id = :id"
            ),
            {"id": memory["id"]},
        )
    response = my(client, alice_token, f"/memories/{memory['id']}")
    assert_problem(response, 410, "memory-unreadable")
    assert "old truth" not in response.text


# -- delete -----------------------------------------------------------------------------------


def test_deleting_a_memory_removes_it_and_its_history(
    client: TestClient, runtime: Runtime, assistant_token: str, alice_token: str
) -> None:
    memory = write_memory(client, assistant_token)
    patch(client, alice_token, memory["id"], {"content": "edited once"})
    kept = write_memory(client, assistant_token, content="keep me")
    response = client.delete(f"/v1/me/memories/{memory['id']}", headers=bearer(alice_token))
    assert response.status_code == 204
    assert_problem(my(client, alice_token, f"/memories/{memory['id']}"), 404)
    assert rows(runtime, "memory_versions") == 0
    assert [m["id"] for m in my(client, alice_token, "/memories").json()["items"]] == [kept["id"]]


def test_deleting_a_category_removes_exactly_that_category(
    client: TestClient, runtime: Runtime, assistant_token: str, alice_token: str, bob_token: str
) -> None:
    for content in ("at Acme", "project Zeus"):
        write_memory(client, assistant_token, content=content, category="work")
    hobby = write_memory(client, assistant_token, content="plays chess", category="interests")
    write_memory(client, assistant_token, user_id="bob", content="bob works", category="work")
    response = client.delete(
        "/v1/me/memories", params={"category": "work"}, headers=bearer(alice_token)
    )
    answer = response.json()
    assert (answer["category"], answer["deleted"]) == ("work", 2)
    status = client.get(f"/v1/erasures/{answer['erasure_id']}")  # no token needed
    assert status.status_code == 200, status.text
    assert {k: status.json()[k] for k in ("kind", "items", "final")} == {
        "kind": "category",
        "items": 2,
        "final": False,
    }
    assert "alice" not in status.text
    assert [m["id"] for m in my(client, alice_token, "/memories").json()["items"]] == [hobby["id"]]
    assert rows(runtime, "memories", "bob") == 1


def test_deleting_a_category_needs_a_known_category(client: TestClient, alice_token: str) -> None:
    assert_problem(client.delete("/v1/me/memories", headers=bearer(alice_token)), 422)
    unknown = client.delete(
        "/v1/me/memories", params={"category": "gossip"}, headers=bearer(alice_token)
    )
    assert_problem(unknown, 422, "unknown-category")


# -- export -----------------------------------------------------------------------------------


def test_the_export_round_trips_every_memory_consent_setting_and_read(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    client.put(
        "/v1/me/consents/personalization/health",
        json={"granted": True},
        headers=bearer(alice_token),
    )
    written = [
        write_memory(client, assistant_token, content="likes tea", category="preferences"),
        write_memory(client, assistant_token, content="asthma", category="health", source="chat"),
        write_memory(client, assistant_token, content="works nights", category="schedule"),
    ]
    patch(client, alice_token, written[0]["id"], {"content": "likes green tea"})
    client.get(
        "/v1/users/alice/memories", params={"purpose": PURPOSE}, headers=bearer(assistant_token)
    )
    response = my(client, alice_token, "/export")
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    document = json.loads(response.content)
    assert document["format"] == "memory-store-export/1"
    assert document["user_id"] == "alice"
    exported = {m["id"]: m for m in document["memories"]}
    listed = {m["id"]: m for m in my(client, alice_token, "/memories").json()["items"]}
    assert set(exported) == set(listed) == {m["id"] for m in written}
    for memory_id, memory in listed.items():
        assert {k: exported[memory_id][k] for k in memory} == memory
    assert [v["content"] for v in exported[written[0]["id"]]["history"]] == ["likes tea"]
    assert exported[written[1]["id"]]["source"] == "chat"
    assert [c["category"] for c in document["consent_history"]] == ["health"]
    grant = [c for c in document["consents"]["items"] if c["category"] == "health"]
    assert grant[0]["granted"] is True or grant[0]["purpose"] != PURPOSE
    assert document["settings"]["memory_enabled"] is True
    assert any(e["action"] == "memory.list" for e in document["access_log"])


def test_export_needs_a_user_token(client: TestClient, assistant_token: str) -> None:
    assert_problem(client.get("/v1/me/export"), 401)
    assert_problem(client.get("/v1/me/export", headers=bearer(assistant_token)), 403)


# -- forget everything ---------------------------------------------------------------------------

KNOWN = ["canary-f1: lives at Elm Street 12", "canary-f2: allergic to shellfish"]


def test_forgetting_everything_leaves_nothing_readable_and_a_true_receipt(
    client: TestClient,
    runtime: Runtime,
    assistant_token: str,
    alice_token: str,
    compliance_token: str,
) -> None:
    client.put(
        "/v1/me/consents/analytics/work", json={"granted": True}, headers=bearer(alice_token)
    )
    client.patch("/v1/me/settings", json={"memory_enabled": True}, headers=bearer(alice_token))
    ids = [write_memory(client, assistant_token, content=c)["id"] for c in KNOWN]
    patch(client, alice_token, ids[0], {"content": "canary-f3: moved to Oak Road"})
    bobs = write_memory(client, assistant_token, user_id="bob", content="bob stays")
    with runtime.keystore_engine.connect() as conn:
        wrapped = conn.execute(
            select(data_keys.c.wrapped).where(data_keys.c.user_id == "alice")
        ).scalar_one()
    stored = MemoryRepository(RawDB(runtime.engine), runtime.memory_writer).live(
        "alice", now=utc_now()
    )
    old_key = runtime.keyring.key_for_read("alice")
    old_items = runtime.keyring.item_keys(old_key, None)
    assert len(stored) == len(KNOWN)
    for row in stored:  # what a copy would hold opens with her keys, so far
        open_row(old_items, row)

    runtime.audit_log.checkpoint()  # published: the trail after the forget must extend it
    response = client.delete("/v1/me", headers=bearer(alice_token))
    assert response.status_code == 200, response.text
    receipt = response.json()
    assert receipt["user_id"] == "alice"
    assert (receipt["memories"], receipt["memory_versions"]) == (2, 1)
    assert (receipt["consent_choices"], receipt["consent_history"], receipt["settings"]) == (
        1,
        1,
        1,
    )
    assert receipt["tokens"] == 1 and receipt["data_key_destroyed"] is True
    assert receipt["rows_deleted"] is True  # a few rows: deleted before the answer

    # Nothing keyed to alice remains, in any table, and no key to read a copy with.
    for table in (
        "memories",
        "memory_versions",
        "consents",
        "consent_events",
        "user_settings",
        "api_tokens",
    ):
        assert rows(runtime, table) == 0, table
    assert runtime.keyring.key_for_read("alice") is None
    # Her ciphertexts, had someone kept a copy, open under no key the service has.
    write_memory(client, assistant_token, content="a new start")  # a fresh key for alice
    fresh = runtime.keyring.key_for_read("alice")
    assert fresh is not None
    for row in stored:
        assert_opens_with_none([fresh.secret], memory_binding(row), row.ciphertext)
    # No file the service wrote holds her strings or her old wrapped key.
    files = runtime.settings.data_dir.iterdir() if runtime.engine.dialect.name == "sqlite" else []
    for path in files:
        if path.is_file():
            data = path.read_bytes()
            assert wrapped not in data, path.name
            for known in [*KNOWN, "canary-f3"]:
                assert known.encode() not in data, path.name
    # The assistant sees only the new start; bob is untouched; her token is gone.
    listed = client.get(
        "/v1/users/alice/memories", params={"purpose": PURPOSE}, headers=bearer(assistant_token)
    )
    assert [m["content"] for m in listed.json()["items"]] == ["a new start"]
    assert client.get(
        f"/v1/users/bob/memories/{bobs['id']}",
        params={"purpose": PURPOSE},
        headers=bearer(assistant_token),
    ).is_success
    assert_problem(my(client, alice_token, "/memories"), 401)
    # The trail still verifies; the erasure is on it; the old records link to no one.
    verdict = client.get("/v1/audit/verify", headers=bearer(compliance_token)).json()
    assert verdict["ok"] is True and verdict["anchored"] is True  # by the checkpoint before
    erasure = [r for r in runtime.audit_store.iter_records() if r.seq == receipt["audit_seq"]]
    assert erasure and erasure[0].action == "user.forget"
    found = client.get(
        "/v1/audit/events",
        params={"user_id": "alice", "action": "user.forget"},
        headers=bearer(compliance_token),
    )
    assert found.json()["items"] == []


def test_forget_needs_a_user_token(client: TestClient, assistant_token: str) -> None:
    assert_problem(client.delete("/v1/me"), 401)
    assert_problem(client.delete("/v1/me", headers=bearer(assistant_token)), 403, "forbidden")


def test_forgetting_a_user_with_nothing_stored_gives_an_empty_receipt(
    client: TestClient, runtime: Runtime
) -> None:
    token = runtime.tokens.issue(role=Role.user, name="carol", user_id="carol").token
    receipt = client.delete("/v1/me", headers=bearer(token)).json()
    assert receipt["memories"] == 0 and receipt["tokens"] == 1
    assert receipt["audit_seq"] > 0
