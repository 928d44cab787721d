"""Event ingestion, set-based: append the facts, enroll matching flows, wake waiting journeys.

``ingest_many`` takes a batch of events whose customers are already known and
does each stage once for the whole batch, inside the caller's transaction:

1. one ``INSERT`` of every event, ``ON CONFLICT (dedupe_key) DO NOTHING``
   (on PostgreSQL the rows travel as one JSON parameter, ``runtime.bulk_insert``,
   and the active flows and whether any customer has a live journey come back
   with it); a duplicate (already stored, or earlier in the same batch) answers
   with the stored event and does nothing else;
2. one read of the active flows and, when some trigger listens for these
   event types, one read of the customers' profiles and of earlier journeys
   (re-entry rules), then one ``INSERT`` of the new journeys,
   ``ON CONFLICT (entry_key) DO NOTHING``;
3. one read of the customers' live journeys (goals) with their waits (none
   when the insert said no customer has one), then one ``UPDATE`` waking
   those waiting for these event types;
4. one doorbell ring after commit, whatever the batch size.

The per-event decisions are made in Python in the order of the items, so a
batch leaves the database as the same events ingested one by one would:
the first matching event ends a wait, the first trigger of a customer wins
the entry, a goal sees the journeys earlier events started. ``ingest`` is
the batch of one. Stages 2 and 3 live in ``runtime.reactions``, the batch
they share in ``runtime.event_batch``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from asyncpg import PostgresError
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from runtime.bulk_insert import insert_rows
from runtime.doorbell import Doorbell, ring_after_commit
from runtime.event_batch import EventBatch, EventIn, IngestResult, matches
from runtime.models import FlowStatus
from runtime.models.journeys import LIVE_STATUSES
from runtime.reactions import react
from runtime.sql import (
    EVENTS,
    among,
    dialect_name,
    upsert_insert,
)
from runtime.versions import VersionCache

__all__ = [
    "EventIn",
    "IngestResult",
    "NamedEventIn",
    "QuietIngest",
    "Unresolved",
    "ingest",
    "ingest_many",
    "ingest_named",
    "matches",
]


async def ingest(
    session: AsyncSession,
    versions: VersionCache,
    *,
    type: str,
    now: datetime,
    contact_id: int | None = None,
    visitor_id: str | None = None,
    properties: Mapping[str, Any] | None = None,
    dedupe_key: str | None = None,
    occurred_at: datetime | None = None,
    source: str = "api",
    doorbell: Doorbell | None = None,
) -> IngestResult:
    """Store one event for a customer and let flows react to it: a batch of one."""
    # A contact's events are the contact's, even when a stitched visitor sent them.
    item = EventIn(
        type=type,
        contact_id=contact_id,
        visitor_id=visitor_id if contact_id is None else None,
        properties=dict(properties or {}),
        dedupe_key=dedupe_key,
        occurred_at=occurred_at,
        source=source,
    )
    (result,) = await ingest_many(session, versions, [item], now=now, doorbell=doorbell)
    return result


async def ingest_many(
    session: AsyncSession,
    versions: VersionCache,
    items: Sequence[EventIn],
    *,
    now: datetime,
    doorbell: Doorbell | None = None,
) -> list[IngestResult]:
    """Store events and let flows react, a stage at a time (see the module docstring).

    Returns one result per item, in order.
    """
    if not items:
        return []
    batch = EventBatch(items, now)
    await _insert(session, batch)
    return await _finish(session, versions, batch, doorbell)


async def _finish(
    session: AsyncSession, versions: VersionCache, batch: EventBatch, doorbell: Doorbell | None
) -> list[IngestResult]:
    """The stages after the insert: enroll, wake, reach goals, ring; the results."""
    if batch.stored:
        await react(session, versions, batch)
    if batch.enrolled or batch.woken or batch.goals:
        ring_after_commit(session, doorbell)
    return batch.results()


@dataclass(frozen=True)
class NamedEventIn:
    """An event for a contact named by external id (when given) or email, not by id."""

    type: str
    external_id: str | None
    email: str | None
    properties: Mapping[str, Any] = field(default_factory=dict)
    dedupe_key: str | None = None
    occurred_at: datetime | None = None
    source: str = "api"


@dataclass(frozen=True)
class Unresolved:
    """``ingest_named`` stored nothing: a contact was not found. The contacts that were, as
    (id, external_id, email), looked up by every external id and email of the items."""

    found: list[tuple[int, str | None, str | None]]


# The rows of ``_NAMED`` and ``_QUIET`` (JSON, with their position ``at``) and each row's
# contact: by external id when the row has one, else by email. Each look-up is a
# subquery of its own row, so it is one probe of a unique index whatever the planner
# guesses of the rows' number: as joins, the planner took jsonb_array_elements for a
# hundred rows and hashed the whole contacts table for them (a sequential scan, some
# milliseconds per statement with a few thousand contacts, most of a single track
# call's time). The look-ups of a statement see one snapshot, as the joins did.
# For the same reason the statements ask for live journeys with
# ``contact_id = ANY(ARRAY(...))``: a probe of ix_journeys_contact_id per contact.
_NAMED_CONTACTS = (
    "named AS (SELECT r.e, r.at, CASE WHEN r.e->>1 IS NOT NULL "
    "THEN (SELECT cx.id FROM contacts cx WHERE cx.external_id = r.e->>1) "
    "ELSE (SELECT cm.id FROM contacts cm WHERE cm.email = r.e->>2) END AS contact_id FROM r)"
)

# PostgreSQL: the contact look-up and the event insert of ``ingest_named`` in one
# statement. Every item's contact is looked up (by external id when it has one, else
# by email); only when all are found are the events inserted, in the order of the
# items (``at``), and the answers of ``_EVENTS_TAIL`` come back with them. Otherwise
# nothing is written and the contacts found by any of the names come back instead.
_NAMED = text(
    "WITH r AS (SELECT e, at FROM jsonb_array_elements(CAST(:rows AS JSONB)) "  # noqa: S608 - a constant CTE is spliced in; values are bound
    "WITH ORDINALITY AS r(e, at)), "
    f"{_NAMED_CONTACTS}, "
    "go AS (SELECT bool_and(contact_id IS NOT NULL) AS ok FROM named), "
    "stored AS (INSERT INTO events (type, contact_id, properties, source, dedupe_key, "
    "occurred_at, received_at, claimed) "
    "SELECT CAST(e->>0 AS TEXT), contact_id, e->3, CAST(e->>4 AS TEXT), CAST(e->>5 AS TEXT), "
    "CAST(e->>6 AS TIMESTAMP WITH TIME ZONE), CAST(e->>7 AS TIMESTAMP WITH TIME ZONE), FALSE "
    "FROM named WHERE CAST(e->>8 AS BOOLEAN) AND (SELECT ok FROM go) ORDER BY at "
    "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key), "
    "found AS (SELECT id, external_id, email FROM contacts "
    "WHERE external_id = ANY(CAST(:external_ids AS TEXT[])) "
    "OR email = ANY(CAST(:emails AS TEXT[]))) "
    "SELECT (SELECT ok FROM go) AS ok, "
    "(SELECT array_agg(contact_id ORDER BY at) FROM named) AS contacts, "
    "(SELECT array_agg(id ORDER BY id) FROM stored) AS stored_ids, "
    "(SELECT array_agg(dedupe_key ORDER BY id) FROM stored) AS stored_keys, "
    "(SELECT array_agg(published_version_id) FROM flows "
    "WHERE status = :active_flow AND published_version_id IS NOT NULL) AS enrolling, "
    "EXISTS (SELECT 1 FROM journeys WHERE contact_id = ANY(ARRAY("
    "SELECT contact_id FROM named WHERE CAST(e->>8 AS BOOLEAN))) "
    "AND status IN ('active', 'waiting')) AS any_live, "
    "CASE WHEN (SELECT ok FROM go) THEN NULL ELSE "
    "(SELECT array_agg(id ORDER BY id) FROM found) END AS found_ids, "
    "CASE WHEN (SELECT ok FROM go) THEN NULL ELSE "
    "(SELECT array_agg(external_id ORDER BY id) FROM found) END AS found_external_ids, "
    "CASE WHEN (SELECT ok FROM go) THEN NULL ELSE "
    "(SELECT array_agg(email ORDER BY id) FROM found) END AS found_emails"
)


@dataclass(frozen=True)
class _Returned:
    id: int
    dedupe_key: str | None


def _encode_other(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else str(value)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _named_rows(items: Sequence[NamedEventIn], now: datetime) -> tuple[list[int], str]:
    """Each item's first item with its dedupe key, and the items as the JSON rows of ``_NAMED``
    (type, external id, email, properties, source, dedupe key, occurred, received, first)."""
    first_by_key: dict[str, int] = {}
    first_of = [
        first_by_key.setdefault(item.dedupe_key, index) if item.dedupe_key is not None else index
        for index, item in enumerate(items)
    ]
    received = _utc(now)
    rows = [
        (
            item.type,
            item.external_id or None,
            item.email,
            item.properties,
            item.source,
            item.dedupe_key,
            _utc(item.occurred_at) if item.occurred_at is not None else received,
            received,
            first_of[index] == index,
        )
        for index, item in enumerate(items)
    ]
    return first_of, msgspec.json.encode(rows, enc_hook=_encode_other).decode()


async def ingest_named(
    session: AsyncSession,
    versions: VersionCache,
    items: Sequence[NamedEventIn],
    *,
    now: datetime,
    doorbell: Doorbell | None = None,
) -> list[IngestResult] | Unresolved:
    """``ingest_many`` for events whose contacts are named, with the look-up folded into the
    insert (PostgreSQL only): one statement instead of two when every contact exists.

    When one does not, nothing is written and ``Unresolved`` says which contacts
    were found, for the caller to create the others and call ``ingest_many``.
    """
    if not items:
        return []
    first_of, rows = _named_rows(items, now)
    params = {
        "rows": rows,
        "external_ids": sorted({item.external_id for item in items if item.external_id}),
        "emails": sorted({item.email for item in items if item.email}),
        "active_flow": FlowStatus.active.value,
    }
    answer = (await session.execute(_NAMED, params)).one()
    if not answer.ok:
        return Unresolved(
            list(
                zip(
                    answer.found_ids or [],
                    answer.found_external_ids or [],
                    answer.found_emails or [],
                    strict=True,
                )
            )
        )
    events = [
        EventIn(
            type=item.type,
            contact_id=contact_id,
            properties=item.properties,
            dedupe_key=item.dedupe_key,
            occurred_at=item.occurred_at,
            source=item.source,
        )
        for item, contact_id in zip(items, answer.contacts, strict=True)
    ]
    batch = EventBatch(events, now)
    batch.first_of = first_of
    batch.enrolling = set(answer.enrolling or ())
    batch.any_live = answer.any_live
    returned = [
        _Returned(id, key)
        for id, key in zip(answer.stored_ids or [], answer.stored_keys or [], strict=True)
    ]
    await _take_ids(session, batch, [i for i in range(len(items)) if first_of[i] == i], returned)
    return await _finish(session, versions, batch, doorbell)


# PostgreSQL, outside any transaction: ``_NAMED`` when it is the whole ingestion, as a
# statement of its own (it commits alone, atomically). The events are inserted only
# when every contact is found, none of them has a live journey (no wait to end, no
# goal to meet) and every active flow's published version is one of $3, which the
# caller knows do not start on these event types (nothing to enroll); otherwise
# nothing is written. Parameters: $1 the rows (``_named_rows``), $2 the active
# status, $3 those versions.
_QUIET = (
    "WITH r AS (SELECT e, at FROM jsonb_array_elements(CAST(CAST($1 AS TEXT) AS JSONB)) "  # noqa: S608 - a constant CTE is spliced in; values are bound
    "WITH ORDINALITY AS r(e, at)), "
    f"{_NAMED_CONTACTS}, "
    "active AS (SELECT array_agg(published_version_id) AS ids FROM flows "
    "WHERE status = CAST($2 AS TEXT) AND published_version_id IS NOT NULL), "
    "go AS (SELECT bool_and(contact_id IS NOT NULL) "
    "AND NOT EXISTS (SELECT 1 FROM journeys WHERE contact_id = ANY(ARRAY("
    "SELECT contact_id FROM named WHERE CAST(e->>8 AS BOOLEAN))) "
    "AND status IN ('active', 'waiting')) "
    "AND COALESCE((SELECT ids FROM active) <@ CAST($3 AS BIGINT[]), TRUE) AS ok FROM named), "
    "stored AS (INSERT INTO events (type, contact_id, properties, source, dedupe_key, "
    "occurred_at, received_at, claimed) "
    "SELECT CAST(e->>0 AS TEXT), contact_id, e->3, CAST(e->>4 AS TEXT), CAST(e->>5 AS TEXT), "
    "CAST(e->>6 AS TIMESTAMP WITH TIME ZONE), CAST(e->>7 AS TIMESTAMP WITH TIME ZONE), FALSE "
    "FROM named WHERE CAST(e->>8 AS BOOLEAN) AND (SELECT ok FROM go) ORDER BY at "
    "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key) "
    "SELECT (SELECT ok FROM go) AS ok, (SELECT ids FROM active) AS active, "
    "(SELECT array_agg(id ORDER BY id) FROM stored) AS stored_ids, "
    "(SELECT array_agg(dedupe_key ORDER BY id) FROM stored) AS stored_keys"
)
_STORED_KEYS = "SELECT dedupe_key, id FROM events WHERE dedupe_key = ANY(CAST($1 AS TEXT[]))"


class QuietIngest:
    """``ingest_named`` in one autocommit statement when no flow reacts (PostgreSQL).

    Most events start nothing and end no wait: no active flow starts on their
    type and their contacts are in no journey. For them ingestion is the
    insert alone, and ``store`` does it in one statement on a connection
    outside any transaction (``_QUIET``): no BEGIN and no COMMIT to wait for,
    one round trip for the batch. When the statement finds that a flow may
    react or a contact is missing, it writes nothing, and ``store`` answers
    None: the caller ingests the items in a transaction (``ingest_named``,
    ``ingest_many``) as always.

    Which versions start on which event types comes from the version cache;
    a version it does not hold counts as one that may react (the transaction
    path loads it). The active versions the last statement saw are
    remembered, so a batch of types some active flow starts on goes to the
    transaction at once instead of paying a statement that writes nothing.
    """

    def __init__(self, versions: VersionCache) -> None:
        self.versions = versions
        self.active: frozenset[int] = frozenset()  # as the last statement saw them

    def _quiet_versions(self, types: set[str]) -> list[int] | None:
        """The active versions known not to start on ``types``; None when one may."""
        quiet = []
        for version_id in self.active:
            flow = self.versions.cached(version_id)
            if flow is None:
                continue  # unknown here: the statement decides
            if any(
                node.trigger is not None and node.trigger.event_type in types
                for node in flow.triggers
            ):
                return None
            quiet.append(version_id)
        return sorted(quiet)

    async def store(
        self, connection: Any, items: Sequence[NamedEventIn], *, now: datetime
    ) -> list[IngestResult] | None:
        """Store the events on ``connection`` (asyncpg's, outside a transaction) when no flow
        reacts to them, one result per item; None when nothing was written.

        An exception other than the server refusing the statement (the connection
        broke) leaves unknown whether the events were stored: the caller must not
        write them again, only answer the error (a retry with an idempotency key
        is then safe).
        """
        if not items:
            return []
        quiet = self._quiet_versions({item.type for item in items})
        if quiet is None:
            return None
        first_of, rows = _named_rows(items, now)
        try:
            answer = await connection.fetchrow(_QUIET, rows, FlowStatus.active.value, quiet)
        except PostgresError as exc:
            # An ERROR from the server (a value a column does not take) ended the
            # statement's own transaction: nothing was written. Anything else (FATAL,
            # the connection lost, raised here as a PostgresError too) may have come
            # after the commit, so it is raised.
            if getattr(exc, "severity", None) != "ERROR":
                raise
            return None
        self.active = frozenset(answer["active"] or ())
        if not answer["ok"]:
            return None
        inserted = set(answer["stored_keys"] or ())
        fresh = [i for i in range(len(items)) if first_of[i] == i]
        stored = [
            i for i in fresh if items[i].dedupe_key is None or items[i].dedupe_key in inserted
        ]
        # Ids in the order of the rows, as ``_take_ids`` explains.
        ids = dict(zip(stored, sorted(answer["stored_ids"] or ()), strict=True))
        missing = [items[i].dedupe_key for i in fresh if i not in ids]
        if missing:  # stored before: the event already there is the answer
            found = dict(await connection.fetch(_STORED_KEYS, missing))
            for i in fresh:
                if i not in ids:
                    ids[i] = found[items[i].dedupe_key]
        new = set(stored)
        return [
            IngestResult(event_id=ids[first_of[i]], duplicate=i not in new)
            for i in range(len(items))
        ]


async def _insert(session: AsyncSession, batch: EventBatch) -> None:
    """Append the batch's new events in one statement; find the stored ids of duplicates."""
    fresh = _fresh(batch)
    if dialect_name(session) == "postgresql":
        returned = await _insert_json(session, batch, fresh)
        if returned:
            batch.enrolling = set(returned[0].enrolling or ())
            batch.any_live = returned[0].any_live
    else:
        returned = await _insert_values(session, batch, fresh)
    await _take_ids(session, batch, fresh, returned)


def _fresh(batch: EventBatch) -> list[int]:
    """Each item's first item with its dedupe key (``first_of``); the indexes of the firsts."""
    first_by_key: dict[str, int] = {}
    for index, item in enumerate(batch.items):
        key = item.dedupe_key
        batch.first_of.append(first_by_key.setdefault(key, index) if key is not None else index)
    return [i for i in range(len(batch.items)) if batch.first_of[i] == i]


async def _take_ids(
    session: AsyncSession, batch: EventBatch, fresh: list[int], returned: Sequence[Any]
) -> None:
    """The stored items and every item's event id, from the insert's (id, dedupe_key) rows."""
    inserted_keys = {row.dedupe_key for row in returned if row.dedupe_key is not None}
    batch.stored = [
        i
        for i in fresh
        if batch.items[i].dedupe_key is None or batch.items[i].dedupe_key in inserted_keys
    ]
    # One statement assigns ids in the order of its rows (both databases take
    # them from an increasing counter, row by row), so sorted ids line up
    # with the stored items; RETURNING itself promises no order.
    ids: dict[int, int] = dict(zip(batch.stored, sorted(row.id for row in returned), strict=True))
    missing = {batch.items[i].dedupe_key for i in fresh if i not in ids}
    if missing:
        found = await session.execute(
            select(EVENTS.c.dedupe_key, EVENTS.c.id).where(
                among(session, EVENTS.c.dedupe_key, missing)
            )
        )
        by_key = {row.dedupe_key: row.id for row in found}
        for i in fresh:
            if i not in ids:
                ids[i] = by_key[batch.items[i].dedupe_key]
    batch.event_ids = [ids[batch.first_of[i]] for i in range(len(batch.items))]


async def _insert_values(session: AsyncSession, batch: EventBatch, fresh: list[int]) -> list[Any]:
    """SQLite: one multi-row ``INSERT`` (SQLAlchemy pages the rows as ``VALUES``, in order)."""
    rows = [
        {
            "type": batch.items[i].type,
            "contact_id": batch.items[i].contact_id,
            "visitor_id": batch.items[i].visitor_id,
            "properties": dict(batch.items[i].properties),
            "source": batch.items[i].source,
            "dedupe_key": batch.items[i].dedupe_key,
            "occurred_at": batch.items[i].occurred_at or batch.now,
            "received_at": batch.now,
            "claimed": batch.items[i].claimed,
        }
        for i in fresh
    ]
    stmt = (
        upsert_insert(session, EVENTS)
        .on_conflict_do_nothing(index_elements=[EVENTS.c.dedupe_key])
        .returning(EVENTS.c.id, EVENTS.c.dedupe_key)
    )
    return list((await session.execute(stmt, rows)).all())


# Two answers come back with the insert, each a round trip fewer per batch and
# never stale (no cache to invalidate): the flows that may enroll, and whether
# any of the batch's customers has a live journey at all. Most events are for
# customers in no journey; for them the journeys are not read (``react``).
# (The statuses are written out, as LIVE_STATUSES, so the planner matches the partial indexes.)
_EVENTS_TAIL = (
    "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key, "
    "(SELECT array_agg(published_version_id) FROM flows "
    "WHERE status = :active_flow AND published_version_id IS NOT NULL) AS enrolling, "
    "(EXISTS (SELECT 1 FROM journeys WHERE contact_id = ANY(CAST(:contacts AS BIGINT[])) "
    "AND status IN ('active', 'waiting')) OR EXISTS (SELECT 1 FROM journeys "
    "WHERE visitor_id = ANY(CAST(:visitors AS TEXT[])) AND status IN ('active', 'waiting'))) "
    "AS any_live"
)
assert set(LIVE_STATUSES) == {"active", "waiting"}, "the live statuses are written out above"


async def _insert_json(session: AsyncSession, batch: EventBatch, fresh: list[int]) -> list[Any]:
    """PostgreSQL: the rows as one JSON parameter (``runtime.bulk_insert``)."""
    items = [batch.items[i] for i in fresh]
    now = batch.now
    columns: dict[str, Sequence[Any]] = {
        "type": [item.type for item in items],
        "contact_id": [item.contact_id for item in items],
        "visitor_id": [item.visitor_id for item in items],
        "properties": [item.properties for item in items],
        "source": [item.source for item in items],
        "dedupe_key": [item.dedupe_key for item in items],
        "occurred_at": [item.occurred_at or now for item in items],
        "received_at": [now] * len(items),
        "claimed": [item.claimed for item in items],
    }
    params = {
        "active_flow": FlowStatus.active.value,
        "contacts": sorted({i.contact_id for i in items if i.contact_id is not None}),
        "visitors": sorted({i.visitor_id for i in items if i.contact_id is None and i.visitor_id}),
    }
    return list((await insert_rows(session, EVENTS, columns, _EVENTS_TAIL, params)).all())
