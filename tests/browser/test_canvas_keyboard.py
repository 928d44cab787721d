"""The canvas by keyboard alone: connect two steps with C, remove a connection, and undo/redo
keep the open step's problem list true."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from backend.models import Role
from tests.browser.conftest import LiveServer, sign_in
from tests.browser.test_accessibility import _axe, _report
from tests.browser.test_marketer import _flow, _marketer_flow

pytestmark = pytest.mark.browser
UNREACHABLE = "no trigger leads to this node"


def _without_check_to_split() -> dict[str, object]:
    graph = _marketer_flow()
    graph["edges"] = [e for e in graph["edges"] if e["source"] != "check"]
    return graph


async def _editor(page: Page, live_server: LiveServer) -> None:
    flow_id = await _flow(live_server, "Tangentbord", _without_check_to_split())
    await sign_in(page, Role.marketer, to=f"/flows/{flow_id}/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()


async def test_connect_and_disconnect_two_steps_with_the_keyboard_alone(
    page: Page, live_server: LiveServer
) -> None:
    await _editor(page, live_server)
    edge = page.locator('.edge[data-source="check"][data-port="yes"][data-target="split"]')
    await expect(edge).to_have_count(0)
    # The shortcut is listed in the overlay.
    await page.keyboard.press("?")
    await expect(page.locator("#shortcuts")).to_contain_text("Connect the selected step")
    await page.keyboard.press("Escape")

    await page.locator("#node-check").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#panel")).to_have_attribute("data-node-id", "check")
    await page.locator("#node-check").focus()
    await page.keyboard.press("c")
    dialog = page.locator("#connect-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("heading")).to_contain_text("Connect")
    violations = await _axe(page)
    assert not violations, _report("the connect list", violations)
    # A condition has two outputs: the first is chosen, Tab moves on to the steps.
    ports = dialog.locator("#connect-port")
    await expect(ports).to_be_focused()
    await expect(ports).to_have_value("yes")
    await page.keyboard.press("Tab")
    targets = dialog.locator("#connect-target")
    await expect(targets).to_be_focused()
    await expect(targets).to_have_value("")
    for _ in range(3):  # nothing -> email -> opened -> split
        await page.keyboard.press("ArrowDown")
    await expect(targets).to_have_value("split")
    await page.keyboard.press("Enter")
    await expect(dialog).to_be_hidden()
    await expect(edge).to_have_count(1)
    await expect(page.locator("#node-check")).to_be_focused()

    # Removing it: the same list, "nothing" at its top.
    await page.keyboard.press("c")
    await expect(dialog).to_be_visible()
    await page.keyboard.press("Tab")
    await expect(targets).to_have_value("split")
    await page.keyboard.press("Home")
    await expect(targets).to_have_value("")
    await page.keyboard.press("Enter")
    await expect(edge).to_have_count(0)


async def test_undo_and_redo_redraw_the_open_steps_problems(
    page: Page, live_server: LiveServer
) -> None:
    await _editor(page, live_server)
    await page.locator("#node-split").focus()
    await page.keyboard.press("Enter")
    problems = page.locator("#panel-problems")
    await expect(problems).to_contain_text(UNREACHABLE)

    # Connected from the open panel of another step, then undone and redone by keyboard.
    await page.locator("#node-check").focus()
    await page.keyboard.press("Enter")
    await page.select_option("#out-yes", "split")
    await expect(page.locator('.edge[data-source="check"][data-target="split"]')).to_have_count(1)
    await page.locator("#node-split").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#panel")).to_have_attribute("data-node-id", "split")
    await expect(problems).to_be_hidden()

    await page.locator("#node-split").focus()
    await page.keyboard.press("Control+z")
    await expect(page.locator('.edge[data-source="check"]')).to_have_count(0)
    await expect(page.locator("#panel")).to_have_attribute("data-node-id", "split")
    await expect(page.locator("#panel-problems")).to_contain_text(UNREACHABLE)

    await page.keyboard.press("Control+Shift+z")
    await expect(page.locator('.edge[data-source="check"]')).to_have_count(1)
    await expect(page.locator("#panel")).to_have_attribute("data-node-id", "split")
    await expect(page.locator("#panel-problems")).to_be_hidden()
