"""SMS and webhooks against a real loopback HTTP server that fails, hangs, then recovers."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from backend.models import OutboxStatus
from backend.settings import Settings
from runtime.clock import FakeClock
from runtime.delivery import Deliverer
from runtime.delivery.sms import ElksProvider, GenericProvider, SmsDeliverer, TwilioProvider
from runtime.delivery.webhook import SIGNATURE_HEADER, WebhookDeliverer, verify_signature
from runtime.engine import Runtime
from runtime.messaging.links import LinkSigner
from runtime.messaging.phone import BadNumber, segments, to_e164
from tests.runtime.delivery.conftest import add_contact, gated_runtime, outbox_row, queue
from tests.runtime.delivery.http_server import Script, http_server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=0.5) as http:
        yield http


async def _until_settled(rt: Runtime, clock: FakeClock, ids: list[int]) -> None:
    for _ in range(10):
        await rt.drain()
        rows = [await outbox_row(rt, i) for i in ids]
        if all(r.status in (OutboxStatus.sent.value, OutboxStatus.dead.value) for r in rows):
            return
        clock.advance(minutes=10)
    raise AssertionError("messages did not settle")


def _runtime(
    sessions: Any, settings: Settings, clock: FakeClock, name: str, d: Deliverer
) -> Runtime:
    return gated_runtime(sessions, settings, clock, {name: d})


async def test_webhooks_survive_failure_and_timeout_and_arrive_exactly_once(
    sessions: Any, settings: Settings, clock: FakeClock, client: httpx.AsyncClient
) -> None:
    script = Script(plan=["fail", "hang", "fail"])
    with http_server(script) as base:
        rt = _runtime(sessions, settings, clock, "webhook", WebhookDeliverer(client, clock))
        contact = await add_contact(rt)
        ids = [
            await queue(
                rt,
                contact,
                {"url": f"{base}/hook", "body": {"n": n}, "secret": "s" * 20},
                channel="webhook",
                category="transactional",
            )
            for n in range(5)
        ]
        await _until_settled(rt, clock, ids)
    keys = Counter(r.headers["Idempotency-Key"] for r in script.accepted)
    assert len(keys) == 5 and set(keys.values()) == {1}
    assert sorted(json.loads(r.body)["n"] for r in script.accepted) == list(range(5))
    for received in script.accepted:
        assert verify_signature(
            "s" * 20,
            received.headers[SIGNATURE_HEADER],
            received.body,
            now=int(clock.now().timestamp()),
            tolerance=3600,
        )
    for message_id in ids:
        row = await outbox_row(rt, message_id)
        assert row.status == OutboxStatus.sent.value
    failed = [await outbox_row(rt, i) for i in ids]
    assert sum(r.attempts for r in failed) == 5 + 3  # three requests failed or hung


async def test_a_refused_webhook_is_dead_with_the_answer_on_the_row(
    sessions: Any, settings: Settings, clock: FakeClock, client: httpx.AsyncClient
) -> None:
    with http_server(Script(plan=["refuse"])) as base:
        rt = _runtime(sessions, settings, clock, "webhook", WebhookDeliverer(client, clock))
        message_id = await queue(
            rt,
            None,
            {"url": f"{base}/hook", "body": "x"},
            channel="webhook",
            category="transactional",
        )
        await rt.drain()
    row = await outbox_row(rt, message_id)
    assert row.status == OutboxStatus.dead.value
    assert "HTTP 400" in (row.status_reason or "") and "bad number" in (row.status_reason or "")


@pytest.mark.parametrize("kind", ["twilio", "46elks", "generic"])
async def test_sms_providers_deliver_each_message_once_through_failures(
    kind: str, sessions: Any, settings: Settings, clock: FakeClock, client: httpx.AsyncClient
) -> None:
    script = Script(plan=["hang", "fail"])
    signer = LinkSigner("test-secret", "http://touchflow.test")
    with http_server(script) as base:
        provider: Any = {
            "twilio": lambda: TwilioProvider("AC1", "token", base_url=base),
            "46elks": lambda: ElksProvider("u1", "pw", base_url=base),
            "generic": lambda: GenericProvider(base + "/send?to={to}&msg={text}"),
        }[kind]()
        sms = SmsDeliverer(provider, sender="Shop", status_url=signer.sms_status_url, client=client)
        rt = _runtime(sessions, settings, clock, "sms", sms)
        contact = await add_contact(rt, phone="+46701234567")
        ids = [
            await queue(
                rt,
                contact,
                {"to": "070-123 45 67", "text": f"Hej {n}"},
                channel="sms",
                category="transactional",
            )
            for n in range(3)
        ]
        await _until_settled(rt, clock, ids)
    assert len(script.accepted) == 3
    texts = []
    for received in script.accepted:
        if kind == "twilio":
            form = received.form()
            assert received.path == "/2010-04-01/Accounts/AC1/Messages.json"
            assert (
                received.headers["Authorization"]
                == "Basic " + base64.b64encode(b"AC1:token").decode()
            )
            assert form["To"] == "+46701234567" and form["From"] == "Shop"
            assert "/hooks/sms/status/" in form["StatusCallback"]
            texts.append(form["Body"])
        elif kind == "46elks":
            form = received.form()
            assert received.path == "/a1/sms" and form["to"] == "+46701234567"
            assert "/hooks/sms/status/" in form["whendelivered"]
            texts.append(form["message"])
        else:
            data = json.loads(received.body)
            assert received.path.startswith("/send?to=%2B46701234567&msg=Hej%20")
            texts.append(data["text"])
    assert sorted(texts) == ["Hej 0", "Hej 1", "Hej 2"]
    providers_ids = {(await outbox_row(rt, i)).provider_message_id for i in ids}
    assert len(providers_ids) == 3 and None not in providers_ids


def test_phone_numbers_are_normalised_to_e164() -> None:
    assert to_e164("070-123 45 67") == "+46701234567"
    assert to_e164("+1 (415) 555-2671") == "+14155552671"
    with pytest.raises(BadNumber):
        to_e164("12")


@pytest.mark.parametrize(
    ("text", "encoding", "units", "parts"),
    [
        ("", "GSM-7", 0, 0),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("€" * 80, "GSM-7", 160, 1),  # extension characters count twice
        ("å" * 160, "GSM-7", 160, 1),
        ("ł" * 70, "UCS-2", 70, 1),
        ("ł" * 71, "UCS-2", 71, 2),
        ("🙂" * 35, "UCS-2", 70, 1),  # an emoji is two UTF-16 units
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
    ],
)
def test_sms_segments(text: str, encoding: str, units: int, parts: int) -> None:
    length = segments(text)
    assert (length.encoding, length.units, length.segments) == (encoding, units, parts)
