"""One template language: messages and content render with the SDK's sandboxed Jinja.

Texts written in the older merge-field form (``{{ first_name | there }}``)
render as they always did; the demo flow's texts render through the nodes.
"""

from __future__ import annotations

from typing import Any

import pytest

from backend.demo import demo_graph
from nodes.builtin.actions import NotifyOwner, SendEmail, SendSms, SendWebhook, ShowWebContent
from nodes.sdk.templates import TemplateProblem, modernise, render_template, template_names
from nodes.sdk.testing import config_errors, contact, run_node, visitor
from runtime.graph import parse_graph
from tests.runtime.test_builtin_flows import builtin_registry

ASTRID = contact(first_name="Åsa", attributes={"city": "Göteborg", "shoe-size": 38}, phone="+46701")
NAMELESS = contact(first_name="", attributes={})


@pytest.mark.parametrize(
    ("text", "who", "expected"),
    [
        # The older merge fields, as flows stored them before.
        ("Hi {{ first_name | there }}!", NAMELESS, "Hi there!"),
        ("Hi {{ first_name | there }}!", ASTRID, "Hi Åsa!"),
        ("Hej {{first_name|kära kund}}", NAMELESS, "Hej kära kund"),
        ("Size {{ attributes.shoe-size }}", ASTRID, "Size 38"),
        ("{{ attributes.missing | okänt }}", ASTRID, "okänt"),
        # The template language's own forms.
        ('Hi {{ first_name | default("there") }}!', NAMELESS, "Hi there!"),
        ('Hi {{ first_name | default("there") }}!', ASTRID, "Hi Åsa!"),
        (
            '{% if attributes.city == "Göteborg" %}Vi ses på mässan!{% else %}Hej!{% endif %}',
            ASTRID,
            "Vi ses på mässan!",
        ),
        (
            '{% if attributes.city == "Göteborg" %}Vi ses på mässan!{% else %}Hej!{% endif %}',
            NAMELESS,
            "Hej!",
        ),
        ("[{{ lifecycle_stage }}]", NAMELESS, "[]"),  # None shows as nothing, not "None"
    ],
)
async def test_sms_texts_old_and_new(text: str, who: Any, expected: str) -> None:
    outcome = await run_node(SendSms, {"text": text}, profile=_with_phone(who))
    assert outcome.messages[0].payload["text"] == expected


def _with_phone(who: Any) -> Any:
    return contact(
        first_name=who.first_name, attributes=dict(who.attributes), phone=who.phone or "+46701"
    )


def test_older_merge_fields_become_template_expressions() -> None:
    assert modernise("Hi {{ first_name | there }}") == 'Hi {{ first_name | default("there") }}'
    assert modernise("{{ attributes.shoe-size }}") == '{{ attributes["shoe-size"] }}'
    assert modernise("{{ first_name | upper }}") == "{{ first_name | upper }}"
    assert modernise('{{ x | default("y") }}') == '{{ x | default("y") }}'


async def test_links_encode_values_and_html_escapes_them() -> None:
    who = contact(first_name="<b>Åsa</b>", attributes={"city": "Malmö & Lund"})
    email = await run_node(
        SendEmail,
        {
            "subject": "Hej {{ first_name }}",
            "body": "Hej {{ first_name }}",
            "button_text": "Go",
            "button_url": "https://shop.test/?city={{ attributes.city }}",
        },
        profile=who,
    )
    payload = email.messages[0].payload
    assert payload["subject"] == "Hej <b>Åsa</b>"
    assert "https://shop.test/?city=Malm%C3%B6%20%26%20Lund" in payload["text"]
    content = await run_node(
        ShowWebContent, {"slot": "hero", "html": "<p>Hej {{ first_name }}</p>"}, profile=who
    )
    assert content.messages[0].payload["html"] == "<p>Hej &lt;b&gt;Åsa&lt;/b&gt;</p>"


async def test_the_demo_flows_texts_render() -> None:
    graph = parse_graph(demo_graph(form_id=1), builtin_registry())
    who = contact(first_name="Åsa")
    by_id = {node.id: node for node in graph.nodes}
    confirm = await run_node(SendEmail, by_id["confirm"].config, profile=who)
    assert confirm.messages[0].payload["subject"] == "Your lifecycle guide, Åsa"
    call = await run_node(NotifyOwner, by_id["call"].config, profile=who)
    assert call.messages[0].payload["title"] == "Call Åsa about the lifecycle guide"


def test_unknown_names_and_broken_templates_are_refused_when_saved() -> None:
    assert "Unknown merge field" in config_errors(SendSms, {"text": "Hi {{ nickname }}"})["text"]
    assert "cannot be read" in config_errors(SendSms, {"text": "Hi {% if %}"})["text"]
    assert config_errors(SendSms, {"text": "{% if trigger.total > 100 %}VIP{% endif %}"}) == {}
    with pytest.raises(TemplateProblem):
        template_names("{{ x")


def test_the_sandbox_still_holds() -> None:
    with pytest.raises(TemplateProblem):
        render_template("{{ ''.__class__.__mro__[1].__subclasses__() }}", {})


async def test_a_webhooks_fields_use_the_same_language() -> None:
    outcome = await run_node(
        SendWebhook,
        {
            "url": "https://crm.test/hook",
            "secret": "0123456789abcdef",
            "fields": {"greeting": "{{ first_name | default('friend') }}"},
        },
        profile=visitor(),
    )
    assert outcome.messages[0].payload["body"]["fields"] == {"greeting": "friend"}
