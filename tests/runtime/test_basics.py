"""A journey from trigger to end: enrollment, steps, outbox, delivery."""

from __future__ import annotations

from sqlalchemy import select

from backend.models import Journey, OutboxMessage, Step
from runtime.engine import Runtime
from tests.runtime.conftest import Mailbox, add_contacts, publish
from tests.runtime.nodes import graph


async def test_event_enrolls_and_walks_to_the_end(runtime: Runtime, mailbox: Mailbox) -> None:
    [contact] = await add_contacts(runtime, 1)
    await publish(
        runtime,
        graph(
            [
                ("t", "test.trigger", {"event_type": "signed.up"}),
                ("mail", "test.email", {"subject": "Welcome"}),
            ],
            [("t", "next", "mail")],
        ),
    )
    result = await runtime.ingest("signed.up", contact_id=contact, properties={"plan": "pro"})
    assert len(result.enrolled) == 1
    report = await runtime.drain()
    assert report.steps == 2
    assert report.sent == 1
    async with runtime.sessions() as session:
        journey = (await session.execute(select(Journey))).scalar_one()
        steps = (await session.execute(select(Step).order_by(Step.id))).scalars().all()
        message = (await session.execute(select(OutboxMessage))).scalar_one()
    assert journey.status == "completed"
    assert journey.exit_reason == "end of flow"
    assert journey.entry_key is None
    assert journey.data["trigger"]["properties"] == {"plan": "pro"}
    assert [(s.node_id, s.visit, s.status, s.port) for s in steps] == [
        ("t", 1, "done", "next"),
        ("mail", 1, "done", "next"),
    ]
    assert steps[1].output["messages"] == [message.idempotency_key]
    assert message.status == "sent"
    assert message.idempotency_key == f"j{journey.id}:mail:1:0"
    assert mailbox.subjects() == ["Welcome"]
    assert mailbox.messages[0]["To"] == "c1@example.test"
    assert mailbox.messages[0]["Message-ID"] == message.provider_message_id


async def test_events_without_a_matching_flow_do_nothing(runtime: Runtime) -> None:
    [contact] = await add_contacts(runtime, 1)
    result = await runtime.ingest("page.viewed", contact_id=contact)
    assert result.enrolled == () and result.woken == ()
    assert (await runtime.drain()).claimed == 0
