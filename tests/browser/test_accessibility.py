"""axe-core (from npm, served from this machine) on every main page and the editor.

Zero serious or critical violations; the report of each page is printed in the test output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from backend.models import Role
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
    await sign_in(page, Role.admin)
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
