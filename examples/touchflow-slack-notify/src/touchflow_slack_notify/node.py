"""Post a message about the customer to a Slack-compatible incoming webhook."""

from __future__ import annotations

from string import Template

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nodes.sdk import Context, Family, Message, NodeType, Outcome


class SlackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    webhook_url: str = Field(
        title="Webhook URL",
        description="The incoming webhook address Slack (or Mattermost, Rocket.Chat) gave you.",
    )
    text: str = Field(
        default="$first_name $last_name ($email) reached this step.",
        min_length=1,
        max_length=3000,
        title="Message",
        description="What to post. $first_name, $last_name, $email and $phone are filled in.",
    )
    username: str = Field(
        default="Touchflow",
        max_length=80,
        title="Post as",
        description="The name the message appears under, where the chat tool allows it.",
    )

    @field_validator("webhook_url")
    @classmethod
    def _https_only(cls, url: str) -> str:
        if not url.startswith(("https://", "http://")):
            raise ValueError("use the full webhook address, starting with https://")
        return url


class SlackNotify(NodeType[SlackConfig]):
    """Tell a team channel that a customer reached this step of the flow."""

    type_id = "slack.notify"
    name = "Post to Slack"
    description = "Posts a message about the customer to a Slack-compatible channel."
    family = Family.action
    icon = "message-circle"
    color = "#4a154b"
    config_model = SlackConfig

    async def run(self, ctx: Context[SlackConfig]) -> Outcome:
        profile = ctx.profile
        fields = {
            "first_name": profile.first_name,
            "last_name": profile.last_name,
            "email": profile.email or "",
            "phone": profile.phone or "",
        }
        # string.Template only substitutes names: nothing the marketer types is evaluated.
        text = Template(ctx.config.text).safe_substitute(fields).strip()
        body = {"text": text, "username": ctx.config.username}
        # The server's egress guard: an internal address (loopback, office network,
        # cloud metadata) fails the step with the reason instead of being posted to.
        refusal = ctx.services.egress.refusal(ctx.config.webhook_url)
        if refusal is not None:
            raise ValueError(refusal)
        # The built-in "webhook" channel POSTs the body as JSON after the step commits,
        # with retries, through the same guard; the node itself does no I/O.
        message = Message("webhook", {"url": ctx.config.webhook_url, "body": body})
        return Outcome.go(messages=(message,))
