"""Channels and SMS providers are plugins, discovered through entry points like node types.

A **channel** package declares, in its ``pyproject.toml``::

    [project.entry-points."touchflow.channels"]
    slack = "touchflow_slack:CHANNEL"        # a Channel, or a list of them

and an **SMS provider** package::

    [project.entry-points."touchflow.sms_providers"]
    acme = "touchflow_acme:AcmeProvider"     # a provider class with ``from_settings``

Built-ins register the same way, in code, first; an installed plugin with the
same name replaces a built-in. A plugin that fails to load is logged and left
out: it never stops a worker from starting. Every executor builds its channels
from this one registry (``installed_channels``), so a web process, a
``touchflow worker`` and a test runtime get the same ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal, Protocol

from runtime.delivery import Deliverer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from nodes.sdk import Clock
    from runtime.delivery.sms import SmsProvider
    from runtime.messaging.links import LinkSigner
    from runtime.settings import RuntimeSettings

__all__ = [
    "CHANNEL_GROUP",
    "SMS_PROVIDER_GROUP",
    "Channel",
    "ChannelSetup",
    "SmsProviderPlugin",
    "discover",
]

CHANNEL_GROUP = "touchflow.channels"
SMS_PROVIDER_GROUP = "touchflow.sms_providers"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChannelSetup:
    """What a channel may use to build its deliverer."""

    settings: RuntimeSettings
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    links: LinkSigner


@dataclass(frozen=True)
class Channel:
    """A delivery channel: its name (the outbox ``channel``) and how to build its deliverer.

    ``build`` returns ``None`` when the channel is not configured. ``gated``
    channels pass the send gate (suppression, consent, the ledger); ``personal``
    ones also count against the frequency caps and keep to the sending window,
    and their marketing needs the contact's consent for the channel.

    ``preview`` is how the flow editor shows a step whose node type sends on
    this channel (``NodeType.channel``): ``"email"`` runs the step for a
    contact and shows the payload's subject, preheader and body, with a test
    send; ``"text"`` counts the step's ``text`` field in SMS parts as it is
    typed; empty: no message tools.
    """

    name: str
    build: Callable[[ChannelSetup], Deliverer | None]
    gated: bool = True
    personal: bool = False
    preview: Literal["email", "text", ""] = ""


class SmsProviderPlugin(Protocol):
    """An SMS provider class: its ``name`` (the ``SMS_PROVIDER`` setting) and a constructor."""

    name: str

    @classmethod
    def from_settings(cls, settings: RuntimeSettings) -> SmsProvider | None:
        """The provider configured by ``settings``, or ``None`` when something is missing."""
        ...


def _loaded(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def discover(group: str, builtin: Iterable[Any], name: Callable[[Any], str]) -> dict[str, Any]:
    """Built-ins, then every plugin of the entry-point ``group``, by name."""
    found = {name(item): item for item in builtin}
    for entry_point in sorted(entry_points(group=group), key=lambda ep: ep.name):
        try:
            items = _loaded(entry_point.load())
            for item in items:
                found[name(item)] = item
        except Exception:  # a broken plugin must not stop start-up
            log.exception(
                "plugin %s (%s) of %s failed to load", entry_point.name, entry_point.value, group
            )
    return found
