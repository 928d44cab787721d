"""Unit tests for the Slack node, written with Touchflow's test kit."""

import pytest
from touchflow_slack_notify import SlackNotify

from nodes.sdk.testing import check_declaration, config_errors, contact, run_node

HOOK = "https://hooks.slack.com/services/T000/B000/XXXX"


async def test_posts_the_customer_to_the_webhook() -> None:
    outcome = await run_node(
        SlackNotify,
        {"webhook_url": HOOK, "text": "New lead: $first_name ($email), plan $plan"},
        profile=contact(7, first_name="Ada", email="ada@example.test"),
    )
    assert outcome.port == "next"
    [message] = outcome.messages
    assert message.channel == "webhook"
    assert message.payload["url"] == HOOK
    assert message.payload["body"] == {
        "text": "New lead: Ada (ada@example.test), plan $plan",
        "username": "Touchflow",
    }


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/x", "http://localhost/x", "http://169.254.169.254/latest"]
)
async def test_refuses_an_internal_address(url: str) -> None:
    with pytest.raises(ValueError, match="does not call"):
        await run_node(SlackNotify, {"webhook_url": url}, profile=contact(7))


def test_explains_a_bad_address() -> None:
    errors = config_errors(SlackNotify, {"webhook_url": "hooks.slack.com/x"})
    assert "starting with https://" in errors["webhook_url"]


def test_declaration_is_complete() -> None:
    assert check_declaration(SlackNotify) == []
