"""The audit record and its canonical encoding.

A record says who did what to whose data, when, why and with what outcome; never what the data
was. The subject is a pseudonym (a keyed hash), never a user id. The canonical encoding is JSON
with sorted keys, no insignificant white space and ASCII only, so the same record always gives
the same bytes, whatever produced it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

OUTCOMES = frozenset({"allowed", "denied"})

# One encoder, built once: json.dumps with these options would build a new one per call.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)


def canonical(document: dict[str, Any]) -> bytes:
    """The one byte encoding of a record or checkpoint that hashes and signatures cover."""
    return _CANONICAL.encode(document).encode("ascii")


@dataclass(frozen=True)
class AuditRecord:
    """One access or change. `seq`, `prev` and `hash` are set when the record is chained."""

    at: str  # RFC 3339, UTC, microseconds: 2026-11-26T10:00:00.000000Z
    actor_id: str
    actor_role: str
    request_id: str
    action: str
    outcome: str  # "allowed" or "denied"
    subject: str | None = None  # the pseudonym of the person the data is about
    memory_ids: tuple[str, ...] = field(default_factory=tuple)
    target: str | None = None  # what else the action was on: a token id, a key version
    purpose: str | None = None
    reason: str | None = None
    result_count: int | None = None
    seq: int = 0
    prev: str = ""
    hash: str = ""

    def body(self) -> dict[str, Any]:
        """Everything the hash covers: every field but the hash itself. Built field by field:
        `dataclasses.asdict` deep-copies and cost most of the verifier's time; every value is
        immutable, so the dict holds the same values (tests compare the two)."""
        return {
            "at": self.at,
            "actor_id": self.actor_id,
            "actor_role": self.actor_role,
            "request_id": self.request_id,
            "action": self.action,
            "outcome": self.outcome,
            "subject": self.subject,
            "memory_ids": list(self.memory_ids),
            "target": self.target,
            "purpose": self.purpose,
            "reason": self.reason,
            "result_count": self.result_count,
            "seq": self.seq,
            "prev": self.prev,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "hash": self.hash}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> AuditRecord:
        """Parse a record as exported; raises ValueError on a malformed one, including one
        that carries a field the schema does not have (it could smuggle anything)."""
        if not isinstance(document, dict):
            raise ValueError("malformed audit record: not an object")
        unknown = set(document) - _FIELDS
        if unknown:
            raise ValueError(f"malformed audit record: unknown fields {sorted(unknown)}")
        try:
            return cls(
                at=_text(document["at"]),
                actor_id=_text(document["actor_id"]),
                actor_role=_text(document["actor_role"]),
                request_id=_text(document["request_id"]),
                action=_text(document["action"]),
                outcome=_text(document["outcome"]),
                subject=_optional_text(document.get("subject")),
                memory_ids=tuple(_text(m) for m in _list(document.get("memory_ids", []))),
                target=_optional_text(document.get("target")),
                purpose=_optional_text(document.get("purpose")),
                reason=_optional_text(document.get("reason")),
                result_count=_optional_int(document.get("result_count")),
                seq=_int(document["seq"]),
                prev=_text(document["prev"]),
                hash=_text(document["hash"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed audit record: {exc!r}") from None


_FIELDS = frozenset(
    {
        "at",
        "actor_id",
        "actor_role",
        "request_id",
        "action",
        "outcome",
        "subject",
        "memory_ids",
        "target",
        "purpose",
        "reason",
        "result_count",
        "seq",
        "prev",
        "hash",
    }
)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _optional_int(value: Any) -> int | None:
    return None if value is None else _int(value)
