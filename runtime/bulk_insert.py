"""Many rows in one PostgreSQL ``INSERT ... SELECT``, sent as a single JSON array parameter.

SQLAlchemy's multi-row ``INSERT`` processes every bound value in Python (a
thousand rows of nine columns are nine thousand conversions) and sends a
statement whose text grows with the batch; one array parameter per column
(``unnest``) is better, but the driver still checks every element in Python.
Here the rows go as one JSON text, encoded in a single C call, and the
server takes them apart (``jsonb_array_elements``), casting each field to
its column's type: the statement text is the same for any number of rows
(one prepared plan) and the client's work per row is almost nothing. On a
1,000-event batch this took the driver's share from about 7 ms to under 2,
for 1 to 3 ms more on the server (measured with process CPU times).

Rows come out in the order of the array and are inserted in that order
(``WITH ORDINALITY ... ORDER BY``), so ids from a sequence increase with
the rows, as with a multi-row ``VALUES``. Columns left out get their
Python-side defaults, as a Core ``INSERT`` would give them (one value for
the whole batch: ``utcnow`` is the statement's time). PostgreSQL only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import msgspec
from sqlalchemy import JSON, ColumnDefault, DateTime, String, Table, TextClause, TypeDecorator, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["insert_rows", "json_rows", "json_rows_select", "json_stamp", "plain_json"]

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def _encode_other(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


def _impl(table: Table, name: str) -> Any:
    kind = table.c[name].type
    if isinstance(kind, TypeDecorator):
        kind = kind.impl_instance
    return kind.dialect_impl(_PG)


def _field(table: Table, name: str, at: int) -> str:
    impl = _impl(table, name)
    if isinstance(impl, JSON):
        return f"e->{at}"
    # Text without its length: the column's own check refuses a longer value (a cast
    # to VARCHAR(n) would cut it short without a word).
    sql_type = "TEXT" if isinstance(impl, String) else impl.compile(dialect=_PG)
    return f"CAST(e->>{at} AS {sql_type})"


@lru_cache(maxsize=64)
def _statement(table: Table, columns: tuple[str, ...], tail: str) -> TextClause:
    fields = ", ".join(_field(table, name, at) for at, name in enumerate(columns))
    # Names come from the table's metadata and ``tail`` from our code; values are all bound.
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {fields} "
    return text(
        sql + "FROM jsonb_array_elements(CAST(:rows AS JSONB)) WITH ORDINALITY AS r(e, at) "
        f"ORDER BY r.at {tail}"
    )


def _defaults(table: Table, given: tuple[str, ...]) -> dict[str, Any]:
    """The Python-side defaults of the columns not given, evaluated once."""
    out: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if column.name in given or not isinstance(default, ColumnDefault):
            continue
        out[column.name] = default.arg(None) if default.is_callable else default.arg
    return out


def _utc(values: Sequence[Any]) -> list[Any]:
    # A naive time is UTC, as ``UTCDateTime`` takes it; the server would read local time.
    return [
        v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v for v in values
    ]


async def insert_rows(
    session: AsyncSession,
    table: Table,
    columns: dict[str, Sequence[Any]],
    tail: str = "",
    params: dict[str, Any] | None = None,
) -> Any:
    """Insert the rows given column by column (equal lengths); ``tail`` is the SQL after the
    ``SELECT`` (``ON CONFLICT ...``, ``RETURNING ...``) with its own bound ``params``.
    Returns the result, so a ``RETURNING`` tail can be read."""
    values = dict(columns)
    size = len(next(iter(values.values()), []))
    for name, value in _defaults(table, tuple(columns)).items():
        values[name] = [value] * size
    for name in values:
        if isinstance(_impl(table, name), DateTime):
            values[name] = _utc(values[name])
    rows = msgspec.json.encode(list(zip(*values.values(), strict=True)), enc_hook=_encode_other)
    stmt = _statement(table, tuple(values), tail)
    return await session.execute(stmt, {"rows": rows.decode()} | (params or {}))


# -- rows built by the caller, for any statement (``INSERT``, ``UPDATE ... FROM``) -------------
#
# ``insert_rows`` suits rows that are plain values. The engine's rows carry what node code
# returned (a journey's data, a step's input and output), so they are encoded by the same
# ``json.dumps`` as a JSON column's own value: what it cannot encode (a set, a datetime in a
# node's data) raises ``TypeError`` here as it would there, and the caller's failure path
# handles it. Timestamps are the caller's to turn into text first (``json_stamp``), except
# that rows sent ``plain`` may carry UTC datetimes as they are (``msgspec`` writes them, to the
# same instant; ``runtime.journal._utc_stamp``).


def json_rows_select(
    table: Table, columns: tuple[str, ...], param: str = "rows", *, ordinal: bool = False
) -> str:
    """``SELECT`` of the rows of the ``:rows`` parameter (``json_rows``; or of ``param``) as
    ``columns`` of ``table``, each named like its column, with ``r.at`` the row's place in
    the array (and also a column ``at`` when ``ordinal``).

    A ``None`` is SQL NULL in every column: ``->>`` reads JSON null as NULL, and a JSON
    column's null is turned back into NULL (``->`` alone would store the JSON value ``null``).
    """
    fields = []
    for at, name in enumerate(columns):
        if isinstance(_impl(table, name), JSON):
            fields.append(f"NULLIF(e->{at}, CAST('null' AS JSONB)) AS {name}")
        else:
            fields.append(f"{_field(table, name, at)} AS {name}")
    if ordinal:
        fields.append("r.at AS at")
    # Names come from the table's metadata and ``param`` from our code; values are all bound.
    return (
        f"SELECT {', '.join(fields)} "  # noqa: S608
        f"FROM jsonb_array_elements(CAST(:{param} AS JSONB)) WITH ORDINALITY AS r(e, at)"
    )


def json_rows(rows: Sequence[Sequence[Any]], *, plain: bool = False) -> str:
    """The ``:rows`` parameter of ``json_rows_select``: one JSON array of row arrays.

    ``plain`` says every value in ``rows`` passed ``plain_json``: then ``msgspec`` encodes
    them, a tenth of ``json.dumps``'s time (3.7 against 0.3 µs for a step row), to the same
    JSON values. Anything else goes through ``json.dumps``, which refuses what it refuses.
    """
    if plain:
        return msgspec.json.encode(rows).decode()
    return json.dumps(rows, separators=(",", ":"))


def plain_json(value: Any) -> bool:
    """Whether ``value`` is made only of what JSON has: dicts with ``str`` keys, lists and
    tuples, ``str``, ``int``, finite ``float``, ``bool`` and ``None`` (exactly these types,
    no subclasses). ``json.dumps`` and ``msgspec`` encode such values alike; they differ on
    the rest (a set, a date, NaN: ``msgspec`` encodes them, ``json.dumps`` refuses or writes
    what PostgreSQL refuses), which must fail a step here as a JSON column would."""
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            # Loops, not ``all()`` over a generator, and scalars checked in line: this
            # runs on every step's output.
            if type(key) is not str:
                return False
            if type(item) not in _SCALARS and not plain_json(item):
                return False
        return True
    if kind in _SCALARS:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list or kind is tuple:
        return all(type(item) in _SCALARS or plain_json(item) for item in value)
    return False


_SCALARS = frozenset({str, int, bool, type(None)})


def json_stamp(value: datetime | None) -> str | None:
    """A timestamp as ``json_rows`` sends it (a naive one is UTC, as ``UTCDateTime`` takes it)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()
