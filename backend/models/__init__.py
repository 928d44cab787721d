"""Database models. Importing this package registers every table on ``Base.metadata``."""

from backend.models.audit import AuditEntry
from backend.models.base import Base, utcnow
from backend.models.contacts import Channel, Contact, ContactConsent, Visitor
from backend.models.events import Event
from backend.models.flows import Flow, FlowStatus, FlowVersion, LifecyclePhase
from backend.models.ingestion import AttributeDefinition, Form, ImportJob, InboundSource
from backend.models.journeys import LIVE_STATUSES, Journey, JourneyStatus, Step, StepStatus
from backend.models.lifecycle import (
    LifecyclePhaseRow,
    LifecycleProcess,
    LifecycleSettings,
    Touchpoint,
    TouchpointCategory,
    TouchpointLink,
    TouchpointStatus,
)
from backend.models.messaging import Delivery, DeliveryState, Suppression, SuppressionReason
from backend.models.outbox import OutboxMessage, OutboxStatus
from backend.models.personalization import (
    Audience,
    ContentBlock,
    ContentRule,
    ContentVariant,
    SlotAssignment,
)
from backend.models.tasks import Task, TaskStatus
from backend.models.users import ApiKey, Role, SiteKey, User
from runtime.models.routing import RoutingMember

__all__ = [
    "LIVE_STATUSES",
    "ApiKey",
    "AttributeDefinition",
    "Audience",
    "AuditEntry",
    "Base",
    "Channel",
    "Contact",
    "ContactConsent",
    "ContentBlock",
    "ContentRule",
    "ContentVariant",
    "Delivery",
    "DeliveryState",
    "Event",
    "Flow",
    "FlowStatus",
    "FlowVersion",
    "Form",
    "ImportJob",
    "InboundSource",
    "Journey",
    "JourneyStatus",
    "LifecyclePhase",
    "LifecyclePhaseRow",
    "LifecycleProcess",
    "LifecycleSettings",
    "OutboxMessage",
    "OutboxStatus",
    "Role",
    "RoutingMember",
    "SiteKey",
    "SlotAssignment",
    "Step",
    "StepStatus",
    "Suppression",
    "SuppressionReason",
    "Task",
    "TaskStatus",
    "Touchpoint",
    "TouchpointCategory",
    "TouchpointLink",
    "TouchpointStatus",
    "User",
    "Visitor",
    "utcnow",
]
