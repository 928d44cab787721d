"""The editor's pure parts: form generation from pydantic models, graph edits, geometry."""

from __future__ import annotations

from typing import Any

import pytest

from backend.web.editor.fields import config_errors, config_fields, read_config
from backend.web.editor.geometry import edge_path, midpoint, node_height, port_offset
from backend.web.editor.history import EditHistory
from backend.web.editor.ops import EditRefused, add_node, connect, new_node_id
from backend.web.editor.view import build_canvas, palette
from nodes.sdk import NodeRegistry, discover
from tests.backend.editor.nodes import EveryField, EveryFieldConfig
from tests.runtime.nodes import TEST_NODE_TYPES


def _registry() -> NodeRegistry:
    registry = NodeRegistry()
    for node_type in [*TEST_NODE_TYPES, EveryField]:
        registry.add(node_type)
    return registry


def test_fields_follow_the_config_model() -> None:
    fields = {f.name: f for f in config_fields(EveryFieldConfig, {"hours": 6})}
    assert {name: f.widget for name, f in fields.items()} == {
        "subject": "text",
        "hours": "integer",
        "share": "number",
        "mode": "select",
        "channel": "select",
        "urgent": "checkbox",
        "tags": "list",
        "rule": "json",
        "body": "textarea",
        "owner": "text",
        "delay.amount": "integer",
        "delay.unit": "select",
    }
    assert fields["subject"].required and not fields["hours"].required
    assert fields["subject"].help == "What the message is about."
    assert fields["hours"].value == "6"  # the config's value, not the default
    assert fields["share"].value == "0.5"  # the default where the config has none
    assert fields["mode"].choices == (("fast", "fast"), ("slow", "slow"))
    assert fields["channel"].choices == (("email", "email"), ("sms", "sms"))
    assert fields["rule"].nullable and fields["owner"].nullable
    assert fields["delay.amount"].label == "Delay: amount"
    assert fields["delay.amount"].value == "2"


def test_nested_fields_read_back_into_their_model() -> None:
    config, errors = read_config(EveryFieldConfig, {"delay.amount": "0", "delay.unit": "hours"})
    assert config["delay"] == {"amount": 0, "unit": "hours"} and not errors
    # pydantic's message, as a person reads it (and translatable).
    assert config_errors(EveryFieldConfig, config)["delay.amount"] == "Use 1 or more."
    untouched, _errors = read_config(EveryFieldConfig, {"subject": "Hello"})
    assert "delay" not in untouched  # all empty: the model's default applies


def test_every_installed_node_type_gets_a_palette_item_and_a_form() -> None:
    registry = discover()
    graph: dict[str, Any] = {}
    for node_type in registry:
        graph, _node_id = add_node(graph, node_type.type_id, 0, 0, registry)
        fields = config_fields(node_type.config_model, {})
        assert len({f.name for f in fields}) == len(fields), node_type.type_id
        # Reading an empty form back never crashes, whatever the model.
        read_config(node_type.config_model, {})
    canvas = build_canvas(graph, registry)
    assert len(canvas.nodes) == len(registry.types)
    listed = {item.type_id for _f, _l, items in palette(registry) for item in items}
    assert listed == set(registry.types)


def test_reading_a_form_converts_values_and_reports_bad_json() -> None:
    config, errors = read_config(
        EveryFieldConfig,
        {"subject": " Hi ", "hours": "x", "tags": "a,,b", "rule": "[1,", "owner": ""},
    )
    assert config["subject"] == "Hi"
    assert config["hours"] == "x"
    assert config["tags"] == ["a", "b"]
    assert config["urgent"] is False  # an unchecked checkbox is not sent at all
    assert config["owner"] is None
    assert "share" not in config  # empty with a default: the default applies
    assert set(errors) == {"rule"}
    messages = config_errors(EveryFieldConfig, config)
    assert set(messages) == {"subject", "hours", "rule"}


def test_new_nodes_get_readable_unique_ids() -> None:
    registry = _registry()
    graph, first = add_node({}, "test.email", 0, 0, registry)
    graph, second = add_node(graph, "test.email", 10, 0, registry)
    assert (first, second) == ("email", "email_2")
    assert new_node_id(graph, "acme.we ird!") == "we_ird"
    with pytest.raises(EditRefused):
        add_node(graph, "test.email", 1e12, 0, registry)


def test_connect_needs_a_port_the_node_has() -> None:
    registry = _registry()
    graph, cond = add_node({}, "test.every_field", 0, 0, registry)
    graph, mail = add_node(graph, "test.email", 300, 0, registry)
    connected = connect(graph, cond, "no", mail, registry)
    assert connected["edges"] == [{"source": cond, "port": "no", "target": mail}]
    assert graph["edges"] == []  # edits never change their input
    with pytest.raises(EditRefused, match="no output called next"):
        connect(graph, cond, "next", mail, registry)
    with pytest.raises(EditRefused, match="no longer on the canvas"):
        connect(graph, cond, "yes", "gone", registry)


def test_canvas_marks_invalid_nodes_and_places_ports() -> None:
    registry = _registry()
    graph, _node_id = add_node({}, "test.every_field", 40, 60, registry)
    canvas = build_canvas(graph, registry)
    (node,) = canvas.nodes
    assert [p.id for p in node.ports] == ["yes", "no"]
    assert node.height == node_height(2)
    assert [p.offset for p in node.ports] == [port_offset(i, 2, node.height) for i in (0, 1)]
    assert any("subject" in e for e in node.errors)
    assert canvas.flow_errors == ["the flow needs a trigger to enroll anyone"]
    assert node.color == "#7c3aed" and node.glyph == "?"
    families = [family for family, _label, _items in palette(registry)]
    assert families[0] == "trigger" and "condition" in families and "selection" not in families


def test_edge_geometry() -> None:
    assert edge_path(0, 0, 200, 100) == "M 0 0 C 100 0, 100 100, 200 100"
    # A short forward hop down to the next step is an S within its ends, not a loop back.
    assert edge_path(0, 0, 10, 80) == "M 0 0 C 5 0, 5 80, 10 80"
    # Back to a step on the left: the handles reach out around the nodes.
    assert edge_path(0, 0, -10, 0).startswith("M 0 0 C 60 0, -70 0")
    assert midpoint(0, 0, 200, 100) == (100, 50)
    # Far from the origin the curve keeps its tenth of a pixel.
    assert edge_path(123456.7, 0, 123756.7, 0).startswith("M 123456.7 0 C 123606.7 0")


def test_history_applies_only_at_its_revision() -> None:
    history = EditHistory()
    history.edited(1, {"nodes": []}, 1)
    history.edited(1, {"nodes": ["a"]}, 2)
    assert history.can_undo(1, 2) and not history.can_undo(1, 1)
    assert history.peek(1, 2, redo=False) == {"nodes": ["a"]}
    history.stepped(1, {"nodes": ["a", "b"]}, 3, redo=False)
    assert history.peek(1, 3, redo=False) == {"nodes": []}
    assert history.peek(1, 3, redo=True) == {"nodes": ["a", "b"]}
    # Someone else's save (revision 4 from another process) makes this history stale.
    assert not history.can_undo(1, 4)


def test_history_keeps_within_its_byte_budget() -> None:
    history = EditHistory(budget=2000)
    big = {"nodes": [{"id": f"n{i}", "label": str(i) * 40} for i in range(40)]}
    for flow_id in range(1, 6):
        for revision in range(1, 4):
            history.edited(flow_id, big, revision)
    # The flows edited last keep their history; the oldest lost theirs first.
    assert history.can_undo(5, 3)
    assert not history.can_undo(1, 3)
    assert history.peek(5, 3, redo=False) == big
