"""CSRF: every unsafe browser request must carry the session's token (form field or header)."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Flow, Role
from backend.templating import asset_url
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import add_user, csrf_token

REFUSAL = "This form has expired or did not come from Touchflow"


async def _flow_count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as db:
        return await db.scalar(select(func.count()).select_from(Flow)) or 0


async def test_a_form_without_the_token_is_refused_with_a_clear_403(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    response = await client.post("/flows", data={"name": "Welcome"}, follow_redirects=False)
    assert response.status_code == 403
    assert REFUSAL in response.text
    assert "<html" in response.text
    assert await _flow_count(sessions) == 0


async def test_a_wrong_token_is_refused(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    response = await client.post(
        "/flows", data={"name": "Welcome", "csrf_token": "forged"}, follow_redirects=False
    )
    assert response.status_code == 403
    assert await _flow_count(sessions) == 0


async def test_htmx_requests_send_the_token_as_a_header(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    token = await csrf_token(client, "/flows")
    response = await client.post(
        "/flows",
        data={"name": "Welcome", "phase": "onboard"},
        headers={"HX-Request": "true", "X-CSRF-Token": token},
    )
    assert response.status_code == 200
    assert response.headers["HX-Redirect"].startswith("/flows/")
    assert await _flow_count(sessions) == 1


async def test_htmx_request_without_the_token_gets_an_alert_fragment(signed_in: SignedIn) -> None:
    client = await signed_in(Role.marketer)
    response = await client.post("/flows", data={"name": "Welcome"}, headers={"HX-Request": "true"})
    assert response.status_code == 403
    assert response.headers["HX-Retarget"] == "#flash"
    assert REFUSAL in response.text
    assert "<html" not in response.text


async def test_signing_in_needs_the_token_too(
    client: AsyncTestClient[Litestar], sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_user(sessions, "ada@example.com", Role.admin)
    await client.get("/login")
    response = await client.post(
        "/login",
        data={"email": "ada@example.com", "password": "correct horse battery"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert (await client.get("/flows", follow_redirects=False)).status_code == 303


async def test_a_token_from_another_session_does_not_work(
    app: Litestar, signed_in: SignedIn
) -> None:
    client = await signed_in(Role.marketer)
    async with AsyncTestClient(app, base_url="http://testserver.local") as attacker:
        foreign = await csrf_token(attacker)
    response = await client.post(
        "/flows", data={"name": "Welcome", "csrf_token": foreign}, follow_redirects=False
    )
    assert response.status_code == 403


async def test_every_page_carries_the_token_for_htmx(signed_in: SignedIn) -> None:
    client = await signed_in(Role.admin)
    for path in ("/flows", "/contacts", "/runs", "/settings/users", "/settings/audit"):
        page = await client.get(path)
        assert page.status_code == 200, path
        token = await csrf_token(client, path)
        assert len(token) > 30
        assert f'<script src="{asset_url("js/app.js")}"' in page.text
