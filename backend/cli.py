"""The ``touchflow`` command line: serve, worker, migrate, create-user, demo.

Operator-facing output stays in English on purpose: it goes to logs and
terminals of the people who run Touchflow, not to marketers.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from backend.auth import passwords
from backend.settings import Settings, get_settings

T = TypeVar("T")
# uvicorn's own forwarded-header handling trusts 127.0.0.1 (or FORWARDED_ALLOW_IPS)
# whatever TRUSTED_PROXIES says; the app decides instead (backend.ratelimit).
UVICORN_OPTIONS: dict[str, Any] = {"proxy_headers": False, "server_header": False}


def _settings() -> Settings:
    try:
        settings = get_settings()
    except ValueError as exc:  # pydantic-settings refuses bad environment values
        raise click.ClickException(f"invalid settings: {exc}") from exc
    passwords.use_environment(settings.environment)
    return settings


def _run(factory: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await factory()

    return asyncio.run(main())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """Touchflow: customer-lifecycle automation."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--no-worker",
    is_flag=True,
    help="Serve the web app only; run `touchflow worker` processes (REDIS_URL) for the work.",
)
def serve(host: str, port: int, no_worker: bool) -> None:
    """Serve the web app, with an in-process worker unless --no-worker."""
    import uvicorn

    from backend.app import create_app
    from backend.demo import DEMO_FORM_SLUG

    settings = _settings()
    if no_worker and not settings.redis_url:
        click.echo(
            "warning: --no-worker without REDIS_URL: journeys advance only when a worker "
            "sweeps the database",
            err=True,
        )
    listening = f"http://{_display_host(host)}:{port}"
    if not settings.base_url_set:
        # Emails and printed links name the port we really serve on; pages still
        # follow the address each request came in on.
        settings.base_url = listening
    app = create_app(settings, run_executor=not no_worker)
    url = settings.base_url.rstrip("/")
    click.echo(f"Touchflow at {listening} (database: {_safe_url(settings.database_url)})")
    click.echo(f"  Sign in at {url}/login")
    click.echo(f"  Demo form (after `touchflow demo`): {url}/f/{DEMO_FORM_SLUG}")
    uvicorn.run(app, host=host, port=port, log_level="info", **UVICORN_OPTIONS)


def _display_host(host: str) -> str:
    """Where a browser on this machine reaches a server listening on ``host``."""
    if host in ("0.0.0.0", "", "::"):  # noqa: S104 - naming the wildcard, not binding it
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


@main.command()
def worker() -> None:
    """Run an arq worker that steps journeys and delivers messages (needs REDIS_URL)."""
    settings = _settings()
    if not settings.redis_url:
        raise click.ClickException(
            "REDIS_URL is not set: `touchflow serve` runs the work in-process instead"
        )
    from backend.worker import run_arq_worker  # after the check: it imports the whole runtime

    run_arq_worker(settings)


@main.command()
@click.option(
    "--revision", default="head", show_default=True, help="Alembic revision to upgrade to."
)
@click.option("--downgrade", is_flag=True, help="Downgrade to --revision instead of upgrading.")
def migrate(revision: str, downgrade: bool) -> None:
    """Bring the database schema up to date (or down to --revision)."""
    from alembic import command

    from migrations import alembic_config

    settings = _settings()
    config = alembic_config(settings.database_url)
    if downgrade:
        command.downgrade(config, revision)
    else:
        command.upgrade(config, revision)
    click.echo(f"database {_safe_url(settings.database_url)} is at {revision}")


@main.command("create-user")
@click.option("--email", required=True, help="The user's sign-in email.")
@click.option(
    "--role",
    type=click.Choice(["admin", "marketer", "viewer"]),
    default="admin",
    show_default=True,
    help="What the user may do.",
)
@click.option("--name", default="", help="Display name.")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Asked for when omitted.",
)
def create_user_command(email: str, role: str, name: str, password: str) -> None:
    """Add a user who can sign in."""
    from backend.auth.users import UserError, create_user
    from backend.db import create_engine, create_sessionmaker, transaction
    from backend.models import Role

    settings = _settings()

    async def add() -> None:
        engine = create_engine(settings.database_url)
        try:
            async with transaction(create_sessionmaker(engine)) as db:
                await create_user(db, email, password, Role(role), name)
        finally:
            await engine.dispose()

    try:
        _run(add)
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"added {role} {email}")


@main.command()
@click.option("--contacts", default=200, show_default=True, help="Sample contacts to add.")
def demo(contacts: int) -> None:
    """Load the demo flow and sample contacts; print the demo admin's sign-in."""
    from backend.demo import DEMO_ADMIN_EMAIL, load_demo

    settings = _settings()
    if settings.environment == "production":
        raise click.ClickException("the demo is not loaded in production")
    password = secrets.token_urlsafe(9)
    report = _run(lambda: load_demo(settings, admin_password=password, contacts=contacts))
    for line in report.lines:
        click.echo(line)
    click.echo("")
    click.echo(f"  Sign in at {settings.base_url}/login")
    click.echo(f"  email:    {DEMO_ADMIN_EMAIL}")
    click.echo(f"  password: {password}")
    click.echo("")


def _safe_url(url: str) -> str:
    """The database URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
