"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Response

from memory_store.api.deps import ServicesDep
from memory_store.logging import get_logger
from memory_store.schemas import Health

router = APIRouter(tags=["operations"])
_log = get_logger("memory_store.health")


@router.get("/healthz")
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", responses={503: {"model": Health}})
def readyz(services: ServicesDep, response: Response) -> Health:
    """The databases answer and the key file is usable."""
    try:
        services.check_ready()
    except Exception as exc:  # readiness reports any failure as 503, it does not crash
        _log.warning("not_ready", error_type=type(exc).__name__)
        response.status_code = 503
        return Health(status="unavailable")
    return Health(status="ok")
