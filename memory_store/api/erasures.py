"""The status of an erasure, and how a forget of one memory answers with it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Response, status
from fastapi.responses import JSONResponse

from memory_store.api.deps import ServicesDep, problem_responses
from memory_store.schemas import Erasure

router = APIRouter(prefix="/v1/erasures", tags=["user"])

PreferHeader = Annotated[
    str | None,
    Header(
        description="`return=representation`: answer 200 with the erasure's status instead "
        "of an empty 204 (RFC 7240)."
    ),
]
ERASURE_RESPONSES: dict[int | str, dict[str, Any]] = {
    204: {"description": "Forgotten. `Location` is the erasure's status."},
    200: {"model": Erasure, "description": "Forgotten (with `Prefer: return=representation`)."},
}


def erasure_answer(erasure: Erasure, prefer: str | None) -> Response:
    """204 with the status's address; the status itself when the caller prefers it."""
    location = {"Location": f"/v1/erasures/{erasure.id}"}
    wanted = {part.strip() for part in (prefer or "").split(";")}
    if "return=representation" in wanted:
        return JSONResponse(erasure.model_dump(mode="json"), headers=location)
    return Response(status_code=status.HTTP_204_NO_CONTENT, headers=location)


@router.get("/{erasure_id}", responses=problem_responses(404, 422))
def erasure_status(
    erasure_id: Annotated[str, Path(min_length=1, max_length=64)], services: ServicesDep
) -> Erasure:
    """Whether an erasure is final: once it is, no copy of what was forgotten (a backup, a
    database log) can be decrypted. No token needed: the id, from the answer to the forget,
    is unguessable, and the status names no user and no memory."""
    return services.erasures.status(erasure_id)
