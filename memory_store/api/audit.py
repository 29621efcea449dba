"""Compliance routes over the audit trail: /v1/audit/*."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse

from memory_store.api.deps import PrincipalDep, ServicesDep, problem_responses
from memory_store.domain import AuditQuery
from memory_store.errors import InvalidRequest
from memory_store.schemas import (
    USER_ID_PATTERN,
    AuditCheckpointPublic,
    AuditEventPage,
    AuditEventPublic,
    AuditInclusionProof,
    AuditVerification,
)

router = APIRouter(prefix="/v1/audit", tags=["compliance"])

_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$"


@router.get("/events", responses=problem_responses(401, 403, 422))
def list_events(
    principal: PrincipalDep,
    services: ServicesDep,
    actor: Annotated[str | None, Query(max_length=64, description="A token id.")] = None,
    user_id: Annotated[
        str | None, Query(pattern=USER_ID_PATTERN, description="Resolved to its pseudonym.")
    ] = None,
    action: Annotated[str | None, Query(max_length=32)] = None,
    purpose: Annotated[str | None, Query(max_length=64)] = None,
    outcome: Literal["allowed", "denied"] | None = None,
    since: Annotated[str | None, Query(pattern=_TIME, description="UTC, RFC 3339, Z.")] = None,
    until: Annotated[str | None, Query(pattern=_TIME, description="UTC, exclusive.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> AuditEventPage:
    """Audit records, newest first, filtered."""
    page = services.audit.events(
        principal,
        AuditQuery(
            actor_id=actor,
            action=action,
            purpose=purpose,
            outcome=outcome,
            since=_normal_time(since),
            until=_normal_time(until),
        ),
        user_id=user_id,
        limit=limit,
        cursor=cursor,
    )
    return AuditEventPage(
        items=[AuditEventPublic(**record.to_dict()) for record in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/verify", responses=problem_responses(401, 403, 422))
def verify(
    principal: PrincipalDep,
    services: ServicesDep,
    allow_unanchored: Annotated[
        bool, Query(description="Call an intact trail no checkpoint anchors ok.")
    ] = False,
) -> AuditVerification:
    """Verify the stored trail: the hash chain, every checkpoint's signature, that the trail
    extends every checkpoint, and how far the checkpoints of the witness directory (never the
    database's own) anchor it."""
    result = services.audit.verify(principal, allow_unanchored=allow_unanchored)
    return AuditVerification(**result.to_dict())


@router.get("/checkpoints", responses=problem_responses(401, 403))
def checkpoints(principal: PrincipalDep, services: ServicesDep) -> list[AuditCheckpointPublic]:
    """Signed checkpoints as the database holds them. Those that anchor the trail are the
    copies kept outside it (the witness directory, the witness URL)."""
    return [
        AuditCheckpointPublic(
            seq=c.seq,
            hash=c.hash,
            at=c.at,
            key_id=c.key_id,
            signature=c.signature,
            format="c2sp-tlog-checkpoint" if c.note is not None else "memory-store-checkpoint/1",
            note=c.note,
        )
        for c in services.audit.checkpoints(principal)
    ]


@router.get("/proof", responses=problem_responses(401, 403, 404, 422))
def proof(
    principal: PrincipalDep,
    services: ServicesDep,
    seq: Annotated[int, Query(ge=1, le=2**62, description="The record.")],
    tree_size: Annotated[
        int | None, Query(ge=1, le=2**62, description="Default: the latest signed tree.")
    ] = None,
) -> AuditInclusionProof:
    """That record `seq` is in a signed tree: its RFC 6962 inclusion proof and the tree's
    signed checkpoint. Reads the tree's record hashes: it costs O(tree size)."""
    found = services.audit.proof(principal, seq, tree_size=tree_size)
    return AuditInclusionProof(
        record=AuditEventPublic(**found.record.to_dict()),
        leaf_index=found.record.seq - 1,
        tree_size=found.tree_size,
        path=[base64.b64encode(node).decode() for node in found.path],
        checkpoint=found.checkpoint,
    )


@router.get(
    "/public-key",
    response_class=Response,
    responses={200: {"content": {"application/x-pem-file": {}}}, **problem_responses(401, 403)},
)
def public_key(principal: PrincipalDep, services: ServicesDep) -> Response:
    """The Ed25519 public key that verifies checkpoints (PEM)."""
    return Response(services.audit.public_key_pem(principal), media_type="application/x-pem-file")


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}, **problem_responses(401, 403)},
)
def export(principal: PrincipalDep, services: ServicesDep) -> StreamingResponse:
    """The whole trail as JSON Lines, for `python -m audit verify EXPORT --public-key KEY`."""
    lines: Iterator[str] = services.audit.export(principal)
    return StreamingResponse(
        lines,
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="audit-export.jsonl"'},
    )


def _normal_time(value: str | None) -> str | None:
    """A real time (2026-13-45 has the right shape and is none), its fractional seconds
    padded to six digits so that text comparison orders times correctly."""
    if value is None:
        return None
    base, _, fraction = value[:-1].partition(".")
    try:
        datetime.strptime(base, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise InvalidRequest("since and until must be real times: UTC, RFC 3339, Z") from None
    return f"{base}.{fraction.ljust(6, '0')}Z"
