"""Fixtures for the web app: ``create_app()`` on the parametrised database, with a test client.

``app`` is built once per database (``_shared_app`` in tests/conftest.py) and
handed to each test as new; see tests/support/web.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.models import Role
from tests.backend.web.support import MovableClock, add_user, sign_in
from tests.support.web import SharedApp


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def app(_shared_app: SharedApp, engine: AsyncEngine, clock: MovableClock) -> Litestar:
    # ``engine`` empties the tables after each test.
    return _shared_app.fresh(clock)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        yield client


SignedIn = Callable[[Role], Awaitable[AsyncTestClient[Litestar]]]


@pytest.fixture
def signed_in(
    client: AsyncTestClient[Litestar], sessions: async_sessionmaker[AsyncSession]
) -> SignedIn:
    """``await signed_in(Role.viewer)``: the client, signed in as a new user with that role."""

    async def sign_in_as(role: Role) -> AsyncTestClient[Litestar]:
        email = f"{role.value}@example.com"
        await add_user(sessions, email, role)
        response = await sign_in(client, email)
        assert response.status_code == 303, response.text
        return client

    return sign_in_as
