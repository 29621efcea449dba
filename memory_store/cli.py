"""The `memory-store` command: its arguments and its entry point.

This module imports only what parsing needs (argparse and the shared words), so that
`memory-store --help` answers at once; each command's code (memory_store.cli_commands), and with
it the server, the databases and the keys, is imported once the arguments have parsed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from memory_store import __version__
from memory_store.cli_arguments import (
    duration_argument,
    url_argument,
    user_id_argument,
    workers_argument,
)
from memory_store.domain import MAX_WORKERS, Role


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memory-store",
        description="A privacy-first memory service for AI assistants. "
        "Settings come from MEMORY_STORE_* environment variables (see README).",
    )
    parser.add_argument("--version", action="version", version=f"memory-store {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", help="default: MEMORY_STORE_HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, help="default: MEMORY_STORE_PORT or 8000")
    serve.add_argument(
        "--workers",
        type=workers_argument,
        help=f"server processes, 1-{MAX_WORKERS} (default: MEMORY_STORE_WORKERS or 1); "
        "rate limits are per process",
    )

    tokens = commands.add_parser("tokens", help="issue, list and revoke API tokens")
    token_commands = tokens.add_subparsers(dest="action", required=True)
    create = token_commands.add_parser("create", help="issue a token (shown once)")
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument("--name", help="a label for whom the token is for")
    create.add_argument(
        "--user", type=user_id_argument, help="the user id a user token is bound to"
    )
    create.add_argument(
        "--expires-in",
        type=duration_argument,
        metavar="DURATION",
        help="refuse the token after this long (90d, 12h, 30m, 3600s); default: until revoked",
    )
    token_commands.add_parser("list", help="list tokens (never the tokens themselves)")
    revoke = token_commands.add_parser("revoke", help="revoke a token at once")
    revoke.add_argument("token_id", help="the token's id (tok_...), from `tokens list`")

    keys = commands.add_parser("keys", help="key-encryption key operations")
    key_commands = keys.add_subparsers(dest="action", required=True)
    key_commands.add_parser("status", help="KEK versions and how many data keys each wraps")
    key_commands.add_parser(
        "rotate", help="add a KEK version and rewrap every data key (safe while serving)"
    )
    retire = key_commands.add_parser(
        "retire",
        help="destroy an old KEK version that no data key uses any more "
        "(without VERSION: every such version)",
    )
    retire.add_argument("version", type=int, nargs="?")

    audit = commands.add_parser("audit", help="the audit trail")
    audit_commands = audit.add_subparsers(dest="action", required=True)
    verify = audit_commands.add_parser(
        "verify",
        help="verify the stored trail: chain, signatures, and that the checkpoints kept "
        "outside the database anchor it (exit 1 if tampered with or unanchored)",
    )
    verify.add_argument(
        "--checkpoints",
        "--checkpoint",
        dest="checkpoints",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="the checkpoints to trust: a note file, a legacy JSON checkpoint, or a "
        "directory of them; may repeat (default: the witness directory, "
        "MEMORY_STORE_AUDIT_WITNESS_DIR)",
    )
    verify.add_argument(
        "--allow-unanchored",
        action="store_true",
        help="accept an intact trail that no trusted checkpoint anchors",
    )
    export = audit_commands.add_parser("export", help="write the trail as JSON Lines")
    export.add_argument("--output", "-o", type=Path, help="default: standard output")
    audit_commands.add_parser(
        "checkpoint",
        help="sign the trail's Merkle tree now, publish the checkpoint to the witnesses and "
        "print it (a tlog-checkpoint note)",
    )
    audit_commands.add_parser("public-key", help="print the checkpoint-verifying key (PEM)")

    mcp = commands.add_parser(
        "mcp",
        help="serve the MCP tools (remember, recall, list, forget) over stdio, as a client "
        "of a running server",
        description="Serve MCP over stdio for one user and purpose. Every tool call is a "
        "request to the server at --url with the assistant token in MEMORY_STORE_MCP_TOKEN; "
        "this process opens no database, key or file of the store.",
    )
    mcp.add_argument(
        "--url", type=url_argument, required=True, help="the server, e.g. http://127.0.0.1:8000"
    )
    mcp.add_argument("--user", type=user_id_argument, required=True, help="whose memories")
    mcp.add_argument("--purpose", default="personalization", help="the declared purpose")

    db = commands.add_parser("db", help="the database schemas (Alembic migrations)")
    db_commands = db.add_subparsers(dest="action", required=True)
    db_commands.add_parser("upgrade", help="bring every database to the current schema")
    db_commands.add_parser("current", help="each database's schema revision, and the head")

    retention = commands.add_parser("retention", help="retention of memories")
    retention_commands = retention.add_subparsers(dest="action", required=True)
    retention_commands.add_parser("sweep", help="delete every expired memory now")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from memory_store.cli_commands import run  # noqa: PLC0415 (the slow part, once needed)

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
