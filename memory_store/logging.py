"""structlog setup: JSON (or console) lines, each with the request id, never a secret.

`redact_secrets` is the last line of defence: whatever a caller passes, fields that could
hold memory contents, search text, tokens or keys are replaced before rendering.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any, TextIO

import orjson
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


def render_json(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> str:
    """One JSON line (orjson: several times faster than the json module). Dataclasses and
    other objects are rendered by repr(), as the json module's fallback did, never field by
    field: a field kept out of repr() (a key's secret) stays out of the log too."""
    try:
        return orjson.dumps(event_dict, default=repr, option=_ORJSON_OPTIONS).decode()
    except TypeError:  # an integer beyond 64 bits, say
        return json.dumps(event_dict, default=repr)


_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_NON_STR_KEYS
    | orjson.OPT_UTC_Z
)


class _LineWriter:
    """structlog's logger for the service's own lines: writes each rendered line, whole, to
    the stream of the latest `configure_logging` (a logger made before a reconfiguration
    writes where the new one says)."""

    stream: TextIO = sys.stderr

    def __init__(self, name: str) -> None:
        self.name = name  # what add_logger_name puts on each line

    def msg(self, line: str) -> None:
        _LineWriter.stream.write(line + "\n")

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


@functools.cache
def _line_writer(name: str = "memory_store") -> _LineWriter:
    return _LineWriter(name)


def configure_logging(
    log_format: str = "json", level: str = "info", stream: TextIO | None = None
) -> None:
    """The service's own lines take structlog's lean path: a level-filtering logger (a
    disabled level costs nothing), the request's context, redaction, then one rendered line
    written whole; no standard-library record on the way (it cost ~40 us a line). The
    standard library's loggers (uvicorn, alembic) go through the same processors as a
    foreign chain, to the same stream. `log_format` "auto": readable lines on a terminal,
    JSON lines otherwise."""
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
        render_json if log_format == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    _LineWriter.stream = out
    structlog.configure(
        processors=[*shared, summarize_exc_info, renderer],
        logger_factory=_line_writer,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
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
    """A logger whose lines carry `logger=name`."""
    return structlog.get_logger(name)
