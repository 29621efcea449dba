"""MCP: the tools as an MCP client sees them (one definition for stdio and /mcp), and
`memory-store mcp --url` driven by the `mcp` SDK's own client over stdio against a live
server: every tool works through the server's policy and audit, a revoked token fails the
next call, and the MCP process opens no database, key or file of the store."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client import Client

from memory_store.cli import main
from memory_store.config import Settings
from memory_store.domain import Role
from memory_store.mcp_server import build_server
from memory_store.policy.catalogue import Catalogue
from memory_store.runtime import open_runtime
from memory_store.schemas import ContextResult, Erasure, MemoryPage, MemoryPublic
from tests.live_server import LiveServer, console_script, run_cli

CATALOGUE = Catalogue.load(Settings().policy_dir / "catalogue.toml")
HUGE_ID = "m" * 100_000


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    data: dict[str, Any] = result.structured_content or json.loads(result.content[0].text)
    return data


def refused(result: Any) -> str:
    assert result.is_error, result.structured_content
    text: str = result.content[0].text
    return text


class Untouched:
    """A Memories that must not be reached: the tools refuse first."""

    async def remember(
        self, content: str, category: str, expires_at: datetime | None
    ) -> MemoryPublic:
        raise AssertionError("reached remember")

    async def recall(self, query: str, limit: int, max_chars: int) -> ContextResult:
        raise AssertionError("reached recall")

    async def list(self, category: str | None, limit: int, cursor: str | None) -> MemoryPage:
        raise AssertionError("reached list")

    async def forget(self, memory_id: str) -> Erasure:
        raise AssertionError("reached forget")


async def tools_and_refusals() -> dict[str, Any]:
    server = build_server(lambda _ctx: Untouched(), CATALOGUE)
    async with Client(server) as client:
        assert client.server_info is not None
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        calls = {
            "huge id": ("forget", {"memory_id": HUGE_ID}),
            "path in id": ("forget", {"memory_id": "../../v1/me"}),
            "long content": ("remember", {"content": "4111 " * 1000, "category": "finance"}),
            "blank content": ("remember", {"content": "   ", "category": "work"}),
            "unknown category": ("remember", {"content": "x", "category": "gossip"}),
            "naive expiry": (
                "remember",
                {"content": "x", "category": "work", "expires_at": "2030-01-01T00:00:00"},
            ),
            "long query": ("recall", {"query": "q" * 257}),
            "recall limit": ("recall", {"query": "q", "limit": 51}),
            "list limit": ("list", {"limit": 101}),
            "list category": ("list", {"category": "gossip"}),
            "long cursor": ("list", {"cursor": "c" * 513}),
        }
        answers = {
            why: refused(await client.call_tool(name, arguments))
            for why, (name, arguments) in calls.items()
        }
        return {"version": client.server_info.version, "tools": tools, "answers": answers}


def test_the_tools_describe_annotate_and_bound_their_arguments() -> None:
    seen = asyncio.run(tools_and_refusals())
    tools = seen["tools"]
    assert sorted(tools) == ["forget", "list", "recall", "remember"]
    assert seen["version"] == importlib.metadata.version("memory-store")

    remember = tools["remember"].input_schema["properties"]
    assert remember["category"]["enum"] == sorted(CATALOGUE.categories)
    described = remember["category"]["description"]
    for name, category in CATALOGUE.categories.items():
        assert (f"{name} (sensitive)" in described) is category.sensitive
    assert remember["content"]["maxLength"] == 4096 and remember["content"]["description"]
    assert remember["expires_at"]["anyOf"][0]["format"] == "date-time"
    recall = tools["recall"].input_schema["properties"]
    assert recall["query"]["maxLength"] == 256 and recall["limit"]["maximum"] == 50
    listing = tools["list"].input_schema["properties"]
    assert listing["limit"]["maximum"] == 100 and listing["cursor"]["anyOf"][0]["maxLength"] == 512
    assert listing["category"]["anyOf"][0]["enum"] == sorted(CATALOGUE.categories)
    forget = tools["forget"].input_schema["properties"]["memory_id"]
    assert forget["maxLength"] == 64 and forget["description"]
    for tool in tools.values():
        for name, spec in tool.input_schema["properties"].items():
            assert spec.get("description"), (tool.name, name)
        assert tool.output_schema is not None and tool.description

    hints = {
        name: (t.annotations.read_only_hint, t.annotations.destructive_hint)
        for name, t in tools.items()
    }
    assert hints == {
        "recall": (True, None),
        "list": (True, None),
        "remember": (False, False),
        "forget": (False, True),
    }
    assert tools["forget"].annotations.idempotent_hint is True
    assert tools["remember"].annotations.idempotent_hint is False

    # Refused before anything is called; the answer names the argument and the rule, and
    # never echoes what was sent.
    answers = seen["answers"]
    assert "memory_id" in answers["huge id"] and "at most 64" in answers["huge id"]
    assert all(len(text) < 600 for text in answers.values()), answers
    assert not any("mmmm" in t or "4111 4111" in t or "qqqq" in t for t in answers.values())
    assert "at most 4096" in answers["long content"]
    assert "not a category of the catalogue" in answers["unknown category"]
    assert "timezone" in answers["naive expiry"]


# -- over stdio, against a live server ------------------------------------------------------


def mcp_process_files(url: str) -> list[str]:
    """What the `memory-store mcp --url URL` process has open right now (Linux's /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"mcp" in argv and url.encode() in argv:
            fds = entry / "fd"
            return [os.readlink(fds / fd) for fd in os.listdir(fds)]
    raise AssertionError("no `memory-store mcp` process")


async def stdio_session(params: StdioServerParameters, server: LiveServer, token_id: str) -> Any:
    seen: dict[str, Any] = {}
    in_a_month = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        started = await session.initialize()
        seen["version"] = started.server_info.version
        seen["tools"] = sorted(tool.name for tool in (await session.list_tools()).tools)
        kept = structured(
            await session.call_tool(
                "remember", {"content": "prefers a window seat", "category": "preferences"}
            )
        )
        structured(
            await session.call_tool(
                "remember",
                {"content": "vegetarian", "category": "preferences", "expires_at": in_a_month},
            )
        )
        seen["kept"] = kept
        seen["recall"] = structured(await session.call_tool("recall", {"query": "seat on a plane"}))
        seen["list"] = structured(await session.call_tool("list", {"limit": 1}))
        seen["next"] = structured(
            await session.call_tool("list", {"cursor": seen["list"]["next_cursor"]})
        )
        seen["forget"] = structured(await session.call_tool("forget", {"memory_id": kept["id"]}))
        seen["again"] = refused(await session.call_tool("forget", {"memory_id": kept["id"]}))
        seen["after"] = structured(await session.call_tool("list", {}))
        seen["consent"] = refused(
            await session.call_tool("remember", {"content": "asthma", "category": "health"})
        )
        seen["secret"] = refused(
            await session.call_tool(
                "remember", {"content": "card 4111 1111 1111 1111", "category": "finance"}
            )
        )
        seen["huge"] = refused(await session.call_tool("forget", {"memory_id": HUGE_ID}))
        seen["files"] = mcp_process_files(server.base_url)

        revoked = await asyncio.to_thread(run_cli, "tokens", "revoke", token_id)
        assert revoked.returncode == 0, revoked.stderr
        seen["revoked recall"] = refused(await session.call_tool("recall", {"query": "seat"}))
        seen["revoked remember"] = refused(
            await session.call_tool("remember", {"content": "likes tea", "category": "preferences"})
        )
    return seen


def audit_trail(server: LiveServer, compliance: str, actor: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{server.base_url}/v1/audit/events",
        params={"actor": actor, "limit": 1000},
        headers={"Authorization": f"Bearer {compliance}"},
        timeout=30,
    )
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_memory_store_mcp_is_a_client_of_the_server_and_every_call_is_checked(
    server: LiveServer, tmp_path: Path
) -> None:
    runtime = open_runtime(Settings())
    try:
        assistant = runtime.tokens.issue(role=Role.assistant, name="mcp-assistant")
        compliance = runtime.tokens.issue(role=Role.compliance, name="dpo").token
    finally:
        runtime.close()
    server.start()
    # The MCP process gets the token and an empty data dir of its own: were it to open a
    # store (the old in-process mode), its key file and databases would appear there.
    home = tmp_path / "mcp-home"
    home.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "HOME")},
        "MEMORY_STORE_DATA_DIR": str(home),
        "MEMORY_STORE_MCP_TOKEN": assistant.token,
    }
    params = StdioServerParameters(
        command=str(console_script()),
        args=["mcp", "--url", server.base_url, "--user", "alice"],
        env=env,
    )
    seen = asyncio.run(
        asyncio.wait_for(stdio_session(params, server, assistant.record.id), timeout=120)
    )

    assert seen["tools"] == ["forget", "list", "recall", "remember"]
    assert seen["version"] == importlib.metadata.version("memory-store")
    assert seen["recall"]["memories"][0]["content"] == "prefers a window seat"
    assert seen["recall"]["memories"][0]["score"] > 0
    assert [m["content"] for m in seen["list"]["memories"]] == ["vegetarian"]
    assert [m["content"] for m in seen["next"]["memories"]] == ["prefers a window seat"]
    assert seen["forget"]["forgotten"] == seen["kept"]["id"]
    assert seen["forget"]["erasure_id"].startswith("er_")
    assert "/problems/not-found" in seen["again"]
    assert [m["content"] for m in seen["after"]["memories"]] == ["vegetarian"]
    assert "/problems/consent-required" in seen["consent"] and "asthma" not in seen["consent"]
    assert "/problems/secret-refused" in seen["secret"] and "4111 1111" not in seen["secret"]
    assert "at most 64" in seen["huge"] and "mmmm" not in seen["huge"]
    # Revocation holds at the next call, whatever the tool.
    assert "/problems/unauthenticated" in seen["revoked recall"]
    assert "/problems/unauthenticated" in seen["revoked remember"]

    # It held no file of the store: no database, no key, nothing in its data dir or the
    # server's; only its pipes, and the socket to the server.
    files = seen["files"]
    assert any(f.startswith("socket:") for f in files), files
    data_dirs = (str(home), str(server.log_path.parent / "var"))
    assert not [
        f
        for f in files
        if f.startswith(data_dirs) or f.endswith((".db", "-wal", "-shm", ".json", ".key"))
    ], files
    assert list(home.iterdir()) == []

    # The server decided and recorded every call; the 100,000-character id never reached it.
    trail = audit_trail(server, compliance, assistant.record.id)
    acts = {(r["action"], r["outcome"]) for r in trail}
    assert {
        ("memory.write", "allowed"),
        ("memory.write", "denied"),
        ("memory.context", "allowed"),
        ("memory.list", "allowed"),
        ("memory.delete", "allowed"),
        ("memory.delete", "denied"),
    } <= acts
    assert max(len(json.dumps(record)) for record in trail) < 2000


def test_memory_store_mcp_needs_its_url_and_token_and_opens_nothing_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEMORY_STORE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("MEMORY_STORE_MCP_TOKEN", raising=False)
    with pytest.raises(SystemExit) as no_url:
        main(["mcp", "--user", "alice"])
    assert no_url.value.code == 2 and "--url" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad_url:
        main(["mcp", "--url", "file:///etc/passwd", "--user", "alice"])
    assert bad_url.value.code == 2 and "http(s)" in capsys.readouterr().err

    assert main(["mcp", "--url", "http://127.0.0.1:9", "--user", "alice"]) == 2
    assert "MEMORY_STORE_MCP_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("MEMORY_STORE_MCP_TOKEN", "mst_anything")
    url = ["--url", "http://127.0.0.1:9", "--user", "alice"]
    assert main(["mcp", *url, "--purpose", "gossip"]) == 2
    assert "Unknown purpose" in capsys.readouterr().err
    assert not (tmp_path / "var").exists()
