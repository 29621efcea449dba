"""Wiring: from Settings to the engines, keys, policy, trail and services that the app, the
CLI and the MCP server share. The one module that knows every room."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from sqlalchemy import Engine

from audit import SigningKey
from memory_store.config import Settings
from memory_store.errors import KeyProviderError
from memory_store.keys.keyring import DataKeyring
from memory_store.keys.lookup import ItemLookup
from memory_store.keys.pkcs11_provider import Pkcs11KeyProvider
from memory_store.keys.provider import KeyProvider, LocalKeyFileProvider
from memory_store.policy import Catalogue, Policy
from memory_store.recall.embedders import Embedder, load_embedder
from memory_store.recall.index import RecallIndex
from memory_store.recall.text import check_languages
from memory_store.services.audit import AuditService
from memory_store.services.consents import ConsentService
from memory_store.services.container import Services
from memory_store.services.cursors import Cursors
from memory_store.services.erasures import ErasureLog
from memory_store.services.indexer import Indexer
from memory_store.services.items import ItemService
from memory_store.services.keys import KeyService
from memory_store.services.memories import MemoryService
from memory_store.services.recall import Recall
from memory_store.services.reencryption import Reencryption
from memory_store.services.refusals import RefusalLog
from memory_store.services.retention import RetentionSweeper
from memory_store.services.rights import UserRightsService
from memory_store.services.tokens import TokenService
from memory_store.storage import migrate
from memory_store.storage.audit_trail import AuditTrailStore
from memory_store.storage.consents import ConsentRepository
from memory_store.storage.embeddings import EmbeddingRepository
from memory_store.storage.engines import make_engine
from memory_store.storage.eraser import Eraser
from memory_store.storage.group_commit import GroupCommitter
from memory_store.storage.items import ItemRepository
from memory_store.storage.keystore import KeyStore
from memory_store.storage.legacy_ciphertexts import LegacyCiphertexts
from memory_store.storage.memories import MemoryRepository
from memory_store.storage.rawdb import RawDB, close_thread_connections
from memory_store.storage.tokens import TokenRepository
from memory_store.trail.log import AuditLog
from memory_store.trail.recorder import Auditor
from memory_store.trail.witness import WitnessDirectory, Witnesses, WitnessPoster

# What the audit pseudonyms of subjects with no data key are keyed by (trail/recorder.py).
STRANGER_PSEUDONYMS = b"memory-store/stranger-pseudonym/1"
# What the page cursors this service issues are signed with (services/cursors.py).
CURSOR_SECRET = b"memory-store/cursor/1"

# What opening the runtime does about the databases' schema: bring them to the current one
# (the server's start, by default), create a brand-new store but leave an existing one as it
# is (every other command: it must not migrate a database a server is using), or only check.
SchemaAction = Literal["upgrade", "create", "check"]


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
    audit_store: AuditTrailStore
    auditor: Auditor
    memories: MemoryService
    consents: ConsentService
    consents_repository: ConsentRepository
    sweeper: RetentionSweeper
    tokens: TokenService
    audit: AuditService
    rights: UserRightsService
    keys: KeyService
    erasures: ErasureLog
    cursors: Cursors
    eraser: Eraser
    memory_writer: GroupCommitter
    keystore_writer: GroupCommitter
    items: ItemService
    indexer: Indexer
    closed: bool = field(default=False, init=False)

    @property
    def services(self) -> Services:
        """What the HTTP layer may use."""
        return Services(
            memories=self.memories,
            consents=self.consents,
            rights=self.rights,
            audit=self.audit,
            tokens=self.tokens,
            erasures=self.erasures,
            refusals=RefusalLog(self.auditor, self.catalogue),
            items=self.items,
            check_ready=self.ready,
            recall_lag=self.indexer.lag,
            inline_reads=all(
                engine.dialect.name == "sqlite"
                for engine in (self.engine, self.keystore_engine, self.audit_engine)
            ),
        )

    def ready(self) -> None:
        """Raise unless the databases answer and the key file is usable."""
        for engine in (self.engine, self.keystore_engine, self.audit_engine):
            RawDB(engine).one("SELECT 1", ())
        self.keyring.provider.current_version()

    def close(self) -> None:
        """Stop the sweeper, the indexer, the key rotation and the eraser, flush the audit
        trail (and sign its end), then release the databases. Closing again does nothing."""
        if self.closed:
            return
        self.closed = True
        self.sweeper.close()
        self.indexer.close()
        self.memories.recall.close()
        self.keys.close()
        self.eraser.close()
        self.memory_writer.close()
        self.keystore_writer.close()
        self.audit_log.close()
        self.keyring.provider.close()
        for engine in (self.engine, self.keystore_engine, self.audit_engine):
            close_thread_connections(engine)
            engine.dispose()


def _open_signing_key(settings: Settings, store: AuditTrailStore) -> SigningKey:
    path = settings.resolved_audit_key_file()
    try:
        return SigningKey.load_or_create(path, create=not store.has_records())
    except (OSError, ValueError) as exc:
        raise KeyProviderError(f"audit signing key: {exc}") from None


def key_provider(settings: Settings, *, create: bool) -> KeyProvider:
    """The KEKs' home the settings name; `create`: make the first KEK if there is none."""
    if settings.key_provider == "pkcs11":
        if not (settings.pkcs11_module and settings.pkcs11_token_label and settings.pkcs11_pin):
            raise KeyProviderError(
                "MEMORY_STORE_KEY_PROVIDER=pkcs11 needs MEMORY_STORE_PKCS11_MODULE, "
                "MEMORY_STORE_PKCS11_TOKEN_LABEL and MEMORY_STORE_PKCS11_PIN"
            )
        return Pkcs11KeyProvider(
            settings.pkcs11_module,
            settings.pkcs11_token_label,
            settings.pkcs11_pin.get_secret_value(),
            create=create,
        )
    return LocalKeyFileProvider(settings.resolved_key_file(), create=create)


def recall_embedder(settings: Settings) -> Embedder | None:
    """The embedder the settings name (loaded once per process), its stemmers checked:
    ValueError, before anything is opened, for either that will not do."""
    try:
        check_languages(settings.recall_languages)
        return load_embedder(settings.recall_embedder)
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        raise ValueError(f"recall: {exc}") from None


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


def _open_audit_log(settings: Settings, engine: Engine, signing_key: SigningKey) -> AuditLog:
    """The trail's writer, its checkpoints and the witnesses they are published to."""
    witness_url = settings.audit_witness_url
    witnesses = Witnesses(
        WitnessDirectory(settings.resolved_audit_witness_dir()),
        WitnessPoster(witness_url.get_secret_value()) if witness_url is not None else None,
    )
    return AuditLog(
        engine,
        signing_key,
        witnesses=witnesses,
        checkpoint_every=settings.audit_checkpoint_every,
        checkpoint_seconds=settings.audit_checkpoint_seconds,
        beside_memories=settings.trail_beside_memories(),
    )


def open_runtime(settings: Settings, *, schema: SchemaAction | None = None) -> Runtime:
    """Open (and on first run create) the databases, the key file and the signing key.
    `schema` (default: "upgrade", or "check" when MEMORY_STORE_MIGRATE_ON_START=false) says
    what is done about the databases' schema first, and about a store whose ciphertexts are
    in an older content format (re-encrypted on "upgrade", refused otherwise).

    A key file is created only when the key store holds no keys yet, and a signing key only
    when the audit trail is empty: otherwise a missing one raises KeyProviderError, because a
    new key would leave stored memories unreadable, or the trail's signatures unverifiable.
    """
    if schema is None:
        schema = "upgrade" if settings.migrate_on_start else "check"
    embedder = recall_embedder(settings)
    engines = open_engines(settings)
    if schema == "upgrade":
        migrate.upgrade_all(engines)
    else:
        if schema == "create":
            migrate.create_new(engines)
        migrate.check_current(engines)
    engine, keystore_engine, audit_engine = engines["memory"], engines["keystore"], engines["audit"]
    audit_store = AuditTrailStore(RawDB(audit_engine))
    audit_store.ensure_head()
    keystore_writer = GroupCommitter(keystore_engine, name="keystore-writer")
    keystore = KeyStore(RawDB(keystore_engine), keystore_writer)
    provider = key_provider(settings, create=not keystore.counts_by_version())
    keyring = DataKeyring(keystore, provider)
    keyring.check_versions()
    signing_key = _open_signing_key(settings, audit_store)
    catalogue = Catalogue.load(settings.policy_dir / "catalogue.toml")
    policy = Policy(settings.policy_dir, catalogue)
    audit_log = _open_audit_log(settings, audit_engine, signing_key)
    auditor = Auditor(audit_log, keyring, signing_key.derive_secret(STRANGER_PSEUDONYMS))
    memory_raw = RawDB(engine)
    memory_writer = GroupCommitter(engine, name="memory-writer")
    recall = Recall(
        EmbeddingRepository(memory_raw),
        embedder,
        RecallIndex(settings.recall_index_users),
        languages=settings.recall_languages,
        floor=settings.recall_min_similarity,
    )
    memory_repository = MemoryRepository(memory_raw, memory_writer)
    reencryption = Reencryption(LegacyCiphertexts(memory_raw), keyring)
    if reencryption.needed():  # a store made before content format 2
        if schema != "upgrade":
            memory_writer.close()
            keystore_writer.close()
            audit_log.close()
            raise migrate.SchemaOutOfDate(
                "the memories are in an older content format: run `memory-store db upgrade`"
            )
        reencryption.run()
    eraser = Eraser(memory_raw, keyring.destroy)
    eraser.start()  # resumes any erasure a previous run left unfinished
    consent_repository = ConsentRepository(memory_raw)
    token_repository = TokenRepository(memory_raw)
    every = settings.kek_rotate_every
    keys = KeyService(
        keyring,
        keystore,
        auditor,
        rotate_every=timedelta(seconds=every) if every else None,
        on_rotate=recall.index.clear,
    )
    keys.epoch_started()  # the schedule's clock starts with the store
    erasures = ErasureLog(keystore, keys)
    cursors = Cursors(signing_key.derive_secret(CURSOR_SECRET))
    memories = MemoryService(
        memory_repository,
        consent_repository,
        keyring,
        policy,
        catalogue,
        auditor,
        erasures,
        cursors,
        max_memories_per_user=settings.max_memories_per_user,
        recall=recall,
    )
    consents = ConsentService(
        consent_repository, policy, catalogue, auditor, cursors, on_change=recall.index.evict
    )
    items = ItemService(
        memory_repository,
        consent_repository,
        keyring,
        policy,
        catalogue,
        auditor,
        erasures,
        cursors,
        max_memories_per_user=settings.max_memories_per_user,
    ).attach(ItemRepository(memory_raw, memory_writer), ItemLookup(keyring))
    audit = AuditService(
        audit_store,
        signing_key,
        policy,
        auditor,
        token_repository,
        audit_log.witness_directory,
        cursors,
    )
    return Runtime(
        settings=settings,
        engine=engine,
        keystore_engine=keystore_engine,
        audit_engine=audit_engine,
        keyring=keyring,
        catalogue=catalogue,
        policy=policy,
        audit_log=audit_log,
        audit_store=audit_store,
        auditor=auditor,
        memories=memories,
        consents=consents,
        consents_repository=consent_repository,
        sweeper=RetentionSweeper(memory_repository, keyring, policy, auditor),
        tokens=TokenService(token_repository, keyring, auditor),
        audit=audit,
        rights=UserRightsService(
            memories, consents, audit, keyring, policy, auditor, eraser, erasures
        ),
        keys=keys,
        erasures=erasures,
        cursors=cursors,
        eraser=eraser,
        memory_writer=memory_writer,
        keystore_writer=keystore_writer,
        items=items,
        indexer=Indexer(recall, keyring),
    )
