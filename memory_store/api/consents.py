"""A user's consent choices and settings: /v1/me/consents and /v1/me/settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query

from memory_store.api.deps import PrincipalDep, ServicesDep, problem_responses
from memory_store.schemas import (
    ConsentChangeResult,
    ConsentGrant,
    ConsentHistoryPage,
    ConsentOverview,
    SettingsPublic,
    SettingsUpdate,
)

router = APIRouter(prefix="/v1/me", tags=["user"])

ChannelHeader = Annotated[
    str,
    Header(
        alias="X-Consent-Channel",
        pattern="^(api|web)$",
        description="How the user made the choice, for the history: api (default) or web.",
    ),
]


@router.get("/consents", responses=problem_responses(401, 403))
def get_consents(principal: PrincipalDep, services: ServicesDep) -> ConsentOverview:
    """For every purpose and category: may the assistant use it, and is that the default?"""
    return services.consents.overview(principal)


@router.put("/consents/{purpose}/{category}", responses=problem_responses(400, 401, 403, 413, 422))
def put_consent(
    purpose: Annotated[str, Path(min_length=1, max_length=64)],
    category: Annotated[
        str, Path(min_length=1, max_length=64, description='A category, or "*" for all.')
    ],
    body: ConsentGrant,
    principal: PrincipalDep,
    services: ServicesDep,
    channel: ChannelHeader = "api",
) -> ConsentChangeResult:
    """Grant or withdraw a purpose for a category. It takes effect on the very next request.
    A choice for "*" replaces every per-category choice of that purpose; sensitive categories
    still need a grant of their own."""
    return services.consents.choose(
        principal, purpose, category, granted=body.granted, channel=channel
    )


@router.get("/consents/history", responses=problem_responses(401, 403, 422))
def get_consent_history(
    principal: PrincipalDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> ConsentHistoryPage:
    """Every change of consent, newest first: what, when, and through which channel."""
    return services.consents.history(principal, limit=limit, cursor=cursor)


@router.get("/settings", responses=problem_responses(401, 403))
def get_settings(principal: PrincipalDep, services: ServicesDep) -> SettingsPublic:
    return services.consents.settings(principal)


@router.patch("/settings", responses=problem_responses(400, 401, 403, 413, 422))
def patch_settings(
    body: SettingsUpdate, principal: PrincipalDep, services: ServicesDep
) -> SettingsPublic:
    """`memory_enabled: false` pauses memory: the assistant gets nothing and may write
    nothing, while you still see and manage everything."""
    return services.consents.update_settings(principal, memory_enabled=body.memory_enabled)
