"""The `memory-store` command: serve, tokens, keys."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

import uvicorn

from memory_store.app import create_app
from memory_store.config import Settings
from memory_store.errors import KeyProviderError, Problem
from memory_store.logging import configure_logging
from memory_store.models import Role
from memory_store.runtime import Runtime, open_runtime
from memory_store.schemas import USER_ID_PATTERN


def _user_id(value: str) -> str:
    if not re.fullmatch(USER_ID_PATTERN, value):
        raise argparse.ArgumentTypeError("user ids are 1-128 characters of [A-Za-z0-9._@-]")
    return value


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

    tokens = commands.add_parser("tokens", help="issue, list and revoke API tokens")
    token_commands = tokens.add_subparsers(dest="action", required=True)
    create = token_commands.add_parser("create", help="issue a token (shown once)")
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument("--name", help="a label for whom the token is for")
    create.add_argument("--user", type=_user_id, help="the user id a user token is bound to")
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
        "retire", help="destroy an old KEK version that no data key uses any more"
    )
    retire.add_argument("version", type=int)

    retention = commands.add_parser("retention", help="retention of memories")
    retention_commands = retention.add_subparsers(dest="action", required=True)
    retention_commands.add_parser("sweep", help="delete every expired memory now, for good")
    return parser


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    host = args.host or settings.host
    port = args.port or settings.port
    app = create_app(settings)
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        server_header=False,
    )
    return 0


def _tokens(runtime: Runtime, args: argparse.Namespace) -> int:
    if args.action == "create":
        role = Role(args.role)
        name = args.name or (args.user if role is Role.user else role.value)
        issued = runtime.tokens.issue(role=role, name=name, user_id=args.user)
        record = issued.record
        bound = f" for user {record.user_id}" if record.user_id else ""
        print(f"created {record.id}: role {record.role}{bound}, name {record.name!r}")
        print("the token is shown once; keep it secret:")
        print(issued.token)
    elif args.action == "list":
        print(f"{'id':<21} {'role':<10} {'user':<20} {'prefix':<13} {'created':<20} status")
        for token in runtime.tokens.list():
            status = "revoked" if token.revoked_at else "active"
            print(
                f"{token.id:<21} {token.role:<10} {token.user_id or '-':<20} "
                f"{token.prefix:<13} {token.created_at:%Y-%m-%d %H:%M:%S} {status}"
            )
    elif args.action == "revoke":
        if not runtime.tokens.revoke(args.token_id):
            print(f"no active token {args.token_id}", file=sys.stderr)
            return 1
        print(f"revoked {args.token_id}")
    return 0


def _keys(runtime: Runtime, args: argparse.Namespace) -> int:
    keyring = runtime.keyring
    provider = keyring.provider
    if args.action == "status":
        counts = keyring.count_by_version()
        current = provider.current_version()
        for version in provider.versions():
            mark = " (current)" if version == current else ""
            print(f"KEK v{version}{mark}: wraps {counts.get(version, 0)} data key(s)")
    elif args.action == "rotate":
        version = provider.add_version()
        report = keyring.rewrap_all()
        print(f"KEK v{version} is current; rewrapped {report.rewrapped} data key(s)")
        if report.failed:
            print(f"{report.failed} data key(s) could not be unwrapped", file=sys.stderr)
            return 1
    elif args.action == "retire":
        try:
            keyring.retire_kek(args.version)
        except KeyProviderError as exc:
            print(f"memory-store: cannot retire KEK v{args.version}: {exc}", file=sys.stderr)
            return 1
        print(f"KEK v{args.version} destroyed")
    return 0


def _retention(runtime: Runtime, args: argparse.Namespace) -> int:
    if args.action == "sweep":
        purged = runtime.sweeper.sweep()
        print(f"purged {purged} expired memor{'y' if purged == 1 else 'ies'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    try:
        if args.command == "serve":
            return _serve(settings, args)
        runtime = open_runtime(settings)
        try:
            handler = {"tokens": _tokens, "keys": _keys, "retention": _retention}[args.command]
            return handler(runtime, args)
        finally:
            runtime.close()
    except KeyProviderError as exc:
        print(f"memory-store: refusing to start: {exc}", file=sys.stderr)
        return 1
    except Problem as exc:
        print(f"memory-store: {exc.detail}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
