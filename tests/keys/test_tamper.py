"""A ciphertext altered, copied to another row, or moved to another user fails to decrypt,
with one opaque problem that never carries content."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from memory_store.runtime import Runtime
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


def test_a_tampered_row_makes_the_list_fail_rather_than_silently_skip(
    client: TestClient, runtime: Runtime, assistant_token: str, alice_token: str
) -> None:
    memory = write_memory(client, assistant_token)
    set_ciphertext(runtime, memory["id"], b"\x01" + b"\x00" * 40)
    response = client.get("/v1/me/memories", headers=bearer(alice_token))
    assert_problem(response, 410, "memory-unreadable")
    nothing_changed = ciphertext_of(runtime, memory["id"])
    assert nothing_changed == b"\x01" + b"\x00" * 40
