"""The flow goal as a form: what a marketer types, read into ``runtime.goals.FlowGoal``.

The form covers the common goals: an event by type, a custom attribute equal
to a value, or a lifecycle stage reached. Filters on the event's properties
stay with the flow's JSON (the public API and flow import) and are kept when
the form saves the same event again.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from backend.i18n import N_, _
from backend.web.posted import Posted
from nodes.builtin.contact import LIFECYCLE_STAGES
from runtime.goals import FlowGoal
from runtime.rules import AttributeCondition

__all__ = ["GOAL_KINDS", "STAGE_LABELS", "goal_values", "read_goal"]

GOAL_KINDS = {
    "": N_("No goal: count goal steps only"),
    "event": N_("An event happens"),
    "attribute": N_("An attribute gets a value"),
    "stage": N_("A lifecycle stage is reached"),
}
STAGE_LABELS = dict(
    zip(
        LIFECYCLE_STAGES,
        (
            N_("Subscriber"),
            N_("Lead"),
            N_("Marketing qualified lead"),
            N_("Sales qualified lead"),
            N_("Opportunity"),
            N_("Customer"),
            N_("Evangelist"),
        ),
        strict=True,
    )
)
_FIELD_OF = {"event_type": "event_type", "attribute": "attribute", "stage": "stage"}


def goal_values(goal: FlowGoal | None) -> dict[str, str]:
    """The form's fields for a saved goal."""
    if goal is None:
        return {"kind": "", "label": "", "within_days": "30"}
    attribute = goal.attribute
    return {
        "kind": goal.kind,
        "label": goal.label,
        "event_type": goal.event_type or "",
        "attribute": attribute.attribute if attribute else "",
        "value": "" if attribute is None or attribute.value is None else str(attribute.value),
        "stage": goal.stage or "",
        "within_days": str(goal.within_days),
    }


def read_goal(form: Posted, saved: FlowGoal | None) -> FlowGoal | None:
    """The goal the form describes (None: no goal); problems go to ``form.errors``."""
    kind = form.get("kind")
    if kind not in GOAL_KINDS:
        form.error("kind", _("Choose what counts as success."))
        return None
    if not kind:
        return None
    try:
        days = int(form.get("within_days") or "30")
    except ValueError:
        days = 0
    if not 1 <= days <= 365:
        form.error("within_days", _("Give a number of days from 1 to 365."))
    raw: dict[str, Any] = {
        "kind": kind,
        "label": form.get("label") or _("Converted"),
        "within_days": days,
    }
    if kind == "event":
        raw["event_type"] = form.get("event_type") or None
        if saved is not None and saved.kind == "event" and saved.event_type == raw["event_type"]:
            raw["where"] = [item.model_dump(mode="json") for item in saved.where]
        if not raw["event_type"]:
            form.error("event_type", _("Name the event, e.g. purchase or demo.booked."))
    elif kind == "attribute":
        name = form.get("attribute")
        try:
            raw["attribute"] = AttributeCondition(attribute=name, value=form.get("value"))
        except ValidationError:
            form.error(
                "attribute",
                _("Name the attribute with letters, digits and _ (e.g. plan), and give its value."),
            )
    else:
        stage = form.get("stage")
        if stage not in STAGE_LABELS:
            form.error("stage", _("Choose one of the lifecycle stages."))
        raw["stage"] = stage
    if not form.ok:
        return None
    try:
        return FlowGoal.model_validate(raw)
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else "kind"
        form.error(
            _FIELD_OF.get(field, "label"),
            _("Check this field: %(why)s") % {"why": exc.errors()[0]["msg"]},
        )
        return None
