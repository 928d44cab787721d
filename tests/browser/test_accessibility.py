"""axe-core (from npm, served from this machine) on every main page and the editor.

Zero serious or critical violations; the report of each page is printed in the test output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from backend.db import create_engine, create_sessionmaker
from backend.models import Contact, Role
from runtime.messaging.channels import link_signer
from tests.browser.conftest import LiveServer, sign_in
from tests.browser.test_marketer import _flow, _marketer_flow

pytestmark = pytest.mark.browser
AXE = Path(__file__).resolve().parents[2] / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
PAGES = [
    "/flows",
    "/flows/new",
    "/contacts",
    "/forms",
    "/forms/new",
    "/personalization",
    "/runs",
    "/tasks",
    "/outbox",
    "/settings",
    "/settings/audit",
    "/settings/retention",
    "/profile",
]


async def _axe(page: Page) -> list[dict[str, Any]]:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `npm ci --prefix frontend` (make install does)")
    # Evaluated through the DevTools protocol, not as a <script> tag: the admin pages'
    # Content-Security-Policy (rightly) refuses inline script.
    await page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    result = await page.evaluate(
        "() => axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
    )
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


def _report(where: str, violations: list[dict[str, Any]]) -> str:
    lines = [f"axe on {where}: {len(violations)} serious/critical"]
    for v in violations:
        targets = [n["target"] for n in v["nodes"][:3]]
        lines.append(f"  [{v['impact']}] {v['id']}: {v['help']} at {json.dumps(targets)}")
    return "\n".join(lines)


async def test_main_pages_have_no_serious_accessibility_violations(
    page: Page, live_server: LiveServer
) -> None:
    flow_id = await _flow(live_server, "Tillgänglighet", _marketer_flow())
    await sign_in(page, Role.admin, through_form=True)  # the audit page lists it
    found = {}
    for path in [*PAGES, f"/flows/{flow_id}", f"/flows/{flow_id}/edit", "/f/whitepaper"]:
        await page.goto(path)
        if path.endswith("/edit"):
            await expect(page.locator("#editor.editor-ready")).to_be_attached()
        violations = await _axe(page)
        print(_report(path, violations))
        if violations:
            found[path] = violations
    # The editor with a step's settings open (its pickers) and the shortcuts overlay.
    await page.goto(f"/flows/{flow_id}/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    await page.locator("#node-opened .node-title").click()
    await expect(page.locator('select[name="cfg.for_node"]')).to_be_visible()
    await page.get_by_role("button", name="Keyboard shortcuts").click()
    violations = await _axe(page)
    print(_report("the editor with a step open and the shortcuts", violations))
    if violations:
        found["editor panel"] = violations
    assert not found, "\n".join(_report(path, v) for path, v in found.items())


async def _contact(live_server: LiveServer) -> int:
    engine = create_engine(live_server.database_url)
    async with create_sessionmaker(engine)() as db, db.begin():
        contact = Contact(
            email="åsa.lindqvist-with-a-long-address@exempel.se",
            first_name="Åsa",
            tags=["vip"],
            attributes={"company": "Exempel AB"},
            consent={
                "email": {"granted": True, "at": "2026-11-27T13:48:30+00:00", "source": "form"}
            },
        )
        db.add(contact)
        await db.flush()
        contact_id = contact.id
    await engine.dispose()
    return contact_id


async def test_contact_unsubscribe_and_preference_pages_have_no_serious_violations(
    page: Page, live_server: LiveServer
) -> None:
    contact_id = await _contact(live_server)
    links = link_signer(live_server.app.state.settings)
    found = {}
    await sign_in(page, Role.admin)
    for where in (
        f"/contacts/{contact_id}",
        links.unsubscribe_url(1, contact_id, "email"),
        links.preferences_url(contact_id),
    ):
        response = await page.goto(where)
        assert response is not None and response.status == 200, where
        violations = await _axe(page)
        print(_report(where, violations))
        if violations:
            found[where] = violations
    assert not found, "\n".join(_report(where, v) for where, v in found.items())
