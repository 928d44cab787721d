"""The canvas editor in Chromium: build a flow by dragging and connecting, configure, publish."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.async_api import Locator, Page, expect

from backend.db import create_engine, create_sessionmaker
from backend.models import Journey, Role
from runtime.flows import create_flow, publish, save_draft
from tests.browser.conftest import LiveServer, sign_in
from tests.runtime.nodes import canonical_graph

pytestmark = pytest.mark.browser
INVALID = re.compile(r"\bnode-invalid\b")


async def _center(locator: Locator) -> tuple[float, float]:
    box = await locator.bounding_box()
    assert box is not None, "element is not visible"
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


async def _drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Press, move in steps and release, as a person's pointer does."""
    await page.mouse.move(*start)
    await page.mouse.down()
    await page.mouse.move(*end, steps=12)
    await page.mouse.up()


async def _drop_from_palette(
    page: Page, name: str, x: float, y: float, *, added: bool = True
) -> None:
    """Drag a step from the palette onto the canvas and, when ``added``, wait for the server's
    answer: the new step on the canvas and its panel open. (A test that went on at once
    could open another step's panel and have this answer replace it while it typed.)"""
    # The editor's modules load after the page: a drag before then is only a drag.
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    canvas = await page.locator("#canvas").bounding_box()
    assert canvas is not None
    steps = page.locator("#graph .node")
    before = set(await _node_ids(page))
    # Search narrows the palette to the step, which also brings it into view.
    await page.fill("#palette-search", name)
    item = page.locator(".palette").get_by_role("button", name=name, exact=True)
    await _drag(page, await _center(item), (canvas["x"] + x, canvas["y"] + y))
    if added:
        await expect(steps).to_have_count(len(before) + 1)
        [new] = set(await _node_ids(page)) - before
        await expect(page.locator("#panel")).to_have_attribute("data-node-id", new)
    await page.fill("#palette-search", "")


async def _node_ids(page: Page) -> list[str]:
    return await page.locator("#graph .node").evaluate_all("els => els.map(e => e.dataset.nodeId)")


async def _save_step(page: Page) -> None:
    await page.get_by_role("button", name="Save step").click()
    await expect(page.locator("#panel .notice")).to_be_visible()


async def test_build_configure_and_publish_a_flow(page: Page, artifacts: Path) -> None:
    await sign_in(page, Role.marketer, to="/flows/new")
    await page.fill("#name", "Download follow-up")
    await page.get_by_role("button", name="Create draft").click()
    await page.wait_for_url("**/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()

    # The palette is searchable and grouped by family.
    await page.fill("#palette-search", "email")
    await expect(page.locator(".palette-item", has_text="Test trigger")).to_be_hidden()
    await expect(page.locator(".palette-item", has_text="Test email")).to_be_visible()
    await page.fill("#palette-search", "")

    await _drop_from_palette(page, "Test trigger", 180, 220)
    trigger = page.locator("#node-trigger")
    await expect(trigger).to_be_visible()
    await _drop_from_palette(page, "Test email", 620, 220)
    email = page.locator("#node-email")
    await expect(email).to_be_visible()

    # Connect by dragging from the trigger's output port onto the email step.
    port = trigger.locator('.port-out[data-port="next"]')
    await _drag(page, await _center(port), await _center(email))
    edge = page.locator('.edge[data-source="trigger"][data-target="email"]')
    await expect(edge).to_be_attached()

    # An unconfigured step is marked red on the canvas, with pydantic's message.
    await expect(email).to_have_class(INVALID)
    await expect(email.locator(".node-error")).to_contain_text("subject: Fill this in.")
    await page.locator("#canvas").screenshot(path=str(artifacts / "editor-invalid.png"))

    # Configure the trigger from its generated form.
    await trigger.click()
    await expect(page.locator("#panel")).to_have_attribute("data-node-id", "trigger")
    await page.fill('[name="cfg.event_type"]', "form.submitted")
    await _save_step(page)
    await expect(page.locator("#panel .notice")).to_have_text("Saved.")
    await expect(trigger).not_to_have_class(INVALID)

    # Publishing now fails and lists the email's problem, linking to it.
    await page.get_by_role("button", name="Publish").click()
    await expect(page.locator("#editor-status .notice-error")).to_contain_text("Not published")
    await page.locator('#problems [data-select-node="email"]').click()
    await expect(page.locator("#panel")).to_have_attribute("data-node-id", "email")
    await page.fill('[name="cfg.subject"]', "Your download")
    await page.fill("#node-label", "Send the file")
    await _save_step(page)
    await expect(email).not_to_have_class(INVALID)
    await expect(email.locator(".node-title")).to_have_text("Send the file")

    # Undo brings the empty subject back (and its mark); redo restores the fix.
    await page.locator("#canvas").click(position={"x": 500, "y": 560})
    await page.keyboard.press("Control+z")
    await expect(email).to_have_class(INVALID)
    await page.keyboard.press("Control+Shift+z")
    await expect(email).not_to_have_class(INVALID)

    await page.get_by_role("button", name="Publish").click()
    await expect(page.locator("#editor-status .notice")).to_have_text("Published version 1.")
    await expect(page.locator("#versions")).to_contain_text("v1")
    await page.get_by_role("button", name="Compare with the draft").click()
    await expect(page.locator("#panel")).to_contain_text("Changes from v1 to the draft")
    await expect(page.locator("#panel")).to_contain_text("No differences")
    await expect(page.locator("#editor-status .badge")).to_have_text("Active")
    await page.locator("#canvas").screenshot(path=str(artifacts / "editor-published.png"))

    # Reload: the draft was saved as it was edited.
    await page.reload()
    await expect(page.locator("#node-email .node-title")).to_have_text("Send the file")
    await expect(edge).to_be_attached()
    await expect(page.locator(".node-invalid")).to_have_count(0)


async def test_moving_a_node_survives_a_reload(page: Page) -> None:
    await sign_in(page, Role.marketer, to="/flows/new")
    await page.fill("#name", "Mover")
    await page.get_by_role("button", name="Create draft").click()
    await page.wait_for_url("**/edit")
    await _drop_from_palette(page, "Test email", 300, 200)
    node = page.locator("#node-email")
    await expect(node).to_be_visible()
    before = await node.get_attribute("style")
    # Mark the canvas and the step: a move swaps in the step alone, not the canvas.
    await page.evaluate("document.getElementById('graph').dataset.mark = 'kept'")
    await page.evaluate("document.getElementById('node-email').dataset.mark = 'old'")
    start = await _center(node.locator(".node-title"))
    await _drag(page, start, (start[0] + 150, start[1] + 90))
    await expect(page.locator("#editor-status .save-state")).to_have_text("Draft revision 2")
    await expect(page.locator("#node-email")).not_to_have_attribute("data-mark", "old")
    await expect(page.locator("#graph")).to_have_attribute("data-mark", "kept")
    await page.keyboard.press("ArrowRight")  # the next edit carries the new revision
    await expect(page.locator("#editor-status .save-state")).to_have_text("Draft revision 3")
    await page.reload()
    assert await page.locator("#node-email").get_attribute("style") != before
    # Delete with the keyboard.
    await page.locator("#node-email").click()
    await page.keyboard.press("Delete")
    await expect(page.locator(".node")).to_have_count(0)


async def test_a_viewer_cannot_edit(page: Page, live_server: LiveServer) -> None:
    engine = create_engine(live_server.database_url)
    graph = {
        "nodes": [
            {
                "id": "form",
                "type": "test.trigger",
                "config": {"event_type": "form.submitted"},
                "position": {"x": 40, "y": 40},
            },
            {
                "id": "mail",
                "type": "test.email",
                "config": {"subject": "Hi"},
                "position": {"x": 400, "y": 40},
            },
        ],
        "edges": [{"source": "form", "port": "next", "target": "mail"}],
    }
    async with create_sessionmaker(engine)() as db, db.begin():
        flow = await create_flow(db, "Look, don't touch", graph=graph)
    await engine.dispose()

    await sign_in(page, Role.viewer, to=f"/flows/{flow.id}/edit")
    await expect(page.locator("#editor.editor-ready")).to_have_attribute("data-readonly", "true")
    await expect(page.locator(".palette")).to_have_count(0)
    await expect(page.get_by_role("button", name="Publish")).to_have_count(0)
    await expect(page.get_by_text("your role is viewer")).to_be_visible()

    mail = page.locator("#node-mail")
    before = await mail.get_attribute("style")
    start = await _center(mail.locator(".node-title"))
    await _drag(page, start, (start[0] + 200, start[1] + 120))
    # Dragging does not move it; a click shows its settings, disabled.
    assert await mail.get_attribute("style") == before
    await expect(page.locator("#panel")).to_have_attribute("data-node-id", "mail")
    await expect(page.locator('#panel [name="cfg.subject"]')).to_be_disabled()
    await expect(page.get_by_role("button", name="Save step")).to_have_count(0)
    port = page.locator('#node-mail .port-out[data-port="next"]')
    await _drag(page, await _center(port), await _center(page.locator("#node-form")))
    await page.keyboard.press("Delete")
    await page.reload()
    await expect(page.locator(".node")).to_have_count(2)
    await expect(page.locator(".edge")).to_have_count(1)
    await expect(page.locator("#editor-status .save-state")).to_have_text("Draft revision 0")


async def test_two_tabs_get_a_conflict_instead_of_a_lost_update(page: Page) -> None:
    await sign_in(page, Role.marketer, to="/flows/new")
    await page.fill("#name", "Shared draft")
    await page.get_by_role("button", name="Create draft").click()
    await page.wait_for_url("**/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    other = await page.context.new_page()
    await other.goto(page.url)
    await expect(other.locator("#editor.editor-ready")).to_be_attached()

    await page.bring_to_front()  # as a person does; a tab behind another gets no frames
    await _drop_from_palette(page, "Test trigger", 200, 200)
    await expect(page.locator("#node-trigger")).to_be_visible()
    await other.bring_to_front()
    # The second tab still shows revision 0; its edit is refused, not applied over the first.
    await _drop_from_palette(other, "Test email", 400, 300, added=False)
    await expect(other.locator("#flash")).to_contain_text("Not saved: this flow changed meanwhile.")
    # ...and it catches up with the draft as saved by the first tab.
    await expect(other.locator("#node-trigger")).to_be_visible()
    await expect(other.locator("#node-email")).to_have_count(0)
    await expect(other.locator("#editor-status .save-state")).to_have_text("Draft revision 1")
    await _drop_from_palette(other, "Test email", 400, 300)
    await expect(other.locator("#node-email")).to_be_visible()
    await page.reload()
    await expect(page.locator(".node")).to_have_count(2)
    await other.close()


async def _configure(page: Page, node: str, values: dict[str, str]) -> None:
    await page.locator(f"#node-{node} .node-title").click()
    await expect(page.locator("#panel")).to_have_attribute("data-node-id", node)
    for name, value in values.items():
        field = page.locator(f'[name="cfg.{name}"]')
        if await field.evaluate("e => e.tagName") == "SELECT":
            await field.select_option(value)  # a picker: the step is chosen, not typed
        else:
            await field.fill(value)
    await _save_step(page)
    await expect(page.locator(f"#node-{node}")).not_to_have_class(INVALID)


async def _connect(page: Page, source: str, port: str, target: str) -> None:
    handle = page.locator(f'#node-{source} .port-out[data-port="{port}"]')
    await _drag(page, await _center(handle), await _center(page.locator(f"#node-{target}")))
    edge = f'.edge[data-source="{source}"][data-port="{port}"][data-target="{target}"]'
    await expect(page.locator(edge)).to_be_attached()


async def test_build_the_canonical_flow_with_the_built_in_steps(
    page: Page, artifacts: Path
) -> None:
    """Form -> email -> wait 2 days for its open -> reminder | notify the salesperson."""
    await sign_in(page, Role.marketer, to="/flows/new")
    await page.fill("#name", "Canonical")
    await page.get_by_role("button", name="Create draft").click()
    await page.wait_for_url("**/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()

    steps = [
        ("Form submitted", "form_submitted", 140, 90),
        ("Send email", "email", 390, 90),
        ("Wait for event", "event", 640, 90),
        ("Send email", "email_2", 640, 330),
        ("Notify salesperson", "task", 390, 330),
    ]
    for name, node, x, y in steps:
        await _drop_from_palette(page, name, x, y)
        await expect(page.locator(f"#node-{node}")).to_be_visible()
    await _connect(page, "form_submitted", "next", "email")
    await _connect(page, "email", "next", "event")
    await _connect(page, "event", "timeout", "email_2")
    await _connect(page, "event", "next", "task")
    await expect(page.locator(".edge-label", has_text="Timed out")).to_be_visible()

    await _configure(page, "email", {"subject": "Your download", "body": "Here it is."})
    await _configure(
        page,
        "event",
        {"event_type": "email.opened", "for_node": "email", "timeout.amount": "2"},
    )
    await _configure(page, "email_2", {"subject": "Did you see it?", "body": "A reminder."})
    await _configure(page, "task", {"title": "Call the lead"})
    await expect(page.locator(".node-invalid")).to_have_count(0)

    await page.get_by_role("button", name="Publish").click()
    await expect(page.locator("#editor-status .notice")).to_have_text("Published version 1.")
    await page.get_by_role("button", name="Fit").click()
    await page.locator("#canvas").screenshot(path=str(artifacts / "canonical-flow.png"))

    await page.reload()
    await expect(page.locator(".node")).to_have_count(5)
    await expect(page.locator(".edge")).to_have_count(4)
    await expect(page.locator(".node-invalid")).to_have_count(0)
    await page.locator("#node-event .node-title").click()
    await expect(page.locator('[name="cfg.timeout.amount"]')).to_have_value("2")


async def test_import_a_file_and_tidy_it_up(page: Page, tmp_path: Path) -> None:
    flow_file = tmp_path / "flow.json"
    flow_file.write_text(json.dumps(canonical_graph()))
    await sign_in(page, Role.marketer, to="/flows/new")
    await page.fill("#name", "Imported")
    await page.get_by_role("button", name="Create draft").click()
    await page.wait_for_url("**/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    await page.set_input_files("#import-file", str(flow_file))
    await expect(page.locator(".node")).to_have_count(6)
    await expect(page.locator(".edge")).to_have_count(5)
    # Everything is in view: no minimap in the way. Scrolled away, it shows every step,
    # and clicking it moves the view there.
    await expect(page.locator("#minimap")).to_be_hidden()
    await page.locator("#canvas").hover()
    await page.mouse.wheel(0, 1500)
    await expect(page.locator("#minimap .mm-node")).to_have_count(6)
    before = await page.locator("#world").get_attribute("style")
    await page.locator("#minimap").click(position={"x": 170, "y": 110})
    assert await page.locator("#world").get_attribute("style") != before
    # Every node was stacked at (0, 0) in the file; tidy spreads them into columns.
    await page.get_by_role("button", name="Tidy up").click()
    await expect(page.locator("#node-notify")).not_to_have_attribute("style", re.compile("left: 0"))
    lefts = {await n.evaluate("e => e.style.left") for n in await page.locator(".node").all()}
    assert len(lefts) == 5
    await page.keyboard.press("Control+z")
    await expect(page.locator("#node-notify")).to_have_attribute("style", re.compile("left: 0"))


async def test_connect_from_the_keyboard(page: Page) -> None:
    await sign_in(page, Role.marketer, to="/flows/new")
    await page.fill("#name", "Keyboard")
    await page.get_by_role("button", name="Create draft").click()
    await page.wait_for_url("**/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    # Enter on a palette step adds it in the middle of the view.
    await page.fill("#palette-search", "Test trigger")
    await page.locator(".palette").get_by_role("button", name="Test trigger", exact=True).focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#node-trigger")).to_be_visible()
    await page.fill("#palette-search", "Test email")
    await page.locator(".palette").get_by_role("button", name="Test email", exact=True).focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#node-email")).to_be_visible()
    await page.locator("#node-trigger").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#panel")).to_have_attribute("data-node-id", "trigger")
    await page.select_option("#out-next", "email")
    await expect(page.locator('.edge[data-source="trigger"][data-target="email"]')).to_be_attached()
    await page.select_option("#out-next", "")
    await expect(page.locator(".edge")).to_have_count(0)


async def test_publishing_over_running_customers_lets_the_marketer_move_them(
    page: Page, live_server: LiveServer, artifacts: Path
) -> None:
    registry = live_server.app.state.runtime.registry
    draft = canonical_graph()
    # The new draft drops the reminder: customers standing on it cannot move.
    draft["nodes"] = [n for n in draft["nodes"] if n["id"] != "reminder"]
    draft["edges"] = [e for e in draft["edges"] if e["target"] != "reminder"]
    engine = create_engine(live_server.database_url)
    async with create_sessionmaker(engine)() as db, db.begin():
        flow = await create_flow(db, "Running", graph=canonical_graph())
        version = await publish(db, flow.id, registry)
        db.add_all(
            Journey(flow_id=flow.id, flow_version_id=version.id, node_id=node, status="waiting")
            for node in ("opened", "opened", "reminder")
        )
        await save_draft(db, flow.id, draft)
    await engine.dispose()

    await sign_in(page, Role.marketer, to=f"/flows/{flow.id}/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    await page.locator("#editor-status").get_by_role("button", name="Publish").click()
    panel = page.locator("#panel")
    await expect(panel).to_contain_text("3 customers are in this flow right now.")
    await expect(panel).to_contain_text("1 at step reminder, which the draft no longer has")
    await panel.get_by_label("Move 2 customers to the new version").check()
    await page.locator("#panel").screenshot(path=str(artifacts / "editor-publish-dialog.png"))
    await panel.get_by_role("button", name="Publish").click()
    await expect(page.locator("#editor-status .notice")).to_have_text(
        "Published version 2. 2 customers moved to it. 1 stays on their version."
    )
    await expect(panel).not_to_contain_text("customers are in this flow")


async def test_an_email_step_shows_its_preview_and_an_sms_step_counts_its_text(
    page: Page,
) -> None:
    await sign_in(page, Role.marketer, to="/flows/new")
    await page.fill("#name", "Preview")
    await page.get_by_role("button", name="Create draft").click()
    await page.wait_for_url("**/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    await _drop_from_palette(page, "Send email", 200, 120)
    await _drop_from_palette(page, "Send SMS", 200, 320)
    await _configure(page, "email", {"subject": "Hi {{ first_name | there }}", "body": "Hello."})
    # The panel answering the save loads the preview of what was saved, as the sample contact.
    await expect(page.locator("#email-preview .preview-subject")).to_have_text("Hi Alex")
    frame = page.frame_locator("#email-preview iframe[sandbox='']")
    await expect(frame.locator("p")).to_have_text("Hello.")
    await page.fill("#preview-contact", "nobody@example.com")
    await page.press("#preview-contact", "Enter")
    await expect(page.locator("#email-preview")).to_contain_text("There is no contact")
    await page.fill("#preview-contact", "")
    await page.press("#preview-contact", "Enter")
    await page.fill("#test-send-to", "me@shop.example")
    await page.get_by_role("button", name="Send a test", exact=True).click()
    await expect(page.locator("#email-preview [role=status]")).to_contain_text(
        "Test email queued for me@shop.example."
    )
    await page.locator("#node-sms .node-title").click()
    await expect(page.locator("#panel")).to_have_attribute("data-node-id", "sms")
    await page.fill('[name="cfg.text"]', "Hej 🙂")
    await expect(page.locator("#sms-length")).to_have_text("6 characters · 1 SMS · UCS-2")
