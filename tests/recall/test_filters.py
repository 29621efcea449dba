"""Matching a keyed item's value against a filter (memory_store/recall/filters.py)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memory_store.recall.filters import UnknownOperator, check_filter, matches

VALUE = {"price": 10, "name": "fig", "ok": True, "tags": ["a", "b"], "meta": {"size": 3}}


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ({"price": 10}, True),
        ({"price": 10.0}, True),
        ({"ok": 1}, False),  # JSON's true is no number
        ({"price": {"$gt": 9, "$lte": 10}}, True),
        ({"price": {"$lt": 10}}, False),
        ({"price": {"$ne": 11}}, True),
        ({"name": {"$gte": "f"}}, True),
        ({"name": {"$gt": 1}}, False),  # strings and numbers do not order
        ({"tags": ["a", "b"]}, True),
        ({"tags": ["b", "a"]}, False),
        ({"meta": {"size": 3}}, True),
        ({"meta.size": {"$gte": 3}}, True),
        ({"missing": {"$ne": 1}}, True),
        ({"missing": 1}, False),
        ({}, True),
    ],
)
def test_each_operator(conditions: dict[str, Any], expected: bool) -> None:
    assert matches(VALUE, conditions) is expected


def test_an_unknown_operator_is_named_before_anything_is_read() -> None:
    with pytest.raises(UnknownOperator):
        check_filter({"price": {"$in": [1]}})
    with pytest.raises(UnknownOperator):
        check_filter({"meta": {"size": {"$regex": "x"}}})
    check_filter({"price": {"$gt": 1}, "meta": {"size": 3}})


@given(st.integers(), st.integers())
def test_ordering_agrees_with_python(a: int, b: int) -> None:
    value = {"n": a}
    assert matches(value, {"n": {"$lt": b}}) is (a < b)
    assert matches(value, {"n": {"$gte": b}}) is (a >= b)
    assert matches(value, {"n": {"$eq": b}}) is (a == b)
    assert matches(value, {"n": {"$ne": b}}) is (a != b)
