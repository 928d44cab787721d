"""Helpers for driving the web app in tests: users, sign-in, the CSRF token, a movable clock."""

from __future__ import annotations

import re
from typing import Any

from httpx import Response
from litestar.middleware.session.client_side import ClientSideSessionBackend
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.auth.csrf import SESSION_KEY as CSRF_SESSION_KEY
from backend.auth.keys import new_api_key
from backend.auth.middleware import SESSION_COOKIE, session_config
from backend.auth.passwords import hash_password
from backend.models import ApiKey, Role, User
from backend.settings import Settings
from tests.support.clock import MovableClock

PASSWORD = "correct horse battery"
_META_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]*)"')


def settings_for(db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "secret_key": "test-secret-" + "x" * 40,
        "environment": "test",
        "redis_url": None,
        "base_url": "http://testserver.local",
    }
    values.update(overrides)
    return Settings(**values)


__all__ = [
    "PASSWORD",
    "MovableClock",
    "add_api_key",
    "add_user",
    "csrf_from",
    "csrf_token",
    "held_csrf_token",
    "post_form",
    "settings_for",
    "sign_in",
]

_hash_cache: dict[str, str] = {}


def _hash(password: str) -> str:
    # One hash per password is enough for a test session (tests/conftest.py makes it cheap too).
    if password not in _hash_cache:
        _hash_cache[password] = hash_password(password)
    return _hash_cache[password]


async def add_user(
    sessions: async_sessionmaker[AsyncSession],
    email: str,
    role: Role,
    password: str = PASSWORD,
    *,
    name: str = "",
    active: bool = True,
) -> User:
    async with sessions() as db, db.begin():
        user = User(
            email=email,
            name=name or email.split("@")[0].title(),
            password_hash=_hash(password),
            role=role.value,
            is_active=active,
        )
        db.add(user)
    return user


async def add_api_key(
    sessions: async_sessionmaker[AsyncSession], role: Role, name: str = "shop"
) -> tuple[ApiKey, str]:
    made = new_api_key()
    async with sessions() as db, db.begin():
        key = ApiKey(name=name, prefix=made.prefix, key_hash=made.key_hash, role=role.value)
        db.add(key)
    return key, made.token


def csrf_from(html: str) -> str:
    match = _META_TOKEN.search(html)
    assert match, "page has no csrf-token meta tag"
    return match.group(1)


async def csrf_token(client: AsyncTestClient[Any], path: str = "/login") -> str:
    return csrf_from((await client.get(path)).text)


async def held_csrf_token(client: AsyncTestClient[Any], page: str) -> str:
    """The CSRF token as a browser holds it after loading a page: the session's token
    (``backend.auth.csrf``), which is what every page renders. Read from the session cookie
    when the session has one; otherwise from ``page``, which also creates it.

    A browser reads the token once per page and sends it with every request the page makes;
    fetching a whole page again before each post made the editor's tests render the editor
    twice per edit.
    """
    token = _session_token(client)
    return token if token is not None else await csrf_token(client, page)


def _session_token(client: AsyncTestClient[Any]) -> str | None:
    """The CSRF token in the client's session cookie, decrypted as the app does; None if none."""
    chunks = sorted(
        (c.name, c.value or "") for c in client.cookies.jar if c.name.startswith(SESSION_COOKIE)
    )
    if not chunks:
        return None
    config = session_config(client.app.state.settings)
    backend = ClientSideSessionBackend(config=config)
    session = backend.load_data([value.strip('"').encode() for _name, value in chunks])
    token = session.get(CSRF_SESSION_KEY)
    return token if isinstance(token, str) and token else None


async def sign_in(
    client: AsyncTestClient[Any], email: str, password: str = PASSWORD, next: str = ""
) -> Response:
    token = await csrf_token(client)
    return await client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token, "next": next},
        follow_redirects=False,
    )


async def post_form(
    client: AsyncTestClient[Any],
    path: str,
    data: dict[str, str],
    *,
    htmx: bool = False,
    form_page: str = "/flows",
) -> Response:
    """Post like the browser does: the page's CSRF token as a form field, or as htmx's header."""
    token = await held_csrf_token(client, form_page)
    if htmx:
        return await client.post(
            path,
            data=data,
            headers={"HX-Request": "true", "X-CSRF-Token": token},
            follow_redirects=False,
        )
    return await client.post(path, data={**data, "csrf_token": token}, follow_redirects=False)
