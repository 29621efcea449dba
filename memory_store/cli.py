"""The `memory-store` command: serve, tokens, keys."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from pydantic import ValidationError
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from audit import AnyCheckpoint, load_anchors
from audit.verify import summary
from memory_store.app import create_app
from memory_store.cli_arguments import (
    duration_argument,
    url_argument,
    user_id_argument,
    workers_argument,
)
from memory_store.clock import utc_now
from memory_store.config import MAX_WORKERS, Settings
from memory_store.domain import OPERATIONS, OPERATOR, Role
from memory_store.errors import KeyProviderError, Problem
from memory_store.keys.envelope import CONTENT_FORMAT
from memory_store.logging import configure_logging
from memory_store.mcp_stdio import serve_stdio
from memory_store.policy.catalogue import Catalogue
from memory_store.runtime import Runtime, open_engines, open_runtime
from memory_store.storage import migrate
from memory_store.storage.memories import LegacyCiphertexts
from memory_store.storage.rawdb import RawDB
from memory_store.trail.log import CheckpointRefused


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memory-store",
        description="A privacy-first memory service for AI assistants. "
        "Settings come from MEMORY_STORE_* environment variables (see README).",
    )
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


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    options: dict[str, Any] = {
        "host": args.host or settings.host,
        "port": args.port or settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "log_config": None,
        "server_header": False,
    }
    workers = args.workers or settings.workers
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
        return 0
    # Several processes share the listening socket. This one supervises them: it opens the
    # runtime first, so that the migrations, the key file and the signing key are done once,
    # and a bad key or schema stops the start here, before any worker is spawned. It then
    # runs the one retention sweeper; each worker (memory_store.app:worker_app, spawned
    # afresh, with this environment) serves requests only.
    # Each worker reads its settings from this environment: tell it how many share the
    # rate limits (app.py splits them), whether the count came from --workers or not.
    os.environ["MEMORY_STORE_WORKERS"] = str(workers)
    runtime = open_runtime(settings)
    try:
        runtime.sweeper.start(settings.retention_sweep_seconds)
        runtime.indexer.start(settings.recall_index_seconds)
        runtime.keys.start()
        # What uvicorn.run(..., workers=N) does, keeping the supervisor to read how its
        # workers ended: one that could not start stops them all, and the command fails.
        config = uvicorn.Config(
            "memory_store.app:worker_app", factory=True, workers=workers, **options
        )
        supervisor = Multiprocess(config, sockets=[config.bind_socket()])
        supervisor.run()
    finally:
        runtime.close()  # the sweeper too
    if any(worker.exitcode == STARTUP_FAILURE for worker in supervisor.processes):
        print("memory-store: a worker process failed to start (see its log)", file=sys.stderr)
        return 1
    return 0


def _tokens(runtime: Runtime, args: argparse.Namespace) -> int:
    if args.action == "create":
        role = Role(args.role)
        name = args.name or (args.user if role is Role.user else role.value)
        issued = runtime.tokens.issue(
            role=role, name=name, user_id=args.user, expires_in=args.expires_in
        )
        record = issued.record
        bound = f" for user {record.user_id}" if record.user_id else ""
        until = f", expires {record.expires_at:%Y-%m-%d %H:%M:%S} UTC" if record.expires_at else ""
        print(f"created {record.id}: role {record.role}{bound}, name {record.name!r}{until}")
        print("the token is shown once; keep it secret:")
        print(issued.token)
    elif args.action == "list":
        now = utc_now()
        print(
            f"{'id':<21} {'role':<10} {'user':<20} {'name':<20} {'prefix':<13} "
            f"{'created':<19} {'expires':<19} status"
        )
        for token in runtime.tokens.list():
            expires = f"{token.expires_at:%Y-%m-%d %H:%M:%S}" if token.expires_at else "-"
            if token.revoked_at:
                status = "revoked"
            elif token.expires_at is not None and token.expires_at <= now:
                status = "expired"
            else:
                status = "active"
            print(
                f"{token.id:<21} {token.role:<10} {token.user_id or '-':<20} "
                f"{token.name[:20]:<20} {token.prefix:<13} "
                f"{token.created_at:%Y-%m-%d %H:%M:%S} {expires:<19} {status}"
            )
    elif args.action == "revoke":
        if not runtime.tokens.revoke(args.token_id):
            print(f"no active token {args.token_id}", file=sys.stderr)
            return 1
        print(f"revoked {args.token_id}")
    return 0


def _keys(runtime: Runtime, args: argparse.Namespace) -> int:
    if args.action == "status":
        for kek in runtime.keys.status():
            mark = " (current)" if kek.current else ""
            print(f"KEK v{kek.version}{mark}: wraps {kek.wraps} data key(s)")
    elif args.action == "rotate":
        report = runtime.keys.rotate()
        print(f"KEK v{report.kek_version} is current; rewrapped {report.rewrapped} data key(s)")
        if report.failed:
            print(f"{report.failed} data key(s) could not be unwrapped", file=sys.stderr)
            return 1
    elif args.action == "retire" and args.version is None:
        retired = runtime.keys.retire_unused()
        print("destroyed " + (", ".join(f"KEK v{v}" for v in retired) or "nothing"))
    elif args.action == "retire":
        try:
            runtime.keys.retire(args.version)
        except KeyProviderError as exc:
            print(f"memory-store: cannot retire KEK v{args.version}: {exc}", file=sys.stderr)
            return 1
        print(f"KEK v{args.version} destroyed")
    return 0


def _audit(runtime: Runtime, args: argparse.Namespace) -> int:
    if args.action == "verify":
        trusted: list[AnyCheckpoint] | None = None
        try:
            if args.checkpoints:
                trusted = [c for path in args.checkpoints for c in load_anchors(path)]
        except (OSError, ValueError) as exc:
            print(f"memory-store: checkpoints: {exc}", file=sys.stderr)
            return 2
        result = runtime.audit.verify(
            OPERATOR,
            purpose=OPERATIONS,
            trusted=trusted,
            allow_unanchored=args.allow_unanchored,
        )
        print(json.dumps(result.to_dict(), indent=2))
        print(summary(result), file=sys.stderr)
        return 0 if result.ok else 1
    if args.action == "export":
        lines = runtime.audit.export(OPERATOR, purpose=OPERATIONS)
        if args.output is None:
            sys.stdout.writelines(lines)
        else:
            with args.output.open("w") as handle:
                handle.writelines(lines)
            print(f"wrote {args.output}", file=sys.stderr)
    elif args.action == "checkpoint":
        try:
            signed = runtime.audit_log.checkpoint()
        except (CheckpointRefused, ValueError) as exc:
            print(f"memory-store: refusing to sign: {exc}", file=sys.stderr)
            return 1
        if signed is None:
            print("memory-store: the trail is empty; nothing to sign", file=sys.stderr)
            return 1
        sys.stdout.write(signed.note)
        print(f"published to {runtime.audit_log.witness_directory.path}", file=sys.stderr)
    elif args.action == "public-key":
        sys.stdout.write(runtime.audit_log.signing_key.public_pem().decode())
    return 0


def _mcp(settings: Settings, args: argparse.Namespace) -> int:
    """MCP over stdio as a client of the server at --url: stdout carries the protocol, so
    everything else goes to stderr. It never opens the runtime: the host of an MCP client
    gets the token, and no key, database or file of the store."""
    token = os.environ.get("MEMORY_STORE_MCP_TOKEN", "").strip()
    if not token:
        print(
            "memory-store: set MEMORY_STORE_MCP_TOKEN to an assistant token "
            "(memory-store tokens create --role assistant)",
            file=sys.stderr,
        )
        return 2
    # The catalogue (policy data, not the store's) gives the tools their category enum.
    try:
        catalogue = Catalogue.load(settings.policy_dir / "catalogue.toml")
    except (OSError, ValueError) as exc:
        print(f"memory-store: the catalogue: {exc}", file=sys.stderr)
        return 2
    catalogue.purpose(args.purpose)
    serve_stdio(args.url.rstrip("/"), token, args.user, args.purpose, catalogue)
    return 0


def _db(settings: Settings, args: argparse.Namespace) -> int:
    engines = open_engines(settings)
    try:
        if args.action == "upgrade":
            migrate.upgrade_all(engines)
            if LegacyCiphertexts(RawDB(engines["memory"])).content_format() < CONTENT_FORMAT:
                # What Alembic cannot do without the keys: re-encrypt the memories of a
                # store made before content format 2. Opening the runtime does it.
                open_runtime(settings, schema="upgrade").close()
        for branch in migrate.BRANCHES:
            print(
                f"{branch}: at {migrate.current(engines[branch], branch) or 'nothing'}, "
                f"head {migrate.head(branch)}"
            )
    finally:
        for engine in engines.values():
            engine.dispose()
    return 0


def _retention(runtime: Runtime, args: argparse.Namespace) -> int:
    if args.action == "sweep":
        purged = runtime.sweeper.sweep()
        print(f"purged {purged} expired memor{'y' if purged == 1 else 'ies'}")
    return 0


def _settings() -> Settings | None:
    """Settings() from the environment, or None after saying which variable is wrong and why
    (never its value: it may be a database URL with a password)."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            where = f"MEMORY_STORE_{str(error['loc'][0]).upper()}" if error["loc"] else "settings"
            print(f"memory-store: {where}: {error['msg']}", file=sys.stderr)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = _settings()
    if settings is None:
        return 2
    configure_logging(settings.log_format, settings.log_level)
    structlog.contextvars.bind_contextvars(request_id="cli_" + secrets.token_hex(8))
    try:
        if args.command == "serve":
            return _serve(settings, args)
        if args.command == "db":
            return _db(settings, args)
        if args.command == "mcp":
            return _mcp(settings, args)
        # A management command creates a brand-new store, but never migrates one a server
        # may be using: that is `db upgrade`'s job.
        runtime = open_runtime(settings, schema="create" if settings.migrate_on_start else "check")
        try:
            handler = {
                "tokens": _tokens,
                "keys": _keys,
                "audit": _audit,
                "retention": _retention,
            }[args.command]
            return handler(runtime, args)
        finally:
            runtime.close()
    except (KeyProviderError, migrate.SchemaOutOfDate) as exc:
        print(f"memory-store: refusing to start: {exc}", file=sys.stderr)
        return 1
    except Problem as exc:
        print(f"memory-store: {exc.detail}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
