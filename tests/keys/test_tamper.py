"""A ciphertext altered, copied to another row, moved to another user, or a row whose
category, expiry or version was changed in the database, fails to decrypt: one opaque problem
that never carries content when it was asked for by id, and left out of a list or an export
(the rest served, the refusal on the trail) otherwise."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import text

from memory_store.clock import utc_now
from memory_store.domain import Principal, Role
from memory_store.runtime import Runtime
from memory_store.storage.rawdb import RawDB
from tests.conftest import PURPOSE, assert_problem, bearer, write_memory


def set_ciphertext(runtime: Runtime, memory_id: str, blob: bytes) -> None:
    with runtime.engine.begin() as conn:
        conn.execute(
            text("UPDATE memories SET ciphertext = :blob WHERE id = :id"),
            {"blob": blob, "id": memory_id},
        )


def ciphertext_of(runtime: Runtime, memory_id: str) -> bytes:
    with runtime.engine.connect() as conn:
        blob: bytes = conn.execute(
            text("SELECT ciphertext FROM memories WHERE id = :id"), {"id": memory_id}
        ).scalar_one()
    return blob


def get(client: TestClient, token: str, user_id: str, memory_id: str):  # type: ignore[no-untyped-def]
    return client.get(
        f"/v1/users/{user_id}/memories/{memory_id}",
        params={"purpose": PURPOSE},
        headers=bearer(token),
    )


def test_a_ciphertext_copied_to_another_row_of_the_same_user_fails_opaquely(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    secret = write_memory(client, assistant_token, content="the secret one")
    decoy = write_memory(client, assistant_token, content="the harmless one")
    set_ciphertext(runtime, decoy["id"], ciphertext_of(runtime, secret["id"]))
    response = get(client, assistant_token, "alice", decoy["id"])
    body = assert_problem(response, 410, "memory-unreadable")
    assert body["memory_id"] == decoy["id"]
    assert "secret" not in response.text and "harmless" not in response.text
    # The untouched memory still reads.
    assert get(client, assistant_token, "alice", secret["id"]).json()["content"] == "the secret one"


def test_a_ciphertext_moved_to_another_user_fails_opaquely(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    alices = write_memory(client, assistant_token, user_id="alice", content="alice's secret")
    bobs = write_memory(client, assistant_token, user_id="bob", content="bob's note")
    set_ciphertext(runtime, bobs["id"], ciphertext_of(runtime, alices["id"]))
    response = get(client, assistant_token, "bob", bobs["id"])
    assert_problem(response, 410, "memory-unreadable")
    assert "alice" not in response.json()["detail"]


def test_a_row_reassigned_to_another_user_fails_opaquely(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    write_memory(client, assistant_token, user_id="bob", content="bob has a key now")
    alices = write_memory(client, assistant_token, user_id="alice", content="alice's secret")
    with runtime.engine.begin() as conn:
        conn.execute(
            text("UPDATE memories SET user_id = 'bob' WHERE id = :id"), {"id": alices["id"]}
        )
    assert_problem(get(client, assistant_token, "bob", alices["id"]), 410, "memory-unreadable")


def test_flipped_bits_and_truncation_fail_opaquely_and_identically(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    memory = write_memory(client, assistant_token, content="original")
    original = ciphertext_of(runtime, memory["id"])
    variants = [
        bytes([original[0] ^ 1]) + original[1:],  # format byte
        original[:5] + bytes([original[5] ^ 1]) + original[6:],  # nonce
        original[:-1] + bytes([original[-1] ^ 1]),  # tag
        original[:20],  # truncated
        b"",
    ]
    details = set()
    for blob in variants:
        set_ciphertext(runtime, memory["id"], blob)
        body = assert_problem(get(client, assistant_token, "alice", memory["id"]), 410)
        details.add((body["type"], body["detail"]))
    assert len(details) == 1  # one opaque error, whatever went wrong


def refusals(runtime: Runtime) -> list[tuple[str, tuple[str, ...]]]:
    """(action, memory ids) of every read refused because a row would not open."""
    return [
        (r.action, r.memory_ids)
        for r in runtime.audit_store.iter_records()
        if r.outcome == "denied" and r.reason == "memory-unreadable"
    ]


def listed(client: TestClient, token: str, user_id: str = "alice") -> list[str]:
    response = client.get(
        f"/v1/users/{user_id}/memories", params={"purpose": PURPOSE}, headers=bearer(token)
    )
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_a_tampered_row_is_left_out_of_the_list_and_recorded_as_refused(
    client: TestClient, runtime: Runtime, assistant_token: str, alice_token: str
) -> None:
    """One bad row does not turn a list into an error: the others are served, and the
    refused row is on the trail by id (never by content)."""
    memory = write_memory(client, assistant_token, content="will be broken")
    kept = write_memory(client, assistant_token, content="stays readable")
    set_ciphertext(runtime, memory["id"], b"\x02" + b"\x00" * 40)
    response = client.get("/v1/me/memories", headers=bearer(alice_token))
    assert response.status_code == 200, response.text
    assert [item["id"] for item in response.json()["items"]] == [kept["id"]]
    assert refusals(runtime) == [("memory.list", (memory["id"],))]
    assert ciphertext_of(runtime, memory["id"]) == b"\x02" + b"\x00" * 40  # nothing changed


def update_row(runtime: Runtime, memory_id: str, assignments: str, **values: object) -> None:
    """Change a memory's row in the database, as a writer without any key could."""
    with runtime.engine.begin() as conn:
        conn.execute(
            text(f"UPDATE memories SET {assignments} WHERE id = :id"), {"id": memory_id, **values}
        )


def test_a_sensitive_memory_relabelled_as_ordinary_is_refused_not_served(
    client: TestClient, runtime: Runtime, assistant_token: str, alice_token: str
) -> None:
    """The category is bound to the ciphertext: a health memory moved to `preferences` in
    the database (to slip past a withdrawn consent) does not open."""
    opt_in = client.put(
        f"/v1/me/consents/{PURPOSE}/health", json={"granted": True}, headers=bearer(alice_token)
    )
    assert opt_in.status_code == 200
    health = write_memory(client, assistant_token, content="takes insulin", category="health")
    other = write_memory(client, assistant_token, content="likes jazz")
    client.put(
        f"/v1/me/consents/{PURPOSE}/health", json={"granted": False}, headers=bearer(alice_token)
    )
    update_row(runtime, health["id"], "category = 'preferences'")
    assert listed(client, assistant_token) == [other["id"]]
    assert_problem(get(client, assistant_token, "alice", health["id"]), 410, "memory-unreadable")
    assert ("memory.list", (health["id"],)) in refusals(runtime)


def test_an_expiry_pushed_out_in_the_database_is_refused(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    soon = write_memory(client, assistant_token, content="short-lived", expires_at=_in(days=1))
    other = write_memory(client, assistant_token, content="likes jazz")
    expires = runtime.memories.get_for_purpose(
        _assistant(runtime), "alice", soon["id"], PURPOSE
    ).expires_at
    update_row(runtime, soon["id"], "expires_at = :later", later=_stored(runtime, expires, 300))
    assert listed(client, assistant_token) == [other["id"]]
    assert ("memory.list", (soon["id"],)) in refusals(runtime)


def test_an_earlier_version_put_back_as_the_current_one_is_refused(
    client: TestClient, runtime: Runtime, assistant_token: str, alice_token: str
) -> None:
    """Versions are bound apart from current memories: the ciphertext of version 1, with
    the row set back to version 1, does not open as the memory."""
    memory = write_memory(client, assistant_token, content="lives in Lyon")
    edit = client.patch(
        f"/v1/me/memories/{memory['id']}",
        json={"content": "lives in Oslo"},
        headers=bearer(alice_token),
    )
    assert edit.status_code == 200 and edit.json()["version"] == 2
    with runtime.engine.connect() as conn:
        old = conn.execute(
            text("SELECT ciphertext FROM memory_versions WHERE memory_id = :id AND version = 1"),
            {"id": memory["id"]},
        ).scalar_one()
    update_row(runtime, memory["id"], "ciphertext = :old, version = 1", old=old)
    assert_problem(get(client, assistant_token, "alice", memory["id"]), 410, "memory-unreadable")
    assert listed(client, assistant_token) == []
    history = client.get(f"/v1/me/memories/{memory['id']}/history", headers=bearer(alice_token))
    assert history.status_code == 200 and history.json()[0]["content"] == "lives in Lyon"


def test_two_rows_with_their_ciphertexts_swapped_are_both_refused_and_the_rest_served(
    client: TestClient, runtime: Runtime, assistant_token: str, alice_token: str
) -> None:
    first = write_memory(client, assistant_token, content="first")
    second = write_memory(client, assistant_token, content="second")
    third = write_memory(client, assistant_token, content="third")
    one, two = ciphertext_of(runtime, first["id"]), ciphertext_of(runtime, second["id"])
    set_ciphertext(runtime, first["id"], two)
    set_ciphertext(runtime, second["id"], one)
    assert listed(client, assistant_token) == [third["id"]]
    exported = client.get("/v1/me/export", headers=bearer(alice_token))
    assert exported.status_code == 200
    assert [m["content"] for m in exported.json()["memories"]] == ["third"]
    assert sorted(refusals(runtime)[0][1]) == sorted([first["id"], second["id"]])


def _in(*, days: int) -> str:
    return (utc_now() + timedelta(days=days)).isoformat()


def _assistant(runtime: Runtime) -> Principal:
    return Principal(token_id="t", name="t", role=Role.assistant, user_id=None)


def _stored(runtime: Runtime, moment: datetime, days: int) -> object:
    """`moment` + `days` as the database stores a time."""
    later = moment + timedelta(days=days)
    return RawDB(runtime.engine).time(later)
