"""The user's consent choices and settings: view, change, and their history."""

from __future__ import annotations

from collections.abc import Callable

from memory_store.clock import utc_now
from memory_store.domain import (
    ALL_CATEGORIES,
    SELF_SERVICE,
    AuditAction,
    Principal,
    SubjectFacts,
)
from memory_store.policy import AccessRequest, Action, Catalogue, Policy
from memory_store.schemas import (
    ConsentChange,
    ConsentChangeResult,
    ConsentHistoryPage,
    ConsentOverview,
    ConsentState,
    SettingsPublic,
)
from memory_store.services.cursors import Cursors
from memory_store.services.guard import Guard
from memory_store.storage.consents import ConsentEventRow, ConsentRepository
from memory_store.trail.recorder import Auditor

CHANNELS = frozenset({"api", "web"})


class ConsentService:
    def __init__(
        self,
        consents: ConsentRepository,
        policy: Policy,
        catalogue: Catalogue,
        auditor: Auditor,
        cursors: Cursors,
        *,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        # Told the user whose consent or settings changed (the recall index drops theirs).
        self._on_change = on_change or (lambda _user_id: None)
        self._consents = consents
        self._cursors = cursors
        self._policy = policy
        self._catalogue = catalogue
        self._auditor = auditor
        self._guard = Guard(policy, auditor)

    def _check(self, principal: Principal, action: Action) -> str:
        """The caller's own user id, once the policy lets them take `action` on it."""
        user_id = principal.user_id or ""
        request = AccessRequest(principal, action, user_id, SELF_SERVICE)
        self._guard.check(request, AuditAction(action.value), purpose=None)
        return user_id

    def _state(self, purpose: str, category: str, facts: SubjectFacts) -> ConsentState:
        specific, everything = facts.choice(purpose, category)
        source = (
            "category"
            if specific is not None
            else "all_categories"
            if everything is not None
            else "default"
        )
        return ConsentState(
            purpose=purpose,
            category=category,
            sensitive=self._catalogue.categories[category].sensitive,
            granted=self._policy.assistant_may(purpose, category, facts),
            default=source == "default",
            source=source,
        )

    def overview(self, principal: Principal) -> ConsentOverview:
        """The effective state for every purpose and category."""
        user_id = self._check(principal, Action.consent_read)
        facts = self._consents.facts(user_id)
        return ConsentOverview(
            memory_enabled=facts.memory_enabled,
            items=[
                self._state(purpose, category, facts)
                for purpose in self._catalogue.purposes
                for category in self._catalogue.categories
            ],
        )

    def choose(
        self, principal: Principal, purpose: str, category: str, *, granted: bool, channel: str
    ) -> ConsentChangeResult:
        """Grant or withdraw `purpose` for `category` ("*": all). In effect at once."""
        user_id = self._check(principal, Action.consent_write)
        self._catalogue.purpose(purpose)
        if category != ALL_CATEGORIES:
            self._catalogue.category(category)
        self._auditor.record(
            principal,
            AuditAction.consent_change,
            subject_user_id=user_id,
            purpose=purpose,
            reason="granted" if granted else "withdrawn",
        )
        event = self._consents.record(
            user_id, purpose, category, granted=granted, channel=channel, now=utc_now()
        )
        self._policy.clear_cache()
        self._on_change(user_id)
        facts = self._consents.facts(user_id)
        changed = list(self._catalogue.categories) if category == ALL_CATEGORIES else [category]
        return ConsentChangeResult(
            change=_change(event), items=[self._state(purpose, c, facts) for c in changed]
        )

    def history(
        self, principal: Principal, *, limit: int, cursor: str | None
    ) -> ConsentHistoryPage:
        user_id = self._check(principal, Action.consent_read)
        before = self._cursors.decode_int(cursor, "v") if cursor is not None else None
        events = self._consents.history(user_id, limit=limit + 1, before_version=before)
        items = [_change(event) for event in events[:limit]]
        more = len(events) > limit
        return ConsentHistoryPage(
            items=items,
            next_cursor=self._cursors.encode({"v": items[-1].version}) if more and items else None,
        )

    def settings(self, principal: Principal) -> SettingsPublic:
        user_id = self._check(principal, Action.settings_read)
        row = self._consents.settings(user_id)
        if row is None:
            return SettingsPublic(memory_enabled=True, updated_at=None)
        return SettingsPublic(memory_enabled=row.memory_enabled, updated_at=row.updated_at)

    def update_settings(self, principal: Principal, *, memory_enabled: bool) -> SettingsPublic:
        """Pause or resume memory. In effect on the very next request."""
        user_id = self._check(principal, Action.settings_write)
        self._auditor.record(
            principal,
            AuditAction.settings_change,
            subject_user_id=user_id,
            reason="memory_enabled" if memory_enabled else "memory_paused",
        )
        row = self._consents.save_settings(user_id, memory_enabled=memory_enabled, now=utc_now())
        self._policy.clear_cache()
        self._on_change(user_id)
        return SettingsPublic(memory_enabled=row.memory_enabled, updated_at=row.updated_at)


def _change(event: ConsentEventRow) -> ConsentChange:
    return ConsentChange(
        version=event.version,
        purpose=event.purpose,
        category=event.category,
        granted=event.granted,
        previous=event.previous,
        channel=event.channel,
        at=event.at,
    )
