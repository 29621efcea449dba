"""The tables of the three databases (memories, key store, audit trail), as Alembic knows them.

Contents are ciphertext only: no column holds plaintext. Category and timestamps stay in the
clear on purpose: policy and retention need them (a documented leak, see README). Every table
of the memory database is keyed by user id first. The SQL that reads and writes these tables
is in the modules beside this one, one per table group; the row types they hand out are
checked against these columns by tests/storage/test_tables.py.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Integer, LargeBinary, MetaData, String, Table, Text
from sqlmodel import Field, SQLModel

from memory_store.storage.engines import UTCDateTime


class Memory(SQLModel, table=True):
    __tablename__ = "memories"
    __table_args__ = (
        Index("ix_memories_user_created", "user_id", "created_at", "id"),
        Index("ix_memories_user_category_created", "user_id", "category", "created_at", "id"),
        Index("ix_memories_expires", "expires_at"),
        Index("ux_memories_user_lookup", "user_id", "lookup", unique=True),
    )

    id: str = Field(primary_key=True, max_length=40)
    user_id: str = Field(max_length=128)
    category: str = Field(max_length=64)
    key_id: str = Field(max_length=32)
    # AES-GCM of {"content", "source"} under the user's data key (see crypto.seal).
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False), repr=False)
    version: int = 1
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    # A keyed item's HMAC of its namespace and key (keys/lookup.py), never the names.
    lookup: str | None = Field(default=None, max_length=64)


class MemoryVersion(SQLModel, table=True):
    """An earlier version of a memory, kept when it is edited; deleted with the memory.
    Encrypted under the same user key, bound to (memory id, version) so that it cannot be
    passed off as the current version or as another memory's."""

    __tablename__ = "memory_versions"
    __table_args__ = (Index("ix_memory_versions_user", "user_id", "memory_id"),)

    memory_id: str = Field(
        primary_key=True, max_length=40, foreign_key="memories.id", ondelete="CASCADE"
    )
    version: int = Field(primary_key=True)
    user_id: str = Field(max_length=128)
    category: str = Field(max_length=64)
    key_id: str = Field(max_length=32)
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False), repr=False)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    valid_from: datetime = Field(sa_type=UTCDateTime)  # when this version was written
    valid_until: datetime = Field(sa_type=UTCDateTime)  # when the next one replaced it


class MemoryEmbedding(SQLModel, table=True):
    """A memory version's vector for recall, sealed under that version's item key (never in
    the clear), bound to it and to `model`; deleted with the memory, and with a newer
    version's vector once that is made."""

    __tablename__ = "memory_embeddings"
    __table_args__ = (Index("ix_memory_embeddings_user", "user_id", "model"),)

    memory_id: str = Field(primary_key=True, max_length=40)
    version: int = Field(primary_key=True)
    model: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(max_length=128)
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False), repr=False)


class StoreFormat(SQLModel, table=True):
    """One row: the content format the store's ciphertexts are in (keys/envelope.py). A
    store still at 1 is re-encrypted when the service starts (services/reencryption.py)."""

    __tablename__ = "store_format"

    id: int = Field(default=1, primary_key=True)
    content_format: int


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"

    id: str = Field(primary_key=True, max_length=40)
    # SHA-256 of the whole token, hex. The token itself is shown once and never stored.
    token_hash: str = Field(max_length=64, unique=True, index=True, repr=False)
    prefix: str = Field(max_length=16)
    name: str = Field(max_length=128)
    role: str = Field(max_length=16)
    user_id: str | None = Field(default=None, max_length=128)
    created_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # None: until revoked. From this instant the token is refused (401), as if revoked.
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ConsentChoice(SQLModel, table=True):
    """A user's current choice for one purpose and one category (or "*": all of them)."""

    __tablename__ = "consents"

    user_id: str = Field(primary_key=True, max_length=128)
    purpose: str = Field(primary_key=True, max_length=64)
    category: str = Field(primary_key=True, max_length=64)
    granted: bool
    version: int  # the history version that set it
    updated_at: datetime = Field(sa_type=UTCDateTime)


class ConsentEvent(SQLModel, table=True):
    """One change of consent, kept as proof of when and how it was given or withdrawn."""

    __tablename__ = "consent_events"
    __table_args__ = (Index("ux_consent_events_user_version", "user_id", "version", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=128)
    version: int  # 1, 2, 3 ... per user
    purpose: str = Field(max_length=64)
    category: str = Field(max_length=64)
    granted: bool
    previous: str = Field(max_length=16)  # "granted", "withdrawn" or "default"
    channel: str = Field(max_length=16)  # how the user made the change: "api" or "web"
    at: datetime = Field(sa_type=UTCDateTime)


class UserSettings(SQLModel, table=True):
    """Per-user switches. No row means the defaults (memory enabled)."""

    __tablename__ = "user_settings"

    user_id: str = Field(primary_key=True, max_length=128)
    memory_enabled: bool = True
    updated_at: datetime = Field(sa_type=UTCDateTime)


class MemoryErasure(SQLModel, table=True):
    """A forgotten user's rows still being deleted: those encrypted under `key_id`, a data key
    already destroyed. Reads skip them at once; the eraser deletes them in batches, destroys
    the key if it is somehow still there, and then this row. After a crash it resumes."""

    __tablename__ = "memory_erasures"

    user_id: str = Field(primary_key=True, max_length=128)
    key_id: str = Field(primary_key=True, max_length=32)
    requested_at: datetime = Field(sa_type=UTCDateTime)


class AuditRow(SQLModel, table=True):
    """One audit record as stored: the fields of audit.AuditRecord, chained by hash."""

    __tablename__ = "audit_records"
    __table_args__ = (
        Index("ix_audit_subject_seq", "subject", "seq"),
        Index("ix_audit_at", "at"),
        Index("ix_audit_actor_seq", "actor_id", "seq"),
    )

    seq: int = Field(primary_key=True)
    at: str = Field(max_length=32)
    actor_id: str = Field(max_length=64)
    actor_role: str = Field(max_length=16)
    request_id: str = Field(max_length=64)
    action: str = Field(max_length=32)
    outcome: str = Field(max_length=16)
    subject: str | None = Field(default=None, max_length=64)
    memory_ids: str = "[]"  # a JSON list of memory ids
    target: str | None = Field(default=None, max_length=64)
    purpose: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=64)
    result_count: int | None = None
    prev: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """The end of the chain: one row, locked by each append so that appends from several
    processes line up in one sequence. With it, the right edge of the Merkle tree over the
    records (audit.Frontier, hex): a checkpoint's root costs O(log n), not a pass."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(max_length=64)
    frontier: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))


class AuditCheckpointRow(SQLModel, table=True):
    """A signed checkpoint: a tlog-checkpoint note (seq is its tree size, hash its Merkle
    root in hex, key_id and signature its signature line's) and its tree's frontier, or,
    without a note, a legacy v1 checkpoint (hash is then the chain hash of record seq)."""

    __tablename__ = "audit_checkpoints"

    seq: int = Field(primary_key=True)
    hash: str = Field(max_length=64)
    at: str = Field(max_length=32)
    key_id: str = Field(max_length=32)
    signature: str = Field(max_length=128)
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The tree's frontier (hex), which the note's signed root proves: where a new process
    # picks up the tree it last signed (trail/log.py), reading only the records since.
    frontier: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


# The key store: each user's data key, wrapped by a KEK, in a database of its own (so a backup
# of the memories holds no key).
keystore_metadata = MetaData()

data_keys = Table(
    "data_keys",
    keystore_metadata,
    Column("user_id", String(128), primary_key=True),
    Column("key_id", String(32), nullable=False),
    Column("kek_version", Integer, nullable=False, index=True),
    Column("wrapped", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # Which secret the row holds: one more each time the user's key is re-issued (after one
    # of their memories is forgotten). Item keys are wrapped under the issue of the moment.
    Column("issue", Integer, nullable=False, server_default="1"),
)

# Each memory version's own key, wrapped under its user's data key (issue of the moment),
# kept here, never beside the ciphertext: deleting it forgets that one version. Its id is in
# the ciphertext's header; one made for a write that never got stored opens nothing.
item_keys = Table(
    "item_keys",
    keystore_metadata,
    Column("user_id", String(128), primary_key=True),
    Column("memory_id", String(40), primary_key=True),
    Column("item_id", String(16), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("key_id", String(32), nullable=False),  # the user's data key it belongs to
    Column("wrapped", LargeBinary, nullable=False),
)

# Each forget the service answered, without saying whose or what: a receipt's id, how many
# items, and the KEK epoch of the moment. Once every epoch up to it is destroyed, no copy of
# what was forgotten opens: GET /v1/erasures/{id} says whether that time has come.
erasures = Table(
    "erasures",
    keystore_metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("items", Integer, nullable=False),
    Column("kek_version", Integer, nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
)

# When each KEK version (an epoch) was made: the rotation schedule counts from it.
kek_epochs = Table(
    "kek_epochs",
    keystore_metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("created_at", UTCDateTime, nullable=False),
)
