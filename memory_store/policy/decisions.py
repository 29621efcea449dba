"""Every access decision, made by Casbin from the files in policies/.

The service describes a request (who, what action, whose data, which purpose, which category,
the user's consent choices, whether the memory has expired) and this module asks the enforcer.
No other module compares roles or reads consent: the rules are in policies/model.conf and
policies/policy.csv, and this module only supplies the facts and names the reason for a denial.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

import casbin

from memory_store.domain import ALL_CATEGORIES, FULL_CONSENT, Principal, Role, SubjectFacts
from memory_store.errors import ConsentRequired, Forbidden, MemoryPaused, NotFound
from memory_store.policy.catalogue import Catalogue

# What a policy line's consent column may say (see policies/model.conf).
CONSENT_RULES = frozenset({"none", "until_withdrawn", "opt_in", "explicit_opt_in"})
_SENSITIVITIES = frozenset({"*", "sensitive", "ordinary"})


class Action(StrEnum):
    me_read = "me.read"
    memory_write = "memory.write"
    memory_read = "memory.read"
    memory_update = "memory.update"
    memory_purge = "memory.purge"
    memory_delete = "memory.delete"
    memory_export = "memory.export"
    user_forget = "user.forget"
    consent_read = "consent.read"
    consent_write = "consent.write"
    settings_read = "settings.read"
    settings_write = "settings.write"
    access_log_read = "access_log.read"
    audit_read = "audit.read"
    audit_verify = "audit.verify"
    audit_export = "audit.export"


class Relation(StrEnum):
    """How the caller stands to the person the data is about."""

    self_ = "self"  # a user token acting on its own user id
    other = "other"  # a user token naming someone else: denials answer 404
    service = "service"  # a token bound to no user (assistant, compliance, admin)
    nobody = "nobody"  # a user token, on a request about no one in particular (the trail)


def consented(facts: SubjectFacts, purpose: str, category: str, rule: str) -> bool:
    """Casbin function: do the user's choices satisfy a policy line's consent rule?"""
    specific, everything = facts.choice(purpose, category)
    explicit = specific if specific is not None else everything
    if rule == "until_withdrawn":
        return explicit is not False
    if rule == "opt_in":
        return explicit is True
    if rule == "explicit_opt_in":
        return specific is True
    return False


def memory_enabled(facts: SubjectFacts) -> bool:
    """Casbin function: has the user left memory on?"""
    return facts.memory_enabled


@dataclass(frozen=True)
class AccessRequest:
    principal: Principal
    action: Action
    subject_user_id: str
    purpose: str
    category: str = ALL_CATEGORIES
    facts: SubjectFacts = field(default_factory=SubjectFacts)
    expired: bool = False

    @property
    def relation(self) -> Relation:
        if self.principal.user_id is None:
            return Relation.service
        if not self.subject_user_id:
            return Relation.nobody
        return Relation.self_ if self.principal.user_id == self.subject_user_id else Relation.other


class PolicyError(Exception):
    """The files in policies/ are not a valid policy; the service refuses to start."""


class Policy:
    """The Casbin enforcer over policies/model.conf and policies/policy.csv, with a decision
    cache keyed by every fact a decision depends on."""

    _CACHE_SIZE = 65536

    def __init__(self, policy_dir: Path, catalogue: Catalogue) -> None:
        self._catalogue = catalogue
        self._enforcer = casbin.Enforcer(
            str(policy_dir / "model.conf"), str(policy_dir / "policy.csv")
        )
        # pycasbin logs every refused request, request attributes included, at WARNING: a
        # refusal is an ordinary answer here, and it is audited, not logged.
        logging.getLogger("casbin").setLevel(logging.ERROR)
        self._enforcer.add_function("consented", consented)
        self._enforcer.add_function("memoryEnabled", memory_enabled)
        self._validate()
        self._lock = threading.Lock()
        self._cache: dict[tuple[object, ...], bool] = {}

    def _validate(self) -> None:
        for line in self._enforcer.get_policy():
            if len(line) != 6 or line[5] not in CONSENT_RULES or line[4] not in _SENSITIVITIES:
                raise PolicyError(
                    f"policy line {', '.join(line)!r}: expected role, action, purpose, relation, "
                    f"sensitivity ({'|'.join(sorted(_SENSITIVITIES))}), "
                    f"consent ({'|'.join(sorted(CONSENT_RULES))})"
                )

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def _sensitivity(self, category: str) -> str:
        return "*" if category == ALL_CATEGORIES else self._catalogue.sensitivity(category)

    def allows(self, request: AccessRequest) -> bool:
        return self._decide(request, request.category, request.facts, request.expired)

    def allows_row(self, request: AccessRequest, category: str, expired: bool) -> bool:
        """`allows` for one row of a list: the request with the row's category and expiry."""
        return self._decide(request, category, request.facts, expired)

    def _decide(
        self, request: AccessRequest, category: str, facts: SubjectFacts, expired: bool
    ) -> bool:
        # Called per row and per category: the cache key is built here, with no copy of the
        # request, and a hit takes no lock (a dict read is atomic; the enforcer is not).
        sensitivity = self._sensitivity(category)
        specific, everything = facts.choice(request.purpose, category)
        key = (  # enum members, not .value: the descriptor costs more than the hash
            request.principal.role,
            request.action,
            request.purpose,
            request.relation,
            category,
            sensitivity,
            facts.memory_enabled,
            specific,
            everything,
            expired,
        )
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        with self._lock:
            decision = bool(
                self._enforcer.enforce(
                    request.principal.role.value,
                    request.action.value,
                    request.purpose,
                    request.relation.value,
                    category,
                    sensitivity,
                    facts,
                    expired,
                )
            )
            if len(self._cache) >= self._CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = decision
            return decision

    def check(self, request: AccessRequest) -> None:
        """Raise unless the policy allows the request, naming why:

        - someone else's data, asked for by a user token: 404, so existence does not leak;
        - an expired memory: 404, it is gone for everyone;
        - the role may not do this even with every consent: 403 forbidden;
        - the user paused memory: 403 memory-paused;
        - otherwise the user's consent is missing: 403 consent-required.
        """
        if self.allows(request):
            return
        if request.relation is Relation.other:
            raise NotFound()
        if request.expired:
            raise NotFound("No such memory")
        if not self.allows(replace(request, facts=FULL_CONSENT)):
            raise Forbidden(
                f"The policy does not allow role '{request.principal.role.value}' "
                f"to {request.action.value} for purpose '{request.purpose}'"
            )
        if not request.facts.memory_enabled:
            raise MemoryPaused(
                "The user has paused memory: the assistant may neither read nor write"
            )
        raise ConsentRequired(
            f"The user has not consented to purpose '{request.purpose}' "
            f"for category '{request.category}'",
            purpose=request.purpose,
            category=request.category,
        )

    def check_role(self, request: AccessRequest, categories: list[str]) -> None:
        """Raise unless the role may take the action on at least one category were every
        consent given: the gate before a list, whose rows are then filtered by consent."""
        if any(self._decide(request, name, FULL_CONSENT, False) for name in categories):
            return
        if request.relation is Relation.other:
            raise NotFound()
        raise Forbidden(
            f"The policy does not allow role '{request.principal.role.value}' "
            f"to {request.action.value} for purpose '{request.purpose}'"
        )

    def assistant_may(self, purpose: str, category: str, facts: SubjectFacts) -> bool:
        """Would the assistant be allowed to read `category` for `purpose` under these
        choices? What a user's consent overview shows (pause aside: that is a setting)."""
        probe = Principal(token_id="-", name="probe", role=Role.assistant, user_id=None)  # noqa: S106
        request = AccessRequest(
            probe,
            Action.memory_read,
            subject_user_id="-",
            purpose=purpose,
            category=category,
            facts=replace(facts, memory_enabled=True),
        )
        return self.allows(request)

    def allowed_categories(self, request: AccessRequest, categories: list[str]) -> list[str]:
        """The categories among `categories` the request may use, with the user's facts."""
        return [name for name in categories if self._decide(request, name, request.facts, False)]
