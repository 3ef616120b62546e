"""The FastAPI application: its state, lifespan, error handlers, metrics middleware and routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from ragguard.apps.serve.batching import MicroBatcher
from ragguard.apps.serve.http import ApiError, access_log, error_body, host_check
from ragguard.apps.serve.settings import ServeSettings
from ragguard.errors import UsageError
from ragguard.pipeline import RagGuard
from ragguard.retrieval.index.watch import IndexWatcher

__all__ = ["create_app"]

logger = logging.getLogger("ragguard")


def create_app(guard: RagGuard, settings: ServeSettings | None = None) -> Any:
    """The FastAPI application serving ``guard`` (run it with uvicorn, or ``ragguard serve``).

    Raises:
        UsageError: when fastapi or prometheus-client is not installed.
    """
    try:
        from fastapi import FastAPI
        from fastapi.responses import JSONResponse
        from starlette.exceptions import HTTPException as StarletteHTTPException

        from ragguard.apps.serve.metrics import Metrics
        from ragguard.apps.serve.openapi import openapi_document
        from ragguard.apps.serve.routes import router
    except ImportError as exc:
        raise UsageError(f'ragguard serve needs fastapi, uvicorn and prometheus-client ({exc}): '
                         'run `pip install "ragguard[serve]"`') from None
    from ragguard.apps.serve.state import ServerState

    settings = settings or ServeSettings()
    metrics = Metrics()
    watcher = IndexWatcher(guard)
    batcher = MicroBatcher(guard, settings, observe_batch=metrics.batch_questions.observe,
                           before_batch=watcher.refresh, on_drop=lambda reason: metrics.dropped.labels(reason).inc(),
                           observe_wait=metrics.queue_wait.observe)
    metrics.queue_depth.set_function(lambda: batcher.depth)
    metrics.in_flight.set_function(lambda: batcher.running)
    state = ServerState(guard, settings, batcher, metrics, watcher)

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            # uvicorn has waited (up to --shutdown-timeout) for the requests in progress; a question still waiting
            # is answered 503 rather than computed, and a batch still running is left behind (its requests were
            # cancelled), so the process ends within its grace period.
            turned = batcher.drain()
            if turned:
                logger.info("shutting down: %d waiting request(s) answered 503 shutting_down", turned)
            running = batcher.running
            if not await asyncio.to_thread(batcher.stop, 2.0):
                logger.warning("shutting down: a batch of %d question(s) was still running and was abandoned", running)

    # /openapi.json is open like /healthz (see openapi.py); the docs pages stay off: they load scripts from a CDN.
    app = FastAPI(title="ragguard", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.state.server = state
    app.state.batcher = batcher
    app.state.settings = settings

    @app.exception_handler(ApiError)
    async def _api_error(_: Any, exc: ApiError) -> Any:
        return JSONResponse(error_body(exc.message, exc.kind, exc.code, exc.param), status_code=exc.status,
                            headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Any, exc: StarletteHTTPException) -> Any:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(exc.detail), kind), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    # The last resort only: Starlette re-raises after this 500 (uvicorn then logs a traceback and closes
    # the connection), so the routes answer a model's errors themselves (``http.internal_error``).
    @app.exception_handler(Exception)
    async def _unexpected(_: Any, exc: Exception) -> Any:
        logger.error("unexpected %s: %s", type(exc).__name__, exc)
        return JSONResponse(error_body(f"internal error ({type(exc).__name__})", "server_error"), status_code=500)

    app.middleware("http")(host_check(settings))
    app.middleware("http")(metrics.measure)
    if settings.cors_origins:  # outside auth and the routes: a preflight is answered here, errors carry the headers
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                           expose_headers=["X-Request-ID", "Retry-After"], max_age=600)
    app.middleware("http")(access_log(settings))  # added last: runs first, so every response has an id
    app.include_router(router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:  # built once, on the first request for it
            app.openapi_schema = openapi_document(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
