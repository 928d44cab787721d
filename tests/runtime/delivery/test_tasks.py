"""Call-list tasks: created once per outbox message, and optionally emailed to the salesperson."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select

from backend.models import OutboxMessage, Task, User
from backend.settings import Settings
from runtime.clock import FakeClock
from runtime.delivery import Outgoing
from runtime.delivery.email import EmailDeliverer
from runtime.delivery.task import TaskDeliverer
from runtime.engine import Runtime
from tests.runtime.conftest import Mailbox
from tests.runtime.delivery.conftest import add_contact, gated_runtime, queue


async def _owner(rt: Runtime) -> int:
    async with rt.sessions() as session, session.begin():
        owner = await session.scalar(
            insert(User)
            .values(email="sales@shop.test", name="Sales", password_hash="x")
            .returning(User.id)
        )
        assert owner is not None
        return owner


def _runtime(
    sessions: Any, settings: Settings, clock: FakeClock, email: EmailDeliverer
) -> tuple[Runtime, TaskDeliverer]:
    tasks = TaskDeliverer(sessions, clock, base_url="http://touchflow.test")
    rt = gated_runtime(sessions, settings, clock, {"email": email})
    rt.deliverers["task"] = tasks
    return rt, tasks


async def test_the_salesperson_is_emailed_once_when_asked(
    sessions: Any, settings: Settings, clock: FakeClock, email: EmailDeliverer, mailbox: Mailbox
) -> None:
    rt, tasks = _runtime(sessions, settings, clock, email)
    owner = await _owner(rt)
    contact = await add_contact(rt, first_name="Ann")
    payload = {
        "owner_id": owner,
        "contact_id": contact,
        "title": "Call Ann",
        "note": "She downloaded the guide",
        "due_at": "2030-01-08T09:00:00+00:00",
        "email_owner": True,
    }
    message_id = await queue(rt, contact, payload, channel="task", category="transactional")
    await rt.drain()
    # A retried delivery of the same task message creates nothing new.
    async with rt.sessions() as session:
        key = await session.scalar(
            select(OutboxMessage.idempotency_key).where(OutboxMessage.id == message_id)
        )
    assert key is not None
    await tasks.deliver(
        Outgoing(id=message_id, idempotency_key=key, channel="task", payload=payload)
    )
    await rt.drain()
    async with rt.sessions() as session:
        assert len((await session.scalars(select(Task))).all()) == 1
    [mail] = mailbox.messages
    assert mail["To"] == "sales@shop.test" and mail["Subject"] == "New task: Call Ann"
    body = mail.get_payload(decode=True)
    assert isinstance(body, bytes)
    text = body.decode()
    assert "She downloaded the guide" in text and "Due: 2030-01-08 09:00 UTC" in text
    assert f"http://touchflow.test/contacts/{contact}" in text


async def test_no_email_unless_asked(
    sessions: Any, settings: Settings, clock: FakeClock, email: EmailDeliverer, mailbox: Mailbox
) -> None:
    rt, _ = _runtime(sessions, settings, clock, email)
    owner = await _owner(rt)
    payload = {"owner_id": owner, "title": "Call"}
    await queue(rt, None, payload, channel="task", category="transactional")
    await rt.drain()
    async with rt.sessions() as session:
        assert len((await session.scalars(select(Task))).all()) == 1
    assert mailbox.messages == []
