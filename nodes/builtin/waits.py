"""Wait nodes: park the journey for a while, until a moment or a window, or for an event.

A waiting node runs twice: first it returns ``Outcome.park(Wait(...))``; when
the timer fires or the event arrives the runtime runs it again with
``ctx.wake`` set, and the node chooses its port.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator

from nodes.builtin.common import Duration, Strict, TimeZoneName, invalid, zone
from nodes.sdk import (
    N_,
    NEXT,
    Context,
    EventWait,
    Family,
    NodeType,
    Outcome,
    Port,
    Profile,
    Wait,
)

__all__ = ["WaitDuration", "WaitEvent", "WaitUntil", "WaitWindow", "next_opening"]

WAIT_COLOR = "#d97706"


class DurationConfig(Duration):
    """How long to wait (amount and unit)."""


class WaitDuration(NodeType[DurationConfig]):
    type_id = "wait.duration"
    name = N_("Wait")
    description = N_("Waits a fixed time, such as 2 days, before going on.")
    family = Family.wait
    icon = "hourglass"
    color = WAIT_COLOR
    config_model = DurationConfig

    async def run(self, ctx: Context[DurationConfig]) -> Outcome:
        if ctx.wake is not None:
            return Outcome.go()
        return Outcome.park(Wait(until=ctx.now + ctx.config.delta()))


class UntilConfig(Strict):
    at: datetime = Field(
        title=N_("Date and time"),
        description=N_("Wait until this moment; customers arriving later go on at once."),
    )
    timezone: TimeZoneName = Field(
        default="UTC",
        title=N_("Time zone"),
        description=N_("The time zone the date and time are in."),
    )

    def moment(self) -> datetime:
        if self.at.tzinfo is not None:
            return self.at
        return self.at.replace(tzinfo=zone(self.timezone))


class WaitUntil(NodeType[UntilConfig]):
    type_id = "wait.until"
    name = N_("Wait until")
    description = N_("Waits until a set date and time, for example the day of a launch.")
    family = Family.wait
    icon = "calendar"
    color = WAIT_COLOR
    config_model = UntilConfig

    async def run(self, ctx: Context[UntilConfig]) -> Outcome:
        moment = ctx.config.moment()
        if ctx.wake is not None or moment <= ctx.now:
            return Outcome.go()
        return Outcome.park(Wait(until=moment))


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class WindowConfig(Strict):
    days: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS[:5]),
        min_length=1,
        title=N_("Days"),
        description=N_("The weekdays the window is open."),
    )
    start: time = Field(
        default=time(9),
        title=N_("Opens at"),
        description=N_("Local time the window opens, for example 09:00."),
    )
    end: time = Field(
        default=time(17),
        title=N_("Closes at"),
        description=N_(
            "Local time the window closes. Earlier than the opening time means "
            "the window runs overnight (quiet hours inverted)."
        ),
    )
    timezone: TimeZoneName = Field(
        default="UTC",
        title=N_("Time zone"),
        description=N_("Used for contacts without a time zone of their own."),
    )
    use_contact_timezone: bool = Field(
        default=True,
        title=N_("Use the contact's time zone"),
        description=N_("Read the window in each contact's own time zone when it is known."),
    )

    @model_validator(mode="after")
    def _not_empty(self) -> WindowConfig:
        if self.start == self.end:
            raise invalid(N_("The window opens and closes at the same time; it would never open."))
        return self

    def zone_for(self, profile: Profile) -> ZoneInfo:
        if self.use_contact_timezone and profile.timezone:
            try:
                return ZoneInfo(profile.timezone)
            except (ValueError, KeyError):
                pass  # a bad stored time zone falls back to the flow's
        return zone(self.timezone)


def _open_at(config: WindowConfig, local: datetime) -> bool:
    days = {WEEKDAYS.index(day) for day in config.days}
    now = local.time().replace(tzinfo=None)
    today = local.weekday()
    if config.start < config.end:
        return today in days and config.start <= now < config.end
    # Overnight: opened today in the evening, or opened yesterday and not yet closed.
    return (today in days and now >= config.start) or ((today - 1) % 7 in days and now < config.end)


def next_opening(config: WindowConfig, now: datetime, tz: ZoneInfo) -> datetime | None:
    """When the window next opens after ``now`` (None while it is open now)."""
    local = now.astimezone(tz)
    if _open_at(config, local):
        return None
    days = {WEEKDAYS.index(day) for day in config.days}
    for offset in range(8):
        day: date = local.date() + timedelta(days=offset)
        if day.weekday() not in days:
            continue
        opening = datetime.combine(day, config.start, tzinfo=tz)
        if opening > local:
            return opening
    raise AssertionError("a window with at least one day opens within a week")


class WaitWindow(NodeType[WindowConfig]):
    type_id = "wait.window"
    name = N_("Wait for a time window")
    description = N_(
        "Holds customers until a weekday and hour window is open, such as business "
        "hours, so messages never go out at night."
    )
    family = Family.wait
    icon = "clock"
    color = WAIT_COLOR
    config_model = WindowConfig

    async def run(self, ctx: Context[WindowConfig]) -> Outcome:
        if ctx.wake is not None:
            return Outcome.go()
        opening = next_opening(ctx.config, ctx.now, ctx.config.zone_for(ctx.profile))
        if opening is None:
            return Outcome.go()
        return Outcome.park(Wait(until=opening))


Scalar = str | int | float | bool


class EventWaitConfig(Strict):
    event_type: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        title=N_("Event"),
        description=N_("The event to wait for, for example email.opened or order.completed."),
    )
    for_node: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        title=N_("About the message of node"),
        description=N_(
            "Only count the event when it is about the message this node sent in the "
            "same journey (an open or click of that email)."
        ),
        json_schema_extra={"format": "node"},
    )
    match: dict[str, Scalar] = Field(
        default_factory=dict,
        max_length=20,
        title=N_("Only when properties equal"),
        description=N_("Event properties that must have exactly these values."),
    )
    timeout: Duration = Field(
        default_factory=lambda: Duration(amount=2, unit="days"),
        title=N_("Give up after"),
        description=N_("If the event has not happened by then, leave through 'Timed out'."),
    )


class WaitEvent(NodeType[EventWaitConfig]):
    type_id = "wait.event"
    name = N_("Wait for event")
    description = N_(
        "Waits until the customer does something (opens an email, buys), or gives up "
        "after a timeout."
    )
    family = Family.wait
    icon = "bell"
    color = WAIT_COLOR
    config_model = EventWaitConfig
    ports = (Port("next", N_("Happened")), Port("timeout", N_("Timed out")))

    async def run(self, ctx: Context[EventWaitConfig]) -> Outcome:
        config = ctx.config
        if ctx.wake is not None:
            if ctx.wake.reason == "event" and ctx.wake.event is not None:
                record = ctx.wake.event
                seen = {"event_id": record.id, "properties": dict(record.properties)}
                return Outcome.go(NEXT.id, data={ctx.journey.node_id: seen})
            return Outcome.go("timeout")
        match: dict[str, Any] = dict(config.match)
        if config.for_node:
            match.update(journey_id=ctx.journey.id, node_id=config.for_node)
        until = ctx.now + config.timeout.delta()
        return Outcome.park(Wait(until=until, event=EventWait(config.event_type, match)))
