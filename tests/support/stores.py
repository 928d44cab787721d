"""The stores tests run on: a fresh database per run on SQLite or PostgreSQL, and Redis.

Each test session creates its own PostgreSQL database (``tf_<random>``) through
the ``test`` database, so parallel runs never collide, with the schema the
Alembic migrations build: the same path production takes. The migrations run
once per version of them, not once per session and xdist worker: into a
template database (``tf_template_<hash of migrations/>``) that every session
copies with ``CREATE DATABASE ... TEMPLATE``, and for SQLite into a file every
session copies. A template is only used once the migrations completed in it;
tests/backend/test_migrations.py still runs them down and up on every run.
With CI=true a missing service fails the run; locally it skips the tests that
need it.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from backend.db import create_engine
from backend.models import Base
from migrations import alembic_config

PG_ADMIN_URL = os.environ.get(
    "TOUCHFLOW_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TOUCHFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "migrations"
# The migrations import the models' column types.
_SCHEMA_SOURCES = [ROOT / "backend" / "models" / "base.py"]
_LOCK_KEY = 0x7F0F  # pg_advisory_lock: one template builder at a time


def missing_service(what: str) -> None:
    """Skip locally; fail in CI, where every service must be there."""
    if IN_CI:
        pytest.fail(f"{what} is not available and CI=true: a missing service is a failure")
    pytest.skip(f"{what} is not available")


async def _pg_admin(*statements: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for sql in statements:
                await conn.execute(text(sql))
    finally:
        await engine.dispose()


async def migrate(url: str) -> None:
    # Alembic's env.py runs its own event loop, so it gets a thread of its own.
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")


def _schema_version() -> str:
    """A hash of what the migrations build from: a changed migration gets a new template."""
    digest = hashlib.sha256()
    for path in sorted([*MIGRATIONS.rglob("*.py"), *_SCHEMA_SOURCES]):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


async def _pg_template() -> str:
    """The migrated template database of these migrations, built by the first session to ask.

    A session-level advisory lock makes the other sessions (xdist workers, other
    checkouts) wait for the builder; ``datistemplate`` marks a finished build, so
    one interrupted half-way is dropped and built again.
    """
    version = _schema_version()
    name = f"tf_template_{version}"
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
            try:
                ready = await conn.scalar(
                    text("SELECT datistemplate FROM pg_database WHERE datname = :name"),
                    {"name": name},
                )
                if ready is not True:
                    await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    await conn.execute(text(f'CREATE DATABASE "{name}"'))
                    await migrate(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
                    await conn.execute(text(f'ALTER DATABASE "{name}" IS_TEMPLATE true'))
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
    finally:
        await engine.dispose()
    return name


def _sqlite_template() -> Path:
    """A migrated SQLite file of these migrations, built once (under a file lock) and copied."""
    folder = Path(tempfile.gettempdir()) / "touchflow-test-schemas"
    folder.mkdir(exist_ok=True)
    template = folder / f"{_schema_version()}.db"
    with (folder / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not template.exists():
            building = folder / f"{template.stem}.{os.getpid()}.building"
            building.unlink(missing_ok=True)
            asyncio.run(migrate(f"sqlite+aiosqlite:///{building}"))
            building.replace(template)  # atomic: a template file is always a finished one
    return template


def migrated_sqlite(path: Path) -> str:
    """A new migrated SQLite database at ``path`` (a copy of the template); its URL."""
    # A thread of its own: the caller's event loop may be running, the build runs one.
    with ThreadPoolExecutor(1) as pool:
        template = pool.submit(_sqlite_template).result()
    shutil.copyfile(template, path)
    return f"sqlite+aiosqlite:///{path}"


@asynccontextmanager
async def fresh_database(kind: str, tmp_dir: Path) -> AsyncIterator[str]:
    """Yield the URL of a new, migrated database of ``kind`` ("sqlite" or "postgresql")."""
    if kind == "sqlite":
        yield await asyncio.to_thread(migrated_sqlite, tmp_dir / "touchflow-test.db")
        return
    name = f"tf_{secrets.token_hex(6)}"
    try:
        await _pg_admin("SELECT 1")
    except Exception as exc:  # connection refused, auth failure...
        missing_service(f"PostgreSQL at {PG_ADMIN_URL} ({type(exc).__name__}: {exc})")
    # No commit waits for its WAL to reach the disk: a test database need not survive
    # a crash of the server, and every commit is still visible to every other
    # connection (and process) at once, as the fault tests need.
    await _pg_admin(
        f'CREATE DATABASE "{name}" TEMPLATE "{await _pg_template()}"',
        f'ALTER DATABASE "{name}" SET synchronous_commit = off',
    )
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Tables whose rows the database refuses to change or delete (migration 0017_audit).
APPEND_ONLY = ("audit_log",)
# What the query of which tables have rows answers for "a sequence has handed out an id".
_SEQUENCES_USED = ""
# Every sequence that handed out an id back to its start, as TRUNCATE ... RESTART IDENTITY
# did. setval is no DDL: ALTER SEQUENCE ... RESTART on every sequence cost PostgreSQL
# more CPU (some 20 ms a test) than many a test itself.
_PG_RESTART_SEQUENCES = """
SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, start_value, false)
FROM pg_sequences WHERE schemaname = current_schema() AND last_value IS NOT NULL;
"""


def _tables() -> list[str]:
    """Every table of the models, children before the tables they refer to."""
    return [table.name for table in reversed(Base.metadata.sorted_tables)]


def _with_rows_query(dialect: str) -> str:
    """One query naming the tables that have rows (and, on PostgreSQL, ``_SEQUENCES_USED``
    when a sequence has handed out an id), so a clean database costs one round trip."""
    parts = [f"SELECT '{t}' AS name WHERE EXISTS (SELECT 1 FROM {t})" for t in _tables()]  # noqa: S608
    if dialect == "postgresql":
        parts.append(
            f"SELECT '{_SEQUENCES_USED}' WHERE EXISTS (SELECT 1 FROM pg_sequences"  # noqa: S608
            " WHERE schemaname = current_schema() AND last_value IS NOT NULL)"
        )
    return " UNION ALL ".join(parts)


async def truncate_all(engine: AsyncEngine) -> None:
    """Empty every table between tests (keeps the migrated schema) and restart the ids.

    Only the tables that have rows are emptied, with DELETE, children first, in
    one script: a test writes to a few of the tables, and TRUNCATE gives each
    table new files, which costs PostgreSQL more than many a test itself.
    (Children first, so foreign keys in a cycle would need TRUNCATE ... CASCADE.)
    SQLite hands out ids again from 1 once a table is empty (no AUTOINCREMENT).
    """
    dialect = engine.dialect.name
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        if dialect == "postgresql":
            found = {row[0] for row in await raw.fetch(_with_rows_query(dialect))}
        else:
            async with raw.execute(_with_rows_query(dialect)) as cursor:
                found = {row[0] for row in await cursor.fetchall()}
        if not found:
            return
        tables = [t for t in _tables() if t in found]
        kept = [t for t in tables if t not in APPEND_ONLY]
        held = [t for t in tables if t in APPEND_ONLY]
        deletes = "".join(f"DELETE FROM {table};\n" for table in kept)  # noqa: S608
        if dialect == "postgresql":
            script = deletes
            if held:
                # The append-only triggers refuse DELETE; replica mode (superuser) skips them.
                script += "SET LOCAL session_replication_role = replica;\n"
                script += "".join(f"DELETE FROM {table};\n" for table in held)  # noqa: S608
            if _SEQUENCES_USED in found:
                script += _PG_RESTART_SEQUENCES
            async with raw.transaction():
                await raw.execute(script)
            return
        await _sqlite_delete(raw, deletes, held)


async def _sqlite_delete(raw: Any, deletes: str, held: list[str]) -> None:
    """Run the DELETEs in one transaction and one round trip to aiosqlite's thread."""
    triggers: list[tuple[str, str]] = []
    if held:
        # The append-only triggers refuse DELETE: set them aside and put them back.
        names = ", ".join(f"'{t}'" for t in held)
        async with raw.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ({names})"  # noqa: S608
        ) as cursor:
            triggers = [(name, sql) for name, sql in await cursor.fetchall()]
        deletes += "".join(f"DELETE FROM {table};\n" for table in held)  # noqa: S608
    script = "BEGIN IMMEDIATE;\nPRAGMA defer_foreign_keys = ON;\n"
    script += "".join(f'DROP TRIGGER "{name}";\n' for name, _sql in triggers)
    script += deletes
    script += "".join(f"{sql};\n" for _name, sql in triggers)
    script += "COMMIT;\n"
    try:
        await raw.executescript(script)
    except BaseException:
        if raw.in_transaction:
            await raw.rollback()
        raise


async def redis_available(url: str = REDIS_URL) -> bool:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


__all__ = [
    "IN_CI",
    "REDIS_URL",
    "create_engine",
    "fresh_database",
    "migrated_sqlite",
    "missing_service",
    "redis_available",
    "truncate_all",
]
