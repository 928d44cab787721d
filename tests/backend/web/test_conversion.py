"""The conversion page and "send everyone down the winner", on seeded data with known answers.

The seed: an email-against-SMS split. Branch a (email) takes 200 customers who
entered in ISO week 2030-W02, 20 of whom buy; branch b (SMS) takes 200 who
entered in 2030-W03, 40 of whom buy. Conversions come 1, 2, ... 60 hours after
entering. So: 400 entered, 60 converted (15.0 %); median time to convert is the
30th of 60 durations (nearest rank: ceil(0.5 * 60) = 30 -> 30 hours), the 90th
percentile the 54th (ceil(0.9 * 60) = 54 -> 54 hours); B converts better with
p = 0.0051 (worked out in tests/backend/flows/test_verdicts.py).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import AuditEntry, Flow, FlowVersion, Journey, Role, Step
from nodes.builtin import NODE_TYPES
from nodes.sdk import NodeRegistry
from runtime import flows
from runtime.models import JourneyConversion
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import post_form

W02 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)  # a Monday
W03 = datetime(2030, 1, 14, 9, 0, tzinfo=UTC)


def graph() -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "start", "type": "trigger.event", "config": {"event_type": "signed.up"}},
            {
                "id": "ab",
                "type": "split.ab",
                "label": "Channel test",
                "config": {
                    "variants": [
                        {"key": "a", "label": "Email", "percent": 50},
                        {"key": "b", "label": "SMS", "percent": 50},
                    ]
                },
            },
            {
                "id": "mail",
                "type": "action.email",
                "label": "Offer by email",
                "config": {"subject": "Offer", "body": "Hej!"},
            },
            {
                "id": "text",
                "type": "action.sms",
                "label": "Offer by SMS",
                "config": {"text": "Hej!"},
            },
        ],
        "edges": [
            {"source": "start", "port": "next", "target": "ab"},
            {"source": "ab", "port": "a", "target": "mail"},
            {"source": "ab", "port": "b", "target": "text"},
        ],
        "settings": {"goal": {"kind": "event", "event_type": "purchase", "label": "Bought"}},
    }


def registry() -> NodeRegistry:
    found = NodeRegistry()
    for node_type in NODE_TYPES:
        found.add(node_type)
    return found


async def seed(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as db, db.begin():
        flow = await flows.create_flow(db, "Spring offer", graph=graph())
        version = await flows.publish(db, flow.id, registry())
        hours = iter(range(1, 61))
        for port, action, entered_at, converting in (
            ("a", "mail", W02, 20),
            ("b", "text", W03, 40),
        ):
            ids = (
                await db.execute(
                    insert(Journey).returning(Journey.id),
                    [
                        {
                            "flow_id": flow.id,
                            "flow_version_id": version.id,
                            "status": "completed",
                            "node_id": action,
                            "entered_at": entered_at,
                        }
                        for _ in range(200)
                    ],
                )
            ).scalars()
            ids = sorted(ids)
            steps = []
            for journey_id in ids:
                for node_id, node_type, out in (
                    ("start", "trigger.event", "next"),
                    ("ab", "split.ab", port),
                    (action, f"action.{'email' if port == 'a' else 'sms'}", "next"),
                ):
                    steps.append(
                        {
                            "journey_id": journey_id,
                            "node_id": node_id,
                            "visit": 1,
                            "node_type": node_type,
                            "status": "done",
                            "port": out,
                            "started_at": entered_at,
                        }
                    )
            await db.execute(insert(Step), steps)
            await db.execute(
                insert(JourneyConversion),
                [
                    {
                        "journey_id": journey_id,
                        "flow_id": flow.id,
                        "goal": "flow",
                        "label": "Bought",
                        "converted_at": entered_at + timedelta(hours=next(hours)),
                    }
                    for journey_id in ids[:converting]
                ],
            )
        return flow.id


def cells(html: str, table_id: str) -> list[list[str]]:
    """Each body row of a table: the row's label, then its cells' data-value (or text)."""
    table = re.search(rf'<table[^>]*id="{table_id}".*?</table>', html, re.S)
    assert table, f"no table {table_id}"
    body = re.search(r"<tbody>(.*?)</tbody>", table.group(0), re.S)
    assert body
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S):
        label = re.search(r'<th scope="row">(.*?)</th>', row, re.S)
        assert label
        values = re.findall(r'<td data-value="([^"]*)"', row)
        rows.append([label.group(1).strip(), *values])
    return rows


async def test_the_conversion_page_shows_the_seeded_answers(
    sessions: async_sessionmaker[AsyncSession], signed_in: SignedIn
) -> None:
    flow_id = await seed(sessions)
    client = await signed_in(Role.viewer)
    page = await client.get(f"/flows/{flow_id}/conversion")
    assert page.status_code == 200, page.text
    html = page.text
    overall = re.search(r'id="conversion-overall">(.*?)</dl>', html, re.S)
    assert overall
    facts = re.findall(r"<dd>(.*?)</dd>", overall.group(1))
    assert facts == ["400", "60", "15.0%", "1 day 6 hours", "2 days 6 hours"]
    assert cells(html, "conversion-cohort-rates") == [["2030-W02", "10.0"], ["2030-W03", "20.0"]]
    assert cells(html, "conversion-cohorts") == [
        ["2030-W02", "200", "20"],
        ["2030-W03", "200", "40"],
    ]
    trigger_name = registry().get("trigger.event").name  # type: ignore[union-attr]
    # Both branches carry 200: the tie goes to the first branch, so the funnel runs by email.
    assert cells(html, "conversion-funnel") == [
        [str(trigger_name), "400"],
        ["Channel test", "400"],
        ["Offer by email", "200"],
        ["Converted", "60"],
    ]
    assert cells(html, "split-ab-rates") == [["Email", "10.0"], ["SMS", "20.0"]]
    assert "SMS converts better, 95% confident." in html
    detail = re.search(r'id="split-ab-detail".*?</table>', html, re.S)
    assert detail
    assert "+10.0 (+3.1 \u2013 +16.9)" in detail.group(0)  # B's lead over A, in points
    assert "0.005" in detail.group(0)
    assert "Send everyone down" not in html  # a viewer may look, not act


async def test_swedish_readers_get_swedish_numbers_and_verdicts(
    sessions: async_sessionmaker[AsyncSession], signed_in: SignedIn
) -> None:
    flow_id = await seed(sessions)
    client = await signed_in(Role.viewer)
    page = await client.get(f"/flows/{flow_id}/conversion", headers={"Accept-Language": "sv"})
    assert "SMS konverterar bättre, 95\xa0% säkert." in page.text
    assert "15,0" in page.text


async def winner_url(flow_id: int) -> str:
    return f"/flows/{flow_id}/splits/ab/winner"


async def test_send_everyone_down_the_winner_publishes_a_routed_version_and_audits(
    app: Litestar, sessions: async_sessionmaker[AsyncSession], signed_in: SignedIn
) -> None:
    flow_id = await seed(sessions)
    client = await signed_in(Role.marketer)
    url = await winner_url(flow_id)
    conversion = (await client.get(f"/flows/{flow_id}/conversion")).text
    assert f'href="{url}?branch=b"' in conversion
    dialog = await client.get(f"{url}?branch=b")
    assert dialog.status_code == 200
    assert "Publish with everyone down SMS" in dialog.text
    assert "Offer by SMS" in dialog.text
    async with sessions() as db:
        assert (
            await db.scalar(select(FlowVersion.number).where(FlowVersion.flow_id == flow_id)) == 1
        )

    done = await post_form(client, url, {"branch": "b"}, form_page=f"{url}?branch=b")
    assert done.status_code == 303, done.text
    assert done.headers["location"] == f"/flows/{flow_id}/conversion"
    async with sessions() as db:
        flow = await db.get(Flow, flow_id)
        assert flow is not None
        live = await db.get(FlowVersion, flow.published_version_id)
        assert live is not None and live.number == 2
        assert {n["id"] for n in live.graph["nodes"]} == {"start", "text"}
        assert [(e["source"], e["port"], e["target"]) for e in live.graph["edges"]] == [
            ("start", "next", "text")
        ]
        assert live.graph["settings"]["goal"]["event_type"] == "purchase"
        assert flow.draft_graph["nodes"] == live.graph["nodes"]
        audit = (
            await db.execute(select(AuditEntry).where(AuditEntry.action == "flow.split_winner"))
        ).scalar_one()
        assert (audit.target_type, audit.target_id) == ("flows", str(flow_id))
        assert audit.details["branch"] == "b" and audit.details["version"] == 2
        assert audit.details["verdict"] == "winner"
        assert audit.actor_label


async def refuse(
    client: AsyncTestClient[Litestar], url: str, data: dict[str, str], status: int, text: str
) -> None:
    response = await post_form(client, url, data)
    assert response.status_code == status, response.text
    assert text in response.text


async def test_the_winner_action_refuses_what_it_cannot_do_and_publishes_nothing(
    sessions: async_sessionmaker[AsyncSession], signed_in: SignedIn
) -> None:
    flow_id = await seed(sessions)
    url = await winner_url(flow_id)
    viewer = await signed_in(Role.viewer)
    assert (await post_form(viewer, url, {"branch": "b"})).status_code == 403
    viewer.cookies.clear()
    client = await signed_in(Role.marketer)
    no_token = await client.post(url, data={"branch": "b"}, follow_redirects=False)
    assert no_token.status_code == 403
    await refuse(client, url, {"branch": "z"}, 400, "Choose one of the split")
    await refuse(
        client, f"/flows/{flow_id}/splits/nope/winner", {"branch": "a"}, 404, "no such split"
    )
    async with sessions() as db, db.begin():
        flow = await db.get(Flow, flow_id)
        assert flow is not None
        flow.draft_graph = {**flow.draft_graph, "nodes": flow.draft_graph["nodes"][:-1]}
    await refuse(client, url, {"branch": "b"}, 409, "not published yet")
    async with sessions() as db:
        versions = await db.scalar(select(FlowVersion.number).order_by(FlowVersion.number.desc()))
        assert versions == 1
        assert not (
            await db.execute(select(AuditEntry).where(AuditEntry.action == "flow.split_winner"))
        ).first()


async def test_a_marketer_sets_the_flow_goal_on_the_conversion_page(
    sessions: async_sessionmaker[AsyncSession], signed_in: SignedIn
) -> None:
    flow_id = await seed(sessions)
    client = await signed_in(Role.marketer)
    page = f"/flows/{flow_id}/conversion"
    url = f"/flows/{flow_id}/goal"
    missing = await post_form(client, url, {"kind": "event", "event_type": ""}, form_page=page)
    assert missing.status_code == 422
    assert "Name the event" in missing.text
    bad_days = {"kind": "stage", "stage": "customer", "within_days": "0"}
    assert "from 1 to 365" in (await post_form(client, url, bad_days, form_page=page)).text
    async with sessions() as db:
        flow = await db.get(Flow, flow_id)
        assert flow is not None and flow.draft_revision == 0

    saved = await post_form(
        client,
        url,
        {"kind": "stage", "stage": "customer", "label": "Blev kund", "within_days": "14"},
        form_page=page,
    )
    assert saved.status_code == 303, saved.text
    async with sessions() as db:
        flow = await db.get(Flow, flow_id)
        assert flow is not None
        goal = flow.draft_graph["settings"]["goal"]
        assert (goal["kind"], goal["stage"], goal["label"], goal["within_days"]) == (
            "stage",
            "customer",
            "Blev kund",
            14,
        )
        audit = (
            await db.execute(select(AuditEntry).where(AuditEntry.action == "flow.goal_changed"))
        ).scalar_one()
        assert audit.details["before"]["event_type"] == "purchase"
        assert audit.details["after"]["stage"] == "customer"
    shown = (await client.get(page)).text
    assert 'value="Blev kund"' in shown
    # The draft now differs from the live version: no winner can be published over it.
    winner = await post_form(client, await winner_url(flow_id), {"branch": "b"}, form_page=page)
    assert winner.status_code == 409


async def test_a_draft_flow_has_an_empty_conversion_page_and_unknown_flows_are_404(
    sessions: async_sessionmaker[AsyncSession], signed_in: SignedIn
) -> None:
    async with sessions() as db, db.begin():
        draft = await flows.create_flow(db, "Utkast", graph=graph())
    client = await signed_in(Role.viewer)
    page = await client.get(f"/flows/{draft.id}/conversion")
    assert page.status_code == 200
    assert "Nobody has entered this flow yet" in page.text
    assert "A/B test" not in page.text
    missing = await client.get("/flows/999999/conversion")
    assert missing.status_code == 404
    assert "There is no flow with this number." in missing.text
