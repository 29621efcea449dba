"""The audit trail as the service writes it: every access and change is on the record, with
no contents; reads fail closed; tampering is caught by the endpoint and the offline verifier."""

from __future__ import annotations

import itertools
import sqlite3
import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time

from audit import AuditRecord, TreeCheckpoint, load_anchors, load_public_key
from memory_store.cli import main as cli
from memory_store.config import Settings
from memory_store.domain import OPERATOR, Principal, Role
from memory_store.errors import KeyProviderError
from memory_store.keys.envelope import pseudonym
from memory_store.runtime import Runtime, open_runtime
from memory_store.storage.audit_writer import AuditAppendError
from tests.conftest import PURPOSE, assert_problem, bearer, write_memory


def records(runtime: Runtime) -> list[AuditRecord]:
    return list(runtime.audit_store.iter_records())


def actions(runtime: Runtime) -> list[tuple[str, str]]:
    return [(r.action, r.outcome) for r in records(runtime)]


def audit_db(runtime: Runtime) -> Path:
    return runtime.settings.data_dir / "audit.db"


def alice_pseudonym(runtime: Runtime) -> str:
    key = runtime.keyring.key_for_read("alice")
    assert key is not None
    return pseudonym(key)


# -- what is recorded ------------------------------------------------------------------------


def test_every_memory_access_is_recorded_with_actor_subject_purpose_and_count(
    client: TestClient, runtime: Runtime, assistant_token: str, alice_token: str
) -> None:
    memory = write_memory(client, assistant_token)
    client.get(
        f"/v1/users/alice/memories/{memory['id']}",
        params={"purpose": PURPOSE},
        headers=bearer(assistant_token),
    )
    client.get(
        "/v1/users/alice/memories", params={"purpose": PURPOSE}, headers=bearer(assistant_token)
    )
    client.get("/v1/me/memories", params={"q": "window"}, headers=bearer(alice_token))
    trail = [r for r in records(runtime) if r.action.startswith("memory.")]
    assert [(r.action, r.outcome, r.result_count) for r in trail] == [
        ("memory.write", "allowed", 1),
        ("memory.read", "allowed", 1),
        ("memory.list", "allowed", 1),
        ("memory.search", "allowed", 1),
    ]
    subject = alice_pseudonym(runtime)
    assert {r.subject for r in trail} == {subject}
    assert all(r.memory_ids == (memory["id"],) for r in trail)
    assert [r.purpose for r in trail] == [PURPOSE, PURPOSE, PURPOSE, "self_service"]
    assert {r.actor_role for r in trail} == {"assistant", "user"}
    assert all(r.request_id.startswith("req_") for r in trail)


def test_denied_attempts_are_recorded_with_their_reason(
    client: TestClient, runtime: Runtime, assistant_token: str, bob_token: str
) -> None:
    memory = write_memory(client, assistant_token)
    client.post(  # no consent for a sensitive category
        "/v1/users/alice/memories",
        params={"purpose": PURPOSE},
        json={"content": "x", "category": "health"},
        headers=bearer(assistant_token),
    )
    client.get(f"/v1/me/memories/{memory['id']}", headers=bearer(bob_token))  # not bob's
    client.get("/v1/me/memories", headers={"Authorization": "Bearer mst_wrong"})
    denied = [(r.action, r.reason) for r in records(runtime) if r.outcome == "denied"]
    assert denied == [
        ("memory.write", "consent-required"),
        ("memory.read", "not-found"),
        ("auth", "unauthenticated"),
    ]
    anonymous = next(r for r in records(runtime) if r.action == "auth")
    assert anonymous.actor_id == "anonymous" and anonymous.subject is None


def test_changes_tokens_keys_and_purges_are_recorded(
    client: TestClient,
    runtime: Runtime,
    alice_token: str,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client.put(
        "/v1/me/consents/analytics/work", json={"granted": True}, headers=bearer(alice_token)
    )
    client.patch("/v1/me/settings", json={"memory_enabled": False}, headers=bearer(alice_token))
    runtime.sweeper.sweep()  # nothing expired: a purge of nothing is not recorded
    runtime.close()
    monkeypatch.setenv("MEMORY_STORE_DATA_DIR", str(settings.data_dir))
    assert cli(["keys", "rotate"]) == 0
    assert cli(["tokens", "revoke", "tok_nope"]) == 1
    reopened = open_runtime(settings)
    try:
        trail = [(r.action, r.outcome, r.reason, r.target) for r in records(reopened)]
    finally:
        reopened.close()
    assert trail[0][:2] == ("token.create", "allowed")  # the alice_token fixture
    assert ("consent.change", "allowed", "granted", None) in trail
    assert ("settings.change", "allowed", "memory_paused", None) in trail
    assert ("key.rotate", "allowed", None, "kek:v2") in trail
    assert ("token.revoke", "denied", "not-found", "tok_nope") in trail


def test_a_retention_purge_is_recorded_with_its_count(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    with freeze_time("2026-01-01T00:00:00Z"):
        write_memory(client, assistant_token, category="schedule")
    with freeze_time("2026-03-01T00:00:00Z"):
        assert runtime.sweeper.sweep() == 1
    purge = [r for r in records(runtime) if r.action == "memory.purge"]
    assert len(purge) == 1 and purge[0].result_count == 1 and purge[0].actor_role == "admin"


def test_no_content_no_query_text_and_no_user_id_in_any_record_or_export(
    client: TestClient, runtime: Runtime, assistant_token: str, compliance_token: str
) -> None:
    user = "canary-user-4711"
    content = "canary-content: prefers oat milk"
    query = "canary-query oat"
    write_memory(client, assistant_token, user_id=user, content=content, source="canary-source")
    client.get(
        f"/v1/users/{user}/memories",
        params={"purpose": PURPOSE, "q": query},
        headers=bearer(assistant_token),
    )
    client.get(
        f"/v1/users/{user}/memories",
        params={"purpose": PURPOSE, "q": "nothing matches this"},
        headers=bearer(assistant_token),
    )
    export = client.get("/v1/audit/export", headers=bearer(compliance_token)).text
    events = client.get("/v1/audit/events", headers=bearer(compliance_token)).text
    texts = [export, events]
    if runtime.audit_engine.dialect.name == "sqlite":
        texts.append(audit_db(runtime).read_bytes().decode("latin-1"))
    for text in texts:
        for secret in ("canary", "oat milk", "nothing matches", user):
            assert secret not in text, secret
    assert len(export.splitlines()) > 3


# -- fail closed ----------------------------------------------------------------------------


def failing_commit(_record: AuditRecord) -> Future[AuditRecord]:
    """An append queued, whose commit then fails (as a full disk would fail it)."""
    failed: Future[AuditRecord] = Future()
    failed.set_exception(AuditAppendError("disk full"))
    return failed


def test_a_read_whose_audit_append_fails_is_refused_and_discloses_nothing(
    client: TestClient,
    runtime: Runtime,
    assistant_token: str,
    alice_token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    memory = write_memory(client, assistant_token, content="the secret recipe")

    monkeypatch.setattr(runtime.audit_log, "begin_append", failing_commit)
    reads = [
        client.get(
            f"/v1/users/alice/memories/{memory['id']}",
            params={"purpose": PURPOSE},
            headers=bearer(assistant_token),
        ),
        client.get(
            "/v1/users/alice/memories", params={"purpose": PURPOSE}, headers=bearer(assistant_token)
        ),
        client.get("/v1/me/memories", params={"q": "secret"}, headers=bearer(alice_token)),
        client.get(f"/v1/me/memories/{memory['id']}", headers=bearer(alice_token)),
    ]
    for response in reads:
        assert_problem(response, 503, "audit-unavailable")
        assert "secret recipe" not in response.text


def test_a_write_whose_audit_append_fails_stores_nothing(
    client: TestClient, runtime: Runtime, assistant_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime.audit_log, "begin_append", failing_commit)
    response = client.post(
        "/v1/users/alice/memories",
        params={"purpose": PURPOSE},
        json={"content": "x", "category": "preferences"},
        headers=bearer(assistant_token),
    )
    assert_problem(response, 503, "audit-unavailable")
    monkeypatch.undo()
    listed = client.get(
        "/v1/users/alice/memories", params={"purpose": PURPOSE}, headers=bearer(assistant_token)
    )
    assert listed.json()["items"] == []


@pytest.mark.sqlite_only
def test_an_audit_database_that_refuses_writes_fails_reads_closed(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    """Not a mock: the audit table is made to reject inserts, as a full disk would."""
    memory = write_memory(client, assistant_token, content="guarded")
    with sqlite3.connect(audit_db(runtime)) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_records "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    response = client.get(
        f"/v1/users/alice/memories/{memory['id']}",
        params={"purpose": PURPOSE},
        headers=bearer(assistant_token),
    )
    assert_problem(response, 503, "audit-unavailable")
    assert "guarded" not in response.text


# -- compliance endpoints --------------------------------------------------------------------

COMPLIANCE_ROUTES = [
    "/v1/audit/events",
    "/v1/audit/verify",
    "/v1/audit/checkpoints",
    "/v1/audit/export",
    "/v1/audit/public-key",
]


@pytest.mark.parametrize("path", COMPLIANCE_ROUTES)
def test_compliance_routes_need_a_token(client: TestClient, path: str) -> None:
    assert_problem(client.get(path), 401, "unauthenticated")


@pytest.mark.parametrize("token_name", ["assistant_token", "alice_token", "admin_token"])
@pytest.mark.parametrize("path", COMPLIANCE_ROUTES)
def test_compliance_routes_are_403_for_other_roles(
    client: TestClient, request: pytest.FixtureRequest, token_name: str, path: str
) -> None:
    token = request.getfixturevalue(token_name)
    assert_problem(client.get(path, headers=bearer(token)), 403, "forbidden")


def test_events_filter_by_user_action_outcome_and_page_with_a_cursor(
    client: TestClient,
    runtime: Runtime,
    assistant_token: str,
    compliance_token: str,
) -> None:
    for user in ("alice", "bob", "alice"):
        write_memory(client, assistant_token, user_id=user)
    client.post(
        "/v1/users/alice/memories",
        params={"purpose": PURPOSE},
        json={"content": "x", "category": "health"},
        headers=bearer(assistant_token),
    )
    headers = bearer(compliance_token)
    alice = client.get("/v1/audit/events", params={"user_id": "alice"}, headers=headers).json()
    assert [e["action"] for e in alice["items"]] == ["memory.write"] * 3
    assert {e["subject"] for e in alice["items"]} == {alice_pseudonym(runtime)}
    denied = client.get("/v1/audit/events", params={"outcome": "denied"}, headers=headers).json()
    assert [e["reason"] for e in denied["items"]] == ["consent-required"]
    nobody = client.get("/v1/audit/events", params={"user_id": "nobody"}, headers=headers).json()
    assert nobody["items"] == []
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"action": "memory.write", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/audit/events", params=params, headers=headers).json()
        seen += [e["seq"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 4 and seen == sorted(seen, reverse=True)


def test_events_reject_bad_filters(client: TestClient, compliance_token: str) -> None:
    for params in (
        {"since": "yesterday"},
        {"outcome": "maybe"},
        {"limit": 0},
        {"cursor": "zz"},
        {"user_id": "bad id"},
    ):
        response = client.get("/v1/audit/events", params=params, headers=bearer(compliance_token))
        assert_problem(response, 422)


def test_events_filter_by_time_range(
    client: TestClient, runtime: Runtime, assistant_token: str, compliance_token: str
) -> None:
    with freeze_time("2026-05-01T10:00:00Z"):
        write_memory(client, assistant_token, content="early")
    with freeze_time("2026-05-02T10:00:00Z"):
        write_memory(client, assistant_token, content="late")
    response = client.get(
        "/v1/audit/events",
        params={
            "since": "2026-05-02T00:00:00Z",
            "until": "2026-05-03T00:00:00Z",
            "action": "memory.write",
        },
        headers=bearer(compliance_token),
    )
    assert [e["at"][:10] for e in response.json()["items"]] == ["2026-05-02"]


def test_checkpoints_and_public_key_let_compliance_check_signatures(
    client: TestClient, runtime: Runtime, assistant_token: str, compliance_token: str
) -> None:
    write_memory(client, assistant_token)
    signed = runtime.audit_log.checkpoint()
    assert signed is not None
    listed = client.get("/v1/audit/checkpoints", headers=bearer(compliance_token)).json()
    pem = client.get("/v1/audit/public-key", headers=bearer(compliance_token)).content
    key = load_public_key(pem)
    assert [c["seq"] for c in listed] == [signed.size]
    (stored,) = listed
    assert stored["format"] == "c2sp-tlog-checkpoint"
    assert stored["note"] == signed.note
    assert stored["hash"] == signed.root.hex()
    assert TreeCheckpoint.parse(stored["note"]).verify(key)


# -- the user's access log ---------------------------------------------------------------------


def test_a_user_sees_who_read_their_memories_and_for_what(
    client: TestClient, assistant_token: str, alice_token: str, bob_token: str
) -> None:
    memory = write_memory(client, assistant_token)
    client.get(
        f"/v1/users/alice/memories/{memory['id']}",
        params={"purpose": PURPOSE},
        headers=bearer(assistant_token),
    )
    client.get(
        "/v1/users/alice/memories", params={"purpose": "analytics"}, headers=bearer(assistant_token)
    )
    log = client.get("/v1/me/access-log", headers=bearer(alice_token))
    assert log.status_code == 200
    items = log.json()["items"]
    assert [(i["action"], i["purpose"], i["actor"], i["result_count"]) for i in items] == [
        ("memory.list", "analytics", "test-assistant", 0),
        ("memory.read", PURPOSE, "test-assistant", 1),
    ]
    assert items[1]["memory_ids"] == [memory["id"]]
    assert client.get("/v1/me/access-log", headers=bearer(bob_token)).json()["items"] == []


def test_access_log_needs_a_user_token(
    client: TestClient, assistant_token: str, compliance_token: str
) -> None:
    assert_problem(client.get("/v1/me/access-log"), 401)
    for token in (assistant_token, compliance_token):
        assert_problem(client.get("/v1/me/access-log", headers=bearer(token)), 403, "forbidden")


# -- forgetting, concurrency, checkpoints, keys ---------------------------------------------------


def test_after_a_user_is_forgotten_their_records_remain_verify_and_link_to_no_one(
    client: TestClient, runtime: Runtime, assistant_token: str, compliance_token: str
) -> None:
    write_memory(client, assistant_token)
    old = alice_pseudonym(runtime)
    runtime.audit_log.checkpoint()
    runtime.keyring.destroy("alice")  # crypto-shredding (forget-everything builds on this)
    verdict = client.get("/v1/audit/verify", headers=bearer(compliance_token)).json()
    assert verdict["ok"] is True and verdict["anchored"] is True
    found = client.get(
        "/v1/audit/events", params={"user_id": "alice"}, headers=bearer(compliance_token)
    ).json()
    assert found["items"] == []
    assert any(r.subject == old for r in records(runtime))  # still there, unlinkable
    write_memory(client, assistant_token)  # a fresh key, a fresh pseudonym
    assert alice_pseudonym(runtime) != old


def test_concurrent_appends_are_group_committed_into_one_gap_free_chain(runtime: Runtime) -> None:
    committed_before = runtime.audit_log.batches_committed

    def append_many() -> None:
        for _ in range(10):
            runtime.auditor.record(OPERATOR, "test.append")

    threads = [threading.Thread(target=append_many) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trail = [r for r in records(runtime) if r.action == "test.append"]
    assert len(trail) == 320
    seqs = [r.seq for r in records(runtime)]
    assert seqs == list(range(1, len(seqs) + 1))
    transactions = runtime.audit_log.batches_committed - committed_before
    assert 0 < transactions < 320  # several records shared a transaction
    signed = runtime.audit_log.checkpoint()  # the tree the writer kept is the records'
    assert signed is not None and signed.size == len(seqs)
    result = runtime.audit.verify(_compliance())
    assert result.ok, result.problem
    assert result.anchored_through == len(seqs)


def _compliance() -> Principal:
    return Principal(token_id="t", name="c", role=Role.compliance, user_id=None)


def test_checkpoints_are_signed_every_n_records_and_at_shutdown(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "var", retention_sweep_seconds=0, audit_checkpoint_every=5
    )
    runtime = open_runtime(settings)
    for _ in range(12):
        runtime.auditor.record(OPERATOR, "test.append")
    runtime.close()
    reopened = open_runtime(settings)
    try:
        seqs = [c.seq for c in reopened.audit_store.checkpoints()]
    finally:
        reopened.close()
    assert len(seqs) >= 3 and seqs[-1] == 12 and seqs[0] >= 5
    assert all(b - a >= 1 for a, b in itertools.pairwise(seqs))
    # Each was published outside the database as it was cut: one note per tree size.
    published = sorted(c.seq for c in load_anchors(settings.resolved_audit_witness_dir()))
    assert published[: len(seqs)] == seqs


def test_the_signing_key_is_private_and_its_loss_refuses_a_start(
    runtime: Runtime, settings: Settings
) -> None:
    key_file = settings.resolved_audit_key_file()
    assert key_file.stat().st_mode & 0o077 == 0
    runtime.auditor.record(OPERATOR, "test.append")
    runtime.close()
    key_file.unlink()
    with pytest.raises(KeyProviderError, match="audit signing key"):
        open_runtime(settings)


APPENDER = """
import sys
from memory_store.domain import OPERATOR, Principal
from memory_store.config import Settings
from memory_store.runtime import open_runtime

runtime = open_runtime(Settings(data_dir=sys.argv[1], retention_sweep_seconds=0))
for _ in range(int(sys.argv[2])):
    runtime.auditor.record(OPERATOR, "test.process")
runtime.close()
"""


def test_two_processes_appending_at_once_write_one_gap_free_chain(
    runtime: Runtime, settings: Settings
) -> None:
    processes = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(settings.data_dir), "150"])
        for _ in range(2)
    ]
    assert [process.wait(timeout=120) for process in processes] == [0, 0]
    trail = records(runtime)
    assert sum(r.action == "test.process" for r in trail) == 300
    assert [r.seq for r in trail] == list(range(1, len(trail) + 1))
    assert runtime.audit.verify(_compliance()).ok
