"""ASGI middleware: a request id on every log line and response, a body size limit, and one
access log line per request that names the route template, never the raw path or query."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memory_store.api.problems import problem_body
from memory_store.errors import BodyTooLarge
from memory_store.logging import get_logger

_log = get_logger("memory_store.access")
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{8,64}")


class _AccessLogger:
    """The access logger, bound once per structlog configuration. The module's logger is a
    lazy proxy that assembles a new bound logger on every call (the configuration does not
    cache loggers, so that reconfiguring takes effect); here that is done once, and again
    only when the configuration has changed."""

    def __init__(self) -> None:
        self._config: tuple[object, ...] = ()
        self._logger: Any = None

    def get(self) -> Any:
        config = structlog.get_config()
        current = (
            config["processors"],
            config["logger_factory"],
            config["wrapper_class"],
            config["context_class"],
        )
        if len(current) != len(self._config) or any(
            now is not then for now, then in zip(current, self._config, strict=True)
        ):
            self._logger = _log.bind()
            self._config = current
        return self._logger


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._access_log = _AccessLogger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Only two headers matter here: look for them rather than decode every header.
        incoming = declared_length = b""
        for name, value in scope["headers"]:
            lowered = name.lower()
            if lowered == b"x-request-id":
                incoming = value
            elif lowered == b"content-length":
                declared_length = value
        # The service's own id goes on every log line and audit record. A client's id (kept
        # when well formed) is echoed back and logged beside it; the trail gets it only as a
        # keyed hash (trail/recorder.py): it may name a person, and the trail is forever.
        server_id = "req_" + secrets.token_hex(12)
        client_id = incoming.decode("ascii") if _REQUEST_ID.fullmatch(incoming) else None
        request_id = client_id or server_id  # what the caller sees: their own, if they sent one
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        if client_id is None:
            structlog.contextvars.bind_contextvars(request_id=server_id)
        else:
            structlog.contextvars.bind_contextvars(
                request_id=server_id, client_request_id=client_id
            )
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            declared = int(declared_length or 0)
        except ValueError:
            declared = 0
        try:
            if declared > self.max_body_bytes:
                raise BodyTooLarge(f"The body may be at most {self.max_body_bytes} bytes")
            replay = await self._buffer_body(receive)
            await self.app(scope, replay, send_with_id)
        except BodyTooLarge as exc:
            await self._send_problem(send_with_id, exc, request_id)
        finally:
            route: Any = scope.get("route")
            self._access_log.get().info(
                "request",
                method=scope["method"],
                route=getattr(route, "path", "unmatched"),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()

    async def _buffer_body(self, receive: Receive) -> Receive:
        """Read the whole body first (it is small by definition) so that an oversized one
        is refused before any handler runs, whatever Content-Length claimed."""
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body_bytes:
                raise BodyTooLarge(f"The body may be at most {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        pending: list[Message] = [{"type": "http.request", "body": b"".join(chunks)}]

        async def replay() -> Message:
            return pending.pop() if pending else await receive()

        return replay

    @staticmethod
    async def _send_problem(send: Send, exc: BodyTooLarge, request_id: str) -> None:
        body = problem_body(exc, request_id)
        await send(
            {
                "type": "http.response.start",
                "status": exc.status,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# The user page is static and same-origin only: no inline script or style, no framing, no
# referrer (a memory id in a link must not leak), no MIME sniffing.
UI_SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


# /docs and /redoc: their pages start their scripts inline and ReDoc styles itself inline,
# so those are allowed; nothing is loaded from elsewhere (ReDoc's sidebar credit is an image
# from its maker's site, Swagger UI's validator badge one from swagger.io: both blocked, so
# a reader of the docs connects to no one but this server).
DOCS_SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
    "worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


class UISecurityHeadersMiddleware:
    """Adds UI_SECURITY_HEADERS to every response under `prefix`, errors and redirects too."""

    def __init__(self, app: ASGIApp, *, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "") if scope["type"] == "http" else ""
        if path != self.prefix and not path.startswith(self.prefix + "/"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *(header for header in UI_SECURITY_HEADERS if header[0] not in names),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)
