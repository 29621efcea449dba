"""Strangers: a request about a subject with no data key (no memory, no user token) creates
nothing. Its records name it by a pseudonym keyed by the trail's own secret, the same every time,
and the person finds those records too once they exist (access log, events by user id)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from audit import AuditRecord
from memory_store.domain import Role
from memory_store.runtime import Runtime
from tests.conftest import PURPOSE, assert_problem, bearer, issue_token, write_memory

PSEUDONYM = re.compile(r"^ps_[0-9a-f]{32}$")


def records(runtime: Runtime) -> list[AuditRecord]:
    return list(runtime.audit_store.iter_records())


def probe(client: TestClient, token: str, user_id: str) -> None:
    """Three refused requests and one allowed (empty) read about `user_id`."""
    assert_problem(
        client.post(
            f"/v1/users/{user_id}/memories",
            params={"purpose": PURPOSE},
            json={"content": "x", "category": "health"},  # sensitive: needs an opt-in
            headers=bearer(token),
        ),
        403,
        "consent-required",
    )
    assert_problem(
        client.get(
            f"/v1/users/{user_id}/memories/mem_nothing",
            params={"purpose": PURPOSE},
            headers=bearer(token),
        ),
        404,
    )
    assert_problem(
        client.get(
            f"/v1/users/{user_id}/memories", params={"purpose": "marketing"}, headers=bearer(token)
        ),
        422,
        "unknown-purpose",
    )
    listed = client.get(
        f"/v1/users/{user_id}/memories", params={"purpose": PURPOSE}, headers=bearer(token)
    )
    assert listed.status_code == 200 and listed.json()["items"] == []


def test_requests_about_an_unknown_id_leave_the_key_store_unchanged(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    write_memory(client, assistant_token, user_id="known")
    before = runtime.keyring.count_by_version()
    for user_id in ("stranger-1", "stranger-2", "stranger-1"):
        probe(client, assistant_token, user_id)
    assert runtime.keyring.count_by_version() == before
    assert runtime.keyring.key_for_read("stranger-1") is None


def test_a_stranger_has_one_pseudonym_and_it_is_not_their_id(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    probe(client, assistant_token, "stranger-1")
    probe(client, assistant_token, "stranger-2")
    probe(client, assistant_token, "stranger-1")
    about = [r for r in records(runtime) if r.action in {"memory.write", "memory.read"}]
    subjects = [r.subject for r in about]
    assert len(about) == 6 and all(s is not None and PSEUDONYM.match(s) for s in subjects)
    assert subjects[0] == subjects[4] != subjects[2]  # stranger-1, stranger-1, stranger-2
    assert not any("stranger" in (s or "") for s in subjects)


def test_records_from_before_the_first_key_are_found_by_user_id_and_in_the_access_log(
    client: TestClient, runtime: Runtime, assistant_token: str, compliance_token: str
) -> None:
    probe(client, assistant_token, "carol")  # nothing is kept about carol yet
    assert runtime.keyring.key_for_read("carol") is None
    carol = issue_token(runtime, Role.user, "carol")  # now she is someone: she has a key
    write_memory(client, assistant_token, user_id="carol")
    key = runtime.keyring.key_for_read("carol")
    assert key is not None
    subjects = {r.subject for r in records(runtime) if r.action.startswith("memory.")}
    assert len(subjects) == 2 and key.pseudonym in subjects  # before the key, and since

    events = client.get(
        "/v1/audit/events",
        params={"user_id": "carol", "action": "memory.read"},
        headers=bearer(compliance_token),
    ).json()["items"]
    assert [(e["outcome"], e["reason"]) for e in events] == [("denied", "not-found")]

    log = client.get("/v1/me/access-log", headers=bearer(carol)).json()["items"]
    assert [(e["action"], e["outcome"]) for e in log] == [
        ("memory.list", "allowed"),
        ("memory.list", "denied"),  # the purpose the catalogue does not know
        ("memory.read", "denied"),
    ]


def test_forgetting_unlinks_the_keys_records_and_a_later_probe_is_a_strangers(
    client: TestClient, runtime: Runtime, assistant_token: str, compliance_token: str
) -> None:
    alice = issue_token(runtime, Role.user, "alice")
    write_memory(client, assistant_token)
    assert client.delete("/v1/me", headers=bearer(alice)).status_code == 200
    before = runtime.keyring.count_by_version()
    probe(client, assistant_token, "alice")
    assert runtime.keyring.count_by_version() == before  # no new key for a forgotten user
    events = client.get(
        "/v1/audit/events", params={"user_id": "alice"}, headers=bearer(compliance_token)
    ).json()["items"]
    # Only what happened once she was a stranger again; her key's records link to no one.
    assert {e["action"] for e in events} == {"memory.write", "memory.read", "memory.list"}
    assert len(events) == 4  # the unknown purpose's refusal too
