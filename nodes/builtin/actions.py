"""Message actions: email, SMS, a call-list task for the owner, a signed webhook, web content.

Each produces ``Message``s for the outbox; delivery happens after the step
commits, through the channel's deliverer. Every message carries ``tracking``
(flow, journey, node, contact) so opens, clicks and replies find their way back
to the step that sent them (engagement conditions rely on it).
"""

from __future__ import annotations

import functools
import html
import re
from typing import Any, Literal

import nh3
from pydantic import BaseModel, EmailStr, Field, model_validator

from nodes.builtin.common import (
    Duration,
    Link,
    Strict,
    Template,
    invalid,
    merge_values,
    render,
)
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
    Profile,
    await_delivery,
    delivery_outcome,
)

__all__ = ["NotifyOwner", "SendEmail", "SendSms", "SendWebhook", "ShowWebContent"]

ACTION_COLOR = "#2563eb"
Category = Literal["marketing", "transactional"]
_URL = re.compile(r"https?://[^\s<>\"']+")
# Punctuation that ends a sentence rather than the address it follows.
_TRAILING = ".,;:!?)"


def _category_field() -> Any:
    return Field(
        default="marketing",
        title=N_("Kind of message"),
        description=N_(
            "Marketing messages respect unsubscribes; transactional ones (a receipt, "
            "a requested download) are always sent."
        ),
    )


WhenBlocked = Literal["default", "defer", "drop"]


def _when_blocked_field() -> Any:
    return Field(
        default="default",
        title=N_("If quiet hours or a frequency cap hold it"),
        description=N_(
            "Send it later (defer), skip it (drop), or follow the workspace setting (default)."
        ),
    )


def _wait_for_delivery_field() -> Any:
    return Field(
        default=False,
        title=N_("Wait for the delivery"),
        description=N_(
            "Go on only when the message was delivered or has failed, through the Delivered "
            "and Failed exits; a failure keeps the provider's reason in the journey's data."
        ),
    )


def _waits(config: BaseModel) -> bool:
    return bool(getattr(config, "wait_for_delivery", False))


def delivery_ports(config: BaseModel) -> tuple[Port, ...]:
    """Delivered and Failed when the step waits for its delivery, else Next."""
    return DELIVERY_PORTS if _waits(config) else (NEXT,)


def send(ctx: Context[Any], message: Message) -> Outcome:
    """Queue ``message``; when the step waits for its delivery, wait at the step for the outcome."""
    if _waits(ctx.config):
        return await_delivery(ctx, message)
    return Outcome.go(messages=(message,))


def _delivery_options(when_blocked: str) -> dict[str, Any]:
    return {} if when_blocked == "default" else {"when_blocked": when_blocked}


def tracking(ctx: Context[Any]) -> dict[str, Any]:
    """Who and what a message is about, for tracking events and delivery records."""
    return {
        "flow_id": ctx.journey.flow_id,
        "journey_id": ctx.journey.id,
        "node_id": ctx.journey.node_id,
        "contact_id": ctx.profile.contact_id,
    }


def withdrew(profile: Profile, channel: str) -> bool:
    """Consent for ``channel`` (or for everything) explicitly withdrawn."""
    for name in (channel, "all"):
        entry = profile.consent.get(name)
        if isinstance(entry, dict) and entry.get("granted") is False:
            return True
    return False


def skipped(ctx: Context[Any], reason: str) -> Outcome:
    """Go on without sending, and say why in the run history (a waiting step: "failed")."""
    if _waits(ctx.config):
        data = {"skipped": reason, "delivery": "failed", "reason": reason}
        return Outcome.go("failed", data={ctx.journey.node_id: data})
    return Outcome.go(data={ctx.journey.node_id: {"skipped": reason}})


def text_to_html(text: str) -> str:
    """Plain text as simple HTML: escaped, paragraphs on blank lines, links clickable."""
    # A body without merge fields is the same for every contact: converted once.
    return _text_to_html_cached(text) if len(text) <= 4096 else _text_to_html(text)


@functools.lru_cache(maxsize=256)
def _text_to_html_cached(text: str) -> str:
    return _text_to_html(text)


def _text_to_html(text: str) -> str:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]

    def link(match: re.Match[str]) -> str:
        url = match.group(0).rstrip(_TRAILING)
        return f'<a href="{url}">{url}</a>{match.group(0)[len(url) :]}'

    def paragraph(block: str) -> str:
        linked = _URL.sub(link, html.escape(block))
        return "<p>" + linked.replace("\n", "<br>") + "</p>"

    return "\n".join(paragraph(block) for block in paragraphs)


class EmailConfig(Strict):
    subject: Template = Field(
        min_length=1,
        max_length=200,
        title=N_("Subject"),
        description=N_("The subject line. Merge fields like {{ first_name }} are filled in."),
    )
    preheader: Template = Field(
        default="",
        max_length=150,
        title=N_("Preview text"),
        description=N_("The short line inboxes show next to the subject."),
    )
    body: Template = Field(
        min_length=1,
        max_length=50_000,
        title=N_("Message"),
        description=N_("The email text. A blank line starts a new paragraph; links work."),
    )
    button_text: str = Field(
        default="",
        max_length=80,
        title=N_("Button text"),
        description=N_("Adds a button under the message, for example 'Download the guide'."),
    )
    button_url: Link = Field(
        default="",
        max_length=2000,
        title=N_("Button link"),
        description=N_("Where the button leads (an https:// address)."),
    )
    from_address: EmailStr | None = Field(
        default=None,
        title=N_("From address"),
        description=N_("Leave empty to send from the default address."),
    )
    category: Category = _category_field()
    track: bool = Field(
        default=True,
        title=N_("Track opens and clicks"),
        description=N_("Needed for 'Opened or clicked?' conditions and waits on opens."),
    )
    when_blocked: WhenBlocked = _when_blocked_field()
    wait_for_delivery: bool = _wait_for_delivery_field()


class SendEmail(NodeType[EmailConfig]):
    type_id = "action.email"
    channel = "email"
    name = N_("Send email")
    description = N_("Sends a personalised email to the contact.")
    family = Family.action
    icon = "mail"
    color = ACTION_COLOR
    config_model = EmailConfig

    @classmethod
    def output_ports(cls, config: BaseModel) -> tuple[Port, ...]:
        return delivery_ports(config)

    async def run(self, ctx: Context[EmailConfig]) -> Outcome:
        if ctx.wake is not None:
            return delivery_outcome(ctx)
        config, profile = ctx.config, ctx.profile
        if not profile.email:
            return skipped(ctx, "no email address")
        if config.category == "marketing" and withdrew(profile, "email"):
            return skipped(ctx, "unsubscribed from email")
        values = merge_values(ctx)
        text = render(config.body, values)
        body_html = text_to_html(text)
        if config.button_text and config.button_url:
            url = render(config.button_url, values, in_url=True)
            text += f"\n\n{config.button_text}: {url}"
            body_html += (
                f'\n<p><a class="button" href="{html.escape(url)}">'
                f"{html.escape(config.button_text)}</a></p>"
            )
        payload: dict[str, Any] = {
            "to": profile.email,
            "subject": render(config.subject, values),
            "text": text,
            "html": body_html,
            "tracking": tracking(ctx),
        }
        if config.from_address:
            payload["from"] = str(config.from_address)
        if config.preheader:
            payload["preheader"] = render(config.preheader, values)
        if not config.track:
            payload["track"] = False
        payload.update(_delivery_options(config.when_blocked))
        return send(ctx, Message("email", payload, category=config.category))


class SmsConfig(Strict):
    text: Template = Field(
        min_length=1,
        max_length=1600,
        title=N_("Message"),
        description=N_("The text message. Keep it short: 160 characters fit one SMS."),
    )
    category: Category = _category_field()
    when_blocked: WhenBlocked = _when_blocked_field()
    wait_for_delivery: bool = _wait_for_delivery_field()


class SendSms(NodeType[SmsConfig]):
    type_id = "action.sms"
    channel = "sms"
    name = N_("Send SMS")
    description = N_("Sends a text message to the contact's phone.")
    family = Family.action
    icon = "message-square"
    color = ACTION_COLOR
    config_model = SmsConfig

    @classmethod
    def output_ports(cls, config: BaseModel) -> tuple[Port, ...]:
        return delivery_ports(config)

    async def run(self, ctx: Context[SmsConfig]) -> Outcome:
        if ctx.wake is not None:
            return delivery_outcome(ctx)
        profile = ctx.profile
        if not profile.phone:
            return skipped(ctx, "no phone number")
        if ctx.config.category == "marketing" and withdrew(profile, "sms"):
            return skipped(ctx, "unsubscribed from SMS")
        payload = {
            "to": profile.phone,
            "text": render(ctx.config.text, merge_values(ctx)),
            "tracking": tracking(ctx),
            **_delivery_options(ctx.config.when_blocked),
        }
        return send(ctx, Message("sms", payload, category=ctx.config.category))


class TaskConfig(Strict):
    title: Template = Field(
        default="Call {{ first_name }} {{ last_name }}",
        min_length=1,
        max_length=300,
        title=N_("Task"),
        description=N_("What the salesperson should do; shown on their call list."),
    )
    note: Template = Field(
        default="",
        max_length=5000,
        title=N_("Note"),
        description=N_("Context for the salesperson, for example what the lead downloaded."),
    )
    due_in: Duration = Field(
        default_factory=lambda: Duration(amount=1, unit="days"),
        title=N_("Due in"),
        description=N_("How long the salesperson has to do it."),
    )


class NotifyOwner(NodeType[TaskConfig]):
    type_id = "action.task"
    channel = "task"
    name = N_("Notify salesperson")
    description = N_(
        "Puts a task on the call list of the contact's owner (unassigned when the "
        "contact has no owner)."
    )
    family = Family.action
    icon = "phone-call"
    color = ACTION_COLOR
    config_model = TaskConfig

    async def run(self, ctx: Context[TaskConfig]) -> Outcome:
        profile = ctx.profile
        if profile.contact_id is None:
            return skipped(ctx, "anonymous visitors have no salesperson")
        values = merge_values(ctx)
        payload = {
            "owner_id": profile.owner_id,
            "contact_id": profile.contact_id,
            "title": " ".join(render(ctx.config.title, values).split()),
            "note": render(ctx.config.note, values),
            "due_at": (ctx.now + ctx.config.due_in.delta()).isoformat(),
        }
        return Outcome.go(messages=(Message("task", payload, category="transactional"),))


class WebhookConfig(Strict):
    url: Link = Field(
        min_length=1,
        max_length=2000,
        title=N_("Address"),
        description=N_("The https:// address that receives a POST with the contact as JSON."),
    )
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        title=N_("Signing secret"),
        description=N_(
            "Optional: at least 16 characters, shared with the receiver. With it, each "
            "request carries a Touchflow-Signature header (HMAC-SHA256) so the receiver "
            "can trust it."
        ),
        json_schema_extra={"format": "password", "writeOnly": True},
    )
    include_contact: bool = Field(
        default=True,
        title=N_("Include contact details"),
        description=N_("Send the contact's email, phone, name, attributes and tags."),
    )
    fields: dict[str, Template] = Field(
        default_factory=dict,
        max_length=50,
        title=N_("Extra fields"),
        description=N_("Extra values to send; merge fields are filled in."),
    )
    wait_for_delivery: bool = _wait_for_delivery_field()


class SendWebhook(NodeType[WebhookConfig]):
    type_id = "action.webhook"
    channel = "webhook"
    name = N_("Call a webhook")
    description = N_("Posts the contact to another system, signed so it can trust the call.")
    family = Family.action
    icon = "webhook"
    color = ACTION_COLOR
    config_model = WebhookConfig

    @classmethod
    def output_ports(cls, config: BaseModel) -> tuple[Port, ...]:
        return delivery_ports(config)

    async def run(self, ctx: Context[WebhookConfig]) -> Outcome:
        if ctx.wake is not None:
            return delivery_outcome(ctx)
        config, profile = ctx.config, ctx.profile
        values = merge_values(ctx)
        body: dict[str, Any] = {
            "type": "touchflow.journey.step",
            "sent_at": ctx.now.isoformat(),
            **tracking(ctx),
            "fields": {key: render(value, values) for key, value in config.fields.items()},
        }
        if config.include_contact:
            body["contact"] = {
                "kind": profile.kind,
                "id": profile.id,
                "email": profile.email,
                "phone": profile.phone,
                "first_name": profile.first_name,
                "last_name": profile.last_name,
                "lifecycle_stage": profile.lifecycle_stage,
                "tags": list(profile.tags),
                "attributes": dict(profile.attributes),
            }
        url = render(config.url, values, in_url=True)
        # A refused address fails the step where the marketer looks (the run), not only
        # the outbox row; the webhook channel checks again after resolving the name.
        refusal = ctx.services.egress.refusal(url)
        if refusal is not None:
            raise ValueError(refusal)
        payload: dict[str, Any] = {"url": url, "body": body}
        if config.secret:
            payload["secret"] = config.secret
        return send(ctx, Message("webhook", payload, category="transactional"))


class WebContentConfig(Strict):
    slot: str = Field(
        pattern=r"^[a-z0-9_-]{1,64}$",
        title=N_("Placement"),
        description=N_("Where on your site the content appears (the snippet's slot name)."),
    )
    html: Template = Field(
        default="",
        max_length=20_000,
        title=N_("Content"),
        description=N_("The HTML to show. Scripts and unsafe markup are removed."),
    )
    block_id: int | None = Field(
        default=None,
        ge=1,
        title=N_("Content block"),
        description=N_("Show a block from the content library instead of writing HTML here."),
        json_schema_extra={"format": "content_block"},
    )
    show_for: Duration = Field(
        default_factory=lambda: Duration(amount=7, unit="days"),
        title=N_("Show for"),
        description=N_("How long the content stays in place."),
    )

    @model_validator(mode="after")
    def _one_source(self) -> WebContentConfig:
        if bool(self.html.strip()) == (self.block_id is not None):
            raise invalid(N_("Write the content, or pick a content block: one of the two."))
        return self


class ShowWebContent(NodeType[WebContentConfig]):
    type_id = "action.web_content"
    channel = "web_content"
    name = N_("Show web content")
    description = N_("Personalises your website for this customer: a banner, an offer.")
    family = Family.action
    icon = "layout"
    color = ACTION_COLOR
    config_model = WebContentConfig

    async def run(self, ctx: Context[WebContentConfig]) -> Outcome:
        config, profile = ctx.config, ctx.profile
        payload: dict[str, Any] = {
            "slot": config.slot,
            "contact_id": profile.contact_id,
            "visitor_id": profile.id if profile.kind == "visitor" else None,
            "expires_at": (ctx.now + config.show_for.delta()).isoformat(),
            "tracking": tracking(ctx),
        }
        if config.block_id is not None:
            payload["block_id"] = config.block_id
        else:
            payload["html"] = nh3.clean(render(config.html, merge_values(ctx), escape=True))
        return Outcome.go(messages=(Message("web_content", payload),))
