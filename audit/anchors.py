"""Reading the checkpoints kept outside the trail: a file, or a directory of them (a witness
directory holds one note per checkpoint). A file is a tlog-checkpoint note, or a legacy v1
checkpoint as JSON. Names do not matter; hidden files (a writer's temporary ones) are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

from audit.note import MAX_NOTE_BYTES, TreeCheckpoint
from audit.signing import Checkpoint


def parse_anchor(text: str) -> Checkpoint | TreeCheckpoint:
    """One checkpoint from a file's text; raises ValueError."""
    if text.lstrip().startswith("{"):
        try:
            return Checkpoint.from_dict(json.loads(text))
        except RecursionError:
            raise ValueError("malformed checkpoint: nested too deep") from None
    return TreeCheckpoint.parse(text)


def load_anchors(path: Path) -> list[Checkpoint | TreeCheckpoint]:
    """Every checkpoint in `path` (a file, or a directory's files). Raises OSError when it
    cannot be read and ValueError naming the first file that is not a checkpoint."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if not p.name.startswith(".") and p.is_file())
    else:
        files = [path]
    anchors = []
    for file in files:
        with file.open("rb") as handle:
            raw = handle.read(MAX_NOTE_BYTES + 1)
        try:
            anchors.append(parse_anchor(raw.decode("utf-8")))
        except ValueError as exc:
            raise ValueError(f"{file}: {exc}") from None
    return anchors
