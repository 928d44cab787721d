"""Contact actions return changes; the goal ends the journey as a conversion."""

from __future__ import annotations

from nodes.builtin.contact import SetLifecycle, TagContact, UpdateContact
from nodes.builtin.goals import Conversion
from nodes.sdk import ContactChanges, Trigger
from nodes.sdk.testing import config_errors, contact, event, run_node


async def test_update_contact_sets_merged_values_and_clears() -> None:
    config = {
        "set_attributes": {"plan": "{{ trigger.plan }}", "score": 10, "vip": True},
        "unset_attributes": ["trial"],
    }
    outcome = await run_node(
        UpdateContact, config, data={"trigger": {"properties": {"plan": "pro"}}}
    )
    assert outcome.changes == ContactChanges(
        set_attributes={"plan": "pro", "score": 10, "vip": True}, unset_attributes=("trial",)
    )
    assert "Choose at least one" in config_errors(UpdateContact, {})["__root__"]
    both = {"set_attributes": {"a": 1}, "unset_attributes": ["a"]}
    assert "a is both set and cleared" in config_errors(UpdateContact, both)["__root__"]
    assert "set_attributes.bad key.[key]" in config_errors(
        UpdateContact, {"set_attributes": {"bad key": 1}}
    )


async def test_tag_adds_and_removes() -> None:
    outcome = await run_node(TagContact, {"add": [" webinar "], "remove": ["trial"]})
    assert outcome.changes == ContactChanges(add_tags=("webinar",), remove_tags=("trial",))
    assert "__root__" in config_errors(TagContact, {})
    assert "__root__" in config_errors(TagContact, {"add": ["x"], "remove": ["x"]})


async def test_lifecycle_only_moves_forward_unless_told() -> None:
    lead = await run_node(
        SetLifecycle, {"stage": "customer"}, profile=contact(lifecycle_stage="lead")
    )
    assert lead.changes == ContactChanges(lifecycle_stage="customer")
    customer = contact(lifecycle_stage="customer")
    kept = await run_node(SetLifecycle, {"stage": "lead"}, profile=customer, node_id="stage")
    assert kept.changes is None and kept.data == {"stage": {"kept": "customer"}}
    forced = await run_node(
        SetLifecycle, {"stage": "lead", "only_forward": False}, profile=customer
    )
    assert forced.changes == ContactChanges(lifecycle_stage="lead")
    assert "stage" in config_errors(SetLifecycle, {"stage": "king"})


async def test_goal_ends_the_journey_and_declares_its_event() -> None:
    raw = {
        "label": "Purchased",
        "event_type": "order.completed",
        "where": [{"property": "total", "type": "number", "op": "gt", "value": 0}],
    }
    config = Conversion.parse_config(raw)
    assert Conversion.trigger(config) == Trigger(event_type="order.completed")
    assert Conversion.accepts(config, event("order.completed", {"total": 5}), contact())
    assert not Conversion.accepts(config, event("order.completed", {"total": 0}), contact())
    assert Conversion.trigger(Conversion.parse_config({})) is None
    outcome = await run_node(Conversion, raw)
    assert outcome.end == "completed"
    assert outcome.reason == "goal reached: Purchased"
