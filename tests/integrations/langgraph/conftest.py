"""LangGraph's own store tests (test_store.py, test_sqlite_store.py: copied from the
langgraph repository, MIT) run against memory_store.integrations.langgraph.MemoryStore on a
live server.

`store` is the adapter, made fresh for each test in the way a fresh database would be: the
first label of every namespace (the user id) is given a suffix unique to the test on the way
in and has it taken off on the way out, so that tests sharing the one server never see each
other's items. Everything else is the adapter's and the server's own behaviour.

At the end, the counts: passed, and skipped with each reason (the semantics memory-store
deliberately does not have). Tests of LangGraph's own helpers, which touch no store, are
counted apart.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any
from unittest import mock

import pytest
from langgraph.store.base import (
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchOp,
)

from memory_store.integrations.langgraph import MemoryStore
from tests.integrations.conftest import Server

_runs = itertools.count(1)
_outcomes: Counter[str] = Counter()
_skips: Counter[str] = Counter()
_HERE = "tests/integrations/langgraph/"


class FreshStore(MemoryStore):
    """The adapter, with each user id suffixed for this test only."""

    def __init__(self, server: Server) -> None:
        super().__init__(server.url, server.assistant)
        self._suffix = f".t{next(_runs)}"

    def _in(self, namespace: tuple[str, ...]) -> tuple[str, ...]:
        if not namespace or namespace[0] == "*":
            return namespace
        return (namespace[0] + self._suffix, *namespace[1:])

    def _out(self, namespace: tuple[str, ...]) -> tuple[str, ...]:
        first = namespace[0].removesuffix(self._suffix) if namespace else ""
        return (first, *namespace[1:]) if namespace else namespace

    def _op_in(self, op: Op) -> Op:
        if isinstance(op, GetOp | PutOp):
            return op._replace(namespace=self._in(op.namespace))
        if isinstance(op, SearchOp):
            return op._replace(namespace_prefix=self._in(op.namespace_prefix))
        if isinstance(op, ListNamespacesOp) and op.match_conditions:
            conditions = tuple(
                MatchCondition(c.match_type, self._in(tuple(c.path)))
                if c.match_type == "prefix"
                else c
                for c in op.match_conditions
            )
            return op._replace(match_conditions=conditions)
        return op

    def _result_out(self, result: Result) -> Result:
        if isinstance(result, Item):
            result.namespace = self._out(result.namespace)
            return result
        if isinstance(result, list):
            return [self._result_out(r) if isinstance(r, Item) else self._out(r) for r in result]  # type: ignore[misc]
        return result

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        return [self._result_out(r) for r in super().batch([self._op_in(o) for o in ops])]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        results = await super().abatch([self._op_in(o) for o in ops])
        return [self._result_out(r) for r in results]


@pytest.fixture
def store(memory_server: Server) -> Iterator[FreshStore]:
    fresh = FreshStore(memory_server)
    yield fresh
    fresh.close()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not report.nodeid.startswith(_HERE):
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if report.skipped:
            reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else "?"
            _skips[reason.removeprefix("Skipped: ")] += 1
            _outcomes["skipped"] += 1
        elif report.passed:
            kind = "helper" if "langgraph_helper" in report.keywords else "passed"
            _outcomes[kind] += 1
        else:
            _outcomes["failed"] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _outcomes:
        return
    write = terminalreporter.write_line
    terminalreporter.section("LangGraph's store tests against memory-store")
    write(
        f"passed against memory-store: {_outcomes['passed']}, "
        f"skipped: {_outcomes['skipped']}, failed: {_outcomes['failed']}; "
        f"LangGraph's own helpers (no store involved), passed: {_outcomes['helper']}"
    )
    for reason, count in sorted(_skips.items(), key=lambda pair: -pair[1]):
        write(f"  skipped {count}: {reason}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "langgraph_helper: a test of LangGraph's own helpers; no store involved"
    )


MockerFixture = Any  # what upstream annotates `mocker` with (pytest-mock's)


class _Mocker:
    """The two calls of pytest-mock's `mocker` the copied tests use, on unittest.mock."""

    def __init__(self) -> None:
        self._patches: list[Any] = []

    def stub(self) -> mock.MagicMock:
        return mock.MagicMock()

    def spy(self, owner: Any, name: str) -> Any:
        patch = mock.patch.object(owner, name, autospec=True, side_effect=getattr(owner, name))
        self._patches.append(patch)
        return patch.start()

    def stop(self) -> None:
        for patch in reversed(self._patches):
            patch.stop()


@pytest.fixture
def mocker() -> Iterator[_Mocker]:
    spies = _Mocker()
    yield spies
    spies.stop()
