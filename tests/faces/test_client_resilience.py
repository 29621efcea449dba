"""The client's retries (429, 503, a connection not made), the async client's parity with the
sync one, and one exception class per problem type."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from memory_store.client import (
    AsyncMemoryStoreClient,
    InvalidRequest,
    MemoryStoreClient,
    MemoryStoreError,
    RateLimited,
    RetryPolicy,
    StorageUnavailable,
    UnknownCategory,
    UnknownPurpose,
)
from memory_store.client.errors import _BY_SLUG
from memory_store.config import Settings
from memory_store.domain import Role
from tests.faces.test_client import Live, serve

WHOAMI = {"user_id": "alice", "role": "user", "token_name": "alice"}


def problem(status: int, slug: str, retry_after: int | None = None) -> httpx.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return httpx.Response(
        status,
        json={"type": f"/problems/{slug}", "title": slug, "status": status},
        headers={"Content-Type": "application/problem+json", **headers},
    )


def scripted(*answers: httpx.Response | Exception) -> tuple[httpx.MockTransport, list[str]]:
    """A server that answers each request with the next of `answers` (an exception: the
    transport raises it), recording the requests' methods."""
    queue = list(answers)
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle), seen


FAST = RetryPolicy(attempts=3, backoff=0.0, max_wait=5.0)


def test_a_429_is_retried_after_retry_after_and_the_answer_returned() -> None:
    transport, seen = scripted(problem(429, "rate-limited", 0), httpx.Response(200, json=WHOAMI))
    with MemoryStoreClient("http://store", "mst_x", retry=FAST, transport=transport) as me:
        assert me.whoami().user_id == "alice"
    assert seen == ["GET", "GET"]


def test_a_503_write_is_sent_again_since_nothing_was_stored() -> None:
    memory = {
        "id": "mem_1",
        "user_id": "alice",
        "category": "work",
        "content": "x",
        "source": None,
        "version": 1,
        "created_at": "2026-12-01T00:00:00Z",
        "updated_at": "2026-12-01T00:00:00Z",
        "expires_at": "2027-12-01T00:00:00Z",
    }
    transport, seen = scripted(
        problem(503, "storage-unavailable", 0), httpx.Response(201, json=memory)
    )
    with MemoryStoreClient("http://store", "mst_x", retry=FAST, transport=transport) as store:
        assert store.remember("alice", "x", category="work").id == "mem_1"
    assert seen == ["POST", "POST"]


def test_retries_are_bounded_and_the_last_refusal_raised() -> None:
    transport, seen = scripted(*[problem(503, "storage-unavailable", 0)] * 5)
    with (
        MemoryStoreClient("http://store", "mst_x", retry=FAST, transport=transport) as me,
        pytest.raises(StorageUnavailable),
    ):
        me.whoami()
    assert len(seen) == 3


def test_a_retry_after_longer_than_the_policy_allows_is_not_waited_for() -> None:
    transport, seen = scripted(problem(429, "rate-limited", 3600))
    with (
        MemoryStoreClient("http://store", "mst_x", retry=FAST, transport=transport) as me,
        pytest.raises(RateLimited),
    ):
        me.whoami()
    assert len(seen) == 1


def test_no_retries_when_asked_for_none() -> None:
    transport, seen = scripted(problem(429, "rate-limited", 0))
    never = RetryPolicy(attempts=1)
    with (
        MemoryStoreClient("http://store", "mst_x", retry=never, transport=transport) as me,
        pytest.raises(RateLimited),
    ):
        me.whoami()
    assert len(seen) == 1


def test_a_connection_not_made_is_retried_but_one_broken_after_sending_is_not() -> None:
    transport, seen = scripted(httpx.ConnectError("refused"), httpx.Response(200, json=WHOAMI))
    with MemoryStoreClient("http://store", "mst_x", retry=FAST, transport=transport) as me:
        assert me.whoami().token_name == "alice"
    assert len(seen) == 2
    transport, seen = scripted(httpx.ReadError("reset"), httpx.Response(200, json=WHOAMI))
    with (
        MemoryStoreClient("http://store", "mst_x", retry=FAST, transport=transport) as me,
        pytest.raises(httpx.ReadError),
    ):
        me.whoami()
    assert len(seen) == 1


def test_the_async_client_retries_alike() -> None:
    transport, seen = scripted(problem(429, "rate-limited", 0), httpx.Response(200, json=WHOAMI))

    async def call() -> str:
        async with AsyncMemoryStoreClient(
            "http://store", "mst_x", retry=FAST, transport=transport
        ) as me:
            return (await me.whoami()).user_id

    assert asyncio.run(call()) == "alice"
    assert len(seen) == 2


def test_the_async_client_has_every_method_of_the_sync_one_with_the_same_arguments() -> None:
    def public(cls: type) -> dict[str, Callable[..., object]]:
        return {
            name: member
            for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_") and name not in {"close", "aclose"}
        }

    sync, aio = public(MemoryStoreClient), public(AsyncMemoryStoreClient)
    assert set(sync) == set(aio)
    for name in sync:
        assert inspect.signature(sync[name]).parameters.keys() == (
            inspect.signature(aio[name]).parameters.keys()
        ), name


def test_every_problem_type_of_the_service_has_its_exception_class() -> None:
    from memory_store.api.openapi import problem_types  # noqa: PLC0415
    from memory_store.app import create_app  # noqa: PLC0415, F401 (registers every Problem)

    served = {cls.type_slug for cls in problem_types()} - {"bad-request"}
    assert served <= set(_BY_SLUG)
    assert all(cls is not MemoryStoreError for cls in _BY_SLUG.values())


# -- against the real server ---------------------------------------------------------------------


@pytest.fixture
def throttled(tmp_path: Path) -> Iterator[Live]:
    """The server with one request's burst per user token, refilled each second."""
    settings = Settings(
        data_dir=tmp_path / "var",
        retention_sweep_seconds=0,
        rate_limit_per_minute=60,
        rate_limit_burst_seconds=1,
    )
    yield from serve(settings)


def test_against_the_server_a_rate_limited_call_succeeds_after_its_retry_after(
    throttled: Live,
) -> None:
    token = throttled.runtime.tokens.issue(role=Role.user, name="alice", user_id="alice").token
    with MemoryStoreClient(throttled.url, token=token, retry=RetryPolicy(attempts=1)) as me:
        me.whoami()
        with pytest.raises(RateLimited) as refused:
            me.whoami()  # the server says 429, with Retry-After
        assert refused.value.retry_after is not None
    with MemoryStoreClient(throttled.url, token=token) as me:
        assert me.whoami().user_id == "alice"  # 429, wait as told, then 200
        assert me.whoami().user_id == "alice"


def test_against_the_server_an_unknown_category_or_purpose_has_its_own_class(
    throttled: Live,
) -> None:
    with MemoryStoreClient(throttled.url, token=throttled.assistant) as store:
        with pytest.raises(UnknownCategory) as refused:
            store.remember("alice", "likes jazz", category="hobbies")
        assert isinstance(refused.value, InvalidRequest)
        assert "interests" in refused.value.extensions["known"]
        with pytest.raises(UnknownPurpose):
            store.recall("alice", purpose="gossip")
