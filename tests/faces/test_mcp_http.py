"""MCP at /mcp (streamable HTTP, stateless, JSON answers), served by the server itself.

In process (the test client): every request is authenticated as an API request is (401
problem without, with a bad or with a revoked token; the same rate limits), names whose
memories and why in its query, and runs the tools as the request's principal, audited as the
API's calls are. Against a live server: the `mcp` SDK's streamable HTTP client drives every
tool, and a revoked token fails its next call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from memory_store.app import create_app
from memory_store.config import Settings
from memory_store.domain import Role
from memory_store.runtime import Runtime, open_runtime
from tests.conftest import assert_problem, bearer, issue_token
from tests.live_server import LiveServer, run_cli

ACCEPT = {"Accept": "application/json, text/event-stream"}


def rpc(
    client: TestClient,
    token: str | None,
    method: str,
    params: dict[str, Any] | None = None,
    query: str = "user_id=alice",
    **kwargs: Any,
) -> httpx.Response:
    """One JSON-RPC request, as an MCP client POSTs it (stateless: no session needed)."""
    headers = {**ACCEPT, **(bearer(token) if token else {})}
    message = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
    return client.post(f"/mcp?{query}", json=message, headers=headers, **kwargs)


def call(
    client: TestClient, token: str, tool: str, target: str = "user_id=alice", **arguments: Any
) -> dict[str, Any]:
    response = rpc(client, token, "tools/call", {"name": tool, "arguments": arguments}, target)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def trail(runtime: Runtime) -> list[Any]:
    return list(runtime.audit_store.iter_records())


def test_mcp_without_a_valid_token_is_401_before_anything_else(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    before = len(trail(runtime))
    for token in (None, "mst_not-a-token"):
        for query in ("user_id=alice", "", "user_id=../x&purpose=gossip"):
            refused = rpc(client, token, "tools/list", query=query)
            assert_problem(refused, 401, "unauthenticated")
            assert refused.headers["www-authenticate"] == "Bearer"
    # Each refusal recorded as the API's are, and nothing else happened.
    assert {(r.action, r.outcome) for r in trail(runtime)[before:]} == {("auth", "denied")}

    issued = runtime.tokens.issue(role=Role.assistant, name="soon revoked")
    assert not call(client, issued.token, "list")["isError"]
    assert runtime.tokens.revoke(issued.record.id)
    assert_problem(rpc(client, issued.token, "tools/call", {"name": "list"}), 401)

    # Only POST: stateless, there is no stream to GET and no session to DELETE.
    headers = {**ACCEPT, **bearer(assistant_token)}
    assert client.get("/mcp?user_id=alice", headers=headers).status_code == 405
    assert client.delete("/mcp?user_id=alice", headers=headers).status_code == 405


def test_mcp_outside_the_apps_lifespan_is_503_not_a_crash(
    app: FastAPI, assistant_token: str
) -> None:
    # No `with`: the lifespan, which runs the MCP transport, never starts.
    body = assert_problem(rpc(TestClient(app), assistant_token, "tools/list"), 503)
    assert body["type"] == "/problems/mcp-not-serving"


def test_mcp_names_whose_memories_and_why_in_its_query(
    client: TestClient, assistant_token: str
) -> None:
    for query in ("", "user_id=", "user_id=al/ice", "user_id=" + "a" * 129):
        body = assert_problem(rpc(client, assistant_token, "tools/list", query=query), 422)
        assert body["type"] == "/problems/invalid-request" and "user_id" in body["detail"]
    unknown = rpc(client, assistant_token, "tools/list", query="user_id=alice&purpose=gossip")
    assert_problem(unknown, 422, "unknown-purpose")
    assert rpc(client, assistant_token, "tools/list").status_code == 200


def test_mcp_calls_are_the_apis_calls_same_principal_policy_and_audit(
    client: TestClient, runtime: Runtime, assistant_token: str, alice_token: str
) -> None:
    started = rpc(
        client,
        assistant_token,
        "initialize",
        {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    ).json()["result"]
    assert started["serverInfo"]["name"] == "memory-store"

    written = rpc(
        client,
        assistant_token,
        "tools/call",
        {
            "name": "remember",
            "arguments": {"content": "likes green tea", "category": "preferences"},
        },
    )
    memory = written.json()["result"]["structuredContent"]
    # The same memory through the API, with the same token.
    got = client.get(
        f"/v1/users/alice/memories/{memory['id']}",
        params={"purpose": "personalization"},
        headers=bearer(assistant_token),
    )
    assert got.json()["content"] == "likes green tea"
    # Recorded as the request's principal, under the request's id.
    record = next(r for r in reversed(trail(runtime)) if r.action == "memory.write")
    assert record.outcome == "allowed" and list(record.memory_ids) == [memory["id"]]
    assert record.request_id == written.headers["x-request-id"]
    assert record.actor_id == runtime.tokens.authenticate(f"Bearer {assistant_token}").token_id

    recalled = call(client, assistant_token, "recall", query="green tea")["structuredContent"]
    assert [m["id"] for m in recalled["memories"]] == [memory["id"]]
    # Another purpose is another decision: analytics needs the user's opt-in.
    analytics = call(client, assistant_token, "list", target="user_id=alice&purpose=analytics")
    assert analytics["isError"] is False and analytics["structuredContent"]["memories"] == []
    # A user token may not use the assistant's tools, here as on the API.
    mine = call(client, alice_token, "list")
    assert mine["isError"] and "/problems/forbidden" in mine["content"][0]["text"]
    # Consent is the user's: withdrawn, the next call sees nothing; forgetting still works.
    client.put(
        "/v1/me/consents/personalization/preferences",
        json={"granted": False},
        headers=bearer(alice_token),
    )
    withdrawn = call(client, assistant_token, "recall", query="tea")
    assert withdrawn["structuredContent"]["memories"] == []
    forgotten = call(client, assistant_token, "forget", memory_id=memory["id"])
    assert forgotten["structuredContent"]["erasure_id"].startswith("er_")
    assert client.get(f"/v1/erasures/{forgotten['structuredContent']['erasure_id']}").is_success


def test_a_huge_argument_is_refused_before_any_use_case_and_never_audited(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    before = len(trail(runtime))
    huge = rpc(
        client,
        assistant_token,
        "tools/call",
        {"name": "forget", "arguments": {"memory_id": "m" * 100_000}},
    )
    assert_problem(huge, 413, "body-too-large")
    for memory_id in ("m" * 65, "../../v1/me", "mem_x?purpose=analytics"):
        answer = call(client, assistant_token, "forget", memory_id=memory_id)
        assert answer["isError"] and memory_id not in answer["content"][0]["text"]
    assert trail(runtime)[before:] == []


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[tuple[TestClient, Runtime]]:
    settings = Settings(
        data_dir=tmp_path / "var",
        retention_sweep_seconds=0,
        kek_rotate_every=0,
        assistant_rate_limit_per_minute=1,
        rate_limit_burst_seconds=1,
    )
    runtime = open_runtime(settings)
    with TestClient(create_app(settings, runtime)) as client:
        yield client, runtime
    runtime.close()


def test_mcp_shares_the_apis_rate_limit(limited: tuple[TestClient, Runtime]) -> None:
    client, runtime = limited
    token = issue_token(runtime, Role.assistant)
    assert rpc(client, token, "tools/list").status_code == 200
    refused = assert_problem(rpc(client, token, "tools/list"), 429, "rate-limited")
    assert refused["retry_after"] >= 1
    # One bucket per token, whichever face it calls.
    api = client.get(
        "/v1/users/alice/memories", params={"purpose": "personalization"}, headers=bearer(token)
    )
    assert_problem(api, 429, "rate-limited")


# -- the SDK's streamable HTTP client against a live server ------------------------------------


async def http_session(server: LiveServer, token: str, token_id: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    url = f"{server.base_url}/mcp?user_id=bob&purpose=personalization"
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        started = await session.initialize()
        seen["server"] = (started.server_info.name, started.server_info.version)
        seen["tools"] = sorted(tool.name for tool in (await session.list_tools()).tools)
        kept = (
            await session.call_tool(
                "remember", {"content": "plays chess on Sundays", "category": "interests"}
            )
        ).structured_content
        seen["recall"] = (
            await session.call_tool("recall", {"query": "chess", "limit": 3})
        ).structured_content
        seen["list"] = (
            await session.call_tool("list", {"category": "interests"})
        ).structured_content
        seen["forget"] = (
            await session.call_tool("forget", {"memory_id": kept["id"]})
        ).structured_content
        seen["after"] = (await session.call_tool("list", {})).structured_content
        seen["kept"] = kept

        revoked = await asyncio.to_thread(run_cli, "tokens", "revoke", token_id)
        assert revoked.returncode == 0, revoked.stderr
        with pytest.raises(MCPError):
            await session.call_tool("list", {})
        seen["revoked"] = True
    return seen


async def without_a_token(server: LiveServer) -> str:
    async with (
        streamable_http_client(f"{server.base_url}/mcp?user_id=bob") as (read, write),
        ClientSession(read, write) as session,
    ):
        try:
            await session.initialize()
        except MCPError as refused:
            return str(refused)
    raise AssertionError("initialized without a token")


def test_an_mcp_client_drives_every_tool_at_slash_mcp_until_its_token_is_revoked(
    server: LiveServer,
) -> None:
    runtime = open_runtime(Settings())
    try:
        assistant = runtime.tokens.issue(role=Role.assistant, name="remote-assistant")
    finally:
        runtime.close()
    server.start()
    seen = asyncio.run(
        asyncio.wait_for(http_session(server, assistant.token, assistant.record.id), timeout=120)
    )
    assert seen["server"][0] == "memory-store" and seen["server"][1]
    assert seen["tools"] == ["forget", "list", "recall", "remember"]
    assert seen["recall"]["memories"][0]["id"] == seen["kept"]["id"]
    assert [m["content"] for m in seen["list"]["memories"]] == ["plays chess on Sundays"]
    assert seen["forget"]["forgotten"] == seen["kept"]["id"]
    assert seen["after"]["memories"] == []
    assert seen["revoked"]

    assert asyncio.run(asyncio.wait_for(without_a_token(server), timeout=60))
    anonymous = httpx.post(
        f"{server.base_url}/mcp?user_id=bob",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
        headers=ACCEPT,
    )
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    assert json.loads(anonymous.text)["type"] == "/problems/unauthenticated"
