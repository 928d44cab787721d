"""Delivery fixtures: a Runtime whose channels pass through the send gate, and outbox helpers."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Contact, Delivery, OutboxMessage
from backend.settings import Settings
from runtime.clock import FakeClock
from runtime.delivery import Deliverer
from runtime.delivery.email import EmailDeliverer
from runtime.engine import Runtime
from runtime.messaging.gate import GatedDeliverer, GatePolicy
from runtime.messaging.links import LinkSigner
from tests.runtime.conftest import Mailbox
from tests.runtime.nodes import test_registry

BASE_URL = "http://touchflow.test"


@pytest.fixture
def signer() -> LinkSigner:
    return LinkSigner(secret="test-secret", base_url=BASE_URL)


@pytest.fixture
async def email(smtp: tuple[Mailbox, int], signer: LinkSigner) -> AsyncIterator[EmailDeliverer]:
    deliverer = EmailDeliverer(
        hostname="127.0.0.1", port=smtp[1], sender="Shop <hi@shop.test>", links=signer
    )
    yield deliverer
    await deliverer.aclose()


def gated_runtime(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FakeClock,
    channels: Mapping[str, Deliverer],
) -> Runtime:
    policy = GatePolicy.from_settings(settings)
    return Runtime(
        sessions=sessions,
        registry=test_registry(),
        settings=settings,
        clock=clock,
        deliverers={
            name: GatedDeliverer(d, sessions, clock, policy) for name, d in channels.items()
        },
        max_delivery_attempts=5,
    )


@pytest.fixture
def gated(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FakeClock,
    email: EmailDeliverer,
) -> Runtime:
    return gated_runtime(sessions, settings, clock, {"email": email})


async def add_contact(rt: Runtime, **fields: Any) -> int:
    values: dict[str, Any] = {"email": f"{secrets.token_hex(4)}@example.test", "consent": {}}
    values.update(fields)
    async with rt.sessions() as session, session.begin():
        contact_id = await session.scalar(insert(Contact).values(**values).returning(Contact.id))
        assert contact_id is not None
        return contact_id


async def queue(
    rt: Runtime,
    contact_id: int | None,
    payload: Mapping[str, Any],
    *,
    channel: str = "email",
    category: str = "marketing",
    key: str | None = None,
) -> int:
    """Put one message on the outbox, due now; returns its id."""
    async with rt.sessions() as session, session.begin():
        message_id = await session.scalar(
            insert(OutboxMessage)
            .values(
                idempotency_key=key or secrets.token_hex(8),
                channel=channel,
                category=category,
                contact_id=contact_id,
                node_id="send",
                payload=dict(payload),
                next_attempt_at=rt.clock.now(),
                created_at=rt.clock.now(),
            )
            .returning(OutboxMessage.id)
        )
        assert message_id is not None
        return message_id


async def outbox_row(rt: Runtime, message_id: int) -> OutboxMessage:
    async with rt.sessions() as session:
        row = await session.get(OutboxMessage, message_id)
        assert row is not None
        return row


async def ledger(rt: Runtime, message_id: int) -> Delivery | None:
    async with rt.sessions() as session:
        return await session.scalar(select(Delivery).where(Delivery.outbox_id == message_id))
