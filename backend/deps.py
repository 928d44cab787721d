"""Request-scoped dependencies shared by the web pages and the public API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter, SkipValidation
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import CHANGING_METHODS, check_recorded, declared_audit, watch
from backend.auth.guards import current_principal
from backend.auth.principal import Principal
from backend.paging import MAX_PAGE_NUMBER, Page
from backend.settings import Settings
from nodes.sdk import Clock


async def provide_db(state: State, request: Request[Any, Any, Any]) -> AsyncIterator[AsyncSession]:
    """One session per request: committed when the handler succeeds, rolled back otherwise.

    In tests, a route declared ``audited(...)`` that changes rows must also record an
    audit entry, or the request fails (``backend.audit.check_recorded``).
    """
    async with state.sessions() as session:
        checked = _checks_audit(state, request)
        if checked:
            watch(session)
        try:
            yield session
            if checked:
                await check_recorded(session, f"{request.method} {request.url.path}")
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


def _checks_audit(state: State, request: Request[Any, Any, Any]) -> bool:
    if state.settings.environment != "test" or request.method not in CHANGING_METHODS:
        return False
    return isinstance(declared_audit(request.route_handler), tuple)


def provide_actor(request: Request[Any, Any, Any]) -> Principal:
    """The caller; only injected into handlers whose guard already required one."""
    principal = current_principal(request)
    if principal is None:  # the role guard runs first, so this is a wiring mistake
        raise RuntimeError("actor requested on a public route")
    return principal


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


def provide_clock(state: State) -> Clock:
    clock: Clock = state.clock
    return clock


def provide_page(
    page: Annotated[int, QueryParameter(le=MAX_PAGE_NUMBER)] = 1,
    per_page: Annotated[int, QueryParameter(le=MAX_PAGE_NUMBER)] = 25,
) -> Page:
    """``?page=&per_page=`` query parameters as a Page (out-of-range sizes are clamped)."""
    return Page.of(page, per_page)


DEPENDENCIES = {
    "db": Provide(provide_db),
    "actor": Provide(provide_actor, sync_to_thread=False),
    "settings": Provide(provide_settings, sync_to_thread=False),
    "clock": Provide(provide_clock, sync_to_thread=False),
    "paging": Provide(provide_page, sync_to_thread=False),
}

# Handler parameter types: injected by name (Litestar's NamedDependency).
Db = NamedDependency[AsyncSession]
Actor = NamedDependency[Principal]
Paging = NamedDependency[Page]
# A Protocol cannot be validated at runtime; the app state holds a real clock.
Now = NamedDependency[SkipValidation[Clock]]
