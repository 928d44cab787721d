"""Unit tests for the Slack node, written with Touchflow's test kit."""

import pytest
from touchflow_slack_notify import SlackNotify

from nodes.sdk import upgrade_config
from nodes.sdk.testing import (
    check_declaration,
    config_errors,
    contact,
    event,
    event_wake,
    run_node,
    visitor,
)

HOOK = "https://hooks.slack.com/services/T000/B000/XXXX"


async def test_posts_the_customer_to_the_webhook() -> None:
    outcome = await run_node(
        SlackNotify,
        {"webhook_url": HOOK, "text": "New lead: {{ first_name }} ({{ email }}), plan $plan"},
        profile=contact(7, first_name="Åsa", email="asa@example.test"),
    )
    assert outcome.port == "next"
    [message] = outcome.messages
    assert message.channel == "webhook"
    assert message.payload["url"] == HOOK
    assert message.payload["body"] == {
        "text": "New lead: Åsa (asa@example.test), plan $plan",
        "username": "Touchflow",
    }


async def test_an_anonymous_visitor_gets_the_fallback() -> None:
    outcome = await run_node(
        SlackNotify,
        {"webhook_url": HOOK, "text": '{{ first_name | default("A visitor") }} is here'},
        profile=visitor("v-42"),
    )
    assert outcome.messages[0].payload["body"]["text"] == "A visitor is here"


async def test_branches_on_how_the_delivery_went() -> None:
    config = {"webhook_url": HOOK, "wait_for_delivery": True}
    waiting = await run_node(SlackNotify, config, node_id="slack", journey_id=3)
    assert waiting.wait is not None and len(waiting.messages) == 1
    answer = event("message.outcome", {"outcome": "failed", "reason": "HTTP 404: no_service"})
    failed = await run_node(SlackNotify, config, node_id="slack", wake=event_wake(answer))
    assert failed.port == "failed"
    assert failed.data["slack"]["reason"] == "HTTP 404: no_service"


def test_a_version_1_config_is_upgraded() -> None:
    old = {"webhook_url": HOOK, "text": "New lead: $first_name ($email)"}
    assert upgrade_config(SlackNotify, old, 1)["text"] == "New lead: {{ first_name }} ({{ email }})"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/x", "http://localhost/x", "http://169.254.169.254/latest"]
)
async def test_refuses_an_internal_address(url: str) -> None:
    with pytest.raises(ValueError, match="does not call"):
        await run_node(SlackNotify, {"webhook_url": url}, profile=contact(7))


def test_explains_a_bad_address_and_a_broken_message() -> None:
    errors = config_errors(SlackNotify, {"webhook_url": "hooks.slack.com/x", "text": "{{ oops"})
    assert "starting with https://" in errors["webhook_url"]
    assert "cannot be read" in errors["text"]


def test_declaration_is_complete() -> None:
    assert check_declaration(SlackNotify) == []
