"""``/api/v1`` identify and track, single and batch: how other systems send customer data.

Batch calls validate and store every item on its own (a savepoint each): one
bad item is reported with its index and reason, and nothing else in the batch
is lost; a rejected item writes nothing at all.
"""

from __future__ import annotations

from typing import Any

from litestar import post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ValidationException
from litestar.params import JSONBody
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.api.responses import BODY, errors
from backend.auth.guards import role
from backend.auth.principal import Principal
from backend.contacts.normalize import InvalidValue
from backend.contacts.schemas import IdentifyIn, TrackIn
from backend.contacts.service import AttributeSchema, identify
from backend.contacts.track import EventRuntime, track
from backend.deps import Actor, Db
from backend.models import Role

MAX_BATCH = 1000
SINGLE_BODY_LIMIT = 256 * 1024
BATCH_BODY_LIMIT = 8 * 1024 * 1024


def provide_runtime(state: State) -> EventRuntime:
    runtime: EventRuntime = state.runtime
    return runtime


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


def _source(actor: Principal) -> str:
    return f"api:{actor.label}"


async def _identify_one(
    db: AsyncSession, data: IdentifyIn, schema: AttributeSchema, actor: Principal
) -> IdentifyOut:
    result = await identify(db, data, source=_source(actor), schema=schema)
    assert result is not None  # create and update are both allowed here
    return IdentifyOut(contact_id=result.contact.id, created=result.created)


async def _track_one(
    db: AsyncSession, data: TrackIn, runtime: EventRuntime, actor: Principal
) -> TrackOut:
    async with db.begin_nested():
        outcome = await track(db, runtime, data, source=_source(actor))
    return TrackOut(
        event_id=outcome.event_id,
        duplicate=outcome.duplicate,
        enrolled=len(outcome.enrolled),
        woken=len(outcome.woken),
    )


@post(
    "/identify",
    opt=role(Role.marketer),
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
    opt=role(Role.marketer),
    request_max_body_size=SINGLE_BODY_LIMIT,
    responses=errors(*BODY),
    status_code=202,
    dependencies=RUNTIME,
)
async def track_event(
    db: Db, actor: Actor, runtime: RuntimeDep, data: JSONBody[TrackIn]
) -> TrackOut:
    """Append an event; flows it triggers start and journeys waiting for it wake at once."""
    try:
        return await _track_one(db, data, runtime, actor)
    except (ValidationError, InvalidValue) as exc:
        raise _refuse(exc) from exc


@post(
    "/batch/identify",
    opt=role(Role.marketer),
    request_max_body_size=BATCH_BODY_LIMIT,
    responses=errors(*BODY),
    status_code=200,
)
async def identify_batch(db: Db, actor: Actor, data: JSONBody[BatchIn]) -> BatchOut:
    """Up to 1,000 identify items; each is validated and reported on its own."""
    schema = await AttributeSchema.load(db)
    results: list[ItemResult] = []
    for index, raw in enumerate(data.items):
        try:
            out = await _identify_one(db, IdentifyIn.model_validate(raw), schema, actor)
        except (ValidationError, InvalidValue) as exc:
            results.append(ItemResult(index=index, ok=False, error=_item_error(exc)))
        else:
            results.append(ItemResult(index=index, ok=True, result=out))
    return _batch(results)


@post(
    "/batch/track",
    opt=role(Role.marketer),
    request_max_body_size=BATCH_BODY_LIMIT,
    responses=errors(*BODY),
    status_code=202,
    dependencies=RUNTIME,
)
async def track_batch(
    db: Db, actor: Actor, runtime: RuntimeDep, data: JSONBody[BatchIn]
) -> BatchOut:
    """Up to 1,000 events; each is validated and reported on its own."""
    results: list[ItemResult] = []
    for index, raw in enumerate(data.items):
        try:
            out = await _track_one(db, TrackIn.model_validate(raw), runtime, actor)
        except (ValidationError, InvalidValue) as exc:
            results.append(ItemResult(index=index, ok=False, error=_item_error(exc)))
        else:
            results.append(ItemResult(index=index, ok=True, result=out))
    return _batch(results)


def _batch(results: list[ItemResult]) -> BatchOut:
    accepted = sum(1 for r in results if r.ok)
    return BatchOut(accepted=accepted, rejected=len(results) - accepted, results=results)


ROUTES = [identify_contact, track_event, identify_batch, track_batch]
