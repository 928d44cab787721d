"""The ``touchflow`` command line, run as a real process against both databases."""

from __future__ import annotations

import asyncio
import os
import re
import sys

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.auth.passwords import verify_password
from backend.cli import main
from backend.demo import DEMO_ADMIN_EMAIL, DEMO_FLOW_NAME
from backend.models import Contact, Flow, User


async def _touchflow(db_url: str, *args: str) -> tuple[int, str]:
    # A key of its own: with none, each run would create .touchflow-secret in the working
    # directory, and two runs at once (pytest-xdist workers) could read it half written.
    # ENVIRONMENT=test: argon2 at its least cost, as in every other test (test_passwords.py
    # checks the full cost elsewhere); at full cost each demo run hashes two passwords for 0.5 s.
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "SECRET_KEY": "test-secret-" + "x" * 40,
        "ENVIRONMENT": "test",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "backend.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


@pytest.mark.parametrize("command", ["serve", "worker", "migrate", "create-user", "demo"])
def test_every_command_explains_itself(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage: main " + command in result.output or f"{command} [OPTIONS]" in result.output


async def test_demo_prints_a_working_sign_in_and_is_idempotent(
    db_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    code, out = await _touchflow(db_url, "demo", "--contacts", "25")
    assert code == 0, out
    first = re.search(r"password: (\S+)", out)
    assert first is not None and DEMO_ADMIN_EMAIL in out
    code, out = await _touchflow(db_url, "demo", "--contacts", "25")
    assert code == 0, out
    second = re.search(r"password: (\S+)", out)
    assert second is not None and "added 0 sample contacts" in out
    assert "is already there" in out

    async with sessions() as db:
        admin = await db.scalar(select(User).where(User.email == DEMO_ADMIN_EMAIL))
        contacts = await db.scalar(select(func.count()).select_from(Contact))
        flow = await db.scalar(select(Flow).where(Flow.name == DEMO_FLOW_NAME))
    assert admin is not None and admin.role == "admin"
    assert verify_password(admin.password_hash, second.group(1))
    assert not verify_password(admin.password_hash, first.group(1))
    assert contacts == 25
    assert flow is not None and flow.published_version_id is not None, "the demo flow publishes"


# The email is refused before the command opens a connection (backend.auth.users.create_user
# checks it first), and the worker command stops at the missing REDIS_URL before it reads
# any setting but that one: neither reaches the database, so one kind of database is enough.
ONE_DATABASE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@ONE_DATABASE
async def test_create_user_refuses_a_bad_email_with_a_clear_message(db_url: str) -> None:
    code, out = await _touchflow(
        db_url, "create-user", "--email", "not-an-email", "--password", "long enough password"
    )
    assert code != 0
    assert "Enter a valid email address." in out


@ONE_DATABASE
async def test_worker_without_redis_says_what_to_do(db_url: str) -> None:
    code, out = await _touchflow(db_url, "worker")
    assert code != 0
    assert "REDIS_URL is not set" in out
