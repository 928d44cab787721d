"""The marketer's experience in Chromium: navigation, pickers, Swedish, the canvas at a glance."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect
from sqlalchemy import select

from backend.db import create_engine, create_sessionmaker
from backend.models import Contact, Form, Role, User
from runtime.flows import create_flow
from tests.browser.conftest import LiveServer, sign_in

pytestmark = pytest.mark.browser


async def test_creating_a_flow_lands_in_its_editor(page: Page) -> None:
    await sign_in(page, Role.marketer, to="/flows/new")
    await page.fill("#name", "Download follow-up")
    await page.get_by_role("button", name="Create draft").click()
    await expect(page).to_have_url(re.compile(r"/flows/\d+/edit$"))
    await expect(page.locator("#editor.editor-ready")).to_be_attached()


async def test_saving_a_new_form_moves_to_its_own_address(page: Page) -> None:
    await sign_in(page, Role.marketer, to="/forms/new")
    await page.fill("#name", "Whitepaper download")
    await page.get_by_role("button", name="Create form").click()
    await expect(page).to_have_url(re.compile(r"/forms/\d+$"))


async def test_every_page_has_a_favicon(page: Page) -> None:
    await sign_in(page, Role.marketer)
    icon = page.locator('head link[rel="icon"]')
    await expect(icon).to_have_count(1)
    href = await icon.get_attribute("href")
    assert href is not None
    assert (await page.request.get(href)).status == 200
    # Browsers that ignore the link ask for /favicon.ico anyway.
    assert (await page.request.get("/favicon.ico")).status == 200


def _marketer_flow() -> dict[str, Any]:
    """The canonical flow with built-in steps, laid out left to right as a marketer draws it."""
    steps = [
        ("form", "trigger.form_submitted", {"form_id": 1}),
        ("email", "action.email", {"subject": "Din nedladdning", "body": "Hej {{ first_name }}!"}),
        (
            "opened",
            "wait.event",
            {
                "event_type": "email.opened",
                "for_node": "email",
                "timeout": {"amount": 2, "unit": "days"},
            },
        ),
        ("check", "condition.rule", {"rule": {"field": "tags", "op": "contains", "value": "vip"}}),
        ("split", "split.ab", {}),
        ("notify", "action.task", {"title": "Ring leadet"}),
    ]
    nodes = [
        {"id": i, "type": t, "config": c, "position": {"x": 40 + n * 280, "y": 120 + (n % 2) * 60}}
        for n, (i, t, c) in enumerate(steps)
    ]
    edges = [
        ("form", "next", "email"),
        ("email", "next", "opened"),
        ("opened", "next", "check"),
        ("check", "yes", "split"),
        ("split", "a", "notify"),
    ]
    return {
        "nodes": nodes,
        "edges": [{"source": s, "port": p, "target": t} for s, p, t in edges],
        "settings": {},
    }


async def _flow(live_server: LiveServer, name: str, graph: dict[str, Any]) -> int:
    engine = create_engine(live_server.database_url)
    async with create_sessionmaker(engine)() as db, db.begin():
        db.add(Form(name="Whitepaper download", slug="whitepaper"))
        flow = await create_flow(db, name, graph=graph)
    await engine.dispose()
    return flow.id


async def test_the_canvas_reads_at_a_glance(
    page: Page, live_server: LiveServer, artifacts: Path
) -> None:
    flow_id = await _flow(live_server, "Nedladdning", _marketer_flow())
    await sign_in(page, Role.marketer, to=f"/flows/{flow_id}/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    await page.locator("#canvas").screenshot(path=str(artifacts / "canvas-default-zoom.png"))
    # Legible at first sight: a wide flow is not shrunk to fit, it starts at its trigger.
    zoom = float(await page.locator("#canvas").get_attribute("data-zoom") or 0)
    assert zoom >= 0.85, f"default zoom {zoom} makes the steps' names unreadable"
    await expect(page.locator("#node-form")).to_be_in_viewport()
    # Icons are drawn with characters the page's fonts have, never an empty box.
    for node, glyph in (("check", "⋔"), ("split", "⇉")):
        await expect(page.locator(f"#node-{node} .node-icon")).to_have_text(glyph)
    # A branch's name appears once: on its edge when connected, at its port when not.
    await expect(page.locator("#node-opened .port-label")).to_have_text(["Timed out"])
    await expect(page.locator(".edge-label", has_text="Happened")).to_have_count(1)
    # The forward hop from "Happened" never swings back behind its start.
    path = await page.locator('.edge[data-source="opened"] .edge-line').get_attribute("d")
    assert path is not None
    xs = [float(v) for v in re.findall(r"(-?[\d.]+) -?[\d.]+", path)]
    assert min(xs) >= xs[0] - 0.5, path
    # Part of the flow is out of view, so the overview shows, out of the flow's way.
    await expect(page.locator("#minimap")).to_be_visible()
    await page.screenshot(path=str(artifacts / "editor-default.png"))


async def test_room_for_the_canvas_and_finding_a_step(page: Page, live_server: LiveServer) -> None:
    flow_id = await _flow(live_server, "Room", _marketer_flow())
    await sign_in(page, Role.marketer, to=f"/flows/{flow_id}/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    before = await page.locator("#canvas").bounding_box()
    await page.get_by_role("button", name="Hide steps").click()
    await page.get_by_role("button", name="Hide panel").click()
    await expect(page.locator("#palette")).to_be_hidden()
    after = await page.locator("#canvas").bounding_box()
    assert before and after and after["width"] > before["width"] + 400
    assert after["width"] >= 1300  # nearly the whole 1440 px screen
    await page.reload()
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    await expect(page.locator("#palette")).to_be_hidden()  # the choice is remembered
    await page.get_by_role("button", name="Show steps").click()
    await page.get_by_role("button", name="Show panel").click()

    # Find a step by its name: it is centred and opened.
    await page.keyboard.press("/")
    await expect(page.locator("#node-search")).to_be_focused()
    await page.keyboard.type("salesperson")
    await page.keyboard.press("Enter")
    await expect(page.locator("#panel")).to_have_attribute("data-node-id", "notify")
    await expect(page.locator("#node-notify")).to_be_in_viewport()

    # The shortcuts are one key away.
    await page.locator("#canvas").click(position={"x": 400, "y": 600})
    await page.keyboard.press("?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("Undo, redo")
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()


async def test_a_drop_just_outside_the_canvas_still_adds_the_step(
    page: Page, live_server: LiveServer
) -> None:
    flow_id = await _flow(live_server, "Drops", {"nodes": [], "edges": [], "settings": {}})
    await sign_in(page, Role.marketer, to=f"/flows/{flow_id}/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    canvas = await page.locator("#canvas").bounding_box()
    assert canvas is not None
    await page.fill("#palette-search", "Send email")
    item = page.locator(".palette").get_by_role("button", name="Send email", exact=True)
    box = await item.bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + 20, box["y"] + 10)
    await page.mouse.down()
    # Released a little below the canvas's bottom edge, where a hurried hand lets go.
    target = (canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] + 12)
    await page.mouse.move(*target, steps=12)
    await page.mouse.up()
    await expect(page.locator(".node")).to_have_count(1)
    await expect(page.locator(".node").first).to_be_in_viewport()


async def test_connecting_a_step_clears_its_no_trigger_warning_before_it_is_configured(
    page: Page, live_server: LiveServer
) -> None:
    graph = {
        "nodes": [
            {
                "id": "form",
                "type": "trigger.form_submitted",
                "config": {"form_id": 1},
                "position": {"x": 40, "y": 120},
            },
            {"id": "email", "type": "action.email", "config": {}, "position": {"x": 420, "y": 120}},
        ],
        "edges": [],
        "settings": {},
    }
    flow_id = await _flow(live_server, "Not yet configured", graph)
    await sign_in(page, Role.marketer, to=f"/flows/{flow_id}/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    await page.locator("#node-email .node-title").click()
    problems = page.locator("#panel")
    await expect(problems).to_contain_text("no trigger leads to this node")
    await page.fill('[name="cfg.subject"]', "Din guide")  # typed, not yet saved
    port = await page.locator('#node-form .port-out[data-port="next"]').bounding_box()
    email = await page.locator("#node-email").bounding_box()
    assert port is not None and email is not None
    await page.mouse.move(port["x"] + port["width"] / 2, port["y"] + port["height"] / 2)
    await page.mouse.down()
    await page.mouse.move(email["x"] + email["width"] / 2, email["y"] + 20, steps=12)
    await page.mouse.up()
    await expect(page.locator('.edge[data-source="form"][data-target="email"]')).to_be_attached()
    # Connected, still unconfigured: the panel and the step stop saying nothing leads here.
    await expect(problems).not_to_contain_text("no trigger leads")
    await expect(page.locator("#node-email")).not_to_contain_text("no trigger leads")
    await expect(page.locator('[name="cfg.subject"]')).to_have_value("Din guide")


async def test_a_step_is_renamed_in_place_by_double_click_or_f2(
    page: Page, live_server: LiveServer
) -> None:
    flow_id = await _flow(live_server, "Rename", _marketer_flow())
    await sign_in(page, Role.marketer, to=f"/flows/{flow_id}/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    title = page.locator("#node-email .node-title")
    field = page.locator("#node-email input.node-rename")

    await title.dblclick()
    await expect(field).to_be_focused()
    await field.fill("Guiden på väg")
    await page.keyboard.press("Enter")
    await expect(title).to_have_text("Guiden på väg")
    await expect(field).to_have_count(0)
    await expect(page.locator("#editor-status")).to_have_attribute("data-revision", "1")

    # Escape puts the old name back and saves nothing.
    await title.dblclick()
    await field.fill("Fel namn")
    await page.keyboard.press("Escape")
    await expect(title).to_have_text("Guiden på väg")
    await expect(page.locator("#editor-status")).to_have_attribute("data-revision", "1")

    # By keyboard: the selected step, F2.
    await page.locator("#node-notify").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#panel")).to_have_attribute("data-node-id", "notify")
    await page.locator("#node-notify").focus()
    await page.keyboard.press("F2")
    notify = page.locator("#node-notify input.node-rename")
    await expect(notify).to_be_focused()
    await notify.fill("Ring säljaren")
    await page.keyboard.press("Enter")
    await expect(page.locator("#node-notify .node-title")).to_have_text("Ring säljaren")
    # The open panel follows, so saving the step afterwards keeps the new name.
    await expect(page.locator("#node-label")).to_have_value("Ring säljaren")

    await page.reload()
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    await expect(title).to_have_text("Guiden på väg")
    await expect(page.locator("#node-notify .node-title")).to_have_text("Ring säljaren")


async def test_pickers_name_what_a_step_refers_to(
    page: Page, live_server: LiveServer, artifacts: Path
) -> None:
    flow_id = await _flow(live_server, "Pickers", _marketer_flow())
    await sign_in(page, Role.marketer, to=f"/flows/{flow_id}/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    await page.locator("#node-form .node-title").click()
    form = page.locator('select[name="cfg.form_id"]')
    await expect(form.locator("option:checked")).to_have_text("Whitepaper download (#1)")
    await expect(page.locator("#cfg-form_id-id")).to_have_text("Id: 1")
    await page.locator("#side").screenshot(path=str(artifacts / "picker-form.png"))
    await page.locator("#node-opened .node-title").click()
    about = page.locator('select[name="cfg.for_node"]')
    await expect(about.locator("option:checked")).to_have_text("Send email (Send email · email)")
    await page.locator("#side").screenshot(path=str(artifacts / "picker-node.png"))


async def test_swedish_flows_list_and_editor(
    page: Page, live_server: LiveServer, artifacts: Path
) -> None:
    flow_id = await _flow(live_server, "Välkommen, Åsa", _marketer_flow())
    await sign_in(page, Role.marketer, to="/profile")
    await page.select_option("#locale", "sv")
    await page.select_option("#time_zone", "Europe/Stockholm")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("html")).to_have_attribute("lang", "sv")
    await page.goto("/flows")
    await expect(page.get_by_role("heading", name="Flöden")).to_be_visible()
    await expect(page.get_by_role("link", name="Välkommen, Åsa")).to_be_visible()
    await page.screenshot(path=str(artifacts / "swedish-flows-list.png"))
    await page.goto(f"/flows/{flow_id}/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    await expect(page.get_by_role("button", name="Publicera")).to_be_visible()
    await expect(page.locator(".palette")).to_contain_text("Formulär skickat")
    await expect(page.locator("#node-opened .node-title")).to_have_text("Vänta på händelse")
    await page.locator("#node-opened .node-title").click()
    await expect(page.locator("#panel")).to_contain_text("Händelsen att vänta på")
    await page.screenshot(path=str(artifacts / "swedish-editor.png"))


async def test_the_contact_page_shows_everything_in_its_cards(
    page: Page, live_server: LiveServer
) -> None:
    engine = create_engine(live_server.database_url)
    async with create_sessionmaker(engine)() as db, db.begin():
        owner = await db.scalar(select(User).where(User.email == "marketer@example.com"))
        assert owner is not None
        contact = Contact(
            email="maximiliana.charlotte.andersson-lindqvist@exempelforetaget.example.se",
            first_name="Maximiliana",
            owner_id=owner.id,
            consent={
                "email": {
                    "granted": True,
                    "at": "2026-11-27T13:48:30.807435+00:00",
                    "source": "form:whitepaper",
                }
            },
        )
        db.add(contact)
    await engine.dispose()
    await sign_in(page, Role.marketer, to=f"/contacts/{contact.id}")
    email = page.locator(".facts dd", has_text="maximiliana.charlotte")
    # The whole address is readable: nothing spills past its card.
    fits = await email.evaluate("e => e.scrollWidth <= e.clientWidth")
    assert fits, "the email is clipped in its card"
    await expect(page.locator(".facts div", has_text="Owner")).to_contain_text("Marketer")
    consent = page.locator("#consent-title + dl")
    await expect(consent).not_to_contain_text("2026-11-27T13:48")
    await expect(consent).to_contain_text("Nov 27, 2026 14:48 CET")
    heading = await page.locator("#profile-title").evaluate(
        "h => h.getBoundingClientRect().top - h.parentElement.getBoundingClientRect().top"
    )
    assert heading < 30, f"{heading}px of empty space above the card's heading"


async def test_the_rule_builder_counts_who_matches_as_it_is_built(
    page: Page, live_server: LiveServer, artifacts: Path
) -> None:
    flow_id = await _flow(live_server, "Regler", _marketer_flow())
    engine = create_engine(live_server.database_url)
    async with create_sessionmaker(engine)() as db, db.begin():
        db.add_all(
            Contact(email=f"k{n}@example.se", tags=["vip"] if n < 2 else []) for n in range(5)
        )
    await engine.dispose()
    await sign_in(page, Role.marketer, to=f"/flows/{flow_id}/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    await page.locator("#node-check .node-title").click()
    count = page.locator("#cfg-rule-count")
    await expect(count).to_have_text("2 of 5 contacts match now.")  # the saved rule: vip
    await page.fill("#cfg-rule", "")
    await expect(count).to_have_text("Everyone: 5 contacts.")
    await page.fill("#cfg-rule-key", "email")
    await page.select_option("#cfg-rule-op", "starts_with")
    await page.fill("#cfg-rule-value", "k1@")
    await page.get_by_role("button", name="Add condition").click()
    await expect(count).to_have_text("1 of 5 contacts matches now.")
    await page.locator("#side").screenshot(path=str(artifacts / "rule-builder.png"))
