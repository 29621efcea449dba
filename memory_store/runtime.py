"""Wiring: from Settings to the engines, keys, policy and services the app and CLI share."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlmodel import SQLModel

from memory_store import models  # noqa: F401  (registers the tables)
from memory_store.auth import TokenService
from memory_store.catalogue import Catalogue
from memory_store.config import Settings
from memory_store.consents import ConsentService
from memory_store.crypto import LocalKeyFileProvider
from memory_store.db import make_engine
from memory_store.keystore import DataKeyring, create_keystore_schema, wrapped_key_counts
from memory_store.policy import Policy
from memory_store.repository import ConsentRepository, MemoryRepository, TokenRepository
from memory_store.retention import RetentionSweeper
from memory_store.service import MemoryService


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    keystore_engine: Engine
    keyring: DataKeyring
    catalogue: Catalogue
    policy: Policy
    memories: MemoryService
    consents: ConsentService
    consents_repository: ConsentRepository
    sweeper: RetentionSweeper
    tokens: TokenService

    def ready(self) -> None:
        """Raise unless both databases answer and the key file is usable."""
        for engine in (self.engine, self.keystore_engine):
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        self.keyring.provider.current_version()

    def close(self) -> None:
        self.engine.dispose()
        self.keystore_engine.dispose()


def open_runtime(settings: Settings) -> Runtime:
    """Open (and on first run create) the databases and the key file.

    A key file is created only when the key store holds no keys yet: when keys exist but
    the file is missing or unreadable, this raises KeyProviderError instead, because a new
    key file would leave every stored memory unreadable.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    engine = make_engine(settings.resolved_database_url(), synchronous=settings.sqlite_synchronous)
    keystore_engine = make_engine(
        settings.resolved_keystore_url(), synchronous=settings.sqlite_synchronous
    )
    SQLModel.metadata.create_all(engine)
    create_keystore_schema(keystore_engine)
    provider = LocalKeyFileProvider(
        settings.resolved_key_file(), create=not wrapped_key_counts(keystore_engine)
    )
    keyring = DataKeyring(keystore_engine, provider)
    keyring.check_versions()
    catalogue = Catalogue.load(settings.policy_dir / "catalogue.toml")
    policy = Policy(settings.policy_dir, catalogue)
    memory_repository = MemoryRepository(engine)
    consent_repository = ConsentRepository(engine)
    memories = MemoryService(memory_repository, consent_repository, keyring, policy, catalogue)
    consents = ConsentService(consent_repository, policy, catalogue)
    sweeper = RetentionSweeper(memory_repository, policy)
    tokens = TokenService(TokenRepository(engine))
    return Runtime(
        settings=settings,
        engine=engine,
        keystore_engine=keystore_engine,
        keyring=keyring,
        catalogue=catalogue,
        policy=policy,
        memories=memories,
        consents=consents,
        consents_repository=consent_repository,
        sweeper=sweeper,
        tokens=tokens,
    )
