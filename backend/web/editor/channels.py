"""Which channel a step sends on and what the editor offers for it, asked of the channel registry.

A node type names its channel (``NodeType.channel``); the channel (built in or
an installed ``touchflow.channels`` plugin) says how its steps are previewed
and whether marketing on it needs the contact's consent. The editor names no
node type, so a plugin's step on a plugin's channel gets the same message
tools and warnings as the built-in email and SMS steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request

from nodes.sdk import NodeRegistry
from runtime.delivery.plugins import Channel
from runtime.messaging.channels import installed_channels


@dataclass(frozen=True)
class Sending:
    """A step's channel as the editor sees it."""

    channel: str
    preview: str  # "email", "text" or "" (see runtime.delivery.plugins.Channel)
    consent: bool  # marketing on it is held back without the contact's consent


def channels_of(request: Request[Any, Any, Any]) -> dict[str, Channel]:
    """The installed channels, read from the entry points once per app."""
    state = request.app.state
    channels: dict[str, Channel] | None = getattr(state, "editor_channels", None)
    if channels is None:
        channels = installed_channels()
        state.editor_channels = channels
    return channels


def sending(registry: NodeRegistry, channels: dict[str, Channel], type_id: str) -> Sending | None:
    """The channel steps of ``type_id`` send on, or None (not a sending step, or not installed)."""
    node_type = registry.get(type_id)
    name = node_type.channel if node_type is not None else None
    channel = channels.get(name) if name else None
    if name is None or channel is None:
        return None
    return Sending(name, channel.preview, channel.personal)


def consent_channels(registry: NodeRegistry, channels: dict[str, Channel]) -> dict[str, str]:
    """``type_id -> channel`` for the node types whose marketing needs consent to be sent."""
    found = {t.type_id: sending(registry, channels, t.type_id) for t in registry}
    return {type_id: s.channel for type_id, s in found.items() if s is not None and s.consent}
