"""Finding out who is calling: the session's user on pages, a bearer API key on /api.

Sets ``scope["user"]`` to a ``Principal`` or None; the role guard decides what
that caller may do. The user is re-read on every request, so a changed role or
a deactivated account takes effect at once.

The session cookie is encrypted and signed, so it cannot be forged, but a copy
of it is as good as the original. A session therefore carries the user's
``session_version`` from when it started: logging out, changing the password,
the role or the access raises the version (``end_sessions``) and every copy of
every session of that user stops working at once. Sessions also end after
``SESSION_IDLE_MINUTES`` without a request and ``SESSION_MAX_HOURS`` in any case.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from litestar.enums import ScopeType
from litestar.middleware import MiddlewareProtocol
from litestar.middleware.session.client_side import CookieBackendConfig
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy import select, update

from backend.auth.keys import api_key_matches, api_key_prefix, hash_api_key
from backend.auth.principal import Principal
from backend.i18n import activate_locale, activate_time_zone
from backend.models import ApiKey, Role, User
from backend.settings import Settings

SESSION_COOKIE = "touchflow_session"
SESSION_USER = "uid"
SESSION_SIGNED_IN_AT = "at"
SESSION_SEEN_AT = "seen"
SESSION_VERSION = "ver"
SESSION_ID = "sid"
# The idle clock is written back at most this often (each write re-sends the cookie).
SEEN_PRECISION = timedelta(minutes=1)
API_PREFIX = "/api/"
# Writing last_used_at on every API call would turn reads into writes; a coarse stamp is enough.
LAST_USED_PRECISION = timedelta(minutes=5)
# A checked API key is trusted this long without reading its row again: the
# read was a third of a single track call's round trips. A key revoked in
# another process stops working within this time (in this one, at once).
API_KEY_TRUST_SECONDS = 1.0
_API_KEY_CACHE_SIZE = 1024
# The scope key under which a caller already checked for this request is handed on
# (``backend.api.fast`` checks the key before it gives a call to the app).
CHECKED_PRINCIPAL = "touchflow.checked_principal"


class ApiKeyCache:
    """Keys checked in the last ``API_KEY_TRUST_SECONDS``, by the hash of the whole token.

    Concurrent calls with a key not (or no longer) in the cache share one
    read of its row, so a burst does not become a burst of reads.
    """

    def __init__(self, trust_seconds: float = API_KEY_TRUST_SECONDS) -> None:
        self.trust_seconds = trust_seconds
        self._checked: dict[str, tuple[float, Principal]] = {}
        self._reading: dict[str, asyncio.Future[Principal | None]] = {}

    async def principal(
        self, token_hash: str, read: Callable[[], Awaitable[Principal | None]]
    ) -> Principal | None:
        """The key's caller (None for a refused key), read with ``read`` when not trusted."""
        hit = self._checked.get(token_hash)
        if hit is not None and hit[0] >= time.monotonic():
            return hit[1]
        pending = self._reading.get(token_hash)
        if pending is not None:
            return await asyncio.shield(pending)
        pending = self._reading[token_hash] = asyncio.get_running_loop().create_future()
        try:
            found = await read()
        except Exception as exc:
            pending.set_exception(exc)
            pending.exception()  # retrieved here, so no "never retrieved" log when none waits
            raise
        except BaseException:
            pending.cancel()
            raise
        finally:
            del self._reading[token_hash]
        pending.set_result(found)
        if found is not None:  # a refused token is read again: it may be a key being created
            if len(self._checked) >= _API_KEY_CACHE_SIZE:
                self._checked.clear()
            self._checked[token_hash] = (time.monotonic() + self.trust_seconds, found)
        return found

    def clear(self) -> None:
        """Forget every checked key (a key was revoked)."""
        self._checked.clear()


def session_config(settings: Settings) -> CookieBackendConfig:
    """Encrypted cookie sessions: HttpOnly, SameSite=Lax, Secure over https and in production."""
    secret = hashlib.sha256(b"touchflow-session:" + settings.resolved_secret_key().encode())
    return CookieBackendConfig(
        secret=secret.digest(),
        key=SESSION_COOKIE,
        max_age=settings.session_max_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=settings.base_url.startswith("https://") or settings.environment == "production",
        # Machine endpoints (API, snippet, tracking pixels) neither read nor set the cookie.
        exclude=["^/api/", "^/static/", "^/healthz", "^/p/", "^/t/"],
    )


def sign_in(session: dict[str, Any], user: User, now: datetime) -> None:
    """Start a fresh session for ``user``: a new id, nothing from the anonymous session."""
    session.clear()
    session[SESSION_ID] = secrets.token_urlsafe(16)
    session[SESSION_USER] = user.id
    session[SESSION_SIGNED_IN_AT] = now.timestamp()
    session[SESSION_SEEN_AT] = now.timestamp()
    session[SESSION_VERSION] = user.session_version


def sign_out(session: dict[str, Any]) -> None:
    session.clear()


def end_sessions(user: User) -> None:
    """End every session ``user`` has, on every device (the caller commits)."""
    user.session_version = (user.session_version or 0) + 1


class AuthMiddleware(MiddlewareProtocol):
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            if CHECKED_PRINCIPAL in scope:
                scope["user"] = scope.pop(CHECKED_PRINCIPAL)  # type: ignore[misc]
            elif scope["path"].startswith(API_PREFIX):
                scope["user"] = await api_key_principal(scope)
            else:
                scope["user"] = await _session_principal(scope)
            use_preferences(scope, scope["user"])
        await self.app(scope, receive, send)


def use_preferences(scope: Scope, principal: Principal | None) -> None:
    """A signed-in user's own language and time zone win over the browser's and the workspace's."""
    settings = scope["litestar_app"].state.settings
    if principal is not None and principal.locale:
        scope.setdefault("state", {})["locale"] = activate_locale(principal.locale)
    activate_time_zone((principal and principal.time_zone) or settings.default_timezone)


async def _session_principal(scope: Scope) -> Principal | None:
    session = scope.get("session")
    if not isinstance(session, dict) or SESSION_USER not in session:
        return None
    state = scope["litestar_app"].state
    settings: Settings = state.settings
    now = state.clock.now().timestamp()
    signed_in_at = session.get(SESSION_SIGNED_IN_AT)
    seen_at = session.get(SESSION_SEEN_AT)
    if (
        not isinstance(signed_in_at, int | float)
        or not isinstance(seen_at, int | float)
        or now - signed_in_at > settings.session_max_hours * 3600
        or now - seen_at > settings.session_idle_minutes * 60
    ):
        sign_out(session)
        return None
    async with state.sessions() as db:
        user = await db.get(User, session[SESSION_USER])
    if user is None or not user.is_active or session.get(SESSION_VERSION) != user.session_version:
        sign_out(session)
        return None
    if now - seen_at > SEEN_PRECISION.total_seconds():
        session[SESSION_SEEN_AT] = now
    return Principal(
        "user", user.id, user.email, user.name, Role(user.role), user.locale, user.time_zone
    )


async def api_key_principal(scope: Scope) -> Principal | None:
    """The caller of an ``/api/`` request by its bearer key: None without a valid key."""
    header = next(
        (v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"authorization"), ""
    )
    scheme, _sep, token = header.partition(" ")
    token = token.strip()
    prefix = api_key_prefix(token) if scheme.lower() == "bearer" else None
    if prefix is None:
        return None
    state = scope["litestar_app"].state
    cache: ApiKeyCache = state.api_keys

    async def read() -> Principal | None:
        now: datetime = state.clock.now()
        async with state.sessions() as db:
            key = await db.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
            if (
                key is None
                or key.revoked_at is not None
                or not api_key_matches(token, key.key_hash)
            ):
                return None
            if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
                await db.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
                await db.commit()
        return Principal("api_key", key.id, key.name, key.name, Role(key.role))

    return await cache.principal(hash_api_key(token), read)
