"""Shared fixtures. ``db_url``/``engine``/``sessions`` run each test on SQLite and PostgreSQL.

Under pytest-xdist every worker is a session of its own: its own PostgreSQL
database (a random name), its own SQLite file (the worker's temporary folder)
and its own web apps; Redis is shared, each test keeping to its own queue name
or key prefix. The helpers every test folder uses live in tests/support/.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.auth import passwords
from backend.db import create_engine, create_sessionmaker
from tests.support import plugins, schedule
from tests.support.stores import (
    REDIS_URL,
    fresh_database,
    missing_service,
    redis_available,
    truncate_all,
)
from tests.support.web import SharedApp

DATABASES = ["sqlite", "postgresql"]
BROWSER = Path(__file__).parent / "browser"

# Users the tests add (tests/backend/web/support.add_user, the browser tests' three)
# are hashed before any app exists to pick the environment's cost.
passwords.use_environment("test")
# Each app start-up looks its node types and channels up; the metadata of the installed
# packages is read again only when sys.path changes (tests/support/plugins.py).
plugins.remember_entry_points()


def _block(item: pytest.Item) -> int:
    """Where ``item`` runs: long tests of no database first, then each database's tests."""
    callspec = getattr(item, "callspec", None)
    kind = callspec.params.get("db_url") if callspec is not None else None
    if kind is None:
        return 0 if item.get_closest_marker("long") or BROWSER in item.path.parents else 3
    return 1 + DATABASES.index(kind)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start what takes longest first, so the workers end together instead of one waiting.

    Long tests go to the front of their database's run (the session keeps one
    database of each kind at a time: its tests stay together). Each xdist worker
    that gets a browser test starts its own live server and Chromium.
    """
    items.sort(key=lambda item: (_block(item), item.get_closest_marker("long") is None))


@pytest.hookimpl(optionalhook=True)  # hooks of pytest-xdist: no error where it is absent
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """With ``--dist loadgroup`` (pyproject's default): tests dealt one at a time in our
    order, the ones that wait on child processes to one worker; another --dist is xdist's."""
    if config.getvalue("dist") != "loadgroup":
        return None
    return schedule.Scheduling(config, log)  # type: ignore[arg-type]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: a worker per core, and one for the tests that wait (support/schedule.py)."""
    return schedule.auto_workers()


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
