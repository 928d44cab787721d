"""Test mode's words: a simulated path (``runtime.simulate``) as the panel shows it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from backend.i18n import _
from backend.i18n.formats import format_duration
from nodes.sdk import Message
from runtime.simulate import MAX_STEPS, SimStep, Simulation


@dataclass(frozen=True)
class TrialStep:
    number: int
    node_id: str
    result: str
    messages: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class TrialRun:
    """What the panel lists; ``trace`` marks the canvas (visited nodes, taken edges)."""

    steps: list[TrialStep]
    ending: str
    trace: Simulation = field(repr=False)


def _summary(messages: tuple[Message, ...]) -> tuple[str, ...]:
    lines = []
    for message in messages:
        payload = message.payload
        detail = payload.get("subject") or payload.get("title") or payload.get("text") or ""
        lines.append(f"{message.channel}: {detail}" if detail else message.channel)
    return tuple(lines)


def _when(moment: datetime, start: datetime) -> str:
    """How long after ``start`` (the wait's own moment), in whole units: ``+2 days 5 hours``."""
    delta = moment - start
    if delta < timedelta(hours=1):
        return _("+%(num)d min") % {"num": delta.total_seconds() // 60}
    return "+" + format_duration(delta)


def _result(step: SimStep, start: datetime) -> str:
    if step.kind == "went":
        return f"→ {step.port}"
    if step.kind == "waited" and step.until is not None:
        if step.event is not None:
            return _("waits until %(event)s at %(when)s") % {
                "event": step.event.type,
                "when": _when(step.until, step.at),
            }
        return _("waits until %(when)s") % {"when": _when(step.until, step.at)}
    if step.kind == "stuck":
        return _("waits")
    if step.kind == "ended":
        return step.end or ""
    if step.kind == "error":
        return _("error")
    return _("cannot run")


def _ending(run: Simulation) -> str:
    last = run.steps[-1] if run.steps else None
    if run.ending == "no_trigger" or last is None:
        return _("The flow has no trigger, so nobody would enter it.")
    if run.ending == "went_nowhere":
        return _("The journey completes: nothing follows this step.")
    if run.ending == "stuck":
        return _("Waits for %(event)s, which none of the test events is.") % {
            "event": last.waits_for
        }
    if run.ending == "ended":
        ended = _("exits") if last.end == "exited" else _("completes")
        return _("The journey %(ended)s: %(reason)s.") % {
            "ended": ended,
            "reason": last.reason or last.end,
        }
    if run.ending == "error":
        return _("The journey would fail here (and be retried).")
    if run.ending == "cannot_run":
        return _("The journey would fail here.")
    return _("Stopped after %(num)d steps: the flow may loop.") % {"num": MAX_STEPS}


def describe(run: Simulation, start: datetime) -> TrialRun:
    """The path in the marketer's words, times relative to when the customer entered."""
    steps = [
        TrialStep(s.number, s.node_id, _result(s, start), _summary(s.messages), s.error)
        for s in run.steps
    ]
    return TrialRun(steps, _ending(run), run)
