"""Rendering refusals as RFC 9457 problem+json, and the app's exception handlers."""

from __future__ import annotations

import json
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from memory_store.errors import (
    InvalidRequest,
    KeyProviderError,
    KeysUnavailable,
    MalformedBody,
    Problem,
)
from memory_store.logging import get_logger

PROBLEM_JSON = "application/problem+json"
_log = get_logger("memory_store.errors")


def problem_body(problem: Problem, request_id: str) -> bytes:
    document: dict[str, Any] = {
        "type": problem.type_uri,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        **problem.extensions,
        "request_id": request_id,
    }
    return json.dumps(document).encode()


def problem_response(problem: Problem, request: Request) -> Response:
    request_id = getattr(request.state, "request_id", "")
    headers = dict(problem.headers)
    if problem.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return Response(
        problem_body(problem, request_id),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _validation_problem(exc: RequestValidationError) -> Problem:
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return MalformedBody()
    # Only where and what kind: pydantic's "input" would echo request contents back.
    described = [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "type": error.get("type"),
            "msg": error.get("msg"),
        }
        for error in errors
    ]
    return InvalidRequest("The request does not match the API", errors=described)


async def _record_refusal(request: Request, problem: Problem) -> None:
    """An authenticated caller's refused request goes on the trail (services/refusals.py)."""
    principal = getattr(request.state, "principal", None)
    if principal is None or problem.audited:
        return
    route = getattr(request.scope.get("route"), "path", None)
    if route is None:
        return
    await run_in_threadpool(
        request.app.state.services.refusals.record,
        principal,
        problem,
        method=request.method,
        route=route,
        path=dict(request.path_params),
        query=dict(request.query_params),
    )


def log_unexpected(exc: BaseException) -> None:
    """A bug. Log where it happened, not the message: messages can quote data."""
    frames = traceback.extract_tb(exc.__traceback__)
    _log.error(
        "unhandled_error",
        error_type=type(exc).__name__,
        where=[f"{f.filename}:{f.lineno} in {f.name}" for f in frames[-8:]],
    )


def log_key_provider_failure(exc: KeyProviderError) -> KeysUnavailable:
    """The operator's problem, not the caller's. Logged by its type only (`memory-store keys
    status` or the server's start says what is wrong), and answered without details."""
    _log.error("key_provider_failed", error_type=type(exc).__name__)
    return KeysUnavailable("The service cannot reach its keys; try again later")


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        await _record_refusal(request, exc)
        return problem_response(exc, request)

    @app.exception_handler(KeyProviderError)
    async def _keys(request: Request, exc: KeyProviderError) -> Response:
        return problem_response(log_key_provider_failure(exc), request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problem = _validation_problem(exc)
        await _record_refusal(request, problem)
        return problem_response(problem, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        request_id = getattr(request.state, "request_id", "")
        body = {
            "type": "about:blank",
            "title": str(exc.detail),
            "status": exc.status_code,
            "request_id": request_id,
        }
        return Response(
            json.dumps(body),
            status_code=exc.status_code,
            media_type=PROBLEM_JSON,
            headers=exc.headers,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log_unexpected(exc)
        request_id = getattr(request.state, "request_id", "")
        body = {
            "type": "/problems/internal-error",
            "title": "Internal error",
            "status": 500,
            "detail": "The service failed; the request id identifies it in the logs.",
            "request_id": request_id,
        }
        return Response(json.dumps(body), status_code=500, media_type=PROBLEM_JSON)
