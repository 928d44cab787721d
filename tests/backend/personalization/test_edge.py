"""The website edge: addresses from the request, `serve`'s printed links, the iframe embed."""

from __future__ import annotations

import asyncio
import html
import os
import signal
import sys
from pathlib import Path

from litestar import Litestar, get
from litestar.routes import ASGIRoute
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.app import create_app
from backend.auth.guards import role, unguarded_routes
from backend.models import Event, Role, Visitor
from backend.templating import asset_url
from tests.backend.personalization.conftest import VISITOR, Post, Shop
from tests.backend.web.support import MovableClock, add_user, settings_for, sign_in
from tests.backend.web.test_forms import answers, make_form
from tests.support.net import free_port as _free_port

PLAIN = {"url": "https://shop.example.com/pricing", "title": "Pricing"}


async def test_embed_codes_use_the_address_the_request_came_in_on(
    db_url: str, sessions: async_sessionmaker[AsyncSession], clock: MovableClock, shop: Shop
) -> None:
    settings = settings_for(db_url)
    values = settings.model_dump(exclude={"base_url"})
    unset = type(settings)(**values)
    assert not unset.base_url_set
    form = await make_form(sessions)
    await add_user(sessions, "marketer@example.com", Role.marketer)
    app = create_app(unset, clock=clock)
    async with AsyncTestClient(app, base_url="http://touchflow.test:9123") as client:
        await sign_in(client, "marketer@example.com")
        forms = html.unescape((await client.get(f"/forms/{form.id}")).text)
        personalization = html.unescape((await client.get("/personalization")).text)
    assert 'src="http://touchflow.test:9123/f/signup?embed=1"' in forms
    assert 'action="http://touchflow.test:9123/f/signup"' in forms
    assert 'src="http://touchflow.test:9123/snippet/' in personalization
    assert ":8000" not in forms + personalization


async def test_serve_prints_the_links_of_its_own_port(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "BASE_URL"}
    env.update(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'tf.db'}", SECRET_KEY="s" * 40)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "backend.cli",
        "serve",
        "--port",
        str(port),
        "--no-worker",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        # Start-up is a few seconds; a machine busy with other work can take many times that.
        async with asyncio.timeout(120):
            while not any("Demo form" in line for line in lines):
                line = (await process.stdout.readline()).decode()
                assert line, f"the server stopped before printing its links: {''.join(lines)!r}"
                lines.append(line)
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()
    printed = "".join(lines)
    assert f"Sign in at http://127.0.0.1:{port}/login" in printed
    assert f"http://127.0.0.1:{port}/f/" in printed
    assert ":8000" not in printed


async def test_the_iframe_form_carries_the_visitor_and_its_submission_claims_it(
    client: AsyncTestClient,
    snippet: Post,
    shop: Shop,
    sessions: async_sessionmaker[AsyncSession],
    clock: MovableClock,
) -> None:
    await make_form(sessions)
    await snippet("events", type="page.viewed", page=PLAIN)
    page = (await client.get(f"/f/signup?embed=1&vid={VISITOR}")).text
    assert f'<input type="hidden" name="visitor_id" value="{VISITOR}">' in page
    # Asks the snippet on the page when no vid is given, from a static script (the CSP
    # refuses inline script).
    script = asset_url("js/embedded-form.js")
    assert f'<script src="{script}"></script>' in page
    assert "touchflowVisitor" in (await client.get(script)).text
    assert 'name="visitor_id"' not in (await client.get("/f/signup?embed=1&vid=<b>")).text
    response = await client.post(
        "/f/signup?embed=1",
        data=answers(clock, email="ines@example.com", visitor_id=VISITOR),
        headers={"Origin": "http://testserver.local"},
    )
    assert response.status_code == 200, response.text
    async with sessions() as db:
        visitor = await db.get(Visitor, VISITOR)
        submitted = await db.scalar(select(Event).where(Event.type == "form.submitted"))
    assert visitor is not None and submitted is not None
    assert visitor.claimed_contact_id == submitted.contact_id


def test_every_route_but_decide_is_behind_the_role_guard(app: Litestar) -> None:
    assert unguarded_routes(app) == []
    [decide] = [r for r in app.routes if r.path == "/p/v1/decide"]
    assert isinstance(decide, ASGIRoute) and decide.route_handler.resolve_guards() == []

    @get("/secret", opt=role(Role.admin), sync_to_thread=False)
    def secret() -> str:
        return "only admins"

    assert "GET /secret" in unguarded_routes(Litestar([secret], openapi_config=None))
