"""Signing in and out: the right password works, wrong ones are refused and slowed down."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import AuditEntry, Role, User
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import (
    MovableClock,
    add_user,
    csrf_token,
    post_form,
    sign_in,
)

Client = AsyncTestClient[Litestar]


async def test_sign_in_lands_on_flows_with_a_safe_session_cookie(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_user(sessions, "ada@example.com", Role.marketer, name="Ada Lovelace")

    response = await sign_in(client, "Ada@Example.com ")

    assert response.status_code == 303
    assert response.headers["location"] == "/flows"
    cookie = next(c for c in response.headers.get_list("set-cookie") if "touchflow_session=" in c)
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # served over http in tests
    page = await client.get("/flows")
    assert page.status_code == 200
    assert "Ada Lovelace" in page.text
    assert "Marketer" in page.text  # the role badge
    async with sessions() as db:
        user = await db.scalar(select(User).where(User.email == "ada@example.com"))
        assert user is not None and user.last_login_at is not None


async def test_wrong_password_is_refused_with_a_clear_message_and_no_session(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_user(sessions, "ada@example.com", Role.admin)

    response = await sign_in(client, "ada@example.com", "not the password")

    assert response.status_code == 401
    assert "Wrong email or password." in response.text
    assert 'role="alert"' in response.text
    after = await client.get("/flows", follow_redirects=False)
    assert after.status_code == 303
    assert after.headers["location"] == "/login?next=/flows"
    async with sessions() as db:
        failed = (await db.scalars(select(AuditEntry.action))).all()
    assert failed == ["auth.login_failed"]


async def test_unknown_email_gets_the_same_answer_as_a_wrong_password(client: Client) -> None:
    response = await sign_in(client, "nobody@example.com", "whatever-it-is")
    assert response.status_code == 401
    assert "Wrong email or password." in response.text


async def test_deactivated_user_cannot_sign_in(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_user(sessions, "gone@example.com", Role.admin, active=False)
    response = await sign_in(client, "gone@example.com")
    assert response.status_code == 401


async def test_repeated_failures_are_refused_for_a_while(
    client: Client, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    await add_user(sessions, "ada@example.com", Role.admin)
    for _attempt in range(5):
        assert (await sign_in(client, "ada@example.com", "guess-guess")).status_code == 401
        clock.advance(seconds=10)

    refused = await sign_in(client, "ada@example.com")  # even the right password waits
    assert refused.status_code == 429
    assert "Too many failed sign-in attempts" in refused.text

    clock.advance(minutes=15)
    assert (await sign_in(client, "ada@example.com")).status_code == 303


async def test_success_resets_the_failure_count(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_user(sessions, "ada@example.com", Role.admin)
    for _attempt in range(4):
        await sign_in(client, "ada@example.com", "guess-guess")
    assert (await sign_in(client, "ada@example.com")).status_code == 303
    await post_form(client, "/logout", {})
    for _attempt in range(4):
        assert (await sign_in(client, "ada@example.com", "guess-guess")).status_code == 401


async def test_logout_ends_the_session(signed_in: SignedIn) -> None:
    client = await signed_in(Role.viewer)
    response = await post_form(client, "/logout", {})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert (await client.get("/flows", follow_redirects=False)).status_code == 303


async def test_sign_in_returns_to_the_page_asked_for_but_never_off_site(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_user(sessions, "ada@example.com", Role.viewer)
    response = await sign_in(client, "ada@example.com", next="/contacts?q=anna")
    assert response.headers["location"] == "/contacts?q=anna"
    await post_form(client, "/logout", {})
    response = await sign_in(client, "ada@example.com", next="//evil.example/")
    assert response.headers["location"] == "/flows"


async def test_deactivating_a_user_ends_their_running_session(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    async with sessions() as db, db.begin():
        user = await db.scalar(select(User).where(User.email == "marketer@example.com"))
        assert user is not None
        user.is_active = False
    assert (await client.get("/flows", follow_redirects=False)).status_code == 303


async def test_sessions_expire_after_their_lifetime(
    signed_in: SignedIn, clock: MovableClock
) -> None:
    client = await signed_in(Role.viewer)
    clock.advance(hours=11)
    assert (await client.get("/flows", follow_redirects=False)).status_code == 200
    clock.advance(hours=13)  # idle longer than SESSION_IDLE_MINUTES (12 hours)
    assert (await client.get("/flows", follow_redirects=False)).status_code == 303


async def test_the_login_page_sends_signed_in_people_on(signed_in: SignedIn) -> None:
    client = await signed_in(Role.viewer)
    response = await client.get("/login", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/flows"


async def test_the_session_token_changes_at_sign_in(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_user(sessions, "ada@example.com", Role.viewer)
    before = await csrf_token(client)
    await sign_in(client, "ada@example.com")
    assert await csrf_token(client, "/flows") != before
