"""The shapes of the v1 API: what clients send and what they get back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

USER_ID_PATTERN = r"^[A-Za-z0-9._@-]{1,128}$"
MAX_CONTENT_CHARS = 4096


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("must carry a time zone (RFC 3339), e.g. 2027-01-01T00:00:00Z")
    return value


Content = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_CONTENT_CHARS), AfterValidator(_not_blank)
]
CategoryName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


class MemoryCreate(BaseModel):
    """A new memory, written by the assistant."""

    model_config = ConfigDict(extra="forbid")

    content: Content = Field(description="The fact itself, 1-4096 characters. Stored encrypted.")
    category: CategoryName = Field(description="A category from the catalogue.")
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="When to forget it (RFC 3339). Defaults to, and may not exceed, "
        "the category's retention limit.",
    )
    source: Annotated[str, StringConstraints(max_length=256)] | None = Field(
        default=None, description="Where the fact came from (free text, stored encrypted)."
    )


class MemoryPublic(BaseModel):
    """A memory as its authorised reader sees it."""

    id: str
    user_id: str
    category: str
    content: str
    source: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime

    def __repr__(self) -> str:
        # Never let a memory's content reach a log line or a traceback through repr().
        return f"MemoryPublic(id={self.id!r}, category={self.category!r})"

    __str__ = __repr__


class MemoryPage(BaseModel):
    items: list[MemoryPublic]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class Health(BaseModel):
    status: str
