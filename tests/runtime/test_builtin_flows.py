"""Every built-in node type through the real engine, on SQLite and PostgreSQL.

Flows are published with the built-in library only; time is moved with the
fake clock; email goes to a real SMTP server and webhooks to a real loopback
HTTP server.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Contact, Journey, OutboxMessage, Step, Task
from backend.settings import Settings
from nodes.builtin import NODE_TYPES
from nodes.builtin.splits import ABSplit, bucket
from nodes.sdk import NodeRegistry, discover
from runtime.clock import FakeClock
from runtime.delivery.email import EmailDeliverer
from runtime.delivery.task import TaskDeliverer
from runtime.delivery.webhook import SIGNATURE_HEADER, signature
from runtime.engine import Runtime
from runtime.entries import FlowNotStartable, latest_tick
from runtime.services import build_services
from tests.nodes.receiver import Receiver, receiver
from tests.runtime.conftest import Mailbox, add_contacts, publish, webhooks
from tests.runtime.nodes import graph


def builtin_registry() -> NodeRegistry:
    registry = NodeRegistry()
    for node_type in NODE_TYPES:
        registry.add(node_type)
    assert not registry.errors
    return registry


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as server:
        yield server


@pytest.fixture
def rt(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FakeClock,
    smtp: tuple[Mailbox, int],
) -> Runtime:
    """A runtime with the built-in library and the channels the runtime ships."""
    return Runtime(
        sessions=sessions,
        registry=builtin_registry(),
        settings=settings,
        clock=clock,
        deliverers={
            "email": EmailDeliverer(hostname="127.0.0.1", port=smtp[1], sender="hi@shop.test"),
            "task": TaskDeliverer(sessions, clock),
            "webhook": webhooks(settings, clock),
        },
        services=build_services(settings.base_url, "secret", egress_allow=settings.egress_allow),
    )


async def rows(rt: Runtime, model: Any, *where: Any) -> list[Any]:
    async with rt.sessions() as session:
        query = select(model).where(*where).order_by(model.id)
        return list((await session.execute(query)).scalars())


async def set_contact(rt: Runtime, contact_id: int, **values: Any) -> None:
    async with rt.sessions() as session, session.begin():
        await session.execute(update(Contact).where(Contact.id == contact_id).values(**values))


async def journey_of(rt: Runtime, node_id: str) -> dict[int, int]:
    """contact id -> journey id, for the messages a node sent."""
    sent = await rows(rt, OutboxMessage, OutboxMessage.node_id == node_id)
    return {m.contact_id: m.journey_id for m in sent}


FORM = 4


def download_flow() -> dict[str, Any]:
    """The canonical flow: form -> email with link -> wait for its open (2 days) -> ..."""
    return graph(
        [
            ("form", "trigger.form_submitted", {"form_id": FORM}),
            (
                "confirm",
                "action.email",
                {
                    "subject": "Your download, {{ first_name }}",
                    "body": "Thanks for your interest!",
                    "button_text": "Download the guide",
                    "button_url": "https://shop.test/guide.pdf",
                    "category": "transactional",
                },
            ),
            (
                "opened",
                "wait.event",
                {"event_type": "email.opened", "for_node": "confirm", "timeout": {"amount": 2}},
            ),
            ("reminder", "action.email", {"subject": "Did you see it?", "body": "Here again."}),
            ("later", "wait.duration", {"amount": 2, "unit": "days"}),
            ("call", "action.task", {"title": "Call {{ first_name }}", "note": "Read the guide"}),
        ],
        [
            ("form", "next", "confirm"),
            ("confirm", "next", "opened"),
            ("opened", "timeout", "reminder"),
            ("opened", "next", "later"),
            ("later", "next", "call"),
        ],
    )


async def test_canonical_download_flow(rt: Runtime, clock: FakeClock, mailbox: Mailbox) -> None:
    ids = await add_contacts(rt, 10)
    await publish(rt, download_flow(), "Download follow-up")
    other_form = await rt.ingest("form.submitted", contact_id=ids[0], properties={"form_id": 99})
    assert other_form.enrolled == ()
    for contact_id in ids:
        result = await rt.ingest(
            "form.submitted", contact_id=contact_id, properties={"form_id": FORM}
        )
        assert len(result.enrolled) == 1
    await rt.drain()
    assert sorted(mailbox.subjects()) == sorted(f"Your download, C{c}" for c in ids)
    html_part = mailbox.messages[0].get_payload()[1].get_payload(decode=True).decode()
    assert 'href="https://shop.test/guide.pdf">Download the guide</a>' in html_part

    clock.advance(hours=5)
    openers = set(ids[::2])
    journeys = await journey_of(rt, "confirm")
    for contact_id in openers:
        props = {"journey_id": journeys[contact_id], "node_id": "confirm"}
        result = await rt.ingest("email.opened", contact_id=contact_id, properties=props)
        assert len(result.woken) == 1
    await rt.drain()
    clock.advance(hours=44)
    await rt.drain()
    clock.advance(hours=6)
    await rt.drain()

    reminded = {m["To"] for m in mailbox.messages if m["Subject"] == "Did you see it?"}
    assert reminded == {f"c{c}@example.test" for c in ids if c not in openers}
    tasks = await rows(rt, Task)
    assert sorted(t.contact_id for t in tasks) == sorted(openers)
    assert {t.title for t in tasks} == {f"Call C{c}" for c in openers}
    assert all(t.owner_id is not None and t.note == "Read the guide" for t in tasks)
    assert {j.status for j in await rows(rt, Journey)} == {"completed"}


SPLIT = {
    "variants": [{"key": "a", "percent": 50}, {"key": "b", "label": "Short", "percent": 30}],
    "holdout_percent": 20,
}
# Customers started through the engine (each start is a transaction of its own), and
# customers whose branch is only computed, to check the shares on a sample of 400.
STARTED = 100
SAMPLED = 400


async def test_api_started_split_is_deterministic_and_proportional(rt: Runtime) -> None:
    flow_id = await publish(
        rt,
        graph(
            [
                ("api", "trigger.api", {}),
                ("split", "split.ab", SPLIT),
                ("tag_a", "action.tag", {"add": ["got-a"]}),
                ("tag_b", "action.tag", {"add": ["got-b"]}),
                ("tag_h", "action.tag", {"add": ["got-holdout"]}),
            ],
            [
                ("api", "next", "split"),
                ("split", "a", "tag_a"),
                ("split", "b", "tag_b"),
                ("split", "holdout", "tag_h"),
            ],
        ),
    )
    ids = await add_contacts(rt, STARTED)
    for contact_id in ids:
        assert await rt.start(flow_id, contact_id=contact_id, data={"source": "crm"}) is not None
    await rt.drain()

    cuts = ABSplit.parse_config(SPLIT).cuts()  # type: ignore[attr-defined]

    def branch(contact_id: int) -> str:
        drawn = bucket(flow_id, f"contact:{contact_id}", "split")
        return str(next(port for port, bound in cuts if drawn < bound))

    expected = {c: branch(c) for c in ids}
    contacts = await rows(rt, Contact)
    got = {c.id: next(t for t in c.tags if t.startswith("got-"))[4:] for c in contacts}
    # The engine sends each customer down the branch the split's draw names...
    assert got == expected
    assert set(got.values()) == {"a", "b", "holdout"}, Counter(got.values())
    # ...and the draws over 400 customers of this flow keep the configured shares (the
    # engine adds nothing to the draw: a start per customer here would only cost time).
    counts = Counter(branch(c) for c in range(ids[0], ids[0] + SAMPLED))
    assert abs(counts["a"] - 200) < 50 and abs(counts["b"] - 120) < 46, counts
    assert abs(counts["holdout"] - 80) < 40, counts

    # Starting everyone again (their first journeys ended) picks the same branches.
    for contact_id in ids:
        assert await rt.start(flow_id, contact_id=contact_id) is not None
    await rt.drain()
    split_steps = await rows(rt, Step, Step.node_id == "split")
    journeys = {j.id: j.contact_id for j in await rows(rt, Journey)}
    assert len(split_steps) == 2 * STARTED
    assert all(s.port == expected[journeys[s.journey_id]] for s in split_steps)
    first = (await rows(rt, Journey))[0]
    assert first.data["trigger"]["properties"] == {"source": "crm"}
    assert first.data["split"] == {"branch": expected[first.contact_id]}


async def test_only_flows_with_an_api_trigger_can_be_started(rt: Runtime) -> None:
    [contact] = await add_contacts(rt, 1)
    flow_id = await publish(rt, download_flow())
    with pytest.raises(FlowNotStartable, match="no API trigger"):
        await rt.start(flow_id, contact_id=contact)


def digest_flow() -> dict[str, Any]:
    return graph(
        [
            (
                "tick",
                "trigger.schedule",
                {
                    "cron": "0 10 * * *",
                    "timezone": "Europe/Stockholm",
                    "audience": {"attribute": "plan", "value": "pro"},
                },
            ),
            (
                "vips",
                "selection.audience",
                {"audience": {"field": "tags", "value": "vip", "op": "contains"}},
            ),
            (
                "mark",
                "action.update_contact",
                {"set_attributes": {"digest": "{{ data.trigger.tick }}"}},
            ),
            ("stage", "action.lifecycle", {"stage": "marketing_qualified"}),
        ],
        [("tick", "next", "vips"), ("vips", "next", "mark"), ("mark", "next", "stage")],
    )


async def test_schedule_enrolls_the_audience_once_per_tick(rt: Runtime, clock: FakeClock) -> None:
    pro_vip, pro = await add_contacts(rt, 2, plan="pro")
    [basic] = await add_contacts(rt, 1, plan="basic")
    await set_contact(rt, pro_vip, tags=["vip"])
    await publish(rt, digest_flow(), "Daily digest")

    # 09:00 UTC is 10:00 in Stockholm: the tick is now.
    report = await rt.drain()
    assert report.entered == 2
    by_contact = {j.contact_id: j for j in await rows(rt, Journey)}
    assert set(by_contact) == {pro_vip, pro}
    assert by_contact[pro_vip].status == "completed"
    assert (by_contact[pro].status, by_contact[pro].exit_reason) == (
        "exited",
        "not in the audience",
    )
    [vip] = await rows(rt, Contact, Contact.id == pro_vip)
    assert vip.attributes["digest"] == "2030-01-07T09:00:00+00:00"
    assert vip.lifecycle_stage == "marketing_qualified"

    # Later the same morning the tick has fired: nobody enters again, not even newcomers.
    await add_contacts(rt, 1, plan="pro")
    clock.advance(minutes=30)
    assert (await rt.drain()).entered == 0
    clock.advance(days=1)
    assert (await rt.drain()).entered == 3
    # A tick missed by more than the grace period (workers down) is not replayed.
    clock.set(datetime(2030, 1, 9, 12, 0, tzinfo=UTC))
    assert (await rt.drain()).entered == 0
    assert basic not in {j.contact_id for j in await rows(rt, Journey)}


async def test_audience_trigger_enrolls_new_matches_once(rt: Runtime, clock: FakeClock) -> None:
    a, b, c = await add_contacts(rt, 3)
    await set_contact(rt, a, attributes={"score": 80}, tags=["vip"], phone="+46701234567")
    await set_contact(rt, b, attributes={"score": 60})
    await set_contact(rt, c, attributes={"score": 10})
    await publish(
        rt,
        graph(
            [
                (
                    "joined",
                    "trigger.audience_entered",
                    {"audience": {"attribute": "score", "type": "number", "op": "gt", "value": 50}},
                ),
                (
                    "vip",
                    "condition.rule",
                    {"rule": {"field": "tags", "op": "contains", "value": "vip"}},
                ),
                ("text", "action.sms", {"text": "Hi {{ first_name }}, you are a VIP"}),
                (
                    "banner",
                    "action.web_content",
                    {"slot": "hero", "html": "<b>Hi {{ first_name }}</b>"},
                ),
            ],
            [("joined", "next", "vip"), ("vip", "yes", "text"), ("vip", "no", "banner")],
        ),
    )
    assert (await rt.drain()).entered == 2
    messages = {m.contact_id: m for m in await rows(rt, OutboxMessage)}
    assert set(messages) == {a, b}
    assert messages[a].channel == "sms"
    assert messages[a].payload["to"] == "+46701234567"
    assert messages[a].payload["text"] == f"Hi C{a}, you are a VIP"
    assert messages[b].channel == "web_content"
    assert messages[b].payload["html"] == f"<b>Hi C{b}</b>"

    await set_contact(rt, c, attributes={"score": 90})
    clock.advance(seconds=10)
    assert (await rt.drain()).entered == 1
    clock.advance(seconds=10)
    assert (await rt.drain()).entered == 0
    assert Counter(j.contact_id for j in await rows(rt, Journey)) == {a: 1, b: 1, c: 1}


SECRET = "0123456789abcdef"


async def test_order_flow_waits_for_business_hours_posts_signed_webhook_and_converts(
    rt: Runtime, clock: FakeClock, mailbox: Mailbox, hook: Receiver
) -> None:
    x, y = await add_contacts(rt, 2)
    await publish(
        rt,
        graph(
            [
                (
                    "order",
                    "trigger.event",
                    {
                        "event_type": "order.completed",
                        "where": [
                            {"property": "total", "type": "number", "op": "gt", "value": 100}
                        ],
                    },
                ),
                (
                    "launch",
                    "wait.until",
                    {"at": "2030-01-11T19:00:00", "timezone": "Europe/Stockholm"},
                ),
                ("hours", "wait.window", {"timezone": "UTC", "use_contact_timezone": False}),
                (
                    "crm",
                    "action.webhook",
                    {
                        "url": f"{hook.url}/hook",
                        "secret": SECRET,
                        "fields": {"order": "{{ trigger.order_id }}"},
                    },
                ),
                ("week", "wait.duration", {"amount": 7, "unit": "days"}),
                ("ask", "action.email", {"subject": "How was it?", "body": "Tell us."}),
                (
                    "reviewed",
                    "goal.conversion",
                    {"label": "Reviewed", "event_type": "review.written"},
                ),
            ],
            [
                ("order", "next", "launch"),
                ("launch", "next", "hours"),
                ("hours", "next", "crm"),
                ("crm", "next", "week"),
                ("week", "next", "ask"),
            ],
        ),
    )
    small = await rt.ingest("order.completed", contact_id=x, properties={"total": 50})
    assert small.enrolled == ()
    await rt.ingest("order.completed", contact_id=x, properties={"total": 250, "order_id": "A-1"})
    await rt.ingest("order.completed", contact_id=y, properties={"total": 300, "order_id": "B-2"})
    await rt.drain()
    # Friday 18:00 UTC: the launch moment has come, but business hours are over.
    clock.set(datetime(2030, 1, 11, 18, 0, tzinfo=UTC))
    await rt.drain()
    assert hook.received() == []
    waiting = {j.contact_id: j for j in await rows(rt, Journey)}
    assert {j.node_id for j in waiting.values()} == {"hours"}
    assert waiting[x].due_at == datetime(2030, 1, 14, 9, 0, tzinfo=UTC)

    clock.set(datetime(2030, 1, 14, 9, 0, tzinfo=UTC))
    await rt.drain()
    posts = {r.json()["contact_id"]: r for r in hook.received()}
    assert set(posts) == {x, y}
    post = posts[x]
    assert post.path == "/hook"
    assert post.json()["fields"] == {"order": "A-1"}
    assert post.json()["contact"]["email"] == f"c{x}@example.test"
    stamp = post.headers[SIGNATURE_HEADER].split(",")[0].removeprefix("t=")
    assert post.headers[SIGNATURE_HEADER] == signature(SECRET, int(stamp), post.body)
    assert json.loads(post.body) == post.json()

    reached = await rt.ingest("review.written", contact_id=x)
    assert len(reached.goals) == 1
    clock.advance(days=7)
    await rt.drain()
    ended = {j.contact_id: j for j in await rows(rt, Journey)}
    assert (ended[x].status, ended[x].exit_reason) == ("completed", "goal reached: Reviewed")
    assert (ended[y].status, ended[y].exit_reason) == ("completed", "end of flow")
    assert [m["To"] for m in mailbox.messages] == [f"c{y}@example.test"]


async def test_engagement_condition_reads_opens_of_this_journeys_email(
    rt: Runtime, clock: FakeClock
) -> None:
    ids = await add_contacts(rt, 4)
    await publish(
        rt,
        graph(
            [
                ("form", "trigger.form_submitted", {}),
                ("welcome", "action.email", {"subject": "Welcome", "body": "Hi"}),
                ("day", "wait.duration", {"amount": 1, "unit": "days"}),
                ("check", "condition.engagement", {"engagement": "opened", "node_id": "welcome"}),
                ("hot", "action.lifecycle", {"stage": "marketing_qualified"}),
                ("cold", "action.tag", {"add": ["cold"]}),
            ],
            [
                ("form", "next", "welcome"),
                ("welcome", "next", "day"),
                ("day", "next", "check"),
                ("check", "yes", "hot"),
                ("check", "no", "cold"),
            ],
        ),
    )
    for contact_id in ids:
        await rt.ingest("form.submitted", contact_id=contact_id, properties={"form_id": 1})
    await rt.drain()
    journeys = await journey_of(rt, "welcome")
    clock.advance(hours=3)
    for contact_id in ids[:2]:
        props = {"journey_id": journeys[contact_id], "node_id": "welcome"}
        await rt.ingest("email.opened", contact_id=contact_id, properties=props)
    # An open of some other email does not count.
    other = {"journey_id": journeys[ids[2]], "node_id": "newsletter"}
    await rt.ingest("email.opened", contact_id=ids[2], properties=other)
    clock.advance(days=1)
    await rt.drain()
    contacts = {c.id: c for c in await rows(rt, Contact)}
    assert {c for c in ids if contacts[c].lifecycle_stage == "marketing_qualified"} == set(ids[:2])
    assert {c for c in ids if "cold" in contacts[c].tags} == set(ids[2:])


async def test_installed_slack_example_posts_from_a_published_flow(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: FakeClock, hook: Receiver
) -> None:
    """The tutorial's package, found through its entry point, runs like any built-in."""
    rt = Runtime(
        sessions=sessions,
        registry=discover(),
        settings=settings,
        clock=clock,
        deliverers={"webhook": webhooks(settings, clock)},
        services=build_services(settings.base_url, "secret", egress_allow=settings.egress_allow),
    )
    assert "slack.notify" in rt.registry and "action.email" in rt.registry
    [contact] = await add_contacts(rt, 1)
    slack = {
        "webhook_url": f"{hook.url}/services/T1/B1/x",
        "text": "New lead: $first_name ($email)",
    }
    flow_id = await publish(
        rt,
        graph(
            [("api", "trigger.api", {}), ("slack", "slack.notify", slack)],
            [("api", "next", "slack")],
        ),
    )
    journey_id = await rt.start(flow_id, contact_id=contact)
    report = await rt.drain()
    assert report.sent == 1
    [post] = hook.received()
    assert post.path == "/services/T1/B1/x"
    assert post.json() == {
        "text": f"New lead: C{contact} (c{contact}@example.test)",
        "username": "Touchflow",
    }
    assert post.headers["Idempotency-Key"] == f"j{journey_id}:slack:1:0"
    [journey] = await rows(rt, Journey)
    assert journey.status == "completed"


@pytest.mark.parametrize(
    ("now", "tick"),
    [
        # 09:00 in Stockholm is 08:00 UTC in winter and 07:00 UTC in summer.
        (datetime(2030, 3, 30, 12, 0, tzinfo=UTC), datetime(2030, 3, 30, 8, 0, tzinfo=UTC)),
        (datetime(2030, 3, 31, 12, 0, tzinfo=UTC), datetime(2030, 3, 31, 7, 0, tzinfo=UTC)),
        # Before today's run: yesterday's tick; exactly at the run: this one.
        (datetime(2030, 3, 31, 6, 59, tzinfo=UTC), datetime(2030, 3, 30, 8, 0, tzinfo=UTC)),
        (datetime(2030, 3, 31, 7, 0, tzinfo=UTC), datetime(2030, 3, 31, 7, 0, tzinfo=UTC)),
    ],
)
def test_schedule_ticks_follow_the_time_zone_across_daylight_saving(
    now: datetime, tick: datetime
) -> None:
    assert latest_tick("0 9 * * *", "Europe/Stockholm", now) == tick


def test_every_builtin_node_type_runs_in_a_flow_of_this_module() -> None:
    source = Path(__file__).read_text()
    missing = [t.type_id for t in NODE_TYPES if f'"{t.type_id}"' not in source]
    assert missing == [], f"add a runtime test for {missing}"
