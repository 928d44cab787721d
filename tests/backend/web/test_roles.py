"""Role checks: every route declares who may call it; too low a role gets a clear 403."""

from __future__ import annotations

import pytest
from litestar import Litestar, get
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.app import create_app
from backend.auth.guards import undeclared_routes
from backend.models import AuditEntry, Flow, Role, User
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import post_form, settings_for


async def _count(sessions: async_sessionmaker[AsyncSession], model: type) -> int:
    async with sessions() as db:
        return await db.scalar(select(func.count()).select_from(model)) or 0


def test_every_route_declares_a_role_or_public(app: Litestar) -> None:
    assert undeclared_routes(app) == []


def test_an_undeclared_route_stops_the_app_from_starting(db_url: str) -> None:
    @get("/forgotten")
    async def forgotten() -> str:
        return "secret"

    with pytest.raises(RuntimeError, match="GET /forgotten"):
        create_app(settings_for(db_url), extra_routes=[forgotten])


async def test_a_viewer_cannot_create_a_flow(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.viewer)
    response = await post_form(client, "/flows", {"name": "Sneaky", "phase": "attract"})
    assert response.status_code == 403
    assert "Your role (viewer) does not allow this; it needs marketer or higher." in response.text
    assert await _count(sessions, Flow) == 0
    assert (await client.get("/flows/new")).status_code == 403


async def test_a_viewer_sees_no_edit_controls(signed_in: SignedIn) -> None:
    client = await signed_in(Role.viewer)
    page = await client.get("/flows")
    assert "No flows yet" in page.text
    assert 'href="/flows/new"' not in page.text
    assert "Ask a marketer or an admin" in page.text
    assert 'href="/settings"' not in page.text


async def test_a_viewer_cannot_create_a_user_or_open_settings(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.viewer)
    before = await _count(sessions, User)
    response = await post_form(
        client,
        "/settings/users",
        {"email": "new@example.com", "password": "long enough pw", "role": "admin"},
    )
    assert response.status_code == 403
    assert await _count(sessions, User) == before
    for path in ("/settings/users", "/settings/api-keys", "/settings/site-keys", "/settings/audit"):
        assert (await client.get(path)).status_code == 403, path


async def test_a_marketer_creates_a_draft_flow_and_it_is_audited(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    assert 'href="/flows/new"' in (await client.get("/flows")).text
    response = await post_form(
        client, "/flows", {"name": "Welcome series", "phase": "onboard", "description": "Hi"}
    )
    assert response.status_code == 303
    async with sessions() as db:
        flow = await db.scalar(select(Flow))
        entry = await db.scalar(select(AuditEntry).where(AuditEntry.action == "flow.created"))
    assert flow is not None and flow.name == "Welcome series" and flow.status == "draft"
    assert flow.phase == "onboard"
    assert response.headers["location"] == f"/flows/{flow.id}/edit"
    assert entry is not None and entry.target_id == str(flow.id)
    page = await client.get(response.headers["location"])
    assert "Welcome series" in page.text
    assert "Not published yet" in page.text
    # A marketer is still not an admin.
    assert (await client.get("/settings/users")).status_code == 403


async def test_a_flow_needs_a_name(signed_in: SignedIn) -> None:
    client = await signed_in(Role.marketer)
    response = await post_form(client, "/flows", {"name": " ", "phase": "attract"}, htmx=True)
    assert response.status_code == 422
    assert "Give the flow a name." in response.text
    assert 'aria-invalid="true"' in response.text
    assert "<html" not in response.text  # only the form block, for htmx to swap


async def test_an_admin_creates_a_user_and_it_is_audited(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.admin)
    response = await post_form(
        client,
        "/settings/users",
        {
            "name": "Vera",
            "email": "Vera@Example.com",
            "password": "long enough pw",
            "role": "viewer",
        },
        htmx=True,
    )
    assert response.status_code == 200
    assert "vera@example.com" in response.text
    async with sessions() as db:
        user = await db.scalar(select(User).where(User.email == "vera@example.com"))
        entry = await db.scalar(select(AuditEntry).where(AuditEntry.action == "user.created"))
    assert user is not None and user.role == "viewer" and user.password_hash.startswith("$argon2")
    assert entry is not None and entry.actor_label == "admin@example.com"
    assert entry.details == {"email": "vera@example.com", "role": "viewer"}


async def test_user_form_errors_are_shown_and_nothing_is_created(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.admin)
    before = await _count(sessions, User)
    response = await post_form(
        client,
        "/settings/users",
        {"email": "vera@example.com", "password": "short", "role": "viewer"},
        htmx=True,
    )
    assert response.status_code == 422
    assert "at least 10 characters" in response.text
    response = await post_form(
        client,
        "/settings/users",
        {"email": "admin@example.com", "password": "long enough pw", "role": "viewer"},
        htmx=True,
    )
    assert "already exists" in response.text
    assert await _count(sessions, User) == before


async def test_an_admin_changes_a_role_but_never_removes_the_last_admin(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.admin)
    async with sessions() as db:
        me = await db.scalar(select(User).where(User.email == "admin@example.com"))
    assert me is not None
    refused = await post_form(client, f"/settings/users/{me.id}", {"role": "viewer"}, htmx=True)
    assert refused.status_code == 422
    assert "at least one active admin" in refused.text

    await post_form(
        client,
        "/settings/users",
        {"email": "m@example.com", "password": "long enough pw", "role": "marketer"},
    )
    async with sessions() as db:
        other = await db.scalar(select(User).where(User.email == "m@example.com"))
    assert other is not None
    ok = await post_form(client, f"/settings/users/{other.id}", {"role": "admin"}, htmx=True)
    assert ok.status_code == 200
    off = await post_form(client, f"/settings/users/{other.id}", {"active": "0"}, htmx=True)
    assert off.status_code == 200
    async with sessions() as db:
        other = await db.get(User, other.id)
        actions = (
            await db.scalars(select(AuditEntry.action).where(AuditEntry.action == "user.changed"))
        ).all()
    assert other is not None and other.role == "admin" and other.is_active is False
    assert len(actions) == 2
