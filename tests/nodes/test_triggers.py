"""Triggers: what they enroll on, which events they accept, and that they move straight on."""

from __future__ import annotations

from nodes.builtin.triggers import (
    ApiTrigger,
    AudienceTrigger,
    EventTrigger,
    FormSubmitted,
    ScheduleTrigger,
)
from nodes.sdk import Trigger
from nodes.sdk.testing import config_errors, contact, event, run_node

VIP = {"attribute": "vip", "type": "boolean", "value": True}


async def test_form_trigger_accepts_only_its_form() -> None:
    config = FormSubmitted.parse_config({"form_id": 7})
    assert FormSubmitted.trigger(config) == Trigger(event_type="form.submitted")
    profile = contact()
    assert FormSubmitted.accepts(config, event("form.submitted", {"form_id": 7}), profile)
    assert not FormSubmitted.accepts(config, event("form.submitted", {"form_id": 8}), profile)
    assert not FormSubmitted.accepts(config, event("form.submitted", {"form_id": "7"}), profile)
    any_form = FormSubmitted.parse_config({})
    assert FormSubmitted.accepts(any_form, event("form.submitted", {"form_id": 8}), profile)
    assert (await run_node(FormSubmitted, {"form_id": 7})).port == "next"


async def test_event_trigger_filters_on_typed_properties() -> None:
    raw = {
        "event_type": "order.completed",
        "where": [{"property": "total", "type": "number", "op": "gt", "value": 100}],
    }
    config = EventTrigger.parse_config(raw)
    assert EventTrigger.trigger(config) == Trigger(event_type="order.completed")
    profile = contact()
    assert EventTrigger.accepts(config, event("order.completed", {"total": 250}), profile)
    assert not EventTrigger.accepts(config, event("order.completed", {"total": 50}), profile)
    assert not EventTrigger.accepts(config, event("order.completed", {}), profile)
    assert (await run_node(EventTrigger, raw)).port == "next"


def test_event_trigger_explains_bad_filters() -> None:
    errors = config_errors(
        EventTrigger,
        {"event_type": "x", "where": [{"property": "total", "type": "number", "op": "contains"}]},
    )
    assert "does not apply to number values" in errors["where.0.op"]
    assert "event_type" in config_errors(EventTrigger, {"event_type": "has spaces"})


async def test_audience_trigger_declares_its_rule() -> None:
    config = AudienceTrigger.parse_config({"audience": VIP})
    declared = AudienceTrigger.trigger(config)
    assert declared.audience == {
        "attribute": "vip",
        "type": "boolean",
        "op": "equals",
        "value": True,
    }
    assert declared.event_type is None and declared.schedule is None
    assert (await run_node(AudienceTrigger, {"audience": VIP})).port == "next"
    errors = config_errors(AudienceTrigger, {"audience": {"attribute": "vip", "op": "gt"}})
    assert "does not apply to string values" in errors["audience"]


def test_schedule_trigger_validates_cron_and_time_zone() -> None:
    config = ScheduleTrigger.parse_config(
        {"cron": "0  9 * * 1", "timezone": "Europe/Stockholm", "audience": VIP}
    )
    declared = ScheduleTrigger.trigger(config)
    assert declared.schedule == "0 9 * * 1"
    assert declared.timezone == "Europe/Stockholm"
    assert declared.audience is not None
    errors = config_errors(
        ScheduleTrigger, {"cron": "every monday", "timezone": "Mars/Olympus", "audience": VIP}
    )
    assert "Not a valid schedule 'every monday'" in errors["cron"]
    assert "Unknown time zone 'Mars/Olympus'" in errors["timezone"]
    assert "audience" in config_errors(ScheduleTrigger, {})


async def test_api_trigger_is_started_explicitly() -> None:
    assert ApiTrigger.trigger(ApiTrigger.parse_config({})) == Trigger(api=True)
    assert (await run_node(ApiTrigger)).port == "next"
