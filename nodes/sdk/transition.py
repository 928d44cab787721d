"""The one transition: build a node's context, run the node, check its port, apply the outcome.

The engine's stepper, the editor's test mode (``runtime.simulate``) and the
test kit (``nodes.sdk.testing``) all run node code through ``transition``, so
what a test or a simulation shows is what production does. The function is
pure apart from the node's own ``run``: it returns a ``Transition`` that says
what became of the journey (went through a port, waits, ended, failed, or was
interrupted before the node ran) and what the customer and the journey's data
look like afterwards; writing that down (step rows, cursor, outbox) is the
caller's business.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from nodes.sdk.context import Clock, Context, Services
from nodes.sdk.node import NodeType
from nodes.sdk.seen import Reads
from nodes.sdk.types import ContactChanges, EventRecord, JourneyInfo, Outcome, Profile, Wake

__all__ = [
    "Transition",
    "TransitionKind",
    "UndeclaredPort",
    "apply_changes",
    "transition",
    "unsubscribed",
]

node_log = logging.getLogger("touchflow.nodes")

TransitionKind = Literal["went", "waited", "ended", "failed", "cannot_run", "interrupted"]


class UndeclaredPort(ValueError):
    """The node chose an output port its declaration does not list."""


@dataclass(frozen=True)
class Transition:
    """What one node run did to a journey.

    ``kind``: "went" (through ``outcome.port``), "waited" (``outcome.wait``),
    "ended" (``outcome.end``), "failed" (the node raised, or chose an undeclared
    port: ``error`` says which, ``exception`` holds it), "cannot_run" (the node
    type is missing or its config no longer valid: ``error`` says why) or
    "interrupted" (the flow's exit rules ended the journey before the node ran:
    ``reason``). ``profile`` and ``data`` are what the next node sees; ``seen``
    holds the profile fields and events the node read (``nodes.sdk.seen``).
    """

    kind: TransitionKind
    profile: Profile
    data: Mapping[str, Any]
    outcome: Outcome | None = None
    error: str | None = None
    exception: BaseException | None = field(default=None, compare=False)
    reason: str | None = None
    elapsed_ms: float = 0.0
    seen: Mapping[str, Any] = field(default_factory=dict)

    @property
    def port(self) -> str | None:
        return self.outcome.port if self.outcome is not None else None


_T = TypeVar("_T")


def _built(cls: type[_T], **fields: Any) -> _T:
    """An instance of one of the frozen dataclasses above from every one of its fields.

    What its ``__init__`` makes, without setting each field through
    ``object.__setattr__`` (the price of ``frozen``): this runs three times per
    step, and the values were checked when they were made.
    """
    made = object.__new__(cls)
    # The keyword dictionary is this call's own: it becomes the instance's, uncopied.
    object.__setattr__(made, "__dict__", fields)
    return made


def _check_built(cls: type, names: str) -> None:
    # ``_built`` needs every field: a field added to one of these classes must be added below.
    if [f.name for f in dataclasses.fields(cls)] != names.split():
        raise TypeError(f"transition builds {cls.__name__} with the fields {names!r}")


_check_built(JourneyInfo, "id flow_id flow_version_id node_id visit entered_at data")
_check_built(Context, "config journey profile events clock log services wake")
_check_built(Transition, "kind profile data outcome error exception reason elapsed_ms seen")


def unsubscribed(profile: Profile) -> bool:
    """Email consent (or consent for everything) explicitly withdrawn."""
    for channel in ("email", "all"):
        entry = profile.consent.get(channel)
        if isinstance(entry, dict) and entry.get("granted") is False:
            return True
    return False


def apply_changes(profile: Profile, changes: ContactChanges) -> Profile:
    """The profile as the next node should see it after ``changes`` (the DB write is separate)."""
    unset = set(changes.unset_attributes)
    attributes = {k: v for k, v in profile.attributes.items() if k not in unset}
    attributes.update(changes.set_attributes)
    removed = set(changes.remove_tags)
    tags = [t for t in profile.tags if t not in removed]
    tags += [t for t in changes.add_tags if t not in tags]
    return Profile(
        kind=profile.kind,
        id=profile.id,
        email=profile.email,
        phone=profile.phone,
        first_name=profile.first_name,
        last_name=profile.last_name,
        attributes=attributes,
        tags=tuple(tags),
        lifecycle_stage=changes.lifecycle_stage or profile.lifecycle_stage,
        timezone=profile.timezone,
        consent=profile.consent,
        owner_id=profile.owner_id,
    )


async def transition(
    node: NodeType[Any] | None,
    config: BaseModel | None,
    ports: Collection[str],
    *,
    journey_id: int,
    flow_id: int,
    flow_version_id: int,
    node_id: str,
    visit: int,
    entered_at: datetime,
    data: Mapping[str, Any],
    profile: Profile,
    events: tuple[EventRecord, ...],
    clock: Clock,
    services: Services,
    wake: Wake | None = None,
    exit_on: Collection[str] = (),
    problem: str | None = None,
    log: logging.Logger = node_log,
) -> Transition:
    """Run ``node`` (with its validated ``config``) for one journey at ``node_id``.

    ``ports`` are the ports the node declares for this config; choosing any
    other fails the step. ``exit_on`` are the exit rules that apply at this node
    (the engine leaves "unsubscribed" out while a transactional message still lies
    ahead, see ``CompiledFlow.exit_rules``): with "unsubscribed" a customer who
    withdrew consent leaves before the node runs.
    A node that cannot run (``node`` or ``config`` is None) gives "cannot_run"
    with ``problem``. Exceptions from the node never escape: they are the
    "failed" transition.
    """
    if "unsubscribed" in exit_on and unsubscribed(profile):
        return Transition("interrupted", profile, data, reason="unsubscribed")
    if node is None or config is None:
        return Transition("cannot_run", profile, data, error=problem or "node cannot run")
    reads = Reads()
    watched_profile, watched_events = reads.watch(profile, events)
    journey = _built(
        JourneyInfo,
        id=journey_id,
        flow_id=flow_id,
        flow_version_id=flow_version_id,
        node_id=node_id,
        visit=visit,
        entered_at=entered_at,
        data=MappingProxyType(data if isinstance(data, dict) else dict(data)),
    )
    ctx: Context[Any] = _built(
        Context,
        config=config,
        journey=journey,
        profile=watched_profile,
        events=watched_events,
        clock=clock,
        log=logging.LoggerAdapter(log, {"journey_id": journey_id, "node_id": node_id}),
        services=services,
        wake=wake,
    )
    tick = time.perf_counter()
    try:
        outcome: Outcome = await node.run(ctx)
        if outcome.port is not None and outcome.port not in ports:
            raise UndeclaredPort(
                f"{type(node).__name__} chose port {outcome.port!r}, which it does not declare "
                f"(it declares {sorted(ports)})"
            )
    except Exception as exc:
        log.warning("node %s failed for journey %s: %s", node_id, journey_id, exc)
        error = f"{type(exc).__name__}: {exc}"
        return Transition("failed", profile, data, error=error, exception=exc, seen=reads.as_json())
    elapsed_ms = (time.perf_counter() - tick) * 1000
    if outcome.changes is not None and not outcome.changes.is_empty():
        profile = apply_changes(profile, outcome.changes)
    if outcome.data:
        data = {**data, **outcome.data}
    if outcome.wait is not None:
        kind: TransitionKind = "waited"
    elif outcome.end is not None:
        kind = "ended"
    else:
        kind = "went"
    return _built(
        Transition,
        kind=kind,
        profile=profile,
        data=data,
        outcome=outcome,
        error=None,
        exception=None,
        reason=outcome.reason,
        elapsed_ms=elapsed_ms,
        seen=reads.as_json(),
    )
