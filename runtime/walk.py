"""A walk: what happened to one journey during one claim, as plain rows to write.

The stepper drives node code and records each outcome here: step rows,
outbox messages, contact changes and the journey's new cursor, status and
wait. Nothing in this module does I/O; ``runtime.journal`` writes the rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from nodes.sdk import ContactChanges, Outcome, Profile, Wake, message_key
from nodes.sdk.transition import unsubscribed
from runtime.bulk_insert import plain_json
from runtime.models import JourneyStatus, OutboxStatus, StepStatus
from runtime.profiles import CustomerKey
from runtime.versions import CompiledFlow

__all__ = [
    "MAX_KEPT_ERRORS",
    "TERMINAL_STATUSES",
    "Walk",
    "changes_json",
    "message_key",
    "retry_delay",
]

TERMINAL_STATUSES = {
    JourneyStatus.completed.value,
    JourneyStatus.exited.value,
    JourneyStatus.failed.value,
    JourneyStatus.cancelled.value,
}


_WAITING = StepStatus.waiting.value
_ENDED = StepStatus.ended.value
_DONE = StepStatus.done.value
_PENDING = OutboxStatus.pending.value
# Read once: an enum member's ``value`` is a Python-level property call, and ``move`` runs per step.
_ACTIVE = JourneyStatus.active.value

# A step row keeps the errors of its first attempts; a node held back for ever
# (its package is missing) retries without end, and its row must stay small.
MAX_KEPT_ERRORS = 10


def retry_delay(attempts: int) -> timedelta:
    """Back-off after a node error: 10 s, 40 s, 160 s ... capped at an hour."""
    return timedelta(seconds=min(10 * 4 ** max(attempts - 1, 0), 3600))


@dataclass
class Walk:
    """One journey's progress during one claim."""

    row: Any
    flow: CompiledFlow
    key: CustomerKey
    profile: Profile | None
    now: datetime
    running: bool = True
    wake: Wake | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    changes: list[ContactChanges] = field(default_factory=list)
    # At most one: the goal node that ended this journey (``runtime.conversions``).
    conversions: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        row = self.row
        # The claimed row's fields that every step reads, as plain attributes: a
        # database row's attribute look-up costs a Python call each time.
        self.journey_id: int = row.id
        self.contact_id: int | None = row.contact_id
        self.flow_id: int = row.flow_id
        self.flow_version_id: int = row.flow_version_id
        self.entered_at: datetime = row.entered_at
        self.node_id: str = row.node_id
        self.visits: dict[str, int] = dict(row.visits or {})
        self.data: dict[str, Any] = dict(row.data or {})
        self.status: str = row.status
        self.attempts: int = row.attempts
        self.due_at: datetime | None = None
        self.wait_event_type: str | None = None
        self.wait_match: dict[str, Any] | None = None
        self.waiting_since: datetime | None = row.waiting_since
        self.last_error: str | None = None
        self.exit_reason: str | None = None
        self.ended_at: datetime | None = None
        self.wake_event_id: int | None = None
        # Steps from this index on were recorded after the walk moved to a new
        # visit, so their keys cannot exist yet (the cursor's visit counts and
        # the step rows are written together); earlier ones may reopen a
        # waiting or failed step row. Lets the journal insert most rows plainly.
        self.fresh_from: int | None = None
        # The data as a step's input sees it, shared by consecutive steps until
        # a node changes it (the journal serialises each distinct object once).
        self._input: dict[str, Any] | None = None
        # Every value this walk will write is plain JSON (``bulk_insert.plain_json``):
        # the journal may encode its rows the fast way. What node code returns reaches
        # the rows through a step's output (its data, reason, wait, changes), checked there.
        self.plain: bool = plain_json(self.data)
        # Whether the customer withdrew consent: read once per claim, not before every node
        # (a node's contact changes never touch consent: ``nodes.sdk.transition.apply_changes``).
        self.unsubscribed: bool = self.profile is not None and unsubscribed(self.profile)

    def input_snapshot(self) -> dict[str, Any]:
        if self._input is None:
            self._input = dict(self.data)
        return self._input

    def reopenable_steps(self) -> list[dict[str, Any]]:
        return self.steps if self.fresh_from is None else self.steps[: self.fresh_from]

    def fresh_steps(self) -> list[dict[str, Any]]:
        return [] if self.fresh_from is None else self.steps[self.fresh_from :]

    def needs_events(self) -> bool:
        return self.node_id in self.flow.event_nodes

    def record(
        self,
        node_id: str,
        node_type: str,
        visit: int,
        outcome: Outcome,
        started: datetime,
        elapsed_ms: float,
        seen: Mapping[str, Any] | None = None,
    ) -> None:
        """Turn a node's outcome into its step row and outbox rows.

        ``seen`` (the profile fields and events the node read) goes into the
        row's output, next to what it decided.
        """
        output: dict[str, Any] = {}
        if seen:
            output["seen"] = dict(seen)
        if self.wake is not None:
            output["woke"] = {
                "reason": self.wake.reason,
                "event_id": self.wake.event.id if self.wake.event else None,
            }
        if outcome.data:
            output["data"] = dict(outcome.data)
        if outcome.reason:
            output["reason"] = outcome.reason
        if outcome.wait is not None:
            wait = outcome.wait
            output["wait"] = {
                "until": wait.until.isoformat() if wait.until else None,
                "event": {"type": wait.event.type, "match": dict(wait.event.match)}
                if wait.event
                else None,
            }
        if outcome.changes is not None and not outcome.changes.is_empty():
            self.changes.append(outcome.changes)
            output["changes"] = changes_json(outcome.changes)
        if outcome.messages:
            keys = []
            contact_id = self.contact_id
            for message in outcome.messages:
                idem = message_key(self.journey_id, node_id, visit, message.key)
                keys.append(idem)
                self.messages.append(
                    {
                        "idempotency_key": idem,
                        "channel": message.channel,
                        "category": message.category,
                        "journey_id": self.journey_id,
                        "node_id": node_id,
                        "contact_id": contact_id,
                        "payload": dict(message.payload),
                        "status": _PENDING,
                        "attempts": 0,
                        "next_attempt_at": started,
                        "created_at": started,
                    }
                )
            output["messages"] = keys
        port = outcome.port
        if self.plain and not (plain_json(output) and (port is None or type(port) is str)):
            self.plain = False
        if outcome.wait is not None:
            status = _WAITING
        elif outcome.end is not None:
            status = _ENDED
            self._convert_at(node_id, started)
        else:
            status = _DONE
        self.steps.append(
            {
                "journey_id": self.journey_id,
                "node_id": node_id,
                "visit": visit,
                "node_type": node_type,
                "status": status,
                "port": outcome.port,
                "input": self.input_snapshot(),
                "output": output,
                "error": None,
                "attempts": self.attempts + 1,
                "started_at": started,
                "finished_at": None if status is _WAITING else started,
                "duration_ms": elapsed_ms,
            }
        )
        if outcome.data:
            self.data.update(outcome.data)
            self._input = None
        self.attempts = 0
        self.last_error = None

    def _convert_at(self, node_id: str, started: datetime) -> None:
        """A goal node that ends the journey is a conversion, written with its step."""
        label = self.flow.goal_label(node_id)
        if label is None:
            return
        self.conversions.append(
            {
                "journey_id": self.journey_id,
                "flow_id": self.flow.flow_id,
                "goal": node_id,
                "label": label,
                "converted_at": started,
            }
        )

    def park(self, outcome: Outcome, now: datetime) -> None:
        wait = outcome.wait
        assert wait is not None
        self.status = JourneyStatus.waiting.value
        self.due_at = wait.until
        self.wait_event_type = wait.event.type if wait.event else None
        self.wait_match = dict(wait.event.match) if wait.event else None
        self.waiting_since = now
        self.running = False

    def end(self, status: JourneyStatus, reason: str, now: datetime) -> None:
        self.status = status.value
        self.exit_reason = reason
        self.ended_at = now
        self.due_at = None
        self.wait_event_type = None
        self.wait_match = None
        self.running = False

    def interrupt(self, status: JourneyStatus, reason: str, now: datetime) -> None:
        """End the journey before its node ran; a wait in progress is closed in the history."""
        if self.plain and not plain_json(reason):
            self.plain = False
        if self.row.status == JourneyStatus.waiting.value and self.node_id in self.flow.nodes:
            self.steps.append(
                {
                    "journey_id": self.journey_id,
                    "node_id": self.node_id,
                    "visit": self.visits.get(self.node_id, 1),
                    "node_type": self.flow.nodes[self.node_id].type_id,
                    "status": StepStatus.ended.value,
                    "port": None,
                    "input": self.input_snapshot(),
                    "output": {"interrupted": reason},
                    "error": None,
                    "attempts": 1,
                    "started_at": now,
                    "finished_at": now,
                    "duration_ms": None,
                }
            )
        self.end(status, reason, now)

    def move(self, target: str) -> None:
        if self.fresh_from is None:
            self.fresh_from = len(self.steps)
        self.node_id = target
        self.visits[target] = self.visits.get(target, 0) + 1
        self.status = _ACTIVE
        self.wake = None
        self.waiting_since = None

    def pause_for_next_claim(self, now: datetime) -> None:
        """Still walking when the claim's step budget ran out: due again at once."""
        self.due_at = now
        self.running = False

    def fail_or_retry(
        self,
        error: str,
        visit: int,
        started: datetime,
        max_attempts: int,
        seen: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a node error; retry later with back-off, or fail for good at the limit.

        The row's ``output.errors`` gains this attempt's error (the journal appends it
        to those of earlier attempts when it completes the same row again).
        """
        self.attempts += 1
        self.last_error = error
        output: dict[str, Any] = {}
        if self.attempts <= MAX_KEPT_ERRORS:
            output["errors"] = [
                {"attempt": self.attempts, "at": started.isoformat(), "error": error}
            ]
        if seen:
            output["seen"] = dict(seen)
        if self.plain and not (plain_json(output) and plain_json(error)):
            self.plain = False
        self.steps.append(
            {
                "journey_id": self.journey_id,
                "node_id": self.node_id,
                "visit": visit,
                "node_type": self.flow.nodes[self.node_id].type_id
                if self.node_id in self.flow.nodes
                else "",
                "status": StepStatus.error.value,
                "port": None,
                "input": self.input_snapshot(),
                "output": output,
                "error": error,
                "attempts": self.attempts,
                "started_at": started,
                "finished_at": started,
                "duration_ms": None,
            }
        )
        self.running = False
        # A retry (automatic, or an admin's after failure) runs the same node
        # with the same wake-up; no later event may re-wake it: the wait ended.
        if self.wake is not None and self.wake.event is not None:
            self.wake_event_id = self.wake.event.id
        if self.attempts >= max_attempts:
            self.end(JourneyStatus.failed, "node kept failing", started)
            return
        self.due_at = started + retry_delay(self.attempts)
        self.wait_event_type = None
        self.wait_match = None

    def journey_values(self) -> dict[str, Any]:
        return {
            "v_id": self.journey_id,
            "v_status": self.status,
            "v_node_id": self.node_id,
            "v_visits": self.visits,
            "v_data": self.data,
            "v_due_at": self.due_at,
            "v_wait_event_type": self.wait_event_type,
            "v_wait_match": self.wait_match,
            "v_waiting_since": self.waiting_since,
            "v_attempts": self.attempts,
            "v_last_error": self.last_error,
            "v_exit_reason": self.exit_reason,
            "v_ended_at": self.ended_at,
            "v_wake_event_id": self.wake_event_id,
        }

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


def changes_json(changes: ContactChanges) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if changes.set_attributes:
        out["set"] = dict(changes.set_attributes)
    if changes.unset_attributes:
        out["unset"] = list(changes.unset_attributes)
    if changes.add_tags:
        out["add_tags"] = list(changes.add_tags)
    if changes.remove_tags:
        out["remove_tags"] = list(changes.remove_tags)
    if changes.lifecycle_stage:
        out["lifecycle_stage"] = changes.lifecycle_stage
    return out
