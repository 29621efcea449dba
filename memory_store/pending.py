"""Work queued for a group commit, as every layer hands it up: the future its writer answers
once the commit is done, and how to take the outcome (or the failure, as the layer reports
it). A thread takes it at once (the taking waits); a request on the event loop first awaits
the future, so that it holds no thread while the commit comes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Generator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio.to_thread

T = TypeVar("T")
R = TypeVar("R")
# Longer than the group writers' own wait (30 s): by then the future has its answer.
SETTLE_SECONDS = 35.0


@dataclass(frozen=True)
class Pending(Generic[T]):
    future: Future[Any]
    result: Callable[[], T]

    @classmethod
    def done(cls, value: T) -> Pending[T]:
        """Work that needed no waiting."""
        future: Future[Any] = Future()
        future.set_result(None)
        return cls(future, lambda: value)


async def committed(future: Future[Any]) -> None:
    """Return once `future` is answered (or SETTLE_SECONDS have passed), holding no thread.
    The writer's future is never cancelled from here: its outcome, a failure included, is
    for the caller to take from `future` itself. (Leaner than asyncio.wrap_future and
    asyncio.wait, which copy the outcome into a second future and build a set of tasks:
    this is on every read's path.)"""
    if future.done():
        return
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not woken.done():
            woken.set_result(None)

    def wake_from_writer(_: object) -> None:  # in the writer's thread
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: no one waits
            loop.call_soon_threadsafe(wake)

    future.add_done_callback(wake_from_writer)
    timer = loop.call_later(SETTLE_SECONDS, wake)
    try:
        await woken
    finally:
        timer.cancel()


async def settled(pending: Pending[T]) -> T:
    """The outcome of `pending`, awaited on the event loop."""
    await committed(pending.future)
    return pending.result()


# A use case written once for both callers: a generator that yields each commit it must wait
# for and is sent that commit's outcome; it returns its answer.
Steps = Generator[Pending[Any], Any, R]


def run_steps(steps: Steps[R]) -> R:
    """Drive `steps` in this thread, waiting for each commit."""
    outcome: Any = None
    while True:
        try:
            pending = steps.send(outcome)
        except StopIteration as stop:
            answer: R = stop.value
            return answer
        outcome = pending.result()


async def run_steps_async(steps: Steps[R]) -> R:
    """Drive `steps` on the event loop, awaiting each commit."""
    outcome: Any = None
    while True:
        try:
            pending = steps.send(outcome)
        except StopIteration as stop:
            answer: R = stop.value
            return answer
        outcome = await settled(pending)


def _advance(steps: Steps[R], outcome: Any) -> tuple[bool, Any]:
    """One step of `steps` (in a worker thread): (False, the next Pending) or (True, the
    answer). StopIteration must not cross into the coroutine (PEP 479)."""
    try:
        return False, steps.send(outcome)
    except StopIteration as stop:
        return True, stop.value


async def run_steps_off_loop(steps: Steps[R]) -> R:
    """Drive `steps` with each step's work (its reads and checks: PostgreSQL round trips) in
    a worker thread and each commit awaited on the event loop: the thread is free again while
    the commit comes, so the request threads do not cap how many wait on one commit."""
    outcome: Any = None
    while True:
        finished, value = await anyio.to_thread.run_sync(_advance, steps, outcome)
        if finished:
            answer: R = value
            return answer
        outcome = await settled(value)
