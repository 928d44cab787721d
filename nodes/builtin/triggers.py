"""Trigger nodes: how customers enter a flow.

A trigger only declares how enrollment happens (``trigger()``, and ``accepts``
for event filters); the runtime does the enrolling. When a journey starts, the
trigger node runs once and moves on. Conventions the rest of the system keeps:

- a form submission is ingested as event ``form.submitted`` with property
  ``form_id`` (the form's number);
- schedule and audience triggers are enrolled set-based by ``runtime.entries``;
- API triggers are enrolled by ``Runtime.start`` (the public API's "start flow" call).
"""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any

from croniter import croniter
from pydantic import AfterValidator, BaseModel, Field

from nodes.builtin.common import Strict, TimeZoneName, invalid
from nodes.sdk import N_, Context, EventRecord, Family, NodeType, Outcome, Profile, Trigger
from runtime.rules import PropertyFilter, RuleClock, RuleField, matches_filter, rule_to_json

__all__ = [
    "ApiTrigger",
    "AudienceTrigger",
    "EventTrigger",
    "FormSubmitted",
    "ScheduleTrigger",
]

FORM_EVENT = "form.submitted"
TRIGGER_COLOR = "#16a34a"


class _Entry(NodeType[Any]):
    """Every trigger moves straight on: the work happened when the customer was enrolled."""

    family = Family.trigger
    color = TRIGGER_COLOR

    async def run(self, ctx: Context[Any]) -> Outcome:
        return Outcome.go()


class FormConfig(Strict):
    form_id: int | None = Field(
        default=None,
        ge=1,
        title=N_("Form"),
        description=N_("Start when this form is submitted. Leave empty for any form."),
        json_schema_extra={"format": "form"},
    )


class FormSubmitted(_Entry):
    type_id = "trigger.form_submitted"
    name = N_("Form submitted")
    description = N_("Starts when someone submits one of your forms.")
    icon = "clipboard-check"
    config_model = FormConfig

    @classmethod
    def trigger(cls, config: BaseModel) -> Trigger:
        return Trigger(event_type=FORM_EVENT)

    @classmethod
    def accepts(cls, config: BaseModel, event: EventRecord, profile: Profile) -> bool:
        assert isinstance(config, FormConfig)
        if config.form_id is None:
            return True
        form_id = event.properties.get("form_id")
        return (
            isinstance(form_id, int)
            and not isinstance(form_id, bool)
            and (form_id == config.form_id)
        )


def event_passes(filters: tuple[PropertyFilter, ...], record: EventRecord) -> bool:
    """Does the event's properties pass every filter (rule-language semantics)?"""
    at = record.occurred_at
    clock = RuleClock(at if at.tzinfo else at.replace(tzinfo=UTC))
    return all(matches_filter(record.properties, item, clock) for item in filters)


class EventConfig(Strict):
    event_type: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        title=N_("Event"),
        description=N_("The event that starts the flow, for example order.completed."),
    )
    where: tuple[PropertyFilter, ...] = Field(
        default=(),
        max_length=20,
        title=N_("Only when"),
        description=N_("Conditions on the event's properties; all must hold."),
    )


class EventTrigger(_Entry):
    type_id = "trigger.event"
    name = N_("Event received")
    description = N_("Starts when an event of a given type arrives, optionally filtered.")
    icon = "bolt"
    config_model = EventConfig

    @classmethod
    def trigger(cls, config: BaseModel) -> Trigger:
        assert isinstance(config, EventConfig)
        return Trigger(event_type=config.event_type)

    @classmethod
    def accepts(cls, config: BaseModel, event: EventRecord, profile: Profile) -> bool:
        assert isinstance(config, EventConfig)
        return event_passes(config.where, event)


class AudienceConfig(Strict):
    audience: RuleField = Field(
        title=N_("Audience"),
        description=N_("Contacts enter when they first match these conditions."),
    )


class AudienceTrigger(_Entry):
    type_id = "trigger.audience_entered"
    name = N_("Entered audience")
    description = N_(
        "Starts for each contact in the audience: those already in it when the flow is "
        "published, then everyone who comes to match. With re-entry 'again after N days' "
        "a contact who still matches enters again after N days."
    )
    icon = "users"
    config_model = AudienceConfig

    @classmethod
    def trigger(cls, config: BaseModel) -> Trigger:
        assert isinstance(config, AudienceConfig)
        return Trigger(audience=rule_to_json(config.audience))


def _check_cron(expression: str) -> str:
    expression = " ".join(expression.split())
    if len(expression.split(" ")) != 5 or not croniter.is_valid(expression):
        raise invalid(
            N_(
                "Not a valid schedule {cron}: use five fields, minute hour day month "
                "weekday, for example '0 9 * * 1' for Mondays at 9:00."
            ),
            cron=repr(expression),
        )
    return expression


Cron = Annotated[str, AfterValidator(_check_cron)]


class ScheduleConfig(Strict):
    cron: Cron = Field(
        default="0 9 * * 1",
        title=N_("Schedule"),
        description=N_("When to run, in cron form: minute hour day month weekday."),
    )
    timezone: TimeZoneName = Field(
        default="UTC",
        title=N_("Time zone"),
        description=N_("The schedule's times are read in this time zone."),
    )
    audience: RuleField = Field(
        title=N_("Audience"),
        description=N_("Everyone matching these conditions at each run enters the flow."),
    )


class ScheduleTrigger(_Entry):
    type_id = "trigger.schedule"
    name = N_("On a schedule")
    description = N_("Enrolls everyone in an audience at set times (a newsletter, a digest).")
    icon = "calendar-clock"
    config_model = ScheduleConfig

    @classmethod
    def trigger(cls, config: BaseModel) -> Trigger:
        assert isinstance(config, ScheduleConfig)
        return Trigger(
            schedule=config.cron,
            timezone=config.timezone,
            audience=rule_to_json(config.audience),
        )


class ApiTrigger(_Entry):
    type_id = "trigger.api"
    name = N_("API call")
    description = N_(
        "Starts when your systems call the Touchflow API for a contact; "
        "the call's data is available to the flow."
    )
    icon = "code"

    @classmethod
    def trigger(cls, config: BaseModel) -> Trigger:
        return Trigger(api=True)
