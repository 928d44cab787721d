"""Shared fixtures. ``db_url``/``engine``/``sessions`` run each test on SQLite and PostgreSQL.

Under pytest-xdist every worker is a session of its own: its own PostgreSQL
database (a random name), its own SQLite file (the worker's temporary folder)
and its own web apps; Redis is shared, each test keeping to its own queue name
or key prefix. The helpers every test folder uses live in tests/support/.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.auth import passwords
from backend.db import create_engine, create_sessionmaker
from tests.support.stores import (
    REDIS_URL,
    fresh_database,
    missing_service,
    redis_available,
    truncate_all,
)
from tests.support.web import SharedApp

DATABASES = ["sqlite", "postgresql"]

# Users the tests add (tests/backend/web/support.add_user, the browser tests' three)
# are hashed before any app exists to pick the environment's cost.
passwords.use_environment("test")


@pytest.fixture(scope="session", params=DATABASES)
async def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A migrated database per kind for the whole session; tests see it emptied."""
    async with fresh_database(request.param, tmp_path_factory.mktemp(request.param)) as url:
        yield url


@pytest.fixture(scope="session")
async def _session_engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def engine(_session_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    yield _session_engine
    await truncate_all(_session_engine)


@pytest.fixture(scope="session")
def _shared_app(db_url: str) -> SharedApp:
    """The web app of ``db_url``, built once; the ``app`` fixture resets it for each test."""
    from backend.app import create_app  # the runtime tests never pay for importing the web app
    from tests.backend.web.support import MovableClock, settings_for

    return SharedApp(create_app(settings_for(db_url), clock=MovableClock()))


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture
async def redis_url() -> str:
    if not await redis_available(REDIS_URL):
        missing_service(f"Redis at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture
def queue_name() -> str:
    """A queue name of its own per test, so parallel runs share Redis without mixing jobs."""
    return f"touchflow-test-{secrets.token_hex(4)}"
