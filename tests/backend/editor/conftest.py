"""Fixtures for the editor: the web app of tests/backend/web with the test node types registered."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from httpx import Response
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Flow, Role
from runtime.flows import create_flow
from tests.backend.editor.nodes import EDITOR_TEST_TYPES
from tests.backend.web import conftest as web
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import held_csrf_token
from tests.runtime.nodes import TEST_NODE_TYPES

# The web app's fixtures, shared rather than copied.
app, client, clock, signed_in = web.app, web.client, web.clock, web.signed_in

_REVISION = re.compile(r'id="graph" class="graph" data-revision="(\d+)"')


@dataclass
class Editor:
    """Drives one flow's editor the way editor.js does: htmx headers, CSRF, the draft revision."""

    client: AsyncTestClient[Litestar]
    sessions: async_sessionmaker[AsyncSession]
    flow_id: int

    @property
    def base(self) -> str:
        return f"/flows/{self.flow_id}/edit"

    async def flow(self) -> Flow:
        async with self.sessions() as db:
            flow = await db.get(Flow, self.flow_id)
            assert flow is not None
            return flow

    async def revision(self) -> int:
        return (await self.flow()).draft_revision

    async def post(
        self, path: str, data: dict[str, Any], *, revision: int | None = None
    ) -> Response:
        token = await held_csrf_token(self.client, self.base)
        body = {k: str(v) for k, v in data.items()}
        body["revision"] = str(await self.revision() if revision is None else revision)
        return await self.client.post(
            self.base + path,
            data=body,
            headers={"HX-Request": "true", "X-CSRF-Token": token},
            follow_redirects=False,
        )

    async def get(self, path: str = "") -> Response:
        return await self.client.get(self.base + path, headers={"HX-Request": "true"})


async def publish_second_version(editor: Editor, *, subject: str) -> None:
    """From the published canonical flow, publish version 2 with one step of each kind of
    change: ``notify`` removed, ``confirm``'s subject set, ``later`` moved, a ``tag`` added."""
    await editor.post("/nodes/notify/delete", {})
    await editor.post("/nodes/confirm/config", {"cfg.subject": subject})
    await editor.post("/nodes/later/move", {"x": 900, "y": 900})
    await editor.post("/nodes", {"type": "test.tag", "x": 0, "y": 0})
    await editor.post("/nodes/tag/config", {"cfg.tag": "vip"})
    await editor.post("/edges", {"source": "later", "port": "next", "target": "tag"})
    assert "Published version 2." in (await editor.post("/publish", {})).text


def register_test_types(client: AsyncTestClient[Litestar]) -> None:
    """Node types come from the registry; tests add theirs to the running app's registry."""
    registry = client.app.state.runtime.registry
    for node_type in [*TEST_NODE_TYPES, *EDITOR_TEST_TYPES]:
        registry.add(node_type)
    assert not [e for e in registry.errors if "test" in e.source], registry.errors


@pytest.fixture
async def editor(signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]) -> Editor:
    """A marketer's editor on a new, empty flow."""
    client = await signed_in(Role.marketer)
    register_test_types(client)
    async with sessions() as db, db.begin():
        flow = await create_flow(db, "Welcome")
    return Editor(client, sessions, flow.id)


def revision_in(html: str) -> int:
    match = _REVISION.search(html)
    assert match, "response has no canvas"
    return int(match.group(1))
