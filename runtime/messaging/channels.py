"""The built-in delivery channels and the one way every executor gets its channels.

Built-in (``BUILTIN_CHANNELS``), each a ``runtime.delivery.plugins.Channel``:

- ``email``: SMTP through a connection pool when ``SMTP_HOST`` is set; without
  it, outside production, the development mail catcher (``CaptureDeliverer``)
  keeps every email for the Outbox page instead of sending it;
- ``sms``: when ``SMS_PROVIDER`` names a built-in provider (``twilio``,
  ``46elks``, ``generic``) or an installed provider plugin;
- ``webhook`` and ``task``: always.

Installed channel plugins (``touchflow.channels`` entry points; the backend's
``web_content`` is one) are added by ``installed_deliverers``; gated channels
pass through the send gate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from nodes.sdk import Clock
from runtime.delivery import Deliverer
from runtime.delivery.email import CaptureDeliverer, EmailDeliverer
from runtime.delivery.plugins import (
    CHANNEL_GROUP,
    SMS_PROVIDER_GROUP,
    Channel,
    ChannelSetup,
    discover,
)
from runtime.delivery.sms import PROVIDERS, SmsDeliverer, SmsProvider
from runtime.delivery.task import TaskDeliverer
from runtime.delivery.webhook import WebhookDeliverer
from runtime.egress import EgressClient, EgressPolicy
from runtime.messaging.gate import GatedDeliverer, GatePolicy
from runtime.messaging.links import LinkSigner
from runtime.settings import RuntimeSettings

__all__ = [
    "BUILTIN_CHANNELS",
    "close_deliverers",
    "installed_channels",
    "installed_deliverers",
    "link_signer",
    "sms_provider",
]

log = logging.getLogger(__name__)


def link_signer(settings: RuntimeSettings) -> LinkSigner:
    """The signer for tracking, unsubscribe and SMS callback links."""
    return LinkSigner(secret=settings.resolved_secret_key(), base_url=settings.base_url)


def sms_provider(settings: RuntimeSettings) -> SmsProvider | None:
    """The configured SMS provider (built-in or plugin), or ``None`` when SMS is not set up."""
    if not settings.sms_provider:
        return None
    providers = discover(SMS_PROVIDER_GROUP, PROVIDERS.values(), lambda p: str(p.name))
    provider = providers.get(settings.sms_provider)
    if provider is None:
        log.error(
            "SMS_PROVIDER=%r is neither built in nor installed (known: %s): no SMS is sent",
            settings.sms_provider,
            ", ".join(sorted(providers)),
        )
        return None
    built: SmsProvider | None = provider.from_settings(settings)
    return built


def _email(setup: ChannelSetup) -> Deliverer | None:
    settings = setup.settings
    if settings.smtp_host:
        return EmailDeliverer(
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.mail_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            use_tls=settings.smtp_use_tls,
            start_tls=settings.smtp_start_tls,
            pool_size=settings.smtp_pool_size,
            links=setup.links,
            tracking=settings.email_tracking,
        )
    if settings.environment != "production":
        return CaptureDeliverer(sender=settings.mail_from, links=setup.links)
    return None


def _sms(setup: ChannelSetup) -> Deliverer | None:
    provider = sms_provider(setup.settings)
    if provider is None:
        return None
    return SmsDeliverer(
        provider,
        sender=setup.settings.sms_sender,
        region=setup.settings.sms_default_region,
        status_url=setup.links.sms_status_url,
        concurrency=setup.settings.sms_concurrency,
        client=EgressClient(_egress(setup)),
    )


def _egress(setup: ChannelSetup) -> EgressPolicy:
    """What typed URLs may reach: nothing internal unless the operator's EGRESS_ALLOW names it."""
    return EgressPolicy.parse(setup.settings.egress_allow)


def _webhook(setup: ChannelSetup) -> Deliverer:
    return WebhookDeliverer(
        EgressClient(_egress(setup)),
        clock=setup.clock,
        concurrency=setup.settings.webhook_concurrency,
    )


def _task(setup: ChannelSetup) -> Deliverer:
    settings = setup.settings
    return TaskDeliverer(
        setup.sessions,
        setup.clock,
        base_url=settings.base_url,
        email_owners=settings.task_email_owner,
    )


BUILTIN_CHANNELS = (
    Channel("email", _email, personal=True, preview="email"),
    Channel("sms", _sms, personal=True, preview="text"),
    Channel("webhook", _webhook),
    Channel("task", _task, gated=False),
)


def installed_channels() -> dict[str, Channel]:
    """The built-in channels and every installed channel plugin, by name."""
    return discover(CHANNEL_GROUP, BUILTIN_CHANNELS, lambda c: str(c.name))


def installed_deliverers(
    settings: RuntimeSettings, sessions: async_sessionmaker[AsyncSession], clock: Clock
) -> dict[str, Deliverer]:
    """A deliverer for every configured channel; gated ones pass through the send gate."""
    setup = ChannelSetup(
        settings=settings, sessions=sessions, clock=clock, links=link_signer(settings)
    )
    policy = GatePolicy.from_settings(settings)
    deliverers: dict[str, Deliverer] = {}
    for name, channel in installed_channels().items():
        deliverer = channel.build(setup)
        if deliverer is None:
            continue
        deliverers[name] = (
            GatedDeliverer(deliverer, sessions, clock, policy, personal=channel.personal)
            if channel.gated
            else deliverer
        )
    return deliverers


async def close_deliverers(deliverers: Mapping[str, Deliverer]) -> None:
    """Release what channels hold open (pooled SMTP connections, HTTP clients) at shutdown."""
    for deliverer in deliverers.values():
        inner = deliverer.inner if isinstance(deliverer, GatedDeliverer) else deliverer
        close = getattr(inner, "aclose", None)
        if close is not None:
            await close()
