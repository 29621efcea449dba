"""GET /v1/audit/proof: that one record is in a signed tree, checked with nothing but the
proof and the public key (audit/proofs.py, `python -m audit check-proof`)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from audit import load_public_key
from audit.__main__ import main as audit_main
from audit.proofs import check_inclusion_proof
from memory_store.runtime import Runtime
from tests.conftest import PURPOSE, assert_problem, bearer, write_memory


@pytest.fixture
def signed(client: TestClient, runtime: Runtime, assistant_token: str) -> Runtime:
    """Records 1..7, a checkpoint at 5 and one at 7."""
    for _ in range(2):
        memory = write_memory(client, assistant_token)
        client.get(
            f"/v1/users/alice/memories/{memory['id']}",
            params={"purpose": PURPOSE},
            headers=bearer(assistant_token),
        )
    runtime.audit_log.checkpoint()
    write_memory(client, assistant_token)
    runtime.auditor.record(None, "test.append")
    runtime.audit_log.checkpoint()
    return runtime


def proof(client: TestClient, token: str, **params: Any) -> Any:
    return client.get("/v1/audit/proof", params=params, headers=bearer(token))


def public_key(client: TestClient, token: str) -> Any:
    return load_public_key(client.get("/v1/audit/public-key", headers=bearer(token)).content)


@pytest.mark.parametrize("seq", [1, 3, 6, 7])
def test_a_proof_of_any_record_checks_against_the_latest_signed_tree(
    client: TestClient, signed: Runtime, compliance_token: str, seq: int
) -> None:
    response = proof(client, compliance_token, seq=seq)
    assert response.status_code == 200, response.text
    document = response.json()
    assert (document["record"]["seq"], document["leaf_index"]) == (seq, seq - 1)
    assert document["tree_size"] == 7
    checkpoint = check_inclusion_proof(document, public_key(client, compliance_token))
    assert checkpoint.size == 7


def test_a_proof_against_an_earlier_signed_tree(
    client: TestClient, signed: Runtime, compliance_token: str
) -> None:
    document = proof(client, compliance_token, seq=2, tree_size=5).json()
    assert document["tree_size"] == 5
    assert check_inclusion_proof(document, public_key(client, compliance_token)).size == 5


@pytest.mark.parametrize(
    "alter",
    [
        lambda d: d["record"].update(purpose="analytics"),
        lambda d: d["path"].__setitem__(0, base64.b64encode(b"\0" * 32).decode()),
        lambda d: d["path"].pop(),
        lambda d: d.update(leaf_index=d["leaf_index"] + 1),
        lambda d: d.update(tree_size=5),
    ],
    ids=["record-edited", "path-node-changed", "path-cut", "other-leaf", "other-size"],
)
def test_an_altered_proof_does_not_check(
    client: TestClient, signed: Runtime, compliance_token: str, alter: Any
) -> None:
    document = proof(client, compliance_token, seq=3).json()
    alter(document)
    with pytest.raises(ValueError):
        check_inclusion_proof(document, public_key(client, compliance_token))


def test_check_proof_on_the_command_line_exits_0_then_1(
    client: TestClient, signed: Runtime, compliance_token: str, tmp_path: Path
) -> None:
    saved, key = tmp_path / "proof.json", tmp_path / "key.pem"
    document = proof(client, compliance_token, seq=4).json()
    saved.write_text(json.dumps(document))
    key.write_bytes(client.get("/v1/audit/public-key", headers=bearer(compliance_token)).content)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert audit_main(["check-proof", str(saved), "--public-key", str(key)]) == 0
        document["record"]["result_count"] = 99
        saved.write_text(json.dumps(document))
        assert audit_main(["check-proof", str(saved), "--public-key", str(key)]) == 1
        saved.write_text("[1, 2]")
        assert audit_main(["check-proof", str(saved), "--public-key", str(key)]) == 2
    assert "included: record 4 is in the signed tree of 7 records" in err.getvalue()
    assert "NOT INCLUDED" in err.getvalue()


def test_a_record_beyond_every_signed_tree_or_an_unsigned_size_is_404(
    client: TestClient, signed: Runtime, compliance_token: str
) -> None:
    assert_problem(proof(client, compliance_token, seq=500), 404, "not-found")
    assert_problem(proof(client, compliance_token, seq=2, tree_size=6), 404, "not-found")
    assert_problem(proof(client, compliance_token, seq=6, tree_size=5), 404, "not-found")


@pytest.mark.parametrize(
    "params",
    [{}, {"seq": 0}, {"seq": "x"}, {"seq": 2**70}, {"seq": 1, "tree_size": 0}],
    ids=["no-seq", "zero", "text", "huge", "zero-size"],
)
def test_a_bad_proof_request_is_422(
    client: TestClient, signed: Runtime, compliance_token: str, params: dict[str, Any]
) -> None:
    assert_problem(proof(client, compliance_token, **params), 422)


def test_a_proof_request_is_on_the_record(
    client: TestClient, signed: Runtime, compliance_token: str
) -> None:
    proof(client, compliance_token, seq=2)
    last = list(signed.audit_store.iter_records())[-1]
    assert (last.action, last.actor_role, last.target) == ("audit.read", "compliance", "seq:2")
