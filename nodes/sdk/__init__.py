"""The public API for writing Touchflow node types. Everything else may change.

A node type is a config model, output ports, and ``async run(ctx) -> Outcome``::

    class Shout(NodeType[ShoutConfig]):
        type_id = "acme.shout"
        name = "Shout"
        family = Family.action
        config_model = ShoutConfig

        async def run(self, ctx: Context[ShoutConfig]) -> Outcome:
            return Outcome.go(messages=(Message("webhook", {"text": ctx.config.text}),))

Unit-test a node with the test kit, ``nodes.sdk.testing``: ``run_node`` builds
the context (``contact``, ``event``, a fixed clock, ``timer_wake``...), runs the
node and returns its outcome; ``config_errors`` and ``check_declaration`` check
the config model and the declaration. docs/custom-nodes.md builds a complete,
pip-installable node package step by step.
"""

from nodes.sdk.context import (
    EVENT_HISTORY_DAYS,
    Clock,
    Context,
    EgressGuard,
    Services,
    SystemClock,
)
from nodes.sdk.delivery import (
    DELIVERED,
    DELIVERY_EVENT,
    DELIVERY_PORTS,
    FAILED,
    await_delivery,
    delivery_outcome,
    message_key,
)
from nodes.sdk.egress import EgressPolicy
from nodes.sdk.i18n import N_
from nodes.sdk.icons import ICON_NAMES, ICONS
from nodes.sdk.node import ConfigTooNew, EmptyConfig, NodeType, upgrade_config
from nodes.sdk.payloads import EmailPayload, Payload, SmsPayload, TaskPayload, WebhookPayload
from nodes.sdk.registry import ENTRY_POINT_GROUP, LoadError, NodeRegistry, Origin, discover
from nodes.sdk.types import (
    NEXT,
    ContactChanges,
    EventRecord,
    EventWait,
    Family,
    JourneyInfo,
    Message,
    Outcome,
    Port,
    Profile,
    Trigger,
    Wait,
    Wake,
)

__all__ = [
    "DELIVERED",
    "DELIVERY_EVENT",
    "DELIVERY_PORTS",
    "ENTRY_POINT_GROUP",
    "EVENT_HISTORY_DAYS",
    "FAILED",
    "ICONS",
    "ICON_NAMES",
    "NEXT",
    "N_",
    "Clock",
    "ConfigTooNew",
    "ContactChanges",
    "Context",
    "EgressGuard",
    "EgressPolicy",
    "EmailPayload",
    "EmptyConfig",
    "EventRecord",
    "EventWait",
    "Family",
    "JourneyInfo",
    "LoadError",
    "Message",
    "NodeRegistry",
    "NodeType",
    "Origin",
    "Outcome",
    "Payload",
    "Port",
    "Profile",
    "Services",
    "SmsPayload",
    "SystemClock",
    "TaskPayload",
    "Trigger",
    "Wait",
    "Wake",
    "WebhookPayload",
    "await_delivery",
    "delivery_outcome",
    "discover",
    "message_key",
    "upgrade_config",
]
