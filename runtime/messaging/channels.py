"""The built-in delivery channels, assembled from settings and wrapped in the send gate.

- ``email``: SMTP through a connection pool when ``SMTP_HOST`` is set; without
  it, outside production, the development mail catcher (``CaptureDeliverer``)
  keeps every email for the Outbox page instead of sending it;
- ``sms``: when ``SMS_PROVIDER`` is set (``twilio``, ``46elks`` or ``generic``);
- ``webhook`` and ``task``: always.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.settings import Settings
from nodes.sdk import Clock
from runtime.delivery import Deliverer
from runtime.delivery.email import CaptureDeliverer, EmailDeliverer
from runtime.delivery.sms import (
    ElksProvider,
    GenericProvider,
    SmsDeliverer,
    SmsProvider,
    TwilioProvider,
)
from runtime.delivery.task import TaskDeliverer
from runtime.delivery.webhook import WebhookDeliverer
from runtime.egress import EgressClient, EgressPolicy
from runtime.messaging.gate import GatedDeliverer, GatePolicy
from runtime.messaging.links import LinkSigner

__all__ = ["built_in_deliverers", "close_deliverers", "link_signer", "sms_provider"]


def link_signer(settings: Settings) -> LinkSigner:
    """The signer for tracking, unsubscribe and SMS callback links."""
    return LinkSigner(secret=settings.resolved_secret_key(), base_url=settings.base_url)


def sms_provider(settings: Settings) -> SmsProvider | None:
    """The configured SMS provider, or ``None`` when SMS is not set up."""
    name = settings.sms_provider
    user, password = settings.sms_username or "", settings.sms_password or ""
    if name == "twilio":
        return TwilioProvider(user, password, base_url=settings.sms_url)
    if name == "46elks":
        return ElksProvider(user, password, base_url=settings.sms_url)
    if name == "generic" and settings.sms_url:
        return GenericProvider(settings.sms_url, token=settings.sms_password)
    return None


def _email(settings: Settings, links: LinkSigner) -> Deliverer | None:
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
            links=links,
            tracking=settings.email_tracking,
        )
    if settings.environment != "production":
        return CaptureDeliverer(sender=settings.mail_from, links=links)
    return None


def built_in_deliverers(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], clock: Clock
) -> dict[str, Deliverer]:
    """Every configured channel; email, SMS and webhooks pass through the send gate."""
    links = link_signer(settings)
    policy = GatePolicy.from_settings(settings)
    egress = EgressPolicy.parse(settings.egress_allow)
    raw: dict[str, Deliverer] = {"webhook": WebhookDeliverer(EgressClient(egress), clock=clock)}
    email = _email(settings, links)
    if email is not None:
        raw["email"] = email
    provider = sms_provider(settings)
    if provider is not None:
        raw["sms"] = SmsDeliverer(
            provider,
            sender=settings.sms_sender,
            region=settings.sms_default_region,
            status_url=links.sms_status_url,
            client=EgressClient(egress),
        )
    deliverers: dict[str, Deliverer] = {
        name: GatedDeliverer(d, sessions, clock, policy) for name, d in raw.items()
    }
    deliverers["task"] = TaskDeliverer(
        sessions, clock, base_url=settings.base_url, email_owners=settings.task_email_owner
    )
    return deliverers


async def close_deliverers(deliverers: Mapping[str, Deliverer]) -> None:
    """Release what channels hold open (pooled SMTP connections, HTTP clients) at shutdown."""
    for deliverer in deliverers.values():
        inner = deliverer.inner if isinstance(deliverer, GatedDeliverer) else deliverer
        close = getattr(inner, "aclose", None)
        if close is not None:
            await close()
