"""The HTTP peer: LangGraph's SqliteStore (peer.py: WAL, synchronous=FULL) behind a tiny
FastAPI app, served as `memory-store serve` serves the service (uvicorn, uvloop, httptools,
one worker, no access log). Plaintext, no token, no policy, no audit: what an agent's memory
endpoint costs with LangGraph's store. `python -m benchmarks.http_peer --port N --db FILE`.

- GET /v1/users/{user_id}/memories: the user's 20 newest items (SqliteStore.search).
- POST /v1/users/{user_id}/memories: puts one item (SqliteStore.put), answers 201 with it.

The endpoints are sync (`def`): SqliteStore blocks, so FastAPI runs them on its thread pool,
as the service runs its blocking work.
"""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from benchmarks.peer import LangGraphPeer


class Write(BaseModel):
    content: str
    category: str
    source: str | None = None


app = FastAPI()
_store: list[LangGraphPeer] = []  # opened by main(), before the server starts


def _item(item: Any) -> dict[str, Any]:
    return {
        "id": item.key,
        "user_id": item.namespace[-1],
        **item.value,
        "created_at": item.created_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
    }


@app.get("/v1/users/{user_id}/memories")
def page(user_id: str) -> dict[str, Any]:
    return {"items": [_item(item) for item in _store[0].list(user_id, 20)], "next_cursor": None}


@app.post("/v1/users/{user_id}/memories", status_code=201)
def write(user_id: str, body: Write) -> dict[str, Any]:
    key = "mem_" + secrets.token_urlsafe(16)
    _store[0].put(user_id, key, body.model_dump())
    return {"id": key, "user_id": user_id, **body.model_dump()}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_peer")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", type=Path, required=True, help="a database loaded by peer.py")
    args = parser.parse_args()
    _store.append(LangGraphPeer(args.db))
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        server_header=False,
    )


if __name__ == "__main__":
    main()
