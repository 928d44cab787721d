"""Post a message about the customer to a Slack-compatible incoming webhook."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nodes.sdk import (
    DELIVERY_PORTS,
    N_,
    NEXT,
    Context,
    Family,
    Message,
    NodeType,
    Outcome,
    Port,
    await_delivery,
    delivery_outcome,
)
from nodes.sdk.templates import check_template, render_template

# Version 1 wrote placeholders as $first_name; version 2 uses the template language.
_DOLLAR_FIELD = re.compile(r"\$(first_name|last_name|email|phone)\b")


class SlackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    webhook_url: str = Field(
        title=N_("Webhook URL"),
        description=N_("The incoming webhook address Slack (or Mattermost, Rocket.Chat) gave you."),
    )
    text: str = Field(
        default="{{ first_name }} {{ last_name }} ({{ email }}) reached this step.",
        min_length=1,
        max_length=3000,
        title=N_("Message"),
        description=N_(
            "What to post. {{ first_name }}, {{ last_name }}, {{ email }} and {{ phone }} "
            'are filled in; {{ first_name | default("someone") }} gives a fallback.'
        ),
    )
    username: str = Field(
        default="Touchflow",
        max_length=80,
        title=N_("Post as"),
        description=N_("The name the message appears under, where the chat tool allows it."),
    )
    wait_for_delivery: bool = Field(
        default=False,
        title=N_("Wait for the delivery"),
        description=N_("Go on through Delivered or Failed once the chat tool has answered."),
    )

    @field_validator("webhook_url")
    @classmethod
    def _https_only(cls, url: str) -> str:
        if not url.startswith(("https://", "http://")):
            raise ValueError("use the full webhook address, starting with https://")
        return url

    @field_validator("text")
    @classmethod
    def _readable_template(cls, text: str) -> str:
        problem = check_template(text)
        if problem:
            raise ValueError(f"the message cannot be read: {problem}")
        return text


class SlackNotify(NodeType[SlackConfig]):
    """Tell a team channel that a customer reached this step of the flow."""

    type_id = "slack.notify"
    channel = "webhook"  # the built-in channel posts it
    version = 2
    name = N_("Post to Slack")
    description = N_("Posts a message about the customer to a Slack-compatible channel.")
    family = Family.action
    icon = "message-circle"
    color = "#4a154b"
    config_model = SlackConfig
    ports = (NEXT,)

    @classmethod
    def output_ports(cls, config: BaseModel) -> tuple[Port, ...]:
        assert isinstance(config, SlackConfig)
        return DELIVERY_PORTS if config.wait_for_delivery else cls.ports

    @classmethod
    def upgrade(cls, config: dict[str, Any], version: int) -> dict[str, Any]:
        if version == 1 and "text" in config:
            config["text"] = _DOLLAR_FIELD.sub(r"{{ \1 }}", config["text"])
        return config

    async def run(self, ctx: Context[SlackConfig]) -> Outcome:
        if ctx.wake is not None:  # the chat tool answered (see wait_for_delivery)
            return delivery_outcome(ctx)
        profile = ctx.profile
        fields = {
            "first_name": profile.first_name,
            "last_name": profile.last_name,
            "email": profile.email,
            "phone": profile.phone,
        }
        # The sandboxed template language: names are filled in, nothing typed is run as code.
        text = render_template(ctx.config.text, fields).strip()
        body = {"text": text, "username": ctx.config.username}
        # The server's egress guard: an internal address (loopback, office network,
        # cloud metadata) fails the step with the reason instead of being posted to.
        refusal = ctx.services.egress.refusal(ctx.config.webhook_url)
        if refusal is not None:
            raise ValueError(refusal)
        # The built-in "webhook" channel POSTs the body as JSON after the step commits,
        # with retries, through the same guard; the node itself does no I/O.
        message = Message("webhook", {"url": ctx.config.webhook_url, "body": body})
        ctx.log.info("posting to Slack for customer %s", profile.id)
        if ctx.config.wait_for_delivery:
            return await_delivery(ctx, message)
        return Outcome.go(messages=(message,))
