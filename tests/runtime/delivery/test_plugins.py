"""Channels and SMS providers as entry-point plugins: installed packages (real distribution
metadata on ``sys.path``) reach every runtime, the one the arq worker builds included."""

from __future__ import annotations

import json
import logging
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.settings import Settings
from runtime.clock import FakeClock
from runtime.delivery.plugins import CHANNEL_GROUP, SMS_PROVIDER_GROUP
from runtime.engine import Runtime, build_runtime
from runtime.messaging.channels import installed_channels, sms_provider
from runtime.messaging.gate import GatedDeliverer
from tests.runtime.conftest import Receiver
from tests.runtime.delivery.conftest import outbox_row, queue
from tests.support.plugins import install

ROOT = Path(__file__).resolve().parents[3]


ACME = '''
import json

import httpx

from runtime.delivery import Delivered
from runtime.delivery.plugins import Channel


class AcmeProvider:
    """An SMS provider from another package: JSON to SMS_URL, its id in the answer."""

    name = "acme"

    def __init__(self, url):
        self.url = url

    @classmethod
    def from_settings(cls, settings):
        return cls(settings.sms_url) if settings.sms_url else None

    def request(self, *, to, sender, text, status_url, key):
        body = json.dumps({"acme_to": to, "acme_text": text, "acme_key": key}).encode()
        return httpx.Request("POST", self.url, content=body, headers={"Idempotency-Key": key})

    def provider_id(self, response):
        return "acme-1"


class PostcardDeliverer:
    """A channel from another package: posts the card's text to the payload's URL."""

    concurrency = 2

    def __init__(self, clock):
        self.clock = clock

    async def deliver(self, message):
        async with httpx.AsyncClient() as client:
            await client.post(
                message.payload["url"],
                content=message.payload["text"].encode(),
                headers={"Idempotency-Key": message.idempotency_key},
            )
        return Delivered(provider_message_id="card")


CHANNEL = Channel("postcard", lambda setup: PostcardDeliverer(setup.clock), gated=False)
'''


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "touchflow_acme.py").write_text(textwrap.dedent(ACME))
    install(
        site,
        monkeypatch,
        "touchflow_acme",
        {
            SMS_PROVIDER_GROUP: {"acme": "touchflow_acme:AcmeProvider"},
            CHANNEL_GROUP: {"postcard": "touchflow_acme:CHANNEL"},
        },
    )


def _runtime(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, **values: Any
) -> Runtime:
    rt = build_runtime(settings.model_copy(update=values), sessions=sessions, clock=FakeClock())
    return rt


@pytest.mark.usefixtures("acme")
async def test_an_installed_sms_provider_sends_through_the_sms_channel(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, receiver: Receiver
) -> None:
    rt = _runtime(sessions, settings, sms_provider="acme", sms_url=receiver.url)
    sms = rt.deliverers["sms"]
    assert isinstance(sms, GatedDeliverer) and type(sms.inner.provider).__name__ == "AcmeProvider"  # type: ignore[attr-defined]
    message_id = await queue(
        rt, None, {"to": "070-123 45 67", "text": "Hej!"}, channel="sms", category="transactional"
    )
    await rt.drain()
    [(_, body)] = receiver.requests
    assert json.loads(body)["acme_to"] == "+46701234567"
    row = await outbox_row(rt, message_id)
    assert (row.status, row.provider_message_id) == ("sent", "acme-1")


@pytest.mark.usefixtures("acme")
async def test_an_installed_channel_reaches_every_runtime_and_delivers(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, receiver: Receiver
) -> None:
    # build_runtime is what the arq worker, the web process and scripts all build.
    rt = _runtime(sessions, settings)
    assert {"email", "webhook", "task", "postcard"} <= set(rt.deliverers)
    assert getattr(rt.deliverers["postcard"], "concurrency", None) == 2
    message_id = await queue(
        rt, None, {"url": receiver.url, "text": "Hälsningar"}, channel="postcard"
    )
    await rt.drain()
    assert [body.decode() for _, body in receiver.requests] == ["Hälsningar"]
    assert (await outbox_row(rt, message_id)).status == "sent"


async def test_the_projects_own_channel_plugins_reach_the_runtime(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    # The entry points pyproject.toml declares, installed as they are on `pip install`.
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert "web_content" in declared[CHANNEL_GROUP]
    install(tmp_path, monkeypatch, "touchflow_self", {CHANNEL_GROUP: declared[CHANNEL_GROUP]})
    assert "web_content" in installed_channels()
    rt = _runtime(sessions, settings)
    assert type(rt.deliverers["web_content"]).__name__ == "WebContentDeliverer"


async def test_an_unknown_or_broken_plugin_is_reported_and_the_rest_still_load(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    install(tmp_path, monkeypatch, "touchflow_broken", {CHANNEL_GROUP: {"x": "no_such_module:X"}})
    with caplog.at_level(logging.ERROR):
        channels = installed_channels()
        missing = sms_provider(settings.model_copy(update={"sms_provider": "nosuch"}))
    assert {"email", "sms", "webhook", "task"} <= set(channels) and "x" not in channels
    assert missing is None
    assert (
        "no_such_module" in caplog.text
        and "'nosuch' is neither built in nor installed" in caplog.text
    )
