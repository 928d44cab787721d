"""``/api/v1`` identify and track, single and batch: how other systems send customer data.

Batch calls check every item first, then write the good ones set-based (a
few statements per batch, not per item): one bad item is reported with its
index and reason, writes nothing at all, and nothing else in the batch is
lost. A single call is a batch of one, through the same code. A request that
fails as a whole (the database went away) wrote nothing: the transaction
rolls back, and a retry with the same idempotency keys acts once.

Batch identify takes its locks on people in one order
(``backend.contacts.bulk``), but two batches declaring the same new
attributes in other orders, or naming one contact by email in one and by
external id in the other, can still wait on each other. PostgreSQL then
cancels one (a deadlock); that request rolls back and runs again, so the
caller gets its answer rather than a 500.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import msgspec
from litestar import Request, Response, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.enums import MediaType
from litestar.exceptions import ValidationException
from litestar.params import JSONBody
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.api.responses import BODY, errors
from backend.audit import INGESTION, unaudited
from backend.auth.guards import current_principal, role
from backend.auth.principal import Principal
from backend.contacts.bulk import Outcome, identify_many
from backend.contacts.identify import AttributeSchema, identify
from backend.contacts.intake import TrackIntake
from backend.contacts.normalize import InvalidValue
from backend.contacts.schemas import IdentifyIn, TrackIn
from backend.contacts.track import EventRuntime, track_many
from backend.deps import Actor, Db
from backend.models import Role
from runtime.events import IngestResult

MAX_BATCH = 1000
M = TypeVar("M", bound=BaseModel)
SINGLE_BODY_LIMIT = 256 * 1024
# Where ``backend.api.fast`` leaves the outcome of a call it wrote but does not answer.
TRACK_OUTCOME = "touchflow.track_outcome"
BATCH_BODY_LIMIT = 8 * 1024 * 1024
# Deadlock detected, serialization failure: the transaction lost to another, nothing it did stays.
_RETRYABLE = {"40P01", "40001"}
# A request chosen as the victim may meet the same survivors once more; more means something else.
_ATTEMPTS = 3


def provide_runtime(state: State) -> EventRuntime:
    runtime: EventRuntime = state.runtime
    return runtime


def intake_of(state: State) -> TrackIntake:
    """The process's group-commit intake for single track calls, made on first use."""
    intake: TrackIntake | None = state.get("track_intake")
    if intake is None or intake.runtime is not state.runtime:
        intake = state.track_intake = TrackIntake(state.sessions, state.runtime)
    return intake


RUNTIME = {"runtime": Provide(provide_runtime, sync_to_thread=False)}
RuntimeDep = NamedDependency[EventRuntime]


class IdentifyOut(BaseModel):
    contact_id: int
    created: bool


class TrackOut(BaseModel):
    event_id: int
    duplicate: bool = Field(description="True when this idempotency key was already stored.")
    enrolled: int = Field(description="Journeys the event started.")
    woken: int = Field(description="Waiting journeys the event woke.")


class BatchIn(BaseModel):
    items: list[dict[str, Any]] = Field(
        max_length=MAX_BATCH,
        min_length=1,
        description=(
            "Up to 1,000 items, each shaped like the single call's body; "
            "each is validated on its own."
        ),
    )


class ItemError(BaseModel):
    code: str
    message: str
    field: str | None = None


class ItemResult(BaseModel):
    index: int
    ok: bool
    result: IdentifyOut | TrackOut | None = None
    error: ItemError | None = None


class BatchOut(BaseModel):
    accepted: int
    rejected: int
    results: list[ItemResult]


def _item_error(exc: ValidationError | InvalidValue) -> ItemError:
    if isinstance(exc, InvalidValue):
        return ItemError(code="invalid_value", message=exc.message, field=exc.field)
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or None
    return ItemError(code="validation_failed", message=first["msg"], field=where)


def _refuse(exc: ValidationError | InvalidValue) -> ValidationException:
    error = _item_error(exc)
    return ValidationException(detail=error.message, extra={"field": error.field})


def source_of(actor: Principal) -> str:
    """The events' ``source`` for calls with ``actor``'s key."""
    return f"api:{actor.label}"


async def _identify_one(
    db: AsyncSession, data: IdentifyIn, schema: AttributeSchema, actor: Principal
) -> IdentifyOut:
    result = await identify(db, data, source=source_of(actor), schema=schema)
    assert result is not None  # create and update are both allowed here
    return IdentifyOut(contact_id=result.contact.id, created=result.created)


def _track_out(outcome: IngestResult) -> TrackOut:
    return TrackOut(
        event_id=outcome.event_id,
        duplicate=outcome.duplicate,
        enrolled=len(outcome.enrolled),
        woken=len(outcome.woken),
    )


@post(
    "/identify",
    opt=role(Role.marketer) | unaudited(INGESTION),
    request_max_body_size=SINGLE_BODY_LIMIT,
    responses=errors(*BODY),
    status_code=200,
)
async def identify_contact(db: Db, actor: Actor, data: JSONBody[IdentifyIn]) -> IdentifyOut:
    """Create or update a contact, matched by ``external_id`` first, then ``email``."""
    try:
        return await _identify_one(db, data, await AttributeSchema.load(db), actor)
    except (ValidationError, InvalidValue) as exc:
        raise _refuse(exc) from exc


@post(
    "/track",
    opt=role(Role.marketer) | unaudited(INGESTION),
    request_max_body_size=SINGLE_BODY_LIMIT,
    responses=errors(*BODY),
    status_code=202,
)
async def track_event(request: Request[Any, Any, Any], data: JSONBody[TrackIn]) -> TrackOut:
    """Append an event; flows it triggers start and journeys waiting for it wake at once.

    Calls arriving together share a transaction (``backend.contacts.intake``);
    the answer comes after the commit that stored this event.
    """
    # No injected dependencies: resolving two of them costs a task group per
    # call, as much as the rest of the handler on this hot path.
    actor = current_principal(request)
    assert actor is not None  # the role guard let the call in
    # A call ``backend.api.fast`` already wrote, and hands over to answer its error.
    outcome = cast("IngestResult | Exception | None", request.scope.get(TRACK_OUTCOME))
    if outcome is None:
        outcome = await intake_of(request.app.state).track(data, source=source_of(actor))
    if isinstance(outcome, InvalidValue):
        raise _refuse(outcome)
    if isinstance(outcome, Exception):
        raise outcome
    return _track_out(outcome)


@post(
    "/batch/identify",
    opt=role(Role.marketer) | unaudited(INGESTION),
    request_max_body_size=BATCH_BODY_LIMIT,
    responses=errors(*BODY),
    status_code=200,
)
async def identify_batch(db: Db, actor: Actor, data: JSONBody[BatchIn]) -> BatchOut:
    """Up to 1,000 identify items; each is validated and reported on its own."""
    checked = _shapes(IdentifyIn, data.items)
    good = [item for item in checked if isinstance(item, IdentifyIn)]
    outcomes = iter(await _identify_all(db, good, actor))
    results: list[ItemResult] = []
    for index, item in enumerate(checked):
        outcome = item if not isinstance(item, IdentifyIn) else next(outcomes)
        if isinstance(outcome, (ValidationError, InvalidValue)):
            results.append(ItemResult(index=index, ok=False, error=_item_error(outcome)))
        else:
            assert outcome is not None  # create and update are both allowed here
            out = IdentifyOut(contact_id=outcome.contact.id, created=outcome.created)
            results.append(ItemResult(index=index, ok=True, result=out))
    return _batch(results)


async def _identify_all(
    db: AsyncSession, items: list[IdentifyIn], actor: Principal
) -> list[Outcome]:
    """``identify_many`` in a transaction of its own, run again when PostgreSQL cancelled it."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            # Loaded each time: the attributes a cancelled attempt declared were rolled back.
            schema = await AttributeSchema.load(db)
            return await identify_many(db, items, source=source_of(actor), schema=schema)
        except DBAPIError as exc:
            state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
            if state not in _RETRYABLE or attempt == _ATTEMPTS:
                raise
            await db.rollback()
    raise AssertionError("unreachable: the last attempt returns or raises")


@post(
    "/batch/track",
    opt=role(Role.marketer) | unaudited(INGESTION),
    request_max_body_size=BATCH_BODY_LIMIT,
    responses=errors(*BODY),
    status_code=202,
    dependencies=RUNTIME,
)
async def track_batch(
    db: Db, actor: Actor, runtime: RuntimeDep, data: JSONBody[BatchIn]
) -> Response[BatchOut]:
    """Up to 1,000 events; each is validated and reported on its own, all stored set-based."""
    checked = _shapes(TrackIn, data.items)
    # A shape error is reported from ``checked``; the placeholder only keeps the indexes.
    shaped = [item if isinstance(item, TrackIn) else InvalidValue("", "") for item in checked]
    outcomes = await track_many(db, runtime, shaped, source=source_of(actor))
    results: list[dict[str, Any]] = []
    for index, (item, outcome) in enumerate(zip(checked, outcomes, strict=True)):
        problem = item if isinstance(item, ValidationError) else outcome
        if isinstance(problem, (ValidationError, InvalidValue)):
            error = _item_error(problem).model_dump()
            results.append({"index": index, "ok": False, "result": None, "error": error})
        else:
            assert isinstance(outcome, IngestResult)
            out = {
                "event_id": outcome.event_id,
                "duplicate": outcome.duplicate,
                "enrolled": len(outcome.enrolled),
                "woken": len(outcome.woken),
            }
            results.append({"index": index, "ok": True, "result": out, "error": None})
    return _batch_body(results)


def _batch_body(results: list[dict[str, Any]]) -> Response[BatchOut]:
    """A ``BatchOut`` written from plain rows of its shape, encoded at once.

    Building a thousand models and dumping them again cost a tenth of a
    batch's CPU; the rows are the models' fields, in their order, so the
    answer and the documented schema are the same as the models would give.
    """
    accepted = sum(1 for r in results if r["ok"])
    body = {"accepted": accepted, "rejected": len(results) - accepted, "results": results}
    response = Response(msgspec.json.encode(body), status_code=202, media_type=MediaType.JSON)
    return cast("Response[BatchOut]", response)


def _shapes(model: type[M], raw: list[dict[str, Any]]) -> list[M | ValidationError]:
    """Each item checked against ``model``: the model, or why it does not fit."""
    checked: list[M | ValidationError] = []
    for item in raw:
        try:
            checked.append(model.model_validate(item))
        except ValidationError as exc:
            checked.append(exc)
    return checked


def _batch(results: list[ItemResult]) -> BatchOut:
    accepted = sum(1 for r in results if r.ok)
    return BatchOut(accepted=accepted, rejected=len(results) - accepted, results=results)


ROUTES = [identify_contact, track_event, identify_batch, track_batch]
