"""The Litestar application factory: ``create_app()`` wires pages, API, auth and errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from litestar import Litestar, Router
from litestar.config.compression import CompressionConfig
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler
from redis.asyncio import Redis

from backend import assets
from backend.allow import AllowHeaderMiddleware
from backend.api import api_router, openapi_config
from backend.api.fast import serve_track_first
from backend.audit import unaccounted_routes
from backend.auth import passwords
from backend.auth.csrf import CsrfMiddleware
from backend.auth.guards import public, role_guard, undeclared_routes, unguarded_routes
from backend.auth.headers import SecurityHeadersMiddleware
from backend.auth.middleware import ApiKeyCache, AuthMiddleware, session_config
from backend.bodies import TouchflowRequest
from backend.db import create_engine, create_sessionmaker
from backend.deps import DEPENDENCIES
from backend.errors import EXCEPTION_HANDLERS
from backend.forms import pages as form_pages
from backend.forms import public as public_forms
from backend.heap import frozen_heap
from backend.lifecycle import ROUTES as LIFECYCLE_ROUTES
from backend.ratelimit import (
    MemoryRateLimiter,
    ProxyHeadersMiddleware,
    RateLimiter,
    RedisRateLimiter,
    TrustedProxies,
)
from backend.settings import Settings, get_settings
from backend.templating import HTMX_FILE, STATIC_DIR, template_config
from backend.web import (
    admin,
    contacts,
    conversion,
    editor,
    favicon,
    flows,
    health,
    imports,
    inbound,
    messaging,
    personalization,
    profile,
    runbulk,
    runs,
    signin,
)
from backend.web.locale import LocaleMiddleware
from backend.worker import runtime_lifespan
from nodes.sdk import Clock, SystemClock

log = logging.getLogger("touchflow")

Lifespan = Callable[[Litestar], AbstractAsyncContextManager[None]]


def _database_lifespan(app: Litestar) -> AbstractAsyncContextManager[None]:
    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        try:
            yield
        finally:
            await app.state.engine.dispose()
            if app.state.redis is not None:
                await app.state.redis.aclose()

    return lifespan()


def _rate_limiter(redis: Redis | None) -> RateLimiter:
    """Shared counters across web processes when Redis is configured, else in-process."""
    return RedisRateLimiter(redis) if redis is not None else MemoryRateLimiter()


def _route_handlers(extra: Sequence[ControllerRouterHandler]) -> list[ControllerRouterHandler]:
    pages = Router(
        path="/",
        route_handlers=[
            *signin.ROUTES,
            *profile.ROUTES,
            *favicon.ROUTES,
            health.healthz,
            *flows.ROUTES,
            *conversion.ROUTES,
            Router(
                path="/",
                route_handlers=editor.ROUTES,
                exception_handlers=editor.EXCEPTION_HANDLERS,  # type: ignore[arg-type]
            ),
            *contacts.ROUTES,
            *form_pages.ROUTES,
            *imports.ROUTES,
            *inbound.ROUTES,
            *public_forms.ROUTES,
            *personalization.ROUTES,
            *runs.ROUTES,
            *runbulk.ROUTES,
            *admin.ROUTES,
            *messaging.ROUTES,
            *LIFECYCLE_ROUTES,
        ],
        # The OpenAPI schema documents the public API only.
        include_in_schema=False,
    )
    static = create_static_files_router(
        path="/static", directories=[STATIC_DIR], opt=public(), name="static"
    )
    # Every route checks the caller's role, except the snippet's decide call (public,
    # and the hottest one: the guard's per-request handler copy is a fifth of its cost).
    guarded = Router(
        path="/",
        route_handlers=[
            pages,
            api_router(),
            personalization.snippet_router(),
            assets.router(STATIC_DIR),
            static,
            *extra,
        ],
        guards=[role_guard],
        include_in_schema=True,
    )
    return [guarded, personalization.personalization_router(guards=[role_guard])]


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    run_executor: bool = False,
    extra_routes: Sequence[ControllerRouterHandler] = (),
    debug: bool = False,
) -> Litestar:
    """Build the app for ``settings`` (the environment's when omitted).

    ``run_executor`` starts the runtime's in-process executor with the app
    (``touchflow serve``); ``clock`` lets tests move time; ``extra_routes`` is
    for handlers added by other subsystems, which must declare ``opt`` roles (and,
    when they change state, what they audit) too.
    """
    settings = settings or get_settings()
    passwords.use_environment(settings.environment)
    engine = create_engine(settings.database_url)
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    state = State(
        {
            "settings": settings,
            "clock": clock or SystemClock(),
            "engine": engine,
            "sessions": create_sessionmaker(engine),
            "run_executor": run_executor,
            # Connects on first use, so the app starts while Redis is down.
            "redis": redis,
            "rate_limiter": _rate_limiter(redis),
            "api_keys": ApiKeyCache(),
        }
    )
    if not HTMX_FILE.exists():
        log.warning("htmx is missing at %s: run `make install` (npm ci)", HTMX_FILE)
    # Lifespans nest in order: the database outlives the runtime that uses it.
    lifespan: list[Lifespan] = [
        _database_lifespan,
        messaging.messaging_lifespan,
        runtime_lifespan,
        personalization.personalization_lifespan,
        frozen_heap,
    ]
    app = Litestar(
        route_handlers=_route_handlers(extra_routes),
        state=state,
        dependencies=DEPENDENCIES,
        # Outermost first: the session must be loaded before CSRF and auth read it.
        middleware=[
            DefineMiddleware(
                SecurityHeadersMiddleware, production=settings.environment == "production"
            ),
            DefineMiddleware(
                ProxyHeadersMiddleware, proxies=TrustedProxies(settings.trusted_proxies)
            ),
            session_config(settings).middleware,
            CsrfMiddleware,
            LocaleMiddleware,
            AuthMiddleware,
            AllowHeaderMiddleware,
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        # Brotli for browsers that ask for it, else gzip; small answers go as they are.
        compression_config=CompressionConfig(
            backend="brotli", brotli_gzip_fallback=True, gzip_compress_level=6, minimum_size=500
        ),
        template_config=template_config(),
        openapi_config=openapi_config(),
        request_class=TouchflowRequest,
        lifespan=lifespan,
        debug=debug,
    )
    missing = undeclared_routes(app)
    if missing:
        raise RuntimeError(f"routes without a declared role or public(): {', '.join(missing)}")
    unaudited = unaccounted_routes(app)
    if unaudited:
        raise RuntimeError(
            "state-changing routes that declare neither audited(...) nor unaudited(...) "
            f"(backend/audit.py): {', '.join(unaudited)}"
        )
    unchecked = unguarded_routes(app)
    if unchecked:
        raise RuntimeError(f"routes with a role but no role guard: {', '.join(unchecked)}")
    # The snippet's decide call, on every page view, skips the router and middleware.
    personalization.serve_decide_first(app)
    # So does a single track call that succeeds (backend/api/fast.py); the rest go through.
    serve_track_first(app)
    return app
