"""The shapes of the v1 keyed-item API: memories a client names itself, by a namespace path
and a key, holding a JSON object (what a LangGraph store or any key-value client needs)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from memory_store.schemas import MAX_CONTENT_CHARS, AwareDatetime, CategoryName

MAX_LABELS = 16
MAX_VALUE_CHARS = 16_384  # the value's JSON, compact
MAX_DEPTH = 32  # objects and lists within each other, in a value or a filter

Label = Annotated[str, StringConstraints(min_length=1, max_length=256)]
ItemKeyName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Namespace = Annotated[list[Label], Field(max_length=MAX_LABELS)]


def value_json(value: dict[str, Any]) -> str:
    """The value as stored and measured: compact JSON, its keys in the order given."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _shallow(value: Any) -> Any:
    """Refuse nesting deeper than MAX_DEPTH (measured without recursion: what is refused
    here never reaches code that recurses)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if isinstance(node, dict | list):
            if depth > MAX_DEPTH:
                raise ValueError(f"must nest objects and lists at most {MAX_DEPTH} deep")
            stack.extend((child, depth + 1) for child in children)
    return value


def _bounded(value: dict[str, Any]) -> dict[str, Any]:
    _shallow(value)
    try:
        encoded = value_json(value)
    except ValueError:  # NaN or infinity: no JSON
        raise ValueError("must be JSON (no NaN or infinity)") from None
    if len(encoded) > MAX_VALUE_CHARS:
        raise ValueError(f"must be at most {MAX_VALUE_CHARS} characters as compact JSON")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_bounded)]


class ItemRef(BaseModel):
    """Which item: a namespace path (labels after the user) and a key within it. Sent in
    the body, never in the URL, because both can be personal ("health/diagnosis")."""

    model_config = ConfigDict(extra="forbid")

    namespace: Namespace = Field(
        default_factory=list, description="0-16 labels of 1-256 characters. Stored encrypted."
    )
    key: ItemKeyName = Field(description="1-256 characters. Stored encrypted.")


class ItemPut(ItemRef):
    """Create the item, or replace its value (a new version; the old one kept in history)."""

    value: JsonObject = Field(
        description="A JSON object, at most 16384 characters as compact JSON; returned exactly "
        "as put. Stored encrypted."
    )
    category: CategoryName = Field(description="A category from the catalogue.")
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="When to forget it (RFC 3339). Defaults to, and may not exceed, the "
        "category's retention limit.",
    )


class ItemSearch(BaseModel):
    """Items under a namespace prefix, optionally matching a filter and ranked by a query."""

    model_config = ConfigDict(extra="forbid")

    namespace_prefix: Namespace = Field(default_factory=list)
    filter: Annotated[dict[str, Any], AfterValidator(_shallow)] | None = Field(
        default=None,
        description="Value fields to match: a value for equality, or an object of operators "
        "$eq $ne $gt $gte $lt $lte.",
    )
    query: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = Field(
        default=None, description="Ranks the items by relevance (BM25) to this text."
    )
    limit: int = Field(default=10, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=10_000)


class NamespaceQuery(BaseModel):
    """Which namespace paths to list: `*` in a prefix or suffix matches any one label."""

    model_config = ConfigDict(extra="forbid")

    prefix: Namespace | None = None
    suffix: Namespace | None = None
    max_depth: int | None = Field(default=None, ge=1, le=MAX_LABELS)
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=10_000)


class ItemPublic(BaseModel):
    """An item as its authorised reader sees it. `id` is its memory's id: the user sees,
    edits and forgets it among their memories, where its content is `content` below."""

    id: str
    user_id: str
    namespace: list[str]
    key: str
    value: dict[str, Any]
    category: str
    content: str = Field(description="The text recall ranks and the user sees.")
    version: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    score: float | None = None

    def __repr__(self) -> str:
        # Never let a value, a namespace or a key reach a log line through repr().
        return f"ItemPublic(id={self.id!r}, category={self.category!r})"

    __str__ = __repr__


class ItemPage(BaseModel):
    items: list[ItemPublic]


class NamespaceList(BaseModel):
    namespaces: list[list[str]]


def item_content(value: dict[str, Any]) -> str:
    """The text of an item that recall ranks and its user reads: the value's `content`
    (or `text`) when it is a string, else the value's JSON; at most 4096 characters."""
    for field in ("content", "text"):
        text = value.get(field)
        if isinstance(text, str) and text.strip():
            return text[:MAX_CONTENT_CHARS]
    return value_json(value)[:MAX_CONTENT_CHARS]


def corrected_item(item: dict[str, Any], content: str) -> dict[str, Any]:
    """A keyed item (as sealed: namespace, key, value) after its user corrected its text: the
    value's `content` (or `text`) field takes the correction, or the value becomes
    `{"content": correction}` when it had neither, so that the correction is what is read."""
    value = dict(item.get("value") or {})
    field = next((f for f in ("content", "text") if isinstance(value.get(f), str)), None)
    if field is None:
        value = {"content": content}
    else:
        value[field] = content
    return {**item, "value": value}
