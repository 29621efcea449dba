"""The JSON Lines export: a header line, then every record and checkpoint, one per line.

    {"type": "header", "format": "memory-store-audit/1", "exported_at": "...", "key_id": "..."}
    {"type": "record", "record": {...}}
    {"type": "checkpoint", "checkpoint": {...}}

The public key is not trusted from the export: the verifier is given it separately.
"""

from __future__ import annotations

import json
from typing import Any

from audit.records import AuditRecord
from audit.signing import Checkpoint

FORMAT = "memory-store-audit/1"


def header_line(*, exported_at: str, key_id: str) -> str:
    return _line({"type": "header", "format": FORMAT, "exported_at": exported_at, "key_id": key_id})


def record_line(record: AuditRecord) -> str:
    return _line({"type": "record", "record": record.to_dict()})


def checkpoint_line(checkpoint: Checkpoint) -> str:
    return _line({"type": "checkpoint", "checkpoint": checkpoint.to_dict()})


def _line(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n"
