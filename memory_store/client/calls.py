"""The request each client call sends, built once for the sync and async clients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote


def _drop_none(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _segment(value: str) -> str:
    """One path segment: an id can never reach another path or add a query."""
    return quote(value, safe="")


class _Requests:
    """What each call sends, shared by the sync and async clients."""

    @staticmethod
    def remember(
        user_id: str,
        content: str,
        category: str,
        purpose: str,
        expires_at: datetime | None,
        source: str | None,
    ) -> tuple[str, str, dict[str, Any]]:
        body = _drop_none(
            {
                "content": content,
                "category": category,
                "expires_at": expires_at.isoformat() if expires_at else None,
                "source": source,
            }
        )
        return (
            "POST",
            f"/v1/users/{_segment(user_id)}/memories",
            {"params": {"purpose": purpose}, "json": body},
        )

    @staticmethod
    def recall(
        user_id: str,
        purpose: str,
        q: str | None,
        category: str | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[str, str, dict[str, Any]]:
        params = _drop_none(
            {"purpose": purpose, "q": q, "category": category, "limit": limit, "cursor": cursor}
        )
        return "GET", f"/v1/users/{_segment(user_id)}/memories", {"params": params}

    @staticmethod
    def context(
        user_id: str, purpose: str, q: str | None, limit: int, max_chars: int
    ) -> tuple[str, str, dict[str, Any]]:
        params = _drop_none({"purpose": purpose, "q": q, "limit": limit, "max_chars": max_chars})
        return "GET", f"/v1/users/{_segment(user_id)}/context", {"params": params}

    @staticmethod
    def get(user_id: str, memory_id: str, purpose: str) -> tuple[str, str, dict[str, Any]]:
        path = f"/v1/users/{_segment(user_id)}/memories/{_segment(memory_id)}"
        return "GET", path, {"params": {"purpose": purpose}}

    @staticmethod
    def forget_for_user(
        user_id: str, memory_id: str, purpose: str
    ) -> tuple[str, str, dict[str, Any]]:
        path = f"/v1/users/{_segment(user_id)}/memories/{_segment(memory_id)}"
        # The erasure's status in the answer, rather than only its address.
        headers = {"Prefer": "return=representation"}
        return "DELETE", path, {"params": {"purpose": purpose}, "headers": headers}

    # -- keyed items: the name goes in the body, never in the URL ---------------------------

    @staticmethod
    def put_item(
        user_id: str,
        namespace: Sequence[str],
        key: str,
        value: Mapping[str, Any],
        category: str,
        purpose: str,
        expires_at: datetime | None,
    ) -> tuple[str, str, dict[str, Any]]:
        body = _drop_none(
            {
                "namespace": list(namespace),
                "key": key,
                "value": dict(value),
                "category": category,
                "expires_at": expires_at.isoformat() if expires_at else None,
            }
        )
        path = f"/v1/users/{_segment(user_id)}/items"
        return "PUT", path, {"params": {"purpose": purpose}, "json": body}

    @staticmethod
    def item(
        user_id: str, action: str, purpose: str, body: dict[str, Any]
    ) -> tuple[str, str, dict[str, Any]]:
        """One of the POSTs on items: lookup, forget, search, namespaces."""
        path = f"/v1/users/{_segment(user_id)}/items/{action}"
        kwargs: dict[str, Any] = {"params": {"purpose": purpose}, "json": _drop_none(body)}
        if action == "forget":
            kwargs["headers"] = {"Prefer": "return=representation"}
        return "POST", path, kwargs

    # -- the user's own calls ------------------------------------------------------------------

    @staticmethod
    def my_memories(
        q: str | None, category: str | None, limit: int, cursor: str | None
    ) -> tuple[str, str, dict[str, Any]]:
        params = _drop_none({"q": q, "category": category, "limit": limit, "cursor": cursor})
        return "GET", "/v1/me/memories", {"params": params}

    @staticmethod
    def edit(
        memory_id: str,
        version: int | None,
        content: str | None,
        category: str | None,
        expires_at: datetime | None,
    ) -> tuple[str, str, dict[str, Any]]:
        body = _drop_none(
            {
                "content": content,
                "category": category,
                "expires_at": expires_at.isoformat() if expires_at else None,
            }
        )
        headers = {"If-Match": f'"{version}"'} if version is not None else {}
        return "PATCH", f"/v1/me/memories/{_segment(memory_id)}", {"json": body, "headers": headers}

    @staticmethod
    def history(memory_id: str) -> tuple[str, str, dict[str, Any]]:
        return "GET", f"/v1/me/memories/{_segment(memory_id)}/history", {}

    @staticmethod
    def forget(memory_id: str) -> tuple[str, str, dict[str, Any]]:
        return "DELETE", f"/v1/me/memories/{_segment(memory_id)}", {}

    @staticmethod
    def set_consent(purpose: str, category: str, granted: bool) -> tuple[str, str, dict[str, Any]]:
        path = f"/v1/me/consents/{_segment(purpose)}/{_segment(category)}"
        return "PUT", path, {"json": {"granted": granted}}

    @staticmethod
    def set_memory_enabled(enabled: bool) -> tuple[str, str, dict[str, Any]]:
        return "PATCH", "/v1/me/settings", {"json": {"memory_enabled": enabled}}
