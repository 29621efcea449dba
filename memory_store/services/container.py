"""What the HTTP layer is handed: the use cases, and nothing of the storage or keys beneath."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from memory_store.services.audit import AuditService
from memory_store.services.consents import ConsentService
from memory_store.services.erasures import ErasureLog
from memory_store.services.items import ItemService
from memory_store.services.memories import MemoryService
from memory_store.services.refusals import RefusalLog
from memory_store.services.rights import UserRightsService
from memory_store.services.tokens import TokenService


@dataclass(frozen=True)
class Services:
    memories: MemoryService
    consents: ConsentService
    rights: UserRightsService
    audit: AuditService
    tokens: TokenService
    erasures: ErasureLog
    refusals: RefusalLog
    items: ItemService
    # Raises unless the databases answer and the keys are usable (for /readyz).
    check_ready: Callable[[], None]
    # How many memories recall's indexer has not embedded yet (for /readyz).
    recall_lag: Callable[[], int] = lambda: 0
    # Whether a short indexed read may run inline on the event loop (every database a local
    # SQLite file) rather than in a thread.
    inline_reads: bool = False
