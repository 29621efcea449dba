"""Answers the hot routes build themselves: the model serialised once, by pydantic-core,
straight to JSON bytes. Returned as a Response, it skips FastAPI's validation of the return
value against the route's model, a second pass over every item of a page that the service
built as that model already (the route still declares the model, for the OpenAPI document)."""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel


def model_response(
    model: BaseModel, *, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        model.model_dump_json(),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )
