"""The JSON Lines export: a header line, then every record and checkpoint, one per line.

    {"type": "header", "format": "memory-store-audit/2", "exported_at": "...",
     "key_id": "...", "origin": "memory-store.local/audit/..."}
    {"type": "record", "record": {...}}
    {"type": "checkpoint", "note": "<a tlog-checkpoint signed note>"}
    {"type": "checkpoint", "checkpoint": {...}}       (a legacy v1 checkpoint)

Format 1 had no origin and only legacy checkpoints; the verifier reads both. The public key is
not trusted from the export, and neither are its checkpoints: they are what the database
held, and only checkpoints kept elsewhere anchor the trail (audit/verify.py).
"""

from __future__ import annotations

import json
from typing import Any

from audit.note import TreeCheckpoint
from audit.records import AuditRecord
from audit.signing import Checkpoint

FORMAT = "memory-store-audit/2"
FORMATS = frozenset({"memory-store-audit/1", FORMAT})


def header_line(*, exported_at: str, key_id: str, origin: str) -> str:
    return _line(
        {
            "type": "header",
            "format": FORMAT,
            "exported_at": exported_at,
            "key_id": key_id,
            "origin": origin,
        }
    )


def record_line(record: AuditRecord) -> str:
    return _line({"type": "record", "record": record.to_dict()})


def checkpoint_line(checkpoint: Checkpoint | TreeCheckpoint) -> str:
    if isinstance(checkpoint, TreeCheckpoint):
        return note_line(checkpoint.note)
    return _line({"type": "checkpoint", "checkpoint": checkpoint.to_dict()})


def note_line(note: str) -> str:
    """A checkpoint line for a signed note, as stored: the verifier parses it."""
    return _line({"type": "checkpoint", "note": note})


def parse_checkpoint(document: dict[str, Any]) -> Checkpoint | TreeCheckpoint:
    """The checkpoint of a checkpoint line; raises ValueError (or KeyError, TypeError)."""
    if "note" in document:
        note = document["note"]
        if not isinstance(note, str):
            raise ValueError("a checkpoint note is text")
        return TreeCheckpoint.parse(note)
    return Checkpoint.from_dict(document["checkpoint"])


def _line(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n"
