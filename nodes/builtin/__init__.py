"""The built-in node library, registered through the ``touchflow.nodes`` entry point.

Every type here uses only the public SDK (``nodes.sdk``) and the rule language
(``runtime.rules``); the engine knows none of them by name.
"""

from typing import Any

from nodes.builtin.actions import NotifyOwner, SendEmail, SendSms, SendWebhook, ShowWebContent
from nodes.builtin.conditions import EngagementCheck, RuleCondition
from nodes.builtin.contact import SetLifecycle, TagContact, UpdateContact
from nodes.builtin.goals import Conversion
from nodes.builtin.selection import AudienceFilter
from nodes.builtin.splits import ABSplit
from nodes.builtin.triggers import (
    ApiTrigger,
    AudienceTrigger,
    EventTrigger,
    FormSubmitted,
    ScheduleTrigger,
)
from nodes.builtin.waits import WaitDuration, WaitEvent, WaitUntil, WaitWindow
from nodes.sdk import NodeType

NODE_TYPES: list[type[NodeType[Any]]] = [
    FormSubmitted,
    EventTrigger,
    AudienceTrigger,
    ScheduleTrigger,
    ApiTrigger,
    WaitDuration,
    WaitUntil,
    WaitWindow,
    WaitEvent,
    RuleCondition,
    EngagementCheck,
    AudienceFilter,
    ABSplit,
    SendEmail,
    SendSms,
    NotifyOwner,
    SendWebhook,
    UpdateContact,
    TagContact,
    SetLifecycle,
    ShowWebContent,
    Conversion,
]

__all__ = ["NODE_TYPES"]
