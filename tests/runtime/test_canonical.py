"""The canonical flow for many contacts, time jumped instead of slept, real SMTP."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from backend.models import Journey, OutboxMessage, Step, Task
from runtime.clock import FakeClock
from runtime.engine import Runtime
from tests.runtime.conftest import Mailbox, add_contacts, publish
from tests.runtime.nodes import canonical_graph

# Twice the batch size: each drain takes the contacts in two batches, as 200 contacts
# in batches of 100 did, at half the rows and messages.
CONTACTS = 100
BATCH = CONTACTS // 2


@pytest.mark.long
async def test_canonical_flow_sends_each_contact_down_the_right_branch(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"batch_size": BATCH})
    ids = await add_contacts(runtime, CONTACTS)
    await publish(runtime, canonical_graph(), "Download follow-up")
    for contact_id in ids:
        result = await runtime.ingest(
            "form.submitted", contact_id=contact_id, dedupe_key=f"form-{contact_id}"
        )
        assert len(result.enrolled) == 1
    await runtime.drain()
    assert Counter(mailbox.subjects()) == {"Your download": CONTACTS}

    # Every other contact opens the confirmation a few hours later.
    clock.advance(hours=5)
    openers = set(ids[::2])
    async with runtime.sessions() as session:
        sent = (
            await session.execute(
                select(OutboxMessage.id, OutboxMessage.journey_id, OutboxMessage.contact_id).where(
                    OutboxMessage.node_id == "confirm"
                )
            )
        ).all()
    for message_id, journey_id, contact_id in sent:
        if contact_id in openers:
            props = {"message_id": message_id, "journey_id": journey_id, "node_id": "confirm"}
            result = await runtime.ingest("email.opened", contact_id=contact_id, properties=props)
            assert len(result.woken) == 1
    await runtime.drain()

    # Two days after the confirmation: the others time out and get the reminder.
    clock.advance(hours=44)
    await runtime.drain()
    # Two days after the opens: the openers' salesperson gets a call task.
    clock.advance(hours=6)
    await runtime.drain()

    async with runtime.sessions() as session:
        journeys = (await session.execute(select(Journey))).scalars().all()
        steps = (await session.execute(select(Step))).scalars().all()
        tasks = (await session.execute(select(Task))).scalars().all()
    assert len(journeys) == CONTACTS
    assert {j.status for j in journeys} == {"completed"}
    path = {j.id: set() for j in journeys}
    for step in steps:
        path[step.journey_id].add(step.node_id)
    for journey in journeys:
        if journey.contact_id in openers:
            assert path[journey.id] == {"form", "confirm", "opened", "later", "notify"}
        else:
            assert path[journey.id] == {"form", "confirm", "opened", "reminder"}
    assert len(steps) == len({(s.journey_id, s.node_id, s.visit) for s in steps})
    assert all(s.status == "done" for s in steps)

    # Exactly once each: a confirmation each, reminders and tasks for half each.
    assert Counter(mailbox.subjects()) == {
        "Your download": CONTACTS,
        "Did you see it?": CONTACTS // 2,
    }
    assert len(set(mailbox.message_ids())) == len(mailbox.messages)
    reminded = {m["To"] for m in mailbox.messages if m["Subject"] == "Did you see it?"}
    assert reminded == {f"c{c}@example.test" for c in ids if c not in openers}
    assert sorted(t.contact_id for t in tasks) == sorted(openers)
    assert {t.title for t in tasks} == {"Call the lead"}
    assert all(t.owner_id is not None and t.status == "open" for t in tasks)
    assert len({t.idempotency_key for t in tasks}) == len(tasks)
