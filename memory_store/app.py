"""create_app(settings): the FastAPI application."""

from __future__ import annotations

import gc
import inspect
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
import fastapi_offline
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from uvicorn.config import STARTUP_FAILURE

from memory_store import __version__
from memory_store.api import (
    assistant,
    audit,
    consents,
    erasures,
    health,
    items,
    me,
    problem_pages,
)
from memory_store.api.deps import ProblemDetails
from memory_store.api.hot_routes import HotRoutes
from memory_store.api.limits import Limits, RateLimiter
from memory_store.api.middleware import (
    DOCS_SECURITY_HEADERS,
    RequestContextMiddleware,
    UISecurityHeadersMiddleware,
)
from memory_store.api.openapi import improve, operation_id
from memory_store.api.problems import install_handlers
from memory_store.config import Settings
from memory_store.errors import KeyProviderError
from memory_store.logging import configure_logging, get_logger
from memory_store.mcp_http import McpEndpoint, McpRoute
from memory_store.runtime import Runtime, open_runtime
from memory_store.storage.engines import default_pool_size, engine_pool_size
from memory_store.storage.migrate import SchemaOutOfDate

_log = get_logger("memory_store.app")
UI_DIR = Path(__file__).parent / "ui"
UI_PREFIX = "/ui"
# Swagger UI's and ReDoc's scripts, from a package (fastapi-offline) rather than a CDN, so
# that /docs and /redoc work without the network.
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
DOCS_PREFIX = "/docs-assets"


def create_app(
    settings: Settings | None = None, runtime: Runtime | None = None, *, sweep: bool = True
) -> FastAPI:
    """Build the app. Opening the runtime here (not lazily) makes a bad key file or database
    stop the server before it listens, with a clear message. `sweep=False`: no retention
    sweeper in this process (`serve --workers N` runs one in the supervising process)."""
    settings = settings or Settings()
    if runtime is None:
        with default_pool_size(settings.resolved_db_pool_size()):
            runtime = open_runtime(settings)

    mcp = McpEndpoint(runtime.catalogue, max_body_bytes=settings.max_body_bytes)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Sync endpoints and dependencies run on anyio's threads, each holding at most one
        # connection per database: as many threads as pooled connections, so that under load
        # a request waits here for a thread rather than open (and then close) a connection.
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = request_threads(runtime, settings)
        if sweep:
            runtime.sweeper.start(settings.retention_sweep_seconds)
            runtime.indexer.start(settings.recall_index_seconds)
            runtime.keys.start()
        async with mcp.serving():
            yield
        runtime.close()  # the sweeper too

    app = FastAPI(
        title="memory-store",
        version=__version__,
        description="A privacy-first memory service for AI assistants. Every refusal is "
        "RFC 9457 problem details; its `type` links to a page that explains it "
        "([all of them](/problems/)). The user's own page is at [/ui/](/ui/).",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=operation_id,
        license_info={"name": "Apache-2.0", "identifier": "Apache-2.0"},
        **_telemetry(settings),
    )
    app.state.runtime = runtime  # for tests and operations; the routers get only services
    app.state.services = runtime.services
    app.state.limits = _limits(settings)
    install_handlers(app)
    app.include_router(health.router)
    app.include_router(assistant.router)
    app.include_router(assistant.context_router)
    app.include_router(items.router)
    app.include_router(me.router)
    app.include_router(consents.router)
    app.include_router(audit.router)
    app.include_router(erasures.router)
    # MCP over streamable HTTP: the same tools as `memory-store mcp`, on the same services.
    app.router.routes.append(McpRoute(mcp))
    app.include_router(problem_pages.router)
    _document(app, runtime.catalogue.purposes, runtime.catalogue.categories)
    mount_docs(app)
    mount_ui(app)
    # Innermost of the app's middleware: the hot routes get the same request id, body limit,
    # access log, headers and CORS as every other route.
    app.state.hot_routes = True
    app.add_middleware(HotRoutes, api=app)
    if settings.cors_origins:  # none unless configured: the web page is same-origin
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "X-Consent-Channel"],
            expose_headers=["ETag", "Retry-After", "X-Request-ID"],
        )
    app.add_middleware(UISecurityHeadersMiddleware, prefix=UI_PREFIX)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    return app


def _telemetry(settings: Settings) -> dict[str, Any]:
    """FastAPI's own OpenTelemetry instrumentation (FastAPI 0.16x), off unless asked for.
    Left on, FastAPI looks up the global providers on every request (a fifth of a list's
    time on the event loop, measured with py-spy), and a span would carry the path, which
    names the user, to whatever exporter the environment configures."""
    if settings.opentelemetry or "telemetry" not in inspect.signature(FastAPI).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def _limits(settings: Settings) -> Limits:
    """The rate limits of this process. With `serve --workers N` the budget is split: each
    worker allows 1/N of each rate (rounded up), so that N workers together allow about the
    rate configured, not N times it."""
    share = max(1, settings.workers)
    return Limits(
        assistant=RateLimiter(
            per_minute=-(-settings.assistant_rate_limit_per_minute // share),
            burst_seconds=settings.rate_limit_burst_seconds,
        ),
        others=RateLimiter(
            per_minute=-(-settings.rate_limit_per_minute // share),
            burst_seconds=settings.rate_limit_burst_seconds,
        ),
    )


def request_threads(runtime: Runtime, settings: Settings) -> int:
    """How many requests a process serves at once: its smallest connection pool."""
    sizes = [
        size
        for engine in (runtime.engine, runtime.keystore_engine, runtime.audit_engine)
        if (size := engine_pool_size(engine)) is not None
    ]
    return min(sizes, default=settings.resolved_db_pool_size())


def freeze_startup_heap() -> None:
    """Move every object built so far (the app and its routes, the runtime, the policy, the
    recall model's vocabulary) out of the garbage collector's way, in a server process about
    to serve: they live as long as the process, yet each full collection walked them all,
    in the middle of requests. With this the p99 of a list of 20 under load fell from
    150-250 ms to 55-70 ms (benchmarks/HISTORY.md). Only for a process that serves until it
    exits: a cycle among frozen objects is never collected."""
    gc.collect()
    gc.freeze()


def worker_app() -> FastAPI:
    """The app of one worker process of `memory-store serve --workers N`: uvicorn imports and
    calls this factory in each worker it spawns. The settings come from the environment, as
    the supervising process's did; that process has already brought the databases to the
    current schema and created the keys, and it runs the retention sweeper, so workers do
    neither (opening the runtime here finds the schema current and migrates nothing)."""
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    try:
        app = create_app(settings, sweep=False)
        freeze_startup_heap()
        return app
    except (KeyProviderError, SchemaOutOfDate) as exc:
        _log.error("worker_refusing_to_start", error=str(exc))
    except Exception:
        _log.exception("worker_start_failed")
    # uvicorn's supervisor restarts a worker that dies, unless it exits with this code: then
    # it stops every worker, and `serve` fails, instead of restarting this one forever.
    sys.exit(STARTUP_FAILURE)


def _document(app: FastAPI, purposes: Iterable[str], categories: Iterable[str]) -> None:
    """Put the ProblemDetails schema that every refusal's entry refers to into the document,
    then the summaries, enums and examples (api/openapi.py)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                license_info=app.license_info,
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas["ProblemDetails"] = ProblemDetails.model_json_schema()
            improve(document, list(purposes), list(categories))
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def mount_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc on local assets; / leads to the user's page."""

    @app.get("/docs", include_in_schema=False)
    async def _swagger() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url=f"{DOCS_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_PREFIX}/swagger-ui.css",
            swagger_favicon_url="/favicon.ico",
            # No badge from swagger.io's validator, which would be sent this API's address.
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers.update(DOCS_SECURITY_HEADERS)
        return page

    @app.get("/redoc", include_in_schema=False)
    async def _redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - API",
            redoc_js_url=f"{DOCS_PREFIX}/redoc.standalone.js",
            redoc_favicon_url="/favicon.ico",
            with_google_fonts=False,
        )
        page.headers.update(DOCS_SECURITY_HEADERS)
        return page

    @app.get("/", include_in_schema=False)
    async def _home() -> RedirectResponse:
        return RedirectResponse(UI_PREFIX + "/", status_code=307)

    @app.get("/favicon.ico", include_in_schema=False)
    async def _favicon() -> FileResponse:
        return FileResponse(UI_DIR / "favicon.svg", media_type="image/svg+xml")

    app.mount(DOCS_PREFIX, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")


def mount_ui(app: FastAPI) -> None:
    """Serve the user's page (memory_store/ui) at /ui/; /ui redirects there."""

    @app.get(UI_PREFIX, include_in_schema=False)
    async def _ui_redirect() -> RedirectResponse:
        return RedirectResponse(UI_PREFIX + "/", status_code=308)

    app.mount(UI_PREFIX, StaticFiles(directory=UI_DIR, html=True), name="ui")
