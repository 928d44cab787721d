"""Under load the edges hold: the hosted form, its emails and their pixels, all at once.

20 people post the hosted form 10 times each while the in-process worker sends
the confirmation emails to an SMTP server that takes 100 ms a message (over the
worker's four connections, the sending lasts as long as the posting), and the
emails' tracking pixels are fetched as they arrive. On SQLite (the default, one
process) as on PostgreSQL: no answer is a server error, and every accepted post
is exactly one contact, one journey and one email.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.app import create_app
from backend.models import Contact, Journey, OutboxMessage
from runtime import flows
from tests.backend.web.support import settings_for
from tests.backend.web.test_forms import make_form
from tests.runtime.conftest import Mailbox, _free_port

pytestmark = pytest.mark.long

PEOPLE = 20
POSTS_EACH = 10
SMTP_SECONDS = 0.1
_PIXEL = re.compile(r"http://testserver\.local(/t/o/[^\"'\s>]+)")


class SlowMailbox(Mailbox):
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(SMTP_SECONDS)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def slow_smtp() -> Iterator[tuple[SlowMailbox, int]]:
    mailbox, port = SlowMailbox(), _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def _graph(form_id: int) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "form", "type": "trigger.form_submitted", "config": {"form_id": form_id}},
            {
                "id": "confirm",
                "type": "action.email",
                "config": {
                    "subject": "Din guide, {{ first_name }}",
                    "body": "Tack! Här är guiden du bad om.",
                    "button_text": "Hämta guiden",
                    "button_url": "https://example.se/guide.pdf",
                    "category": "transactional",
                },
            },
        ],
        "edges": [{"source": "form", "port": "next", "target": "confirm"}],
        "settings": {},
    }


async def _count(sessions: async_sessionmaker[AsyncSession], model: Any, *where: Any) -> int:
    async with sessions() as db:
        return int(await db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _html(message: Any) -> str:
    parts = message.walk() if message.is_multipart() else [message]
    return "".join(
        str(p.get_payload(decode=True).decode())
        for p in parts
        if p.get_content_type() == "text/html"
    )


async def test_twenty_people_post_the_form_while_mail_goes_out_and_pixels_load(
    db_url: str,
    sessions: async_sessionmaker[AsyncSession],
    slow_smtp: tuple[SlowMailbox, int],
) -> None:
    mailbox, port = slow_smtp
    settings = settings_for(
        db_url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        form_rate_limit="1000/minute",
        quiet_hours="",
        sweep_interval_seconds=0.5,
    )
    app = create_app(settings, run_executor=True)  # the real clock: fill times are real
    form = await make_form(sessions)
    statuses: list[tuple[str, int]] = []
    accepted: list[str] = []

    async def person(client: AsyncTestClient[Litestar], n: int) -> None:
        for i in range(POSTS_EACH):
            email = f"person{n}.{i}@exempel.se"
            # Opened the page ten seconds ago: past the fill-time check.
            data = {"form_started_at": f"{time.time() - 10:.0f}", "email": email, "name": "Åsa"}
            response = await client.post("/f/signup", data=data)
            statuses.append(("form", response.status_code))
            if response.status_code == 200:
                accepted.append(email)

    async def opener(client: AsyncTestClient[Litestar], stop: asyncio.Event) -> None:
        fetched: set[str] = set()
        read = 0  # messages arrive in order: each is read once, as it arrives
        while not stop.is_set():
            with mailbox.lock:
                arrived = mailbox.messages[read:]
            read += len(arrived)
            pages = [_html(m) for m in arrived]
            for path in {p for page in pages for p in _PIXEL.findall(page)} - fetched:
                fetched.add(path)
                statuses.append(("pixel", (await client.get(path)).status_code))
            await asyncio.sleep(0.05)

    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        async with sessions() as db, db.begin():
            flow = await flows.create_flow(db, "Guide", graph=_graph(form.id))
            await flows.publish(db, flow.id, app.state.runtime.registry)
        stop = asyncio.Event()
        pixels = asyncio.create_task(opener(client, stop))
        await asyncio.gather(*(person(client, n) for n in range(PEOPLE)))
        deadline = time.monotonic() + 120
        while len(mailbox.messages) < len(accepted) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # room for a duplicate to show up, were there one
        stop.set()
        await pixels

    assert len(statuses) >= PEOPLE * POSTS_EACH
    assert all(status < 500 for _, status in statuses), Counter(statuses)
    assert len(accepted) == PEOPLE * POSTS_EACH, Counter(statuses)
    assert await _count(sessions, Contact) == len(accepted)
    assert await _count(sessions, Journey) == len(accepted)
    assert await _count(sessions, OutboxMessage) == len(accepted)
    with mailbox.lock:
        recipients = Counter(str(m["To"]) for m in mailbox.messages)
    assert sorted(recipients) == sorted(accepted)
    assert set(recipients.values()) == {1}
    assert any(kind == "pixel" for kind, _ in statuses)
