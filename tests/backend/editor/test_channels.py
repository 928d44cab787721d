"""The editor asks the channel registry which steps send on which channel: a plugin's node type on
a plugin's channel gets the message tools and the consent warning the built-in email and SMS get."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Flow, Form
from runtime.delivery.plugins import CHANNEL_GROUP
from tests.backend.editor.conftest import Editor
from tests.runtime.nodes import graph
from tests.support.plugins import install

# A package of its own: two channels and a node type sending on each, and one more node type
# on the built-in webhook channel (not personal, no preview: no tools, no consent warning).
POSTBOX = """
from pydantic import BaseModel

from nodes.sdk import Family, Message, NodeType, Outcome
from runtime.delivery.plugins import Channel


class LetterConfig(BaseModel):
    subject: str
    text: str = ""
    category: str = "marketing"


class SendLetter(NodeType[LetterConfig]):
    type_id = "postbox.letter"
    name = "Send a letter"
    family = Family.action
    config_model = LetterConfig
    channel = "letter"

    async def run(self, ctx):
        payload = {
            "to": ctx.profile.email,
            "subject": f"{ctx.config.subject} {ctx.profile.first_name}",
            "text": ctx.config.text,
        }
        return Outcome.go(messages=(Message("letter", payload, category=ctx.config.category),))


class ChatConfig(BaseModel):
    text: str = ""
    category: str = "marketing"


class SendChat(NodeType[ChatConfig]):
    type_id = "postbox.chat"
    name = "Send a chat message"
    family = Family.action
    config_model = ChatConfig
    channel = "chat"

    async def run(self, ctx):
        payload = {"to": ctx.profile.phone, "text": ctx.config.text}
        return Outcome.go(messages=(Message("chat", payload, category=ctx.config.category),))


class Ping(NodeType[ChatConfig]):
    type_id = "postbox.ping"
    name = "Ping a system"
    family = Family.action
    config_model = ChatConfig
    channel = "webhook"

    async def run(self, ctx):
        return Outcome.go(messages=(Message("webhook", {"url": "https://x.test"}),))


CHANNELS = [
    Channel("letter", lambda setup: None, personal=True, preview="email"),
    Channel("chat", lambda setup: None, personal=True, preview="text"),
]
NODE_TYPES = [SendLetter, SendChat, Ping]
"""


@pytest.fixture
def postbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[type]]:
    """The package installed (its channels an entry point), its node types to add to the app."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "touchflow_postbox.py").write_text(textwrap.dedent(POSTBOX))
    entry = {CHANNEL_GROUP: {"postbox": "touchflow_postbox:CHANNELS"}}
    install(site, monkeypatch, "touchflow_postbox", entry)
    yield list(importlib.import_module("touchflow_postbox").NODE_TYPES)
    sys.modules.pop("touchflow_postbox", None)  # the next test imports its own copy


async def _draw(editor: Editor, postbox: list[type]) -> None:
    registry = editor.client.app.state.runtime.registry
    for node_type in postbox:
        registry.add(node_type)
    nodes = [
        ("letter", "postbox.letter", {"subject": "Hej"}),
        ("chat", "postbox.chat", {"text": "Hej {{ first_name }}"}),
        ("ping", "postbox.ping", {}),
    ]
    response = await editor.post("/import", {"graph": json.dumps(graph(nodes, []))})
    assert response.status_code == 200, response.text


async def test_a_plugin_channel_step_gets_the_tools_its_channel_asks_for(
    postbox: list[type], editor: Editor
) -> None:
    await _draw(editor, postbox)
    letter = (await editor.get("/nodes/letter")).text
    assert f'hx-get="{editor.base}/nodes/letter/preview"' in letter
    assert 'id="sms-length"' not in letter
    chat = (await editor.get("/nodes/chat")).text
    assert 'id="sms-length"' in chat and "/preview" not in chat
    ping = (await editor.get("/nodes/ping")).text
    assert 'id="sms-length"' not in ping and "/preview" not in ping

    # The preview runs the plugin's node and shows the message on its own channel.
    preview = (await editor.get("/nodes/letter/preview")).text
    assert '<dd class="preview-subject">Hej Alex</dd>' in preview
    assert "does not send an email" in (await editor.get("/nodes/ping/preview")).text


async def test_marketing_on_a_personal_plugin_channel_warns_of_missing_consent(
    postbox: list[type], editor: Editor, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _draw(editor, postbox)
    async with sessions() as db, db.begin():
        form = Form(name="Whitepaper", slug="whitepaper", consent_channel="email")
        db.add(form)
        await db.flush()
        flow = await db.get(Flow, editor.flow_id)
        assert flow is not None
        trigger = {"id": "form", "type": "trigger.form_submitted", "config": {"form_id": form.id}}
        flow.draft_graph = {**flow.draft_graph, "nodes": [trigger, *flow.draft_graph["nodes"]]}
    page = (await editor.client.get(editor.base)).text
    warnings = page.split('class="problem-list warning-list"')[1].split("</ul>")[0]
    assert "Whitepaper does not ask for letter consent" in warnings
    assert "Whitepaper does not ask for chat consent" in warnings
    assert 'data-select-node="ping"' not in warnings  # the webhook channel needs no consent
