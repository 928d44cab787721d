"""Browser tests: the real app served by uvicorn on loopback, driven by Debian's Chromium.

The server runs in a thread for the whole session on a SQLite file; each test
starts from empty tables with an admin, a marketer and a viewer created
through ``backend.auth.users``. Chromium is ``/usr/bin/chromium`` (never a
downloaded browser): missing, it fails the run under CI=true and skips locally.

Chromium's work is most of a browser test's cost, and a new browser context is
a new renderer process with cold caches (about half a second of CPU). So the
``page`` of each test is a new tab in one context per session, which is left
as new between tests: its tabs closed, its cookies and the app's storage
cleared (``_leave_as_new``). ``sign_in`` goes through the form once per role
and session; later it hands the browser that role's session cookie (the users
come back with the same ids after each reset), and falls back to the form if
the app does not take it. Tests of signing in itself use the form
(``through_form=True``), and so do tests that want the sign-in's audit entry.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from litestar import Litestar
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
from playwright.async_api import Cookie as _Cookie

from backend.app import create_app
from backend.auth.middleware import SESSION_COOKIE
from backend.auth.users import create_user
from backend.db import create_engine, create_sessionmaker
from backend.models import Role
from tests.backend.editor.nodes import EDITOR_TEST_TYPES
from tests.backend.web.support import settings_for
from tests.runtime.nodes import TEST_NODE_TYPES
from tests.support.live import STARTUP_SECONDS, live_app
from tests.support.net import free_port
from tests.support.stores import IN_CI, migrated_sqlite, truncate_all

__all__ = ["ACTION_TIMEOUT_MS", "STARTUP_SECONDS", "USERS", "LiveServer", "_free_port", "sign_in"]

_free_port = free_port  # older tests import these from here; they live in tests/support/ now
CHROMIUM = Path("/usr/bin/chromium")
# Generous waits: a test waits this long only when something is wrong, or when the machine
# is busy with other work (a 2-core machine at a load average of 20 took over 10 s for a
# click, and over Playwright's default 5 s for a page to show what an assertion expects).
ACTION_TIMEOUT_MS = 30_000
expect.set_options(timeout=15_000)
PASSWORD = "correct horse battery"
USERS = {
    Role.admin: "admin@example.com",
    Role.marketer: "marketer@example.com",
    Role.viewer: "viewer@example.com",
}


@dataclass
class LiveServer:
    url: str
    database_url: str
    app: Litestar

    async def reset(self) -> None:
        """Empty every table and add the three users again."""
        await _reset(self.database_url)


async def _reset(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await truncate_all(engine)
        async with create_sessionmaker(engine)() as db, db.begin():
            for role, email in USERS.items():
                await create_user(db, email, PASSWORD, role, name=role.value.title())
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    database_url = migrated_sqlite(tmp_path_factory.mktemp("browser") / "touchflow.db")
    with live_app(lambda url: create_app(settings_for(database_url, base_url=url))) as (url, app):
        # Node types come from the registry; the tests use their own tiny ones.
        for node_type in [*TEST_NODE_TYPES, *EDITOR_TEST_TYPES]:
            app.state.runtime.registry.add(node_type)
        yield LiveServer(url, database_url, app)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"Chromium is not installed at {CHROMIUM} (scripts/services.sh installs it)"
        if IN_CI:
            pytest.fail(f"{reason} and CI=true: a missing browser is a failure")
        pytest.skip(reason)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $TOUCHFLOW_ARTIFACTS (CI uploads it) or a temporary folder."""
    chosen = os.environ.get("TOUCHFLOW_ARTIFACTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
async def _context(browser: Browser, live_server: LiveServer) -> AsyncIterator[BrowserContext]:
    """The one context the ``page`` fixture's tabs open in (see the module docstring)."""
    context = await browser.new_context(
        base_url=live_server.url, viewport={"width": 1440, "height": 900}
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    yield context
    await context.close()


async def _leave_as_new(context: BrowserContext, origin: str) -> None:
    """Close every tab and forget what the app's pages left: cookies, local and session storage,
    IndexedDB and the rest of the origin's storage (the HTTP cache of static files stays)."""
    # Any tab of the context will do for the DevTools call: a new one only if the test
    # closed them all.
    tab = context.pages[0] if context.pages else await context.new_page()
    cdp = await context.new_cdp_session(tab)
    await cdp.send("Storage.clearDataForOrigin", {"origin": origin, "storageTypes": "all"})
    await cdp.detach()
    for tab in context.pages:
        await tab.close()
    await context.clear_cookies()


@pytest.fixture
async def page(_context: BrowserContext, live_server: LiveServer) -> AsyncIterator[Page]:
    """A new tab, signed out and with nothing stored, on an app with empty tables and the
    three users."""
    await live_server.reset()
    page = await _context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        await _leave_as_new(_context, live_server.url)
    assert not errors, f"JavaScript errors on the page: {errors}"


# The session cookie of each role's first sign-in in this process (one live server each).
_SESSIONS: dict[Role, list[_Cookie]] = {}


async def sign_in(
    page: Page, role: Role, *, to: str = "/flows", through_form: bool = False
) -> None:
    """Sign in as ``role`` and open ``to``: the first time (or ``through_form``) with the
    sign-in form, which lands on /flows; later with the cookie the form gave, opening ``to``
    at once (a navigation costs Chromium a fifth of a second of CPU)."""
    cookies = _SESSIONS.get(role)
    if cookies and not through_form:
        await page.context.add_cookies(cookies)
        await page.goto(to)
        if urlsplit(page.url).path != "/login":  # the app took the cookie
            return
    # Signed in already (as another role), /login would only lead on to /flows.
    await page.context.clear_cookies(name=SESSION_COOKIE)
    await page.goto("/login")
    await page.fill("#email", USERS[role])
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/flows")
    _SESSIONS[role] = [c for c in await page.context.cookies() if c["name"] == SESSION_COOKIE]
    if to != "/flows":
        await page.goto(to)
