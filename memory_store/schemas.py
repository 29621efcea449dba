"""The shapes of the v1 API: what clients send and what they get back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    model_validator,
)

# What a user id is, said once (domain.py) for the API, the CLI and the MCP tools.
from memory_store.domain import USER_ID_PATTERN as USER_ID_PATTERN  # noqa: PLC0414 (re-export)
from memory_store.domain import USER_ID_RULE as USER_ID_RULE  # noqa: PLC0414

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
    recall_lag: int | None = Field(
        default=None,
        description="/readyz: memories whose recall vector is not made yet (ranked by their "
        "words until it is).",
    )


class ConsentGrant(BaseModel):
    """A user's choice for one purpose and one category (or "*": all categories)."""

    model_config = ConfigDict(extra="forbid")

    granted: StrictBool = Field(description="true grants the purpose, false withdraws it.")


class ConsentState(BaseModel):
    """Whether the assistant may use one category for one purpose, and why."""

    purpose: str
    category: str
    sensitive: bool
    granted: bool = Field(description="The effective state: may the assistant use it?")
    default: bool = Field(description="true when the user has made no choice that applies.")
    source: str = Field(description='"default", "category" or "all_categories".')


class ConsentOverview(BaseModel):
    memory_enabled: bool
    items: list[ConsentState]


class ConsentChange(BaseModel):
    """One entry of the consent history: proof of when and how a choice was made."""

    version: int
    purpose: str
    category: str
    granted: bool
    previous: str = Field(description='The choice before: "granted", "withdrawn" or "default".')
    channel: str = Field(description='How the user made it: "api" or "web".')
    at: datetime


class ConsentChangeResult(BaseModel):
    change: ConsentChange
    items: list[ConsentState] = Field(description="The effective state of what changed.")


class ConsentHistoryPage(BaseModel):
    items: list[ConsentChange]
    next_cursor: str | None


class SettingsPublic(BaseModel):
    memory_enabled: bool
    updated_at: datetime | None = Field(description="null while the defaults apply.")


class SettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    memory_enabled: StrictBool


class MemoryUpdate(BaseModel):
    """What a user may change on one of their memories; at least one field."""

    model_config = ConfigDict(extra="forbid")

    content: Content | None = Field(default=None, description="The corrected fact.")
    category: CategoryName | None = Field(default=None, description="A catalogue category.")
    expires_at: AwareDatetime | None = Field(
        default=None, description="An earlier time to forget the memory at (never later)."
    )

    @model_validator(mode="after")
    def _something(self) -> MemoryUpdate:
        if not self.model_fields_set & {"content", "category", "expires_at"}:
            raise ValueError("give at least one of content, category, expires_at")
        for name in ("content", "category", "expires_at"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self


class MemoryVersionPublic(BaseModel):
    """An earlier version of a memory, as it was between valid_from and valid_until."""

    version: int
    category: str
    content: str
    source: str | None
    expires_at: datetime
    valid_from: datetime
    valid_until: datetime

    def __repr__(self) -> str:
        return f"MemoryVersionPublic(version={self.version})"

    __str__ = __repr__


class AuditEventPublic(BaseModel):
    """One audit record, as stored and chained. No contents, no query text, no user id."""

    seq: int
    at: str
    actor_id: str
    actor_role: str
    request_id: str
    action: str
    outcome: str
    subject: str | None = Field(description="The pseudonym of the person the data is about.")
    memory_ids: list[str]
    target: str | None
    purpose: str | None
    reason: str | None
    result_count: int | None
    prev: str
    hash: str


class AuditEventPage(BaseModel):
    items: list[AuditEventPublic]
    next_cursor: str | None


class AuditVerification(BaseModel):
    ok: bool = Field(
        description="The trail is intact, contradicts no checkpoint, and is anchored (or "
        "allow_unanchored was asked)."
    )
    records: int
    checkpoints: int = Field(description="Checkpoints checked: stored and trusted.")
    last_seq: int
    last_hash: str
    first_bad_seq: int | None = Field(description="The first record that fails, if any.")
    problem: str | None
    origin: str = Field(description="The log's name in its checkpoints.")
    trusted_checkpoints: int = Field(
        description="Checkpoints from the witness directory: only they anchor the trail."
    )
    anchored: bool
    anchored_through: int = Field(description="The last record a trusted checkpoint covers.")
    unanchored_tail: int = Field(description="Records after it, vouched for by no checkpoint.")


class AuditCheckpointPublic(BaseModel):
    """A signed checkpoint as stored. A tlog-checkpoint note (`note`): seq is its tree size,
    hash its Merkle root (hex). A legacy one (no note): hash is record seq's chain hash."""

    seq: int
    hash: str
    at: str
    key_id: str
    signature: str
    format: Literal["c2sp-tlog-checkpoint", "memory-store-checkpoint/1"]
    note: str | None = Field(description="The signed note, as published to the witnesses.")


class AuditInclusionProof(BaseModel):
    """Record `record.seq` is leaf `leaf_index` of the tree `checkpoint` signs: hash
    0x00 || its chain hash (raw), then fold in `path` (RFC 9162 2.1.3.2) to the note's root."""

    record: AuditEventPublic
    leaf_index: int
    tree_size: int
    path: list[str] = Field(description="The audit path, base64, leaf end first.")
    checkpoint: str = Field(description="The signed note of the tree (tlog-checkpoint).")


class AccessLogEntry(BaseModel):
    """One attempt to read your memories."""

    at: str
    actor: str | None = Field(description="The name the reader's token was issued under.")
    actor_role: str
    action: str
    memory_ids: list[str]
    purpose: str | None
    outcome: str
    reason: str | None
    result_count: int | None


class AccessLogPage(BaseModel):
    items: list[AccessLogEntry]
    next_cursor: str | None


class ExportedMemory(MemoryPublic):
    history: list[MemoryVersionPublic] = Field(description="Earlier versions, newest first.")
    item: dict[str, Any] | None = Field(
        default=None,
        description="For a keyed item: its namespace, key and value, as the client put them.",
    )


class UserExport(BaseModel):
    """Everything memory-store holds about you, in one machine-readable document
    (GDPR Art. 15 and 20). `format` names this layout; fields are only ever added to it."""

    format: str = Field(default="memory-store-export/1")
    exported_at: datetime
    user_id: str
    settings: SettingsPublic
    memories: list[ExportedMemory]
    consents: ConsentOverview
    consent_history: list[ConsentChange]
    access_log: list[AccessLogEntry]


_FINAL_AT = (
    "When the last key epoch that could open a copy of what was forgotten (in a backup, a "
    "database log, a free page) is destroyed by the scheduled rotation. None when the "
    "operator rotates by hand."
)


class Erasure(BaseModel):
    """The status of one erasure: forgotten at once here, final in every copy at `final_at`.
    It names no user and no memory; its id, unguessable, is the only way to it."""

    id: str = Field(description="The erasure's id, from the answer to the forget.")
    kind: Literal["memory", "category", "everything"]
    items: int = Field(description="How many memories were forgotten.")
    requested_at: datetime
    final: bool = Field(
        description="True once every key epoch that wrapped a forgotten key is destroyed: "
        "no copy of what was forgotten opens anywhere any more."
    )
    final_at: datetime | None = Field(default=None, description=_FINAL_AT)


class CategoryErasure(BaseModel):
    category: str
    deleted: int
    erasure_id: str = Field(description="Its status: GET /v1/erasures/{erasure_id}.")
    final_at: datetime | None = Field(default=None, description=_FINAL_AT)


class ErasureReceipt(BaseModel):
    """What forgetting you erased: proof for you, and for the record."""

    user_id: str
    erased_at: datetime
    memories: int
    memory_versions: int
    consent_choices: int
    consent_history: int
    settings: int
    tokens: int = Field(description="Your tokens, revoked and deleted: this one included.")
    data_key_destroyed: bool = Field(
        description="Your data key is destroyed here. Copies of it, wrapped under the key "
        "epoch of the day, may remain in backups or database logs until `final_at`."
    )
    final_at: datetime | None = Field(
        default=None,
        description="When the key epoch that wrapped your data key is destroyed by the "
        "scheduled rotation: from then on no copy of your memories anywhere (a backup, a "
        "log, a free page) can be decrypted. None when the operator rotates by hand.",
    )
    erasure_id: str = Field(
        description="Whether it is final yet, with no token needed: GET /v1/erasures/{id}."
    )
    rows_deleted: bool = Field(
        description="True when every row was deleted before this answer. False when there "
        "were many: they are already unreadable and invisible, and are being deleted in the "
        "background, in batches (seconds for thousands)."
    )
    audit_seq: int = Field(description="The audit record of this erasure.")


class WhoAmI(BaseModel):
    """Who the token in use belongs to."""

    user_id: str
    role: str
    token_name: str


class ContextItem(MemoryPublic):
    score: float = Field(
        description="Relevance to the query (BM25 and vector similarity fused by reciprocal "
        "rank; higher is better); 0 without a query, or when nothing matched."
    )


class ContextResult(BaseModel):
    """The memories most relevant to a query, best first, within a character budget."""

    items: list[ContextItem]
    total_chars: int = Field(description="The characters of content handed over.")
    truncated: bool = Field(description="true when relevant memories did not fit the budget.")
    match: Literal["relevant", "none"] | None = Field(
        default=None,
        description="With a query: `relevant` when the items answer it, `none` when nothing "
        "did (the items are then the most recent, see `fallback`). null without a query.",
    )
    fallback: Literal["recent"] | None = Field(
        default=None,
        description="`recent` when the items are the most recent memories the purpose may "
        "use, offered because nothing matched the query.",
    )
    unindexed: int = Field(
        default=0,
        description="Memories ranked by their words alone: their vector is not made yet.",
    )
