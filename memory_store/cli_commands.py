"""What each `memory-store` command does, once its arguments have parsed (memory_store.cli).

Management commands say nothing but their answer: they log warnings and errors only, unless
MEMORY_STORE_LOG_LEVEL asks for more. A command that needs a store refuses, naming the
folder it looked in, when there is none there, rather than create a new one beside it."""

from __future__ import annotations

import argparse
import errno
import json
import os
import secrets
import socket
import sys
from typing import Any

import structlog
from pydantic import ValidationError

from audit import AnyCheckpoint, load_anchors
from audit.verify import summary
from memory_store import __version__
from memory_store.cli_output import print_table, progress
from memory_store.clock import utc_now
from memory_store.config import Settings
from memory_store.domain import OPERATIONS, OPERATOR, Role
from memory_store.errors import KeyProviderError, Problem
from memory_store.keys.envelope import CONTENT_FORMAT
from memory_store.logging import configure_logging
from memory_store.policy.catalogue import Catalogue
from memory_store.runtime import Runtime, open_engines, open_runtime
from memory_store.storage import migrate
from memory_store.storage.availability import DATABASE_ERRORS, describe, store_exists
from memory_store.storage.legacy_ciphertexts import LegacyCiphertexts
from memory_store.storage.rawdb import RawDB
from memory_store.trail.log import CheckpointRefused

# The commands that may start a brand-new store (saying so); every other one needs one.
CREATES_A_STORE = {("serve", None), ("tokens", "create"), ("db", "upgrade")}


def _say(message: str) -> None:
    print(f"memory-store: {message}", file=sys.stderr)


def where(settings: Settings) -> str:
    """Where the store is, in words that name no secret (a database URL may hold one)."""
    if settings.database_url is None:
        return f"{settings.data_dir} (MEMORY_STORE_DATA_DIR)"
    return "the database at MEMORY_STORE_DATABASE_URL"


def _listening_socket(host: str, port: int) -> socket.socket | None:
    """The server's socket, bound here so that a port already taken is one clear line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "is taken" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
        _say(f"port {port} on {host} {reason}: choose another with --port or MEMORY_STORE_PORT")
        return None
    sock.set_inheritable(True)  # the worker processes of --workers serve it too
    return sock


def _banner(settings: Settings, host: str, port: int, *, new: bool) -> None:
    base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    store = ("a new store in " if new else "the store in ") + where(settings)
    print(
        f"memory-store {__version__} serving {store}\n"
        f"  your page:  {base}/ui/\n"
        f"  API docs:   {base}/docs\n"
        "  a token:    memory-store tokens create --role user --user <your-id>\n"
        "  (stop with Ctrl-C)",
        flush=True,
    )


def _serve(settings: Settings, args: argparse.Namespace, *, new: bool) -> int:
    import uvicorn  # noqa: PLC0415 (only the server needs it)
    from uvicorn.config import STARTUP_FAILURE  # noqa: PLC0415
    from uvicorn.supervisors import Multiprocess  # noqa: PLC0415

    from memory_store.app import create_app, freeze_startup_heap  # noqa: PLC0415

    host, port = args.host or settings.host, args.port or settings.port
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "log_config": None,
        "server_header": False,
    }
    sock = _listening_socket(host, port)
    if sock is None:
        return 1
    workers = args.workers or settings.workers
    if workers == 1:
        app = create_app(settings)
        try:
            _banner(settings, host, port, new=new)
            freeze_startup_heap()
            uvicorn.Server(uvicorn.Config(app, **options)).run(sockets=[sock])
        finally:  # the app's shutdown closes it; not if the server stopped before starting it
            app.state.runtime.close()
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
        freeze_startup_heap()
        # What uvicorn.run(..., workers=N) does, keeping the supervisor to read how its
        # workers ended: one that could not start stops them all, and the command fails.
        config = uvicorn.Config(
            "memory_store.app:worker_app", factory=True, workers=workers, **options
        )
        _banner(settings, host, port, new=new)
        supervisor = Multiprocess(config, sockets=[sock])
        supervisor.run()
    finally:
        runtime.close()  # the sweeper too
    if any(worker.exitcode == STARTUP_FAILURE for worker in supervisor.processes):
        _say("a worker process failed to start (see its log)")
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
        rows = []
        for token in runtime.tokens.list():
            if token.revoked_at:
                status = "revoked"
            elif token.expires_at is not None and token.expires_at <= now:
                status = "expired"
            else:
                status = "active"
            expires = f"{token.expires_at:%Y-%m-%d %H:%M:%S}" if token.expires_at else "-"
            rows.append(
                [
                    token.id,
                    token.role,
                    token.user_id or "-",
                    token.name,
                    token.prefix,
                    f"{token.created_at:%Y-%m-%d %H:%M:%S}",
                    expires,
                    status,
                ]
            )
        headers = ["id", "role", "user", "name", "prefix", "created", "expires", "status"]
        print_table(headers, rows)
    elif args.action == "revoke":
        if not runtime.tokens.revoke(args.token_id):
            _say(f"no active token {args.token_id}")
            return 1
        print(f"revoked {args.token_id}")
    return 0


def _keys(runtime: Runtime, args: argparse.Namespace) -> int:
    if args.action == "status":
        for kek in runtime.keys.status():
            mark = " (current)" if kek.current else ""
            print(f"KEK v{kek.version}{mark}: wraps {kek.wraps} data key(s)")
    elif args.action == "rotate":
        total = sum(kek.wraps for kek in runtime.keys.status())
        with progress("rewrapping data keys", total) as advance:
            report = runtime.keys.rotate(progress=advance)
        print(f"KEK v{report.kek_version} is current; rewrapped {report.rewrapped} data key(s)")
        if report.failed:
            _say(f"{report.failed} data key(s) could not be unwrapped")
            return 1
    elif args.action == "retire" and args.version is None:
        retired = runtime.keys.retire_unused()
        print("destroyed " + (", ".join(f"KEK v{v}" for v in retired) or "nothing"))
    elif args.action == "retire":
        try:
            runtime.keys.retire(args.version)
        except KeyProviderError as exc:
            _say(f"cannot retire KEK v{args.version}: {exc}")
            return 1
        print(f"KEK v{args.version} destroyed")
    return 0


def _audit(runtime: Runtime, args: argparse.Namespace) -> int:
    records = runtime.audit_store.head().seq
    if args.action == "verify":
        trusted: list[AnyCheckpoint] | None = None
        try:
            if args.checkpoints:
                trusted = [c for path in args.checkpoints for c in load_anchors(path)]
        except (OSError, ValueError) as exc:
            _say(f"checkpoints: {exc}")
            return 2
        with progress("verifying the audit trail", records) as advance:
            result = runtime.audit.verify(
                OPERATOR,
                purpose=OPERATIONS,
                trusted=trusted,
                allow_unanchored=args.allow_unanchored,
                progress=advance,
            )
        print(json.dumps(result.to_dict(), indent=2))
        print(summary(result), file=sys.stderr)
        return 0 if result.ok else 1
    if args.action == "export":
        lines = runtime.audit.export(OPERATOR, purpose=OPERATIONS)
        with progress("exporting the audit trail", records + 1) as advance:
            handle = sys.stdout if args.output is None else args.output.open("w")
            try:
                for line in lines:
                    handle.write(line)
                    advance(1)
            finally:
                if handle is not sys.stdout:
                    handle.close()
        if args.output is not None:
            print(f"wrote {args.output}", file=sys.stderr)
    elif args.action == "checkpoint":
        try:
            signed = runtime.audit_log.checkpoint()
        except (CheckpointRefused, ValueError) as exc:
            _say(f"refusing to sign: {exc}")
            return 1
        if signed is None:
            _say("the trail is empty; nothing to sign")
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
    from memory_store.mcp_stdio import serve_stdio  # noqa: PLC0415

    token = os.environ.get("MEMORY_STORE_MCP_TOKEN", "").strip()
    if not token:
        _say(
            "set MEMORY_STORE_MCP_TOKEN to an assistant token "
            "(memory-store tokens create --role assistant)"
        )
        return 2
    # The catalogue (policy data, not the store's) gives the tools their category enum.
    try:
        catalogue = Catalogue.load(settings.policy_dir / "catalogue.toml")
    except (OSError, ValueError) as exc:
        _say(f"the catalogue: {exc}")
        return 2
    catalogue.purpose(args.purpose)
    serve_stdio(args.url.rstrip("/"), token, args.user, args.purpose, catalogue)
    return 0


def _db(settings: Settings, args: argparse.Namespace) -> int:
    engines = open_engines(settings)
    try:
        if args.action == "upgrade":
            stale = [
                b for b in migrate.BRANCHES if migrate.current(engines[b], b) != migrate.head(b)
            ]
            with progress("upgrading the databases", len(stale)) as advance:
                for branch in stale:
                    migrate.upgrade(engines[branch], branch)
                    advance(1)
            if LegacyCiphertexts(RawDB(engines["memory"])).content_format() < CONTENT_FORMAT:
                # What Alembic cannot do without the keys: re-encrypt the memories of a
                # store made before content format 2. Opening the runtime does it.
                open_runtime(settings, schema="upgrade").close()
        rows = [
            [branch, migrate.current(engines[branch], branch) or "nothing", migrate.head(branch)]
            for branch in migrate.BRANCHES
        ]
        print_table(["database", "at", "head"], rows)
    finally:
        for engine in engines.values():
            engine.dispose()
    return 0


def _retention(runtime: Runtime, args: argparse.Namespace) -> int:
    if args.action == "sweep":
        with progress("purging expired memories", None) as advance:
            purged = runtime.sweeper.sweep(progress=advance)
        print(f"purged {purged} expired memor{'y' if purged == 1 else 'ies'}")
    return 0


def _settings() -> Settings | None:
    """Settings() from the environment, or None after saying which variable is wrong and why
    (never its value: it may be a database URL with a password)."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = f"MEMORY_STORE_{str(error['loc'][0]).upper()}" if error["loc"] else "settings"
            _say(f"{name}: {error['msg']}")
        return None


def _log_level(settings: Settings, command: str) -> str:
    """The server logs at its level; a management command is quiet (warnings and errors)
    unless MEMORY_STORE_LOG_LEVEL was set."""
    if command == "serve" or "log_level" in settings.model_fields_set:
        return settings.log_level
    return "warning"


def run(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings is None:
        return 2
    configure_logging(settings.log_format, _log_level(settings, args.command))
    structlog.contextvars.bind_contextvars(request_id="cli_" + secrets.token_hex(8))
    try:
        if args.command == "mcp":
            return _mcp(settings, args)
        return _run(settings, args)
    except (KeyProviderError, migrate.SchemaOutOfDate) as exc:
        _say(f"refusing to start: {exc}")
        return 1
    except Problem as exc:
        _say(exc.detail)
        return 2
    except DATABASE_ERRORS as exc:  # locked past the busy timeout, or unreachable
        _say(describe(exc))
        return 1


def _run(settings: Settings, args: argparse.Namespace) -> int:
    exists = store_exists(settings.resolved_database_url())
    if not exists and (args.command, getattr(args, "action", None)) not in CREATES_A_STORE:
        _say(
            f"no store in {where(settings)}; start one with `memory-store serve`, "
            "or set MEMORY_STORE_DATA_DIR to the folder of an existing store"
        )
        return 1
    if not exists and args.command != "serve":
        _say(f"creating a new store in {where(settings)}")
    if args.command == "serve":
        return _serve(settings, args, new=not exists)
    if args.command == "db":
        return _db(settings, args)
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
