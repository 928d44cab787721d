"""The schema changes only through migrations: they must round-trip and match the models."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from backend.db import create_engine
from backend.models import Base
from migrations import alembic_config
from tests.support.stores import fresh_database


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_migrations_downgrade_and_upgrade_cleanly(kind: str, tmp_path: Path) -> None:
    async with fresh_database(kind, tmp_path) as url:
        cfg = alembic_config(url)
        await _run(command.downgrade, cfg, "base")
        assert await _tables(url) <= {"alembic_version"}
        await _run(command.upgrade, cfg, "head")
        assert set(Base.metadata.tables) <= await _tables(url)
        engine = create_engine(url)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
        await engine.dispose()
        assert diff == [], f"models and migrations disagree: {diff}"


async def _run(fn: Callable[..., object], *args: object) -> None:
    await asyncio.to_thread(fn, *args)


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    await engine.dispose()
    return names
