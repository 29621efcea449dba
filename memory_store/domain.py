"""The words every room shares: who calls, what the person chose, and what the trail records.

Nothing here does I/O or imports another room, so any room may import it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

# User ids: lower case, so that "Alice" and "alice" can never be two people; a letter or digit
# first, so that "." and ".." (and ids that read as hidden or relative paths) cannot be one.
USER_ID_PATTERN = r"^[a-z0-9][a-z0-9._@-]{0,127}$"
USER_ID_RULE = (
    "1-128 characters of lower-case a-z, digits and . _ @ -, starting with a letter or digit"
)
# What a long operation calls as it goes: "n more items done" (the CLI draws a progress bar).
Progress = Callable[[int], None]

# The most server processes `serve --workers` runs for one store.
MAX_WORKERS = 64


class Role(StrEnum):
    assistant = "assistant"
    user = "user"
    compliance = "compliance"
    admin = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, role and (for user tokens) the user it is bound to."""

    token_id: str
    name: str
    role: Role
    user_id: str | None


# Whoever runs the `memory-store` command on the server is the operator.
OPERATOR = Principal(token_id="cli", name="operator", role=Role.admin, user_id=None)  # noqa: S106
# The retention sweeper acts as the operator: policy.csv lets the admin role purge.
SWEEPER = Principal(
    token_id="system",  # noqa: S106 (an id, not a secret)
    name="retention-sweeper",
    role=Role.admin,
    user_id=None,
)

# The purpose of a user's own calls through /v1/me: they need no consent to see their data.
SELF_SERVICE = "self_service"
# The purpose of the retention sweeper's purge.
RETENTION = "retention"
# The purpose of compliance staff reviewing the audit trail.
COMPLIANCE = "compliance"
# The purpose of the operator's own commands on the server (`memory-store audit verify`).
OPERATIONS = "operations"
# A consent choice for every category of a purpose; also "no particular category".
ALL_CATEGORIES = "*"


@dataclass(frozen=True)
class SubjectFacts:
    """What the person the data is about has chosen: loaded fresh for every request, so a
    withdrawal or a pause takes effect on the very next one, in every server process."""

    memory_enabled: bool = True
    # (purpose, category or "*") -> granted. A choice for "*" clears the per-category ones
    # (see storage.consents.ConsentRepository.record), so the most recent choice always wins.
    choices: Mapping[tuple[str, str], bool] = field(default_factory=dict)
    # A counterfactual: every consent granted. Used to tell "the role may never" apart from
    # "the user has not consented".
    grant_all: bool = False

    def __repr__(self) -> str:
        # The choices are personal data: never in a log line or a traceback.
        return f"SubjectFacts(memory_enabled={self.memory_enabled}, choices=<{len(self.choices)}>)"

    def choice(self, purpose: str, category: str) -> tuple[bool | None, bool | None]:
        """(the choice for this category, the choice for all categories) of `purpose`."""
        if self.grant_all:
            return True, True
        return self.choices.get((purpose, category)), self.choices.get((purpose, ALL_CATEGORIES))


FULL_CONSENT = SubjectFacts(memory_enabled=True, grant_all=True)


class AuditAction(StrEnum):
    """What an audit record says was done (or refused). The trail stores the value."""

    auth = "auth"
    me_read = "me.read"
    memory_write = "memory.write"
    memory_read = "memory.read"
    memory_list = "memory.list"
    memory_search = "memory.search"
    memory_context = "memory.context"
    memory_history = "memory.history"
    memory_export = "memory.export"
    memory_update = "memory.update"
    memory_delete = "memory.delete"
    memory_purge = "memory.purge"
    user_forget = "user.forget"
    consent_read = "consent.read"
    consent_write = "consent.write"
    consent_change = "consent.change"
    settings_read = "settings.read"
    settings_write = "settings.write"
    settings_change = "settings.change"
    access_log_read = "access_log.read"
    audit_read = "audit.read"
    audit_verify = "audit.verify"
    audit_export = "audit.export"
    token_create = "token.create"  # noqa: S105 (an action's name)
    token_revoke = "token.revoke"  # noqa: S105
    key_rotate = "key.rotate"
    key_retire = "key.retire"
    # A refused request on a route with no action of its own (the route is the target).
    request_refused = "request.refused"


# What a user's access log shows: every attempt to read their memories.
READ_ACTIONS = (
    AuditAction.memory_read,
    AuditAction.memory_list,
    AuditAction.memory_search,
    AuditAction.memory_history,
    AuditAction.memory_export,
    AuditAction.memory_context,
)


@dataclass(frozen=True)
class AuditQuery:
    """A filter over the audit trail (compliance's events, a user's access log)."""

    actor_id: str | None = None
    subjects: Sequence[str] | None = None  # any of these pseudonyms
    action: str | None = None
    actions: Sequence[str] | None = None
    purpose: str | None = None
    outcome: str | None = None
    since: str | None = None
    until: str | None = None
