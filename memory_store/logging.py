"""structlog setup: JSON (or console) lines, each with the request id, never a secret.

`redact_secrets` is the last line of defence: whatever a caller passes, fields that could
hold memory contents, search text, tokens or keys are replaced before rendering.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "[redacted]"
_SECRET_FIELDS = frozenset(
    {
        "authorization",
        "body",
        "content",
        "cookie",
        "dek",
        "kek",
        "key",
        "password",
        "q",
        "query",
        "query_string",
        "secret",
        "source",
        "token",
    }
)


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for name in list(event_dict):
        if name.lower() in _SECRET_FIELDS:
            event_dict[name] = REDACTED
    return event_dict


def summarize_exc_info(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """An exception on a log line becomes its type and where it was raised, never its
    message or the values in its frames: a driver's message can quote a row (a user id, a
    ciphertext), a parser's the input it choked on. Whoever logs it (uvicorn's error logger
    included), this is the only rendering."""
    exc_info = event_dict.pop("exc_info", None)
    if exc_info is None or exc_info is False:
        return event_dict
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    exc_type, _value, tb = exc_info
    if exc_type is None:
        return event_dict
    frames = traceback.extract_tb(tb)[-8:]
    event_dict["error_type"] = exc_type.__name__
    event_dict["where"] = [f"{f.filename}:{f.lineno} in {f.name}" for f in frames]
    return event_dict


def configure_logging(
    log_format: str = "json", level: str = "info", stream: TextIO | None = None
) -> None:
    """Route structlog and the standard library (uvicorn included) through one pipeline.
    `log_format` "auto": readable lines on a terminal, JSON lines otherwise."""
    out = stream or sys.stderr
    if log_format == "auto":
        log_format = "console" if out.isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            summarize_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # pycasbin logs the whole policy at start and every refused request (with its attributes).
    logging.getLogger("casbin").setLevel(logging.ERROR)
    # httpx logs whole URLs at info, query strings (search text) included.
    for name in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Uvicorn's access log prints raw query strings (search text); ours logs the route only.
    logging.getLogger("uvicorn.access").disabled = True
    # The MCP SDK logs a line per request at info and protocol frames at debug, as messages:
    # out of the redaction's reach, so only its warnings and errors.
    logging.getLogger("mcp").setLevel(logging.WARNING)
    # Alembic says which dialect it talks to on every look at a schema; only a migration that
    # runs ("Running upgrade ...") is news.
    migration = logging.getLogger("alembic.runtime.migration")
    migration.filters = [_MigrationChatter()]


class _MigrationChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(("Context impl", "Will assume"))


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)
