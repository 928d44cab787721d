"""A run's page tells each step's story; "Show on canvas" marks the run's path."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import (
    Contact,
    Delivery,
    Event,
    Flow,
    FlowVersion,
    Journey,
    OutboxMessage,
    Role,
    Step,
    User,
)
from tests.backend.web.conftest import SignedIn
from tests.support.clock import WEB_START

T0 = WEB_START - timedelta(days=1)
GRAPH = {
    "nodes": [
        {"id": "trig", "type": "trigger.event", "config": {"event_type": "form.submitted"}},
        {"id": "vip", "type": "condition.rule", "config": {}, "label": "Är VIP?"},
        {"id": "mail", "type": "action.email", "config": {}, "label": "Välkomstmejl"},
        {"id": "open", "type": "wait.event", "config": {}, "label": "Väntar på öppning"},
        {"id": "other", "type": "action.tag", "config": {}},
    ],
    "edges": [
        {"source": "trig", "port": "next", "target": "vip"},
        {"source": "vip", "port": "yes", "target": "mail"},
        {"source": "vip", "port": "no", "target": "other"},
        {"source": "mail", "port": "next", "target": "open"},
    ],
}


async def seed(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    """A run that entered on a form, was checked, got an email, and woke on its open."""
    async with sessions() as db, db.begin():
        flow = Flow(name="Välkomstflöde", status="active", draft_graph=GRAPH)
        db.add(flow)
        await db.flush()
        version = FlowVersion(flow_id=flow.id, number=1, graph=GRAPH)
        db.add(version)
        contact = Contact(email="asa@example.se", first_name="Åsa", last_name="Öberg")
        db.add(contact)
        await db.flush()
        form = Event(type="form.submitted", contact_id=contact.id, occurred_at=T0,
                     properties={"form": "Whitepaper"})  # fmt: skip
        db.add(form)
        await db.flush()
        journey = Journey(
            flow_id=flow.id, flow_version_id=version.id, contact_id=contact.id,
            status="waiting", node_id="open", entered_at=T0,
            data={"trigger": {"event_id": form.id, "type": "form.submitted",
                              "properties": {"form": "Whitepaper"}}},
        )  # fmt: skip
        db.add(journey)
        await db.flush()
        key = f"j{journey.id}:mail:1:0"
        message = OutboxMessage(
            idempotency_key=key, channel="email", journey_id=journey.id, node_id="mail",
            contact_id=contact.id, status="sent", created_at=T0 + timedelta(minutes=1),
            sent_at=T0 + timedelta(minutes=2), payload={"subject": "Hej Åsa"},
        )  # fmt: skip
        db.add(message)
        await db.flush()
        db.add(Delivery(outbox_id=message.id, contact_id=contact.id, channel="email",
                        category="marketing", state="accepted", provider_message_id="<abc@x>",
                        cleared_at=T0 + timedelta(minutes=2),
                        accepted_at=T0 + timedelta(minutes=2)))  # fmt: skip
        opened = Event(type="email.opened", contact_id=contact.id,
                       occurred_at=T0 + timedelta(hours=3),
                       properties={"message_id": message.id, "node_id": "mail"})  # fmt: skip
        clicked = Event(type="email.clicked", contact_id=contact.id,
                        occurred_at=T0 + timedelta(hours=4),
                        properties={"message_id": message.id,
                                    "url": "https://shop.se/pris"})  # fmt: skip
        unrelated = Event(type="email.opened", contact_id=contact.id,
                          occurred_at=T0 + timedelta(hours=5),
                          properties={"message_id": message.id + 999})  # fmt: skip
        db.add_all([opened, clicked, unrelated])
        await db.flush()

        def step(node: str, type_: str, minutes: int, **kw: object) -> Step:
            row = Step(journey_id=journey.id, node_id=node, visit=1, node_type=type_,
                       started_at=T0 + timedelta(minutes=minutes),
                       finished_at=T0 + timedelta(minutes=minutes), **kw)  # fmt: skip
            db.add(row)
            return row

        step("trig", "trigger.event", 0, status="done", port="next", output={})
        step("vip", "condition.rule", 0, status="done", port="yes", attempts=3, output={
            "seen": {"profile": {"attributes.vip": True, "email": "asa@example.se"},
                     "events": [{"id": form.id, "type": "form.submitted", "at": T0.isoformat()}],
                     "events_read": 4},
            "errors": [{"attempt": 1, "at": T0.isoformat(), "error": "TimeoutError: crm slow"},
                       {"attempt": 2, "at": T0.isoformat(), "error": "TimeoutError: crm slower"}],
        })  # fmt: skip
        step("mail", "action.email", 1, status="done", port="next",
             output={"messages": [key], "data": {"subject": "Hej Åsa"}})  # fmt: skip
        # The wait parked at minute 2 and woke on the open: the same row, completed.
        step("open", "wait.event", 2, status="done", port="opened",
             output={"woke": {"reason": "event", "event_id": opened.id}})  # fmt: skip
        return flow.id, journey.id


async def test_a_runs_page_tells_why_each_step_ran_what_it_read_decided_and_sent(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _flow_id, journey_id = await seed(sessions)
    client = await signed_in(Role.viewer)
    page = (await client.get(f"/runs/{journey_id}")).text
    steps = page.split('<li class="run-step"')[1:]
    assert len(steps) == 4
    trigger, vip, mail, woke = steps
    assert "The customer entered the flow." in trigger and "form.submitted" in trigger
    assert "Whitepaper" in trigger
    assert "It followed" in vip and "Attempt 3." in vip
    assert "attributes.vip" in vip and "asa@example.se" in vip
    assert "4 events read; the latest:" in vip
    assert "TimeoutError: crm slow" in vip and "TimeoutError: crm slower" in vip
    assert "Went on through yes." in vip
    history = re.sub(r"\s+", " ", mail.split('class="plain-list message-history"')[1])
    kinds = [item.split(" Mar 1, 2026")[0] for item in re.findall(r"<li>(.*?)</li>", history)]
    assert kinds == ["Queued", "Accepted by the provider", "Sent", "Opened", "Clicked"]
    assert "https://shop.se/pris" in mail and "Hej Åsa" in mail
    assert "The event it waited for arrived:" in woke and "email.opened" in woke
    assert "Went on through opened." in woke
    assert f'href="/flows/{_flow_id}/edit/runs/{journey_id}"' in page


async def test_run_times_follow_the_readers_language_and_zone(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _flow_id, journey_id = await seed(sessions)
    client = await signed_in(Role.viewer)
    async with sessions() as db, db.begin():
        user = (await db.execute(User.__table__.select())).first()
        assert user is not None
        await db.execute(User.__table__.update().values(locale="sv", time_zone="Europe/Stockholm"))
    page = (await client.get(f"/runs/{journey_id}")).text
    # T0 is 1 March 2026 09:00 UTC: 10:00 in Stockholm, in Swedish.
    assert "1 mars 2026 10:00:00 CET" in page
    assert "Visa på arbetsytan" in page


async def test_show_on_canvas_marks_the_path_and_reads_only_an_old_version(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    flow_id, journey_id = await seed(sessions)
    client = await signed_in(Role.marketer)
    page = (await client.get(f"/flows/{flow_id}/edit/runs/{journey_id}")).text
    visited = re.findall(r'class="node[^"]*node-visited[^"]*" id="node-([^"]+)"', page)
    assert sorted(visited) == ["mail", "open", "trig", "vip"]
    taken = re.findall(r'class="edge edge-taken" data-source="([^"]+)" data-port="([^"]+)"', page)
    assert sorted(taken) == [("mail", "next"), ("trig", "next"), ("vip", "yes")]
    note = re.search(r'id="run-note" data-path="([^"]+)"', page)
    assert note is not None
    path = json.loads(note.group(1).replace("&#34;", '"').replace("&quot;", '"'))
    assert path["visited"] == ["mail", "open", "trig", "vip"]
    assert "runpath.js" in page and 'data-readonly="false"' in page  # the draft is this version

    async with sessions() as db, db.begin():
        flow = await db.get(Flow, flow_id)
        assert flow is not None
        flow.draft_graph = {**GRAPH, "nodes": GRAPH["nodes"][:2], "edges": GRAPH["edges"][:1]}
    old = (await client.get(f"/flows/{flow_id}/edit/runs/{journey_id}")).text
    assert 'data-readonly="true"' in old
    assert "The draft has changed since, so this version is shown read-only." in old
    assert 'id="node-mail"' in old  # the version's nodes, not the draft's
    assert (await client.get(f"/flows/{flow_id}/edit/runs/999999")).status_code == 404
