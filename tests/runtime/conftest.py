"""Runtime fixtures: a Runtime on the parametrised database, a fake clock, a real SMTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Contact, Journey, Step, User
from backend.settings import Settings
from runtime import flows
from runtime.clock import FakeClock
from runtime.delivery.email import EmailDeliverer
from runtime.delivery.task import TaskDeliverer
from runtime.delivery.webhook import WebhookDeliverer
from runtime.egress import EgressClient, EgressPolicy
from runtime.engine import Runtime
from tests.runtime.nodes import test_registry
from tests.support.http import HookReceiver, hook_receiver
from tests.support.net import free_port
from tests.support.smtp import Mailbox, smtp_server

# The helpers live in tests/support/; these names stay importable from here.
_free_port = free_port
Receiver = HookReceiver


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server (aiosmtpd) on a loopback port."""
    with smtp_server(Mailbox()) as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=db_url,
        secret_key="test-secret",
        batch_size=100,
        max_step_attempts=3,
        # The test receivers listen on loopback: opened the way an operator would.
        egress_allow="127.0.0.1",
    )


def webhooks(settings: Settings, clock: FakeClock) -> WebhookDeliverer:
    """The webhook channel as the runtime builds it, through the egress guard."""
    return WebhookDeliverer(EgressClient(EgressPolicy.parse(settings.egress_allow)), clock)


@pytest.fixture
def runtime(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FakeClock,
    smtp: tuple[Mailbox, int],
) -> Runtime:
    _, port = smtp
    return Runtime(
        sessions=sessions,
        registry=test_registry(),
        settings=settings,
        clock=clock,
        deliverers={
            "email": EmailDeliverer(hostname="127.0.0.1", port=port, sender="Shop <hi@shop.test>"),
            "task": TaskDeliverer(sessions, clock),
            "webhook": webhooks(settings, clock),
        },
    )


@pytest.fixture
def mailbox(smtp: tuple[Mailbox, int]) -> Mailbox:
    return smtp[0]


async def publish(rt: Runtime, graph: dict[str, Any], name: str = "Flow") -> int:
    """Create and publish a flow; returns its id."""
    async with rt.sessions() as session, session.begin():
        flow = await flows.create_flow(session, name, graph=graph)
        await flows.publish(session, flow.id, rt.registry)
        return flow.id


async def add_contacts(
    rt: Runtime, count: int, *, owner: bool = True, **attributes: Any
) -> list[int]:
    """Insert ``count`` contacts (with a salesperson as owner); returns their ids in order."""
    async with rt.sessions() as session, session.begin():
        owner_id = None
        if owner:
            owner_id = await session.scalar(select(User.id).where(User.email == "sales@shop.test"))
            if owner_id is None:
                owner_id = await session.scalar(
                    insert(User)
                    .values(email="sales@shop.test", name="Sales", password_hash="x")
                    .returning(User.id)
                )
        start = await session.scalar(select(Contact.id).order_by(Contact.id.desc()).limit(1)) or 0
        rows = [
            {
                "email": f"c{start + n}@example.test",
                "first_name": f"C{start + n}",
                "owner_id": owner_id,
                "attributes": dict(attributes),
            }
            for n in range(1, count + 1)
        ]
        result = await session.execute(insert(Contact).returning(Contact.id), rows)
        return sorted(result.scalars())


@pytest.fixture
async def contacts(runtime: Runtime) -> AsyncIterator[list[int]]:
    yield await add_contacts(runtime, 3)


async def journeys(rt: Runtime) -> list[Journey]:
    """Every journey, oldest first."""
    async with rt.sessions() as session:
        return list((await session.execute(select(Journey).order_by(Journey.id))).scalars())


async def steps(rt: Runtime, journey_id: int | None = None) -> list[Step]:
    """The run history (of one journey, or of all), in the order it was written."""
    query = select(Step).order_by(Step.id)
    if journey_id is not None:
        query = query.where(Step.journey_id == journey_id)
    async with rt.sessions() as session:
        return list((await session.execute(query)).scalars())


async def update_contact(rt: Runtime, contact_id: int, **values: Any) -> None:
    async with rt.sessions() as session, session.begin():
        await session.execute(update(Contact).where(Contact.id == contact_id).values(**values))


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    """A webhook receiver on loopback: ``statuses`` answered in order, then 200."""
    with hook_receiver() as state:
        yield state
