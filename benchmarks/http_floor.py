"""The HTTP floor: a bare FastAPI app answering what the service answers, with none of its
work, served the way `memory-store serve` serves the real one (uvicorn, uvloop, httptools,
one worker, no access log, no server header). `python -m benchmarks.http_floor --port N`.

On the service's paths (the user id and the query string are parsed, and ignored):

- GET /v1/users/{user_id}/memories: the same-size JSON as the service's page of 20 (20
  items shaped like MemoryPublic, contents as long as bench_http's, a cursor), built once
  and sent as bytes: the strictest floor, a server doing nothing at all per item.
- GET /objects/v1/users/{user_id}/memories: the same page, returned as Python objects (the
  dicts the JSON parses to) and serialised by FastAPI on each request by its default path
  for an endpoint without a response model (jsonable_encoder, then json.dumps). Built this
  way for the smaller page of issue 14's lean reference path, it answers 4,600-5,000
  requests/s here (the issue's floor: 4,585), and the reference measures 0.44-0.46 of it
  (0.52 in the issue) but 0.20 of the floor of bytes (RESULTS.md, "Calibrating the floor").
- POST /v1/users/{user_id}/memories: parses a JSON body of the write's shape (MemoryCreate's
  fields, as a request model) and answers 201 with the same-size JSON as the service's
  answer (one memory), built once.
- GET /ping: a trivial JSON answer.
"""

from __future__ import annotations

import argparse
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from fastapi import FastAPI, Response
from pydantic import BaseModel

from memory_store.schemas import MemoryPage, MemoryPublic

PAGE = 20


def memory(content: str, user_id: str = "alice") -> MemoryPublic:
    now = datetime.now(UTC)
    return MemoryPublic(
        id="mem_" + secrets.token_urlsafe(16),
        user_id=user_id,
        category="preferences",
        content=content,
        source=None,
        version=1,
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(days=365),
    )


def list_body() -> bytes:
    """A page of 20 as bench_http's alice holds them ("fact {i}: likes tea", i < 200)."""
    items = [memory(f"fact {100 + i}: likes tea") for i in range(PAGE)]
    # The service's cursor: an authenticated, encrypted position (about 100 characters).
    cursor = secrets.token_urlsafe(90)
    return MemoryPage(items=items, next_cursor=cursor).model_dump_json().encode()


def write_body() -> bytes:
    """One memory as the service answers a write of bench_http's POST script."""
    return memory("fact 1-12345: prefers window seats", "writer-1-12").model_dump_json().encode()


class Write(BaseModel):
    """The write's body, parsed and validated as a request model (no catalogue, no policy)."""

    content: str
    category: str
    source: str | None = None
    expires_at: datetime | None = None


app = FastAPI()
LIST_BODY = list_body()
LIST_OBJECTS: dict[str, Any] = json.loads(LIST_BODY)
WRITE_BODY = write_body()


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/v1/users/{user_id}/memories")
async def page(user_id: str) -> Response:
    return Response(LIST_BODY, media_type="application/json")


@app.get("/objects/v1/users/{user_id}/memories", response_model=None)
async def page_of_objects(user_id: str) -> dict[str, Any]:
    return LIST_OBJECTS


@app.post("/v1/users/{user_id}/memories", status_code=201)
async def write(user_id: str, body: Write) -> Response:
    return Response(WRITE_BODY, status_code=201, media_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_floor")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
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
