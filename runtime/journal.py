"""The journal: writing a batch of walks in one transaction (DESIGN principle 3).

``write_walks`` first re-takes the journeys' row locks and keeps only those
this claim still owns (an event, an admin or another worker may have taken a
journey over meanwhile): it deletes the claim's own lease rows and keeps the
journeys whose row was still there (``runtime.claims`` has the protocol).
Then it writes every step row, contact change, outbox message and cursor
with a few bulk statements. On PostgreSQL the check, the step rows and the
conversions are one statement (``_PG_RECORD``) and the cursors one more, the
rows travelling as one JSON parameter each (``runtime.bulk_insert.json_rows``:
one driver value however many rows); SQLite uses plain executemany,
statement by statement.
Step rows at a fresh visit are plain INSERTs; only the first steps of a walk,
which may complete a waiting or failed row, need the costlier ON CONFLICT.
If the batch transaction fails, each journey is tried on its own so one bad
row cannot hold the others back.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, bindparam, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from nodes.sdk import ContactChanges
from runtime.bulk_insert import json_rows, json_rows_select, json_stamp
from runtime.claims import LIVE_SQL
from runtime.models import JourneyStatus
from runtime.profiles import CustomerKey
from runtime.sql import (
    CONTACTS,
    CONVERSIONS,
    JOURNEYS,
    LEASES,
    OUTBOX,
    STEPS,
    VISITORS,
    among,
    dialect_name,
    upsert_insert,
)
from runtime.walk import TERMINAL_STATUSES, Walk, retry_delay

if TYPE_CHECKING:
    from runtime.engine import Runtime

__all__ = ["write_walks"]

log = logging.getLogger(__name__)

_JOURNEY_FIELDS = (
    "status",
    "node_id",
    "visits",
    "data",
    "due_at",
    "wait_event_type",
    "wait_match",
    "waiting_since",
    "attempts",
    "last_error",
    "exit_reason",
    "ended_at",
    "wake_event_id",
)
_STEP_FIELDS = (
    "journey_id",
    "node_id",
    "visit",
    "node_type",
    "status",
    "port",
    "input",
    "output",
    "error",
    "attempts",
    "started_at",
    "finished_at",
    "duration_ms",
)
# A step row may be completed again only while it waits or failed. Its output is
# the new one, with the errors of earlier attempts kept in front of this one's
# (each write brings at most one: ``Walk.fail_or_retry``).
_PG_OUTPUT = (
    "CASE WHEN steps.output -> 'errors' IS NULL THEN excluded.output "
    "ELSE jsonb_set(excluded.output, '{errors}', (steps.output -> 'errors') "
    "|| COALESCE(excluded.output -> 'errors', CAST('[]' AS JSONB))) END"
)
_SQLITE_OUTPUT = (
    "CASE WHEN json_extract(steps.output, '$.errors') IS NULL THEN excluded.output "
    "WHEN json_extract(excluded.output, '$.errors[0]') IS NULL "
    "THEN json_set(excluded.output, '$.errors', json_extract(steps.output, '$.errors')) "
    "ELSE json_set(excluded.output, '$.errors', json_insert(json_extract(steps.output, "
    "'$.errors'), '$[#]', json_extract(excluded.output, '$.errors[0]'))) END"
)
_REOPEN = (
    "ON CONFLICT (journey_id, node_id, visit) DO UPDATE SET status = excluded.status, "
    f"port = excluded.port, output = {_PG_OUTPUT}, error = excluded.error, "
    "attempts = excluded.attempts, finished_at = excluded.finished_at, "
    "duration_ms = excluded.duration_ms WHERE steps.status IN ('waiting', 'error')"
)


def _journey_update(terminal: bool) -> Any:
    values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in _JOURNEY_FIELDS}
    # No event wait is SQL NULL, as on PostgreSQL, not the JSON value ``null``.
    values["wait_match"] = bindparam("v_wait_match", type_=JSON(none_as_null=True))
    values.update(updated_at=bindparam("v_updated_at"))
    if terminal:
        values["entry_key"] = None
    return update(JOURNEYS).where(JOURNEYS.c.id == bindparam("v_id")).values(values)


_UPDATE_LIVE = _journey_update(terminal=False)
_UPDATE_ENDED = _journey_update(terminal=True)

# PostgreSQL: the rows travel as one JSON parameter each (``runtime.bulk_insert.json_rows``),
# so the driver handles one text value per statement however many rows it carries.
_CONVERSION_FIELDS = ("journey_id", "flow_id", "goal", "label", "converted_at")


def _owned_rows(table: Any, columns: tuple[str, ...], param: str, after: str = "") -> str:
    """The rows of ``param`` (``json_rows``) whose journey this claim still owns, in order;
    ``after`` names a sub-statement to run to its end first."""
    # A scalar subquery over ``after`` is an init plan: it runs before the first row here.
    first = f" AND (SELECT count(*) FROM {after}) >= 0" if after else ""  # noqa: S608
    return (
        f"SELECT {', '.join(columns)} "  # noqa: S608 - fixed column tables, no input
        f"FROM ({json_rows_select(table, columns, param, ordinal=True)}) AS s "
        f"WHERE s.journey_id IN (SELECT journey_id FROM owned){first} ORDER BY s.at"
    )


# One statement: lock the live journeys (journey rows first), end this claim's leases on them
# (lease rows second), and insert the step rows and conversions of exactly the journeys whose
# lease it ended. It returns those journeys; their cursors are written next (``_PG_JOURNEYS``).
_PG_RECORD = text(
    # ``locked`` is one array, read once (an init plan) by the lease delete's index scan: a
    # join with it could become a nested loop, quadratic in the batch, on a poor estimate.
    "WITH locked AS (SELECT array_agg(id) AS ids FROM (SELECT id FROM journeys "  # noqa: S608
    f"WHERE id = ANY(CAST(:ids AS BIGINT[])) AND {LIVE_SQL.text} FOR NO KEY UPDATE) AS j), "
    "owned AS (DELETE FROM journey_leases "
    "WHERE journey_id = ANY(CAST((SELECT ids FROM locked) AS BIGINT[])) AND owner = :owner "
    "RETURNING journey_id), "
    f"reopened AS (INSERT INTO steps ({', '.join(_STEP_FIELDS)}) "
    f"{_owned_rows(STEPS, _STEP_FIELDS, 'reopen')} {_REOPEN} RETURNING 1), "
    # After the reopened rows, so a walk's rows get ids in the order it took its steps.
    f"fresh AS (INSERT INTO steps ({', '.join(_STEP_FIELDS)}) "
    f"{_owned_rows(STEPS, _STEP_FIELDS, 'fresh', after='reopened')}), "
    f"converted AS (INSERT INTO conversions ({', '.join(_CONVERSION_FIELDS)}) "
    f"{_owned_rows(CONVERSIONS, _CONVERSION_FIELDS, 'conversions')} "
    "ON CONFLICT (journey_id) DO NOTHING) "
    "SELECT journey_id FROM owned"
)

Stamp = Callable[[datetime | None], datetime | str | None]


def _stamp(plain: bool) -> Stamp:
    """How the rows of a batch carry timestamps: ``json.dumps`` (``plain`` False) takes text."""
    return _utc_stamp if plain else json_stamp


_JOURNEY_ROW = ("id", *_JOURNEY_FIELDS)
_TERMINAL_SQL = ", ".join(f"'{status}'" for status in sorted(TERMINAL_STATUSES))
_PG_JOURNEYS = text(
    "UPDATE journeys SET "  # noqa: S608 - fixed column tables, no input
    + ", ".join(f"{n} = v.{n}" for n in _JOURNEY_FIELDS)
    + f", entry_key = CASE WHEN v.status IN ({_TERMINAL_SQL}) THEN NULL ELSE journeys.entry_key END"
    + f", updated_at = :now FROM ({json_rows_select(JOURNEYS, _JOURNEY_ROW)}) AS v"
    + " WHERE journeys.id = v.id"
)


def _utc_stamp(value: datetime | None) -> datetime | str | None:
    """A timestamp for rows that ``json_rows`` encodes with ``plain``: a UTC one as it is
    (``msgspec`` writes it in C, about a tenth of ``isoformat``'s time, to the same instant),
    any other as ``json_stamp`` text (``msgspec`` would drop an offset's seconds)."""
    if value is None or value.tzinfo is UTC:
        return value
    return json_stamp(value)


def _step_row(step: dict[str, Any], stamp: Stamp) -> list[Any]:
    started, finished = step["started_at"], step["finished_at"]
    started_text = stamp(started)
    return [
        step["journey_id"],
        step["node_id"],
        step["visit"],
        step["node_type"],
        step["status"],
        step["port"],
        step["input"],
        step["output"],
        step["error"],
        step["attempts"],
        started_text,
        started_text if finished is started else stamp(finished),
        step["duration_ms"],
    ]


def _conversion_row(conversion: dict[str, Any], stamp: Stamp) -> list[Any]:
    return [
        conversion["journey_id"],
        conversion["flow_id"],
        conversion["goal"],
        conversion["label"],
        stamp(conversion["converted_at"]),
    ]


def _journey_row(walk: Walk, stamp: Stamp) -> list[Any]:
    return [
        walk.journey_id,
        walk.status,
        walk.node_id,
        walk.visits,
        walk.data,
        stamp(walk.due_at),
        walk.wait_event_type,
        walk.wait_match,
        stamp(walk.waiting_since),
        walk.attempts,
        walk.last_error,
        walk.exit_reason,
        stamp(walk.ended_at),
        walk.wake_event_id,
    ]


async def _owned(session: AsyncSession, owner: str, ids: list[int]) -> set[int]:
    """End this claim's leases on ``ids``; returns the journeys it still owns that are live.

    A journey whose lease row is gone (taken over) or belongs to another claim
    (ours ran out and was replaced) is not this claim's to write any more.
    """
    live = select(JOURNEYS.c.id).where(among(session, JOURNEYS.c.id, ids), LIVE_SQL)
    end = (
        delete(LEASES)
        .where(among(session, LEASES.c.journey_id, ids), LEASES.c.owner == owner)
        .returning(LEASES.c.journey_id)
    )
    if dialect_name(session) == "postgresql":
        # Journey row first, lease row second: the order every claim and take-over uses.
        alive = set((await session.execute(live.with_for_update(key_share=True))).scalars())
        ended = set((await session.execute(end)).scalars())
    else:
        # SQLite: a write first, so this transaction holds the database's write lock.
        ended = set((await session.execute(end)).scalars())
        alive = set((await session.execute(live)).scalars())
    return alive & ended


async def _write_steps(session: AsyncSession, steps: list[dict[str, Any]], *, reopen: bool) -> None:
    """SQLite: plain executemany (PostgreSQL's steps go in ``_PG_RECORD``)."""
    if not reopen:
        await session.execute(STEPS.insert(), steps)
        return
    stmt = upsert_insert(session, STEPS)
    excluded = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[STEPS.c.journey_id, STEPS.c.node_id, STEPS.c.visit],
        set_={
            name: excluded[name] for name in ("status", "port", "error", "attempts", "finished_at")
        }
        | {"duration_ms": excluded.duration_ms, "output": text(_SQLITE_OUTPUT)},
        # Literal SQL: executemany cannot expand an IN list.
        where=text("steps.status IN ('waiting', 'error')"),
    )
    await session.execute(stmt, steps)


async def _write_journeys(session: AsyncSession, walks: list[Walk], now: datetime) -> None:
    if dialect_name(session) == "postgresql":
        plain = all(walk.plain for walk in walks)
        stamp = _stamp(plain)
        rows = json_rows([_journey_row(walk, stamp) for walk in walks], plain=plain)
        await session.execute(_PG_JOURNEYS, {"rows": rows, "now": now})
        return
    live = [w.journey_values() | {"v_updated_at": now} for w in walks if not w.terminal]
    ended = [w.journey_values() | {"v_updated_at": now} for w in walks if w.terminal]
    if live:
        await session.execute(_UPDATE_LIVE, live)
    if ended:
        await session.execute(_UPDATE_ENDED, ended)


async def _write(session: AsyncSession, owner: str, walks: list[Walk], now: datetime) -> list[Walk]:
    if not walks:
        return []
    if dialect_name(session) == "postgresql":
        return await _write_pg(session, owner, walks, now)
    owned = await _owned(session, owner, [w.journey_id for w in walks])
    mine = _mine(owner, walks, owned)
    if not mine:
        return []
    await _apply_changes(session, [w for w in mine if w.changes], now)
    for reopen, steps in (
        (True, [step for w in mine for step in w.reopenable_steps()]),
        (False, [step for w in mine for step in w.fresh_steps()]),
    ):
        if steps:
            await _write_steps(session, steps, reopen=reopen)
    await _write_messages(session, mine)
    conversions = [c for w in mine for c in w.conversions]
    if conversions:
        stmt = upsert_insert(session, CONVERSIONS).on_conflict_do_nothing(
            index_elements=[CONVERSIONS.c.journey_id]
        )
        await session.execute(stmt, conversions)
    await _write_journeys(session, mine, now)
    return mine


def _mine(owner: str, walks: list[Walk], owned: set[int]) -> list[Walk]:
    mine = [w for w in walks if w.journey_id in owned]
    if len(mine) < len(walks):
        log.info("claim %s lost %d journeys to another writer", owner, len(walks) - len(mine))
    return mine


async def _write_messages(session: AsyncSession, mine: list[Walk]) -> None:
    messages = [m for w in mine for m in w.messages]
    if messages:
        stmt = upsert_insert(session, OUTBOX).on_conflict_do_nothing(
            index_elements=[OUTBOX.c.idempotency_key]
        )
        await session.execute(stmt, messages)


async def _write_pg(
    session: AsyncSession, owner: str, walks: list[Walk], now: datetime
) -> list[Walk]:
    """PostgreSQL: the ownership check, the step rows and the conversions in one statement
    (``_PG_RECORD``), then the cursors in one more (the batch's only write to ``journeys``).

    The statement locks the journeys that are still live, then deletes this claim's own
    lease rows among them (journey row first, lease row second, as everywhere), and
    inserts only the rows of the journeys whose lease it deleted. Its sub-statements
    share one snapshot, but each row they lock or delete is re-checked at its latest
    version (READ COMMITTED): a lease deleted or replaced by a take-over committed after
    the snapshot is not deleted again, so its journey is not this claim's any more.
    """
    conversions = [c for w in walks for c in w.conversions]
    plain = all(w.plain for w in walks)
    stamp = _stamp(plain)
    reopen = [_step_row(step, stamp) for w in walks for step in w.reopenable_steps()]
    fresh = [_step_row(step, stamp) for w in walks for step in w.fresh_steps()]
    params = {
        "ids": [w.journey_id for w in walks],
        "owner": owner,
        "reopen": json_rows(reopen, plain=plain),
        "fresh": json_rows(fresh, plain=plain),
        "conversions": json_rows([_conversion_row(c, stamp) for c in conversions], plain=plain),
    }
    owned = set((await session.execute(_PG_RECORD, params)).scalars())
    mine = _mine(owner, walks, owned)
    if not mine:
        return []
    await _apply_changes(session, [w for w in mine if w.changes], now)
    await _write_messages(session, mine)
    await _write_journeys(session, mine, now)
    return mine


async def _apply_changes(session: AsyncSession, walks: list[Walk], now: datetime) -> None:
    """Write contact (and visitor trait) changes, reading the current values under lock."""
    by_customer: dict[CustomerKey, list[ContactChanges]] = defaultdict(list)
    for walk in walks:
        by_customer[walk.key].extend(walk.changes)
    contact_ids = [int(ident) for kind, ident in by_customer if kind == "contact"]
    visitor_ids = [ident for kind, ident in by_customer if kind == "visitor"]
    locking = dialect_name(session) == "postgresql"
    if contact_ids:
        query = select(
            CONTACTS.c.id, CONTACTS.c.attributes, CONTACTS.c.tags, CONTACTS.c.lifecycle_stage
        ).where(among(session, CONTACTS.c.id, contact_ids))
        rows = (await session.execute(query.with_for_update() if locking else query)).all()
        updates = []
        for row in rows:
            attributes, tags, stage = dict(row.attributes or {}), list(row.tags or []), None
            for change in by_customer[("contact", str(row.id))]:
                for name in change.unset_attributes:
                    attributes.pop(name, None)
                attributes.update(change.set_attributes)
                tags = [t for t in tags if t not in change.remove_tags]
                tags += [t for t in change.add_tags if t not in tags]
                stage = change.lifecycle_stage or stage
            updates.append(
                {
                    "c_id": row.id,
                    "c_attributes": attributes,
                    "c_tags": tags,
                    "c_stage": stage or row.lifecycle_stage,
                }
            )
        await session.execute(
            update(CONTACTS)
            .where(CONTACTS.c.id == bindparam("c_id"))
            .values(
                attributes=bindparam("c_attributes"),
                tags=bindparam("c_tags"),
                lifecycle_stage=bindparam("c_stage"),
                # A flow's attribute and stage goals read this as when the change happened.
                updated_at=now,
            ),
            updates,
        )
    if visitor_ids:
        query = select(VISITORS.c.id, VISITORS.c.traits).where(
            among(session, VISITORS.c.id, visitor_ids)
        )
        traits_updates = []
        for vrow in await session.execute(query.with_for_update() if locking else query):
            traits = dict(vrow.traits or {})
            for change in by_customer[("visitor", vrow.id)]:
                for name in change.unset_attributes:
                    traits.pop(name, None)
                traits.update(change.set_attributes)
            traits_updates.append({"t_id": vrow.id, "t_traits": traits})
        await session.execute(
            update(VISITORS)
            .where(VISITORS.c.id == bindparam("t_id"))
            .values(traits=bindparam("t_traits")),
            traits_updates,
        )


async def write_walks(rt: Runtime, owner: str, walks: list[Walk]) -> list[Walk]:
    """Record a batch in one transaction; returns the walks actually written."""
    todo = [w for w in walks if w.profile is not None]
    now = rt.clock.now()
    try:
        async with rt.sessions() as session, session.begin():
            return await _write(session, owner, todo, now)
    except Exception as exc:
        if len(todo) == 1:
            # Counted like a node error, or a journey whose results can never be
            # stored would be re-run at every lease expiry for ever.
            log.exception("writing journey %s failed", todo[0].row.id)
            await _record_write_failure(rt, owner, todo[0], exc, now)
            return []
        log.exception("writing a batch of %d journeys failed; writing them one by one", len(todo))
    written: list[Walk] = []
    for walk in todo:
        try:
            async with rt.sessions() as session, session.begin():
                written += await _write(session, owner, [walk], now)
        except Exception as exc:
            log.exception("writing journey %s failed", walk.row.id)
            await _record_write_failure(rt, owner, walk, exc, now)
    return written


async def _record_write_failure(
    rt: Runtime, owner: str, walk: Walk, exc: Exception, now: datetime
) -> None:
    """The journey's results could not be stored (a message that is not JSON...): retry it."""
    attempts = walk.row.attempts + 1
    failed = attempts >= rt.settings.max_step_attempts
    values: dict[str, Any] = {
        "attempts": attempts,
        "last_error": f"could not record the step: {type(exc).__name__}: {exc}",
        "updated_at": now,
        "due_at": None if failed else now + retry_delay(attempts),
    }
    if failed:
        values.update(status=JourneyStatus.failed.value, ended_at=now, entry_key=None)
    try:
        async with rt.sessions() as session, session.begin():
            if await _owned(session, owner, [walk.row.id]):
                await session.execute(
                    update(JOURNEYS).where(JOURNEYS.c.id == walk.row.id).values(values)
                )
    except Exception:
        log.exception("journey %s: could not record the failure either", walk.row.id)
