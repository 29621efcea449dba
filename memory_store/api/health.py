"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Response

from memory_store.api.deps import ServicesDep
from memory_store.logging import get_logger
from memory_store.schemas import Health

router = APIRouter(tags=["operations"])
_log = get_logger("memory_store.health")


@router.get("/healthz", response_model_exclude_none=True)
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", responses={503: {"model": Health}}, response_model_exclude_none=True)
def readyz(services: ServicesDep, response: Response) -> Health:
    """The databases answer and the key file is usable; and how far recall's indexer is
    behind."""
    try:
        services.check_ready()
        lag = services.recall_lag()
    except Exception as exc:  # readiness reports any failure as 503, it does not crash
        _log.warning("not_ready", error_type=type(exc).__name__)
        response.status_code = 503
        return Health(status="unavailable")
    return Health(status="ok", recall_lag=lag)
