"""Conditions and the audience filter evaluate the rule language per customer."""

from __future__ import annotations

from nodes.builtin.conditions import EngagementCheck, RuleCondition
from nodes.builtin.selection import AudienceFilter
from nodes.sdk.testing import config_errors, contact, event, run_node

PRO_BUYER = {
    "all": [
        {"attribute": "plan", "op": "equals", "value": "pro"},
        {"event": "order.completed", "at_least": 2, "within_days": 30},
    ]
}


async def test_rule_condition_reads_attributes_and_events() -> None:
    pro = contact(attributes={"plan": "Pro"})
    orders = [event("order.completed", days_ago=d) for d in (1, 10)]
    assert (
        await run_node(RuleCondition, {"rule": PRO_BUYER}, profile=pro, events=orders)
    ).port == "yes"
    one_order = orders[:1]
    assert (
        await run_node(RuleCondition, {"rule": PRO_BUYER}, profile=pro, events=one_order)
    ).port == "no"
    old = [event("order.completed", days_ago=d) for d in (1, 40)]
    assert (
        await run_node(RuleCondition, {"rule": PRO_BUYER}, profile=pro, events=old)
    ).port == "no"
    basic = contact(attributes={"plan": "basic"})
    assert (
        await run_node(RuleCondition, {"rule": PRO_BUYER}, profile=basic, events=orders)
    ).port == "no"


def test_rule_condition_errors_point_at_the_clause() -> None:
    bad = {"all": [{"attribute": "plan", "value": "pro"}, {"field": "shoe_size", "value": 4}]}
    assert (
        "all[1].field: unknown field 'shoe_size'"
        in config_errors(RuleCondition, {"rule": bad})["rule"]
    )


def test_event_conditions_must_stay_within_the_loaded_history() -> None:
    ever = {"any": [{"attribute": "vip", "type": "boolean", "value": True}, {"event": "x"}]}
    long = {"not": {"event": "x", "within_days": 365}}
    for rule in (ever, long):
        message = config_errors(RuleCondition, {"rule": rule})["rule"]
        assert "look at the last 90 days" in message
    recent = {"event": "x", "within_days": 90}
    assert config_errors(RuleCondition, {"rule": recent}) == {}
    assert "audience" in config_errors(AudienceFilter, {"audience": ever})


async def test_engagement_checks_the_message_of_this_journey() -> None:
    config = {"engagement": "clicked", "node_id": "welcome"}
    mine = event("email.clicked", {"journey_id": 5, "node_id": "welcome"})
    other_journey = event("email.clicked", {"journey_id": 6, "node_id": "welcome"})
    other_node = event("email.clicked", {"journey_id": 5, "node_id": "reminder"})
    opened_only = event("email.opened", {"journey_id": 5, "node_id": "welcome"})
    assert (await run_node(EngagementCheck, config, journey_id=5, events=[mine])).port == "yes"
    for events in ([other_journey], [other_node], [opened_only], []):
        assert (await run_node(EngagementCheck, config, journey_id=5, events=events)).port == "no"
    recent = {**config, "within_days": 3}
    old_click = event("email.clicked", {"journey_id": 5, "node_id": "welcome"}, days_ago=5)
    assert (await run_node(EngagementCheck, recent, journey_id=5, events=[old_click])).port == "no"
    assert "node_id" in config_errors(EngagementCheck, {"engagement": "opened"})


async def test_a_click_answers_opened_too() -> None:
    """Images blocked: no open pixel, but the click proves the email was opened."""
    opened = {"engagement": "opened", "node_id": "welcome"}
    click = event("email.clicked", {"journey_id": 5, "node_id": "welcome"})
    assert (await run_node(EngagementCheck, opened, journey_id=5, events=[click])).port == "yes"
    elsewhere = event("email.clicked", {"journey_id": 5, "node_id": "reminder"})
    assert (await run_node(EngagementCheck, opened, journey_id=5, events=[elsewhere])).port == "no"


async def test_audience_filter_lets_members_through_and_exits_the_rest() -> None:
    config = {"audience": {"field": "tags", "op": "contains", "value": "VIP"}}
    member = await run_node(AudienceFilter, config, profile=contact(tags=("vip",)))
    assert member.port == "next"
    outsider = await run_node(AudienceFilter, config, profile=contact(tags=("trial",)))
    assert outsider.end == "exited"
    assert outsider.reason == "not in the audience"
