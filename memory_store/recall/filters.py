"""Matching a keyed item's JSON value against a filter, as LangGraph's stores do: each field
names a value (a dotted path reaches into objects) and is matched by equality, by a nested
object of fields, or by operators $eq $ne $gt $gte $lt $lte. Ordering compares numbers with
numbers and strings with strings; anything else does not match (it is no error)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}
OPERATORS = frozenset({"$eq", "$ne", *_ORDER})


class UnknownOperator(ValueError):
    """A filter names an operator other than $eq $ne $gt $gte $lt $lte."""


def check_filter(conditions: Mapping[str, Any]) -> None:
    """Raise UnknownOperator for an operator no store knows, before anything is read."""
    for condition in conditions.values():
        if isinstance(condition, Mapping):
            unknown = [op for op in condition if op.startswith("$") and op not in OPERATORS]
            if unknown:
                raise UnknownOperator(unknown[0])
            check_filter({k: v for k, v in condition.items() if not k.startswith("$")})


def matches(value: Mapping[str, Any], conditions: Mapping[str, Any]) -> bool:
    """Whether `value` meets every condition."""
    return all(_meets(_at(value, path), wanted) for path, wanted in conditions.items())


def _at(value: Any, path: str) -> Any:
    if isinstance(value, Mapping) and path in value:
        return value[path]
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _meets(found: Any, wanted: Any) -> bool:
    if isinstance(wanted, Mapping):
        if any(key.startswith("$") for key in wanted):
            return all(_apply(found, op, operand) for op, operand in wanted.items())
        return isinstance(found, Mapping) and all(
            _meets(found.get(key), inner) for key, inner in wanted.items()
        )
    if isinstance(wanted, list | tuple):
        return (
            isinstance(found, list | tuple)
            and len(found) == len(wanted)
            and all(_meets(f, w) for f, w in zip(found, wanted, strict=True))
        )
    return _same(found, wanted)


def _same(found: Any, wanted: Any) -> bool:
    # JSON has no booleans among its numbers: true is not 1.
    if isinstance(found, bool) != isinstance(wanted, bool):
        return False
    return bool(found == wanted)


def _apply(found: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return _same(found, operand)
    if op == "$ne":
        return not _same(found, operand)
    compare = _ORDER.get(op)
    if compare is None:
        raise UnknownOperator(op)
    if _number(found) and _number(operand):
        return compare(found, operand)
    if isinstance(found, str) and isinstance(operand, str):
        return compare(found, operand)
    return False


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
