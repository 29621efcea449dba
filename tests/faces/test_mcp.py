"""The MCP server, driven by a real MCP client session (the `mcp` package's client over
stdio): it lists its tools, remembers, recalls, lists and forgets, through the same policy
and audit as the HTTP API."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters, stdio_client

from memory_store.config import Settings
from memory_store.domain import Role
from memory_store.runtime import open_runtime
from tests.live_server import console_script

CONSOLE_SCRIPT = console_script()


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    data: dict[str, Any] = result.structured_content or json.loads(result.content[0].text)
    return data


async def session_run(env: dict[str, str]) -> dict[str, Any]:
    params = StdioServerParameters(
        command=str(CONSOLE_SCRIPT), args=["mcp", "--user", "alice"], env=env
    )
    seen: dict[str, Any] = {}
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = await session.list_tools()
        seen["tools"] = sorted(tool.name for tool in tools.tools)
        kept = structured(
            await session.call_tool(
                "remember", {"content": "prefers a window seat", "category": "preferences"}
            )
        )
        structured(
            await session.call_tool(
                "remember", {"content": "vegetarian", "category": "preferences"}
            )
        )
        seen["kept"] = kept
        seen["recall"] = structured(await session.call_tool("recall", {"query": "seat on a plane"}))
        seen["list"] = structured(await session.call_tool("list", {}))
        seen["forget"] = structured(await session.call_tool("forget", {"memory_id": kept["id"]}))
        seen["after"] = structured(await session.call_tool("list", {}))
        refused = await session.call_tool("remember", {"content": "asthma", "category": "health"})
        seen["refused"] = (refused.is_error, refused.content[0].text)
        secret = await session.call_tool(
            "remember", {"content": "card 4111 1111 1111 1111", "category": "finance"}
        )
        seen["secret"] = (secret.is_error, secret.content[0].text)
    return seen


def test_an_mcp_client_lists_tools_remembers_recalls_lists_and_forgets(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", retention_sweep_seconds=0)
    runtime = open_runtime(settings)
    issued = runtime.tokens.issue(role=Role.assistant, name="mcp-assistant")
    runtime.close()
    env = {
        # PYTHONPATH too: the server must import the code under test, wherever it is checked out.
        **{
            k: v
            for k, v in os.environ.items()
            if k.startswith(("PATH", "PYTHONPATH", "MEMORY_STORE_"))
        },
        "MEMORY_STORE_DATA_DIR": str(settings.data_dir),
        "MEMORY_STORE_MCP_TOKEN": issued.token,
        "MEMORY_STORE_RETENTION_SWEEP_SECONDS": "0",
    }
    seen = asyncio.run(asyncio.wait_for(session_run(env), timeout=60))

    assert seen["tools"] == ["forget", "list", "recall", "remember"]
    assert seen["recall"]["memories"][0]["content"] == "prefers a window seat"
    assert {m["content"] for m in seen["list"]["memories"]} == {
        "prefers a window seat",
        "vegetarian",
    }
    assert seen["forget"]["forgotten"] == seen["kept"]["id"]
    assert seen["forget"]["erasure_id"].startswith("er_")
    assert [m["content"] for m in seen["after"]["memories"]] == ["vegetarian"]
    assert seen["refused"][0] is True and "consent-required" in seen["refused"][1]
    assert seen["secret"][0] is True and "secret-refused" in seen["secret"][1]
    assert "4111" not in seen["secret"][1]

    # Same service, same policy, same audit trail: the MCP session's acts are on the record.
    runtime = open_runtime(settings)
    try:
        trail = [
            (r.action, r.outcome)
            for r in runtime.audit_store.iter_records()
            if r.actor_id == issued.record.id
        ]
    finally:
        runtime.close()
    assert ("memory.write", "allowed") in trail
    assert ("memory.context", "allowed") in trail
    assert ("memory.list", "allowed") in trail
    assert ("memory.delete", "allowed") in trail
    assert ("memory.write", "denied") in trail
