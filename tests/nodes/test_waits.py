"""Waits: they park until the right moment and choose the right port when woken."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from nodes.builtin.waits import WaitDuration, WaitEvent, WaitUntil, WaitWindow
from nodes.sdk import EventWait
from nodes.sdk.testing import (
    DEFAULT_NOW,
    config_errors,
    contact,
    event,
    event_wake,
    run_node,
    timer_wake,
)

STOCKHOLM = ZoneInfo("Europe/Stockholm")


async def test_duration_parks_then_continues() -> None:
    outcome = await run_node(WaitDuration, {"amount": 90, "unit": "minutes"})
    assert outcome.wait is not None
    assert outcome.wait.until == DEFAULT_NOW + timedelta(minutes=90)
    assert outcome.wait.event is None
    woken = await run_node(WaitDuration, {"amount": 90, "unit": "minutes"}, wake=timer_wake())
    assert woken.port == "next"
    assert "amount" in config_errors(WaitDuration, {"amount": 0})
    assert "unit" in config_errors(WaitDuration, {"unit": "fortnights"})


async def test_until_waits_for_a_local_moment_or_goes_on_when_past() -> None:
    config = {"at": "2030-01-10T08:00:00", "timezone": "Europe/Stockholm"}
    outcome = await run_node(WaitUntil, config)
    assert outcome.wait is not None
    assert outcome.wait.until == datetime(2030, 1, 10, 7, 0, tzinfo=UTC)
    late = await run_node(WaitUntil, config, now=datetime(2030, 1, 11, tzinfo=UTC))
    assert late.port == "next"
    assert (await run_node(WaitUntil, config, wake=timer_wake())).port == "next"
    assert "at" in config_errors(WaitUntil, {})


async def test_window_goes_on_at_once_inside_business_hours() -> None:
    # DEFAULT_NOW is Monday 09:00 UTC: inside Mon-Fri 09-17 UTC.
    outcome = await run_node(WaitWindow, {"timezone": "UTC", "use_contact_timezone": False})
    assert outcome.port == "next"


async def test_window_waits_for_the_next_opening_in_the_contacts_time_zone() -> None:
    # Friday 18:30 in Stockholm: closed until Monday 09:00 Stockholm time.
    friday_evening = datetime(2030, 1, 11, 17, 30, tzinfo=UTC)
    outcome = await run_node(
        WaitWindow, {}, now=friday_evening, profile=contact(timezone="Europe/Stockholm")
    )
    assert outcome.wait is not None
    assert outcome.wait.until == datetime(2030, 1, 14, 9, 0, tzinfo=STOCKHOLM)
    # The same moment for a contact in New York (12:30 on Friday) is inside the window.
    inside = await run_node(
        WaitWindow, {}, now=friday_evening, profile=contact(timezone="America/New_York")
    )
    assert inside.port == "next"


async def test_overnight_window_and_bad_contact_time_zone() -> None:
    config = {"days": ["sat"], "start": "22:00", "end": "06:00", "timezone": "UTC"}
    # Sunday 03:00 is still inside Saturday night's window.
    sunday_night = datetime(2030, 1, 13, 3, 0, tzinfo=UTC)
    profile = contact(timezone="Not/AZone")
    assert (await run_node(WaitWindow, config, now=sunday_night, profile=profile)).port == "next"
    monday = await run_node(WaitWindow, config, profile=profile)
    assert monday.wait is not None
    assert monday.wait.until == datetime(2030, 1, 12, 22, 0, tzinfo=UTC)


def test_window_that_never_opens_is_refused() -> None:
    errors = config_errors(WaitWindow, {"start": "09:00", "end": "09:00"})
    assert "never open" in errors["__root__"]
    assert "days" in config_errors(WaitWindow, {"days": []})


async def test_event_wait_matches_the_message_of_a_node_and_times_out() -> None:
    config = {"event_type": "email.opened", "for_node": "confirm", "timeout": {"amount": 2}}
    outcome = await run_node(WaitEvent, config, journey_id=42)
    assert outcome.wait is not None
    assert outcome.wait.until == DEFAULT_NOW + timedelta(days=2)
    assert outcome.wait.event == EventWait("email.opened", {"journey_id": 42, "node_id": "confirm"})

    opened = event("email.opened", {"journey_id": 42, "node_id": "confirm"}, id=9)
    woken = await run_node(WaitEvent, config, node_id="wait", wake=event_wake(opened))
    assert woken.port == "next"
    assert woken.data == {"wait": {"event_id": 9, "properties": dict(opened.properties)}}
    assert (await run_node(WaitEvent, config, wake=timer_wake())).port == "timeout"


async def test_event_wait_with_property_match() -> None:
    outcome = await run_node(
        WaitEvent, {"event_type": "order.completed", "match": {"sku": "guide"}}
    )
    assert outcome.wait is not None and outcome.wait.event is not None
    assert outcome.wait.event.match == {"sku": "guide"}
    assert "event_type" in config_errors(WaitEvent, {})
