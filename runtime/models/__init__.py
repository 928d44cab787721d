"""The tables the runtime runs on: flows and versions, journeys and steps, events,
contacts and visitors, the outbox, deliveries and suppressions, call-list tasks,
the results rollup.

``backend.models`` re-exports them beside the web app's own tables (users, audit,
forms, personalization), all on one ``Base`` metadata.
"""

from runtime.models.base import NAMING_CONVENTION, Base, BigId, Json, UTCDateTime, utcnow
from runtime.models.contacts import Channel, Contact, ContactConsent, Visitor
from runtime.models.events import Event
from runtime.models.flows import Flow, FlowStatus, FlowVersion, LifecyclePhase
from runtime.models.goals import JourneyConversion
from runtime.models.journeys import (
    LIVE_STATUSES,
    Journey,
    JourneyLease,
    JourneyStatus,
    Step,
    StepStatus,
)
from runtime.models.messaging import Delivery, DeliveryState, Suppression, SuppressionReason
from runtime.models.outbox import OutboxMessage, OutboxStatus
from runtime.models.results import FlowResult, Metric, ResultsFloor, ResultsMark
from runtime.models.routing import RoutingMember
from runtime.models.tasks import Task, TaskStatus

__all__ = [
    "LIVE_STATUSES",
    "NAMING_CONVENTION",
    "Base",
    "BigId",
    "Channel",
    "Contact",
    "ContactConsent",
    "Delivery",
    "DeliveryState",
    "Event",
    "Flow",
    "FlowResult",
    "FlowStatus",
    "FlowVersion",
    "Journey",
    "JourneyConversion",
    "JourneyLease",
    "JourneyStatus",
    "Json",
    "LifecyclePhase",
    "Metric",
    "OutboxMessage",
    "OutboxStatus",
    "ResultsFloor",
    "ResultsMark",
    "RoutingMember",
    "Step",
    "StepStatus",
    "Suppression",
    "SuppressionReason",
    "Task",
    "TaskStatus",
    "UTCDateTime",
    "Visitor",
    "utcnow",
]
