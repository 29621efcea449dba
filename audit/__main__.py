"""`python -m audit verify EXPORT --public-key KEY [--checkpoint FILE ...]`

Exit status: 0 when the trail is intact, 1 when it was tampered with (the output names the
first bad record and how), 2 on bad usage (a missing file, a key that is not Ed25519, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from audit.signing import Checkpoint, load_public_key
from audit.verify import verify_export


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audit")
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="verify an exported audit trail offline")
    verify.add_argument("export", type=Path, help="the JSON Lines export (- for stdin)")
    verify.add_argument("--public-key", type=Path, required=True, help="Ed25519 public key, PEM")
    verify.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        help="a signed checkpoint (JSON) kept outside the service; may repeat",
    )
    args = parser.parse_args(argv)

    try:
        public_key = load_public_key(args.public_key.read_bytes())
        checkpoints = [
            Checkpoint.from_dict(json.loads(path.read_text())) for path in args.checkpoint
        ]
        lines = (
            sys.stdin.readlines()
            if str(args.export) == "-"
            else args.export.read_text().splitlines()
        )
    except (OSError, ValueError) as exc:
        print(f"audit verify: {exc}", file=sys.stderr)
        return 2
    result = verify_export(lines, public_key, checkpoints)
    print(json.dumps(result.to_dict(), indent=2))
    if result.ok:
        print(
            f"intact: {result.records} records, {result.checkpoints} checkpoints verified",
            file=sys.stderr,
        )
        return 0
    print(f"TAMPERED at record {result.first_bad_seq}: {result.problem}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
