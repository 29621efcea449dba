"""`python -m audit verify EXPORT --public-key PEM --checkpoints PATH [--allow-unanchored]`
`python -m audit check-proof PROOF --public-key PEM`

Only the checkpoints given with --checkpoints (a note file, a legacy JSON checkpoint, or a
directory of them, such as a copy of the service's witness directory) anchor the trail: the
export's own checkpoints are checked but vouch for nothing. Exit status: 0 when the trail is
intact and anchored (or intact and --allow-unanchored), 1 when it was tampered with (the
output names the first bad record and how), contradicts a checkpoint, or nothing anchors it,
2 on bad usage (a missing file, a key that is not Ed25519, a file that is not a checkpoint).

check-proof reads an inclusion proof (GET /v1/audit/proof) and exits 0 when its record is in
the tree a checkpoint of this log signed, 1 when it is not, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from audit.anchors import load_anchors
from audit.proofs import check_inclusion_proof
from audit.signing import load_public_key
from audit.verify import AnyCheckpoint, summary, verify_export


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audit")
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="verify an exported audit trail offline")
    verify.add_argument("export", type=Path, help="the JSON Lines export (- for stdin)")
    verify.add_argument("--public-key", type=Path, required=True, help="Ed25519 public key, PEM")
    verify.add_argument(
        "--checkpoints",
        "--checkpoint",
        dest="checkpoints",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="signed checkpoints kept outside the service: a file, or a directory of them "
        "(a witness directory); may repeat. Only these anchor the trail",
    )
    verify.add_argument(
        "--allow-unanchored",
        action="store_true",
        help="accept a trail no checkpoint from outside anchors (exit 0 if intact)",
    )
    proof = commands.add_parser(
        "check-proof", help="check that a record is in a signed tree (an inclusion proof)"
    )
    proof.add_argument("proof", type=Path, help="the proof, JSON, as GET /v1/audit/proof gives it")
    proof.add_argument("--public-key", type=Path, required=True, help="Ed25519 public key, PEM")
    args = parser.parse_args(argv)
    if args.command == "check-proof":
        return _check_proof(args.proof, args.public_key)

    try:
        public_key = load_public_key(args.public_key.read_bytes())
        trusted: list[AnyCheckpoint] = []
        for path in args.checkpoints:
            trusted += load_anchors(path)
        lines = (
            sys.stdin.readlines()
            if str(args.export) == "-"
            else args.export.read_text().splitlines()
        )
    except (OSError, ValueError) as exc:
        print(f"audit verify: {exc}", file=sys.stderr)
        return 2
    result = verify_export(lines, public_key, trusted, allow_unanchored=args.allow_unanchored)
    print(json.dumps(result.to_dict(), indent=2))
    print(summary(result), file=sys.stderr)
    return 0 if result.ok else 1


def _check_proof(path: Path, key: Path) -> int:
    try:
        public_key = load_public_key(key.read_bytes())
        document = json.loads(path.read_text())
        if not isinstance(document, dict):
            raise ValueError("not an inclusion proof: not an object")
    except (OSError, ValueError, RecursionError) as exc:
        print(f"audit check-proof: {exc}", file=sys.stderr)
        return 2
    try:
        checkpoint = check_inclusion_proof(document, public_key)
    except ValueError as exc:
        print(f"NOT INCLUDED: {exc}", file=sys.stderr)
        return 1
    seq = document["record"]["seq"]
    print(
        f"included: record {seq} is in the signed tree of {checkpoint.size} records",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
