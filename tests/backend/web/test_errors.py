"""People get HTML error pages (never a stack trace); programs under /api get JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.app import create_app
from backend.auth.guards import public, role
from backend.models import Role
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import add_api_key, settings_for


@get("/boom", opt=public())
async def boom() -> str:
    raise RuntimeError("secret internals: password=hunter2")


@get("/api/v1/boom", opt=role(Role.viewer))
async def api_boom() -> str:
    raise RuntimeError("secret internals: password=hunter2")


@pytest.fixture
async def crashing(db_url: str, engine: AsyncEngine) -> AsyncIterator[AsyncTestClient[Litestar]]:
    app = create_app(settings_for(db_url), extra_routes=[boom])
    async with AsyncTestClient(app) as client:
        yield client


async def test_unknown_page_is_a_friendly_404(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/no/such/page")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Page not found" in response.text
    assert 'href="/"' in response.text


async def test_missing_record_is_a_404_page(signed_in: SignedIn) -> None:
    client = await signed_in(Role.viewer)
    response = await client.get("/flows/424242")
    assert response.status_code == 404
    assert "There is no flow with this number." in response.text


async def test_a_crash_shows_a_500_page_without_internals(
    crashing: AsyncTestClient[Litestar],
) -> None:
    response = await crashing.get("/boom")
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.text
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text


async def test_a_crash_in_the_api_is_json_without_internals(
    db_url: str, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _key, token = await add_api_key(sessions, Role.viewer)
    app = create_app(settings_for(db_url), extra_routes=[api_boom])
    async with AsyncTestClient(app) as client:
        response = await client.get("/api/v1/boom", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "hunter2" not in response.text


async def test_signed_out_pages_redirect_to_login_and_back(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.get("/contacts?q=anna", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/contacts%3Fq%3Danna"
    login = await client.get(response.headers["location"])
    assert 'name="next" value="/contacts?q=anna"' in login.text


async def test_signed_out_htmx_requests_are_sent_to_login_as_a_whole_page(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.get(
        "/contacts?q=an",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver.local/contacts"},
    )
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == "/login?next=/contacts"


async def test_a_bad_query_parameter_is_a_400_page_that_says_what_is_wrong(
    signed_in: SignedIn,
) -> None:
    client = await signed_in(Role.viewer)
    response = await client.get("/contacts?page=second")
    assert response.status_code == 400
    assert "page" in response.text
    assert "<html" in response.text
    assert "Traceback" not in response.text
