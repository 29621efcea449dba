"""Wiring: from Settings to the engines, keys, policy and services the app and CLI share."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select, text

from audit import SigningKey
from memory_store import schema
from memory_store.audit_service import AuditService
from memory_store.audit_store import AuditLog, AuditStore, ensure_head
from memory_store.auditing import Auditor
from memory_store.auth import TokenService
from memory_store.catalogue import Catalogue
from memory_store.config import Settings
from memory_store.consents import ConsentService
from memory_store.crypto import LocalKeyFileProvider
from memory_store.db import make_engine
from memory_store.erasure import Eraser
from memory_store.errors import KeyProviderError
from memory_store.group_commit import GroupCommitter
from memory_store.keystore import DataKeyring, wrapped_key_counts
from memory_store.limits import Limits, RateLimiter
from memory_store.policy import Policy
from memory_store.rawdb import close_thread_connections
from memory_store.repository import ConsentRepository, MemoryRepository, TokenRepository
from memory_store.retention import RetentionSweeper
from memory_store.rights import UserRightsService
from memory_store.service import MemoryService


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    keystore_engine: Engine
    audit_engine: Engine
    keyring: DataKeyring
    catalogue: Catalogue
    policy: Policy
    audit_log: AuditLog
    auditor: Auditor
    memories: MemoryService
    consents: ConsentService
    consents_repository: ConsentRepository
    sweeper: RetentionSweeper
    tokens: TokenService
    audit: AuditService
    rights: UserRightsService
    limits: Limits
    eraser: Eraser
    memory_writer: GroupCommitter

    def ready(self) -> None:
        """Raise unless the databases answer and the key file is usable."""
        for engine in (self.engine, self.keystore_engine, self.audit_engine):
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        self.keyring.provider.current_version()

    def close(self) -> None:
        """Stop the eraser, flush the audit trail (and sign its end), then release the
        databases."""
        self.eraser.close()
        self.memory_writer.close()
        self.audit_log.close()
        for engine in (self.engine, self.keystore_engine, self.audit_engine):
            close_thread_connections(engine)
            engine.dispose()


def _open_signing_key(settings: Settings, audit_engine: Engine) -> SigningKey:
    with audit_engine.connect() as conn:
        has_records = bool(
            conn.execute(select(func.count()).select_from(schema.AUDIT_TABLES[0])).scalar()
        )
    path = settings.resolved_audit_key_file()
    try:
        return SigningKey.load_or_create(path, create=not has_records)
    except (OSError, ValueError) as exc:
        raise KeyProviderError(f"audit signing key: {exc}") from None


def open_engines(settings: Settings) -> dict[str, Engine]:
    """The three databases, by migration branch: memories, key store, audit trail."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    synchronous = settings.sqlite_synchronous
    return {
        "memory": make_engine(settings.resolved_database_url(), synchronous=synchronous),
        "keystore": make_engine(settings.resolved_keystore_url(), synchronous=synchronous),
        # Appends lock the chain's head first thing: BEGIN IMMEDIATE on SQLite.
        "audit": make_engine(
            settings.resolved_audit_database_url(), synchronous=synchronous, immediate=True
        ),
    }


def open_runtime(settings: Settings) -> Runtime:
    """Open (and on first run create) the databases, the key file and the signing key.
    Alembic brings the databases to the current schema first (unless
    MEMORY_STORE_MIGRATE_ON_START=false, when they must already be there).

    A key file is created only when the key store holds no keys yet, and a signing key only
    when the audit trail is empty: otherwise a missing one raises KeyProviderError, because a
    new key would leave stored memories unreadable, or the trail's signatures unverifiable.
    """
    engines = open_engines(settings)
    engine, keystore_engine, audit_engine = engines["memory"], engines["keystore"], engines["audit"]
    if settings.migrate_on_start:
        schema.upgrade_all(engines)
    else:
        schema.check_current(engines)
    ensure_head(audit_engine)
    provider = LocalKeyFileProvider(
        settings.resolved_key_file(), create=not wrapped_key_counts(keystore_engine)
    )
    keyring = DataKeyring(keystore_engine, provider)
    keyring.check_versions()
    signing_key = _open_signing_key(settings, audit_engine)
    catalogue = Catalogue.load(settings.policy_dir / "catalogue.toml")
    policy = Policy(settings.policy_dir, catalogue)
    audit_log = AuditLog(
        audit_engine,
        signing_key,
        checkpoint_every=settings.audit_checkpoint_every,
        checkpoint_seconds=settings.audit_checkpoint_seconds,
    )
    auditor = Auditor(audit_log, keyring)
    memory_writer = GroupCommitter(engine, name="memory-writer")
    memory_repository = MemoryRepository(engine, memory_writer)
    eraser = Eraser(engine, keyring)
    eraser.start()  # resumes any erasure a previous run left unfinished
    consent_repository = ConsentRepository(engine)
    token_repository = TokenRepository(engine)
    memories = MemoryService(
        memory_repository,
        consent_repository,
        keyring,
        policy,
        catalogue,
        auditor,
        max_memories_per_user=settings.max_memories_per_user,
    )
    consents = ConsentService(consent_repository, policy, catalogue, auditor)
    audit = AuditService(AuditStore(audit_engine), audit_log, policy, auditor, token_repository)
    return Runtime(
        settings=settings,
        engine=engine,
        keystore_engine=keystore_engine,
        audit_engine=audit_engine,
        keyring=keyring,
        catalogue=catalogue,
        policy=policy,
        audit_log=audit_log,
        auditor=auditor,
        memories=memories,
        consents=consents,
        consents_repository=consent_repository,
        sweeper=RetentionSweeper(memory_repository, policy, auditor),
        tokens=TokenService(token_repository, auditor),
        audit=audit,
        rights=UserRightsService(
            keystore_engine, memories, consents, audit, keyring, policy, auditor, eraser
        ),
        eraser=eraser,
        memory_writer=memory_writer,
        limits=Limits(
            assistant=RateLimiter(
                per_minute=settings.assistant_rate_limit_per_minute,
                burst_seconds=settings.rate_limit_burst_seconds,
            ),
            others=RateLimiter(
                per_minute=settings.rate_limit_per_minute,
                burst_seconds=settings.rate_limit_burst_seconds,
            ),
        ),
    )
