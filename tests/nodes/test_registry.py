"""The built-in library as the registry and the editor see it: discovered, complete, consistent."""

from __future__ import annotations

import pytest

from nodes.builtin import NODE_TYPES
from nodes.sdk import Family, NodeType, discover
from nodes.sdk.testing import check_declaration

EXPECTED = {
    "trigger.form_submitted",
    "trigger.event",
    "trigger.audience_entered",
    "trigger.schedule",
    "trigger.api",
    "wait.duration",
    "wait.until",
    "wait.window",
    "wait.event",
    "condition.rule",
    "condition.engagement",
    "selection.audience",
    "split.ab",
    "action.email",
    "action.sms",
    "action.task",
    "action.webhook",
    "action.update_contact",
    "action.tag",
    "action.lifecycle",
    "action.web_content",
    "goal.conversion",
}


def test_the_entry_point_registers_every_builtin_without_errors() -> None:
    registry = discover()
    builtin_errors = [e for e in registry.errors if "nodes.builtin" in e.source]
    assert builtin_errors == []
    assert set(registry.types) >= EXPECTED
    assert {t.type_id for t in NODE_TYPES} == EXPECTED


def test_every_family_has_a_builtin_in_the_palette() -> None:
    grouped = discover().by_family()
    for family in Family:
        assert any(t.type_id in EXPECTED for t in grouped[family]), family


@pytest.mark.parametrize("node_type", NODE_TYPES, ids=lambda t: t.type_id)
def test_declaration_is_complete(node_type: type[NodeType[object]]) -> None:
    assert check_declaration(node_type) == []  # type: ignore[arg-type]
    assert node_type.type_id.split(".")[0] == node_type.family.value


@pytest.mark.parametrize("node_type", NODE_TYPES, ids=lambda t: t.type_id)
def test_config_schema_forbids_unknown_keys(node_type: type[NodeType[object]]) -> None:
    schema = node_type.config_model.model_json_schema()
    assert schema.get("additionalProperties") is False
    assert schema.get("type") == "object"


def test_rule_fields_are_marked_for_the_editor() -> None:
    """Config fields holding a rule carry ``format: rule`` (the editor shows a live count)."""
    by_id = {t.type_id: t for t in NODE_TYPES}
    for type_id, field in [
        ("condition.rule", "rule"),
        ("selection.audience", "audience"),
        ("trigger.schedule", "audience"),
        ("trigger.audience_entered", "audience"),
    ]:
        schema = by_id[type_id].config_model.model_json_schema()
        assert schema["properties"][field]["format"] == "rule"
