"""A client's request id may name a person ("user-alice.turn-0001"). The trail keeps only the
service's own ids, and a client's only as a hash keyed by the subject's key: once the subject
is forgotten, no byte of the trail names them."""

from __future__ import annotations

from fastapi.testclient import TestClient

from memory_store.domain import Principal, Role
from memory_store.runtime import Runtime
from tests.conftest import PURPOSE, bearer, write_memory

TURN = "user-alice.turn-0001"


COMPLIANCE = Principal(token_id="t-c", name="compliance", role=Role.compliance, user_id=None)


def trail_bytes(runtime: Runtime) -> str:
    """The whole trail as its export carries it (records and checkpoints)."""
    return "\n".join(runtime.audit.export(COMPLIANCE))


def test_the_trail_keeps_the_services_own_id_and_the_clients_only_as_a_keyed_tag(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    write_memory(client, assistant_token)
    response = client.get(
        "/v1/users/alice/memories",
        params={"purpose": PURPOSE},
        headers={**bearer(assistant_token), "X-Request-ID": TURN},
    )
    assert response.headers["x-request-id"] == TURN  # echoed to the caller
    record = list(runtime.audit_store.iter_records())[-1]
    server_id, dot, tag = record.request_id.partition(".")
    assert server_id.startswith("req_") and len(server_id) == 28 and dot == "."
    assert tag == runtime.auditor.request_tag(TURN, "alice")
    assert tag != runtime.auditor.request_tag(TURN, "bob")  # keyed per subject
    assert TURN not in trail_bytes(runtime)
    plain = client.get(
        "/v1/users/alice/memories", params={"purpose": PURPOSE}, headers=bearer(assistant_token)
    )
    last = list(runtime.audit_store.iter_records())[-1]
    assert last.request_id == plain.headers["x-request-id"]  # no client id: the service's


def test_once_the_user_is_forgotten_no_byte_of_the_trail_names_them(
    client: TestClient, runtime: Runtime, assistant_token: str, alice_token: str
) -> None:
    headers = {**bearer(assistant_token), "X-Request-ID": TURN}
    client.post(
        "/v1/users/alice/memories",
        params={"purpose": PURPOSE},
        json={"content": "likes figs", "category": "preferences"},
        headers=headers,
    )
    client.get("/v1/users/alice/memories", params={"purpose": PURPOSE}, headers=headers)
    tagged = [r for r in runtime.audit_store.iter_records() if "." in r.request_id]
    assert len(tagged) == 2
    before = runtime.auditor.request_tag(TURN, "alice")
    assert all(r.request_id.endswith(before) for r in tagged)

    assert client.delete("/v1/me", headers=bearer(alice_token)).status_code == 200

    trail = trail_bytes(runtime)
    assert "alice" not in trail and TURN not in trail
    # The tags can no longer be recomputed: her key, which keyed them, is gone.
    assert runtime.auditor.request_tag(TURN, "alice") != before
