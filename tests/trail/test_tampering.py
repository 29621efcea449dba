"""Tampering with the stored trail as someone who can write the audit database, and only it:
edit, delete, reorder, insert, cut the tail, rewrite and re-chain with the stored checkpoints
deleted and the head mended, or forge a trail from scratch. The endpoint (GET
/v1/audit/verify, which trusts the witness directory) and the offline verifier given the
witness directory each catch every one; an intact trail passes both."""

from __future__ import annotations

import contextlib
import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from audit import AuditRecord
from audit.__main__ import main as offline_verify
from memory_store.domain import OPERATOR
from memory_store.runtime import Runtime
from memory_store.trail.log import CheckpointRefused
from tests.conftest import PURPOSE, bearer, write_memory
from tests.trail.helpers import mend_head, rechain, replace_trail, sql, stored_records

CHECKPOINTED = (3, 5, 7, 9)  # where the fixture cuts checkpoints


@pytest.fixture
def trail(client: TestClient, runtime: Runtime, assistant_token: str) -> Runtime:
    """Nine records (a token, four writes and reads), a checkpoint cut and published at 3, 5,
    7 and 9: the witness directory holds the four notes."""
    for i in range(4):
        memory = write_memory(client, assistant_token, content=f"fact {i}")
        client.get(
            f"/v1/users/alice/memories/{memory['id']}",
            params={"purpose": PURPOSE},
            headers=bearer(assistant_token),
        )
        signed = runtime.audit_log.checkpoint()
        assert signed is not None and signed.size == CHECKPOINTED[i]
    return runtime


def records(runtime: Runtime) -> list[AuditRecord]:
    return stored_records(runtime.audit_engine)


def verify_both_ways(
    client: TestClient, runtime: Runtime, token: str, tmp_path: Path
) -> tuple[dict[str, Any], int, str]:
    """(the endpoint's verdict, the offline verifier's exit code given the witness
    directory, its output)."""
    verdict = client.get("/v1/audit/verify", headers=bearer(token)).json()
    export = tmp_path / "export.jsonl"
    export.write_text(client.get("/v1/audit/export", headers=bearer(token)).text)
    key = tmp_path / "public.pem"
    key.write_bytes(client.get("/v1/audit/public-key", headers=bearer(token)).content)
    witness = runtime.settings.resolved_audit_witness_dir()
    argv = ["verify", str(export), "--public-key", str(key), "--checkpoints", str(witness)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = offline_verify(argv)
    return verdict, code, out.getvalue() + err.getvalue()


def test_an_intact_trail_is_anchored_on_the_endpoint_and_offline(
    client: TestClient, trail: Runtime, compliance_token: str, tmp_path: Path
) -> None:
    verdict, code, output = verify_both_ways(client, trail, compliance_token, tmp_path)
    assert verdict["ok"] is True and verdict["first_bad_seq"] is None, verdict
    assert verdict["trusted_checkpoints"] == 4
    assert verdict["anchored"] is True and verdict["anchored_through"] == 9
    # After the last checkpoint: compliance's token, and the verify itself (recorded first).
    assert verdict["unanchored_tail"] == verdict["last_seq"] - 9 == 2
    assert verdict["origin"] == trail.audit_log.signing_key.origin
    assert code == 0, output
    assert "anchored through record 9" in output


@pytest.mark.parametrize(
    ("tampering", "first_bad"),
    [
        (["UPDATE audit_records SET purpose = 'analytics' WHERE seq = 4"], 4),
        (["UPDATE audit_records SET outcome = 'denied' WHERE seq = 5"], 5),
        (["DELETE FROM audit_records WHERE seq = 3"], 3),
        (  # swap records 3 and 4
            [
                "UPDATE audit_records SET seq = -1 WHERE seq = 3",
                "UPDATE audit_records SET seq = 3 WHERE seq = 4",
                "UPDATE audit_records SET seq = 4 WHERE seq = -1",
            ],
            3,
        ),
        (  # insert a forged record at 3, shifting the rest
            [
                "UPDATE audit_records SET seq = seq + 1000 WHERE seq >= 3",
                "UPDATE audit_records SET seq = seq - 999 WHERE seq >= 1003",
                "INSERT INTO audit_records SELECT 3, at, actor_id, actor_role, request_id, "
                "'memory.purge', outcome, subject, memory_ids, target, purpose, reason, "
                "result_count, prev, hash FROM audit_records WHERE seq = 4",
                mend_head,
            ],
            3,
        ),
    ],
    ids=["changed-purpose", "changed-outcome", "deleted", "reordered", "inserted"],
)
def test_tampered_rows_are_caught_and_the_first_bad_record_named(
    client: TestClient,
    trail: Runtime,
    compliance_token: str,
    tmp_path: Path,
    tampering: list[Any],
    first_bad: int,
) -> None:
    sql(trail.audit_engine, *(step for step in tampering if isinstance(step, str)))
    if tampering[-1] is mend_head:  # the head mended, so that appends go on
        mend_head(trail.audit_engine)
    verdict, code, output = verify_both_ways(client, trail, compliance_token, tmp_path)
    assert verdict["ok"] is False
    assert verdict["first_bad_seq"] == first_bad, verdict
    assert code == 1
    assert f"TAMPERED at record {first_bad}" in output


def test_a_tail_cut_below_an_anchor_with_the_head_mended_is_caught(
    client: TestClient, trail: Runtime, compliance_token: str, tmp_path: Path
) -> None:
    replace_trail(trail.audit_engine, records(trail)[:6])
    verdict, code, output = verify_both_ways(client, trail, compliance_token, tmp_path)
    # The trail grew again (the compliance token, the verify), but not into the signed tree.
    assert verdict["ok"] is False
    assert verdict["anchored_through"] == 5
    assert (
        "differ from signed checkpoint 7" in verdict["problem"] or "cut off" in (verdict["problem"])
    )
    assert code == 1 and "TAMPERED" in output


def test_a_trail_rewritten_and_rechained_with_its_checkpoints_deleted_is_caught(
    client: TestClient, trail: Runtime, compliance_token: str, tmp_path: Path
) -> None:
    """Record 6 edited, 6..9 sealed again, head mended, stored checkpoints gone: the database
    is self-consistent, and only the witness's checkpoints at 7 and 9 contradict it."""
    genuine = records(trail)
    forged = rechain([*genuine[:5], replace(genuine[5], outcome="denied"), *genuine[6:]])
    replace_trail(trail.audit_engine, forged)
    verdict, code, output = verify_both_ways(client, trail, compliance_token, tmp_path)
    assert verdict["ok"] is False
    assert verdict["first_bad_seq"] == 6  # 1-5 anchored; the doubt is in 6-7
    assert "records 6 to 7 differ from signed checkpoint 7" in verdict["problem"]
    assert code == 1 and "TAMPERED at record 6" in output

    # Without the witness, the database alone vouches for the forgery:
    export = tmp_path / "export.jsonl"
    key = tmp_path / "public.pem"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        alone = offline_verify(["verify", str(export), "--public-key", str(key)])
        allowed = offline_verify(
            ["verify", str(export), "--public-key", str(key), "--allow-unanchored"]
        )
    assert alone == 1  # nothing anchors it
    assert allowed == 0  # ...which is all the old verifier could say


def test_a_trail_forged_from_scratch_is_caught(
    client: TestClient, trail: Runtime, compliance_token: str, tmp_path: Path
) -> None:
    forged = rechain([replace(r, actor_id="tok_forged") for r in records(trail)[:3]])
    replace_trail(trail.audit_engine, forged)
    verdict, code, output = verify_both_ways(client, trail, compliance_token, tmp_path)
    assert verdict["ok"] is False
    assert verdict["first_bad_seq"] == 1
    assert verdict["anchored_through"] == 0
    assert code == 1 and "TAMPERED at record 1" in output


def test_the_service_will_not_sign_a_tree_that_contradicts_its_last_checkpoint(
    trail: Runtime,
) -> None:
    witness = trail.settings.resolved_audit_witness_dir()
    published = sorted(p.name for p in witness.iterdir())
    genuine = records(trail)
    replace_trail(trail.audit_engine, rechain([replace(genuine[0], action="x"), *genuine[1:]]))
    trail.auditor.record(OPERATOR, "test.after")  # appends go on: reads must not fail
    with pytest.raises(CheckpointRefused, match="does not extend the checkpoint of 9"):
        trail.audit_log.checkpoint()
    assert sorted(p.name for p in witness.iterdir()) == published


def test_stored_checkpoints_alone_anchor_nothing(
    client: TestClient, trail: Runtime, compliance_token: str
) -> None:
    """The database's own checkpoints are checked but vouch for nothing: without the witness
    directory the trail is unanchored, which fails unless allow_unanchored is asked."""
    for note in trail.settings.resolved_audit_witness_dir().iterdir():
        note.unlink()
    headers = bearer(compliance_token)
    verdict = client.get("/v1/audit/verify", headers=headers).json()
    assert verdict["ok"] is False and verdict["first_bad_seq"] is None
    assert verdict["checkpoints"] == 4 and verdict["trusted_checkpoints"] == 0
    assert "nothing is anchored" in verdict["problem"]
    allowed = client.get("/v1/audit/verify", params={"allow_unanchored": True}, headers=headers)
    assert allowed.json()["ok"] is True and allowed.json()["anchored"] is False


def test_an_unreadable_witness_directory_fails_the_verdict_not_the_request(
    client: TestClient, trail: Runtime, compliance_token: str
) -> None:
    (trail.settings.resolved_audit_witness_dir() / "stray.note").write_text("not a note")
    response = client.get("/v1/audit/verify", headers=bearer(compliance_token))
    assert response.status_code == 200
    assert response.json()["ok"] is False
    assert "witness directory cannot be read" in response.json()["problem"]
