"""Shared fixtures. ``db_url``/``engine``/``sessions`` run each test on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.db import create_engine, create_sessionmaker
from tests.services import REDIS_URL, fresh_database, missing_service, redis_available, truncate_all

DATABASES = ["sqlite", "postgresql"]


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
