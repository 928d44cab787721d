"""Many rows in one PostgreSQL ``INSERT ... SELECT FROM unnest(...)``, one array per column.

SQLAlchemy's multi-row ``INSERT`` processes every bound value in Python
(a thousand rows of nine columns are nine thousand parameter conversions)
and sends a statement whose text grows with the batch. Here each column
goes to the server as one array parameter: the statement text is the same
for any number of rows (one prepared plan), the driver encodes each array
in C, and the server turns them back into rows. JSON columns travel as
text and are cast per row, so the encoding is one C call per value.

Columns left out get their Python-side defaults, as a Core ``INSERT`` would
give them (one value for the whole batch: ``utcnow`` is the statement's time).

Rows come out of ``unnest`` in the order of the arrays and are inserted in
that order (``WITH ORDINALITY ... ORDER BY`` says so explicitly), so ids
from a sequence increase with the rows, as with a multi-row ``VALUES``.
PostgreSQL only: SQLite has no arrays and keeps the Core statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import msgspec
from sqlalchemy import JSON, ColumnDefault, Table, TextClause, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["json_text", "unnest_insert"]

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def json_text(value: Any) -> str:
    """A JSON column's value as text for ``unnest_insert`` (dates and the like as strings)."""
    return msgspec.json.encode(value, enc_hook=str).decode()


def _is_json(table: Table, name: str) -> bool:
    impl = table.c[name].type.dialect_impl(_PG)
    return isinstance(impl, JSON)


def _pg_type(table: Table, name: str) -> str:
    if _is_json(table, name):
        return "TEXT"
    return str(table.c[name].type.compile(dialect=_PG))


def _defaults(table: Table, given: tuple[str, ...]) -> dict[str, Any]:
    """The Python-side defaults of the columns not given, evaluated once."""
    out: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if column.name in given or not isinstance(default, ColumnDefault):
            continue
        out[column.name] = default.arg(None) if default.is_callable else default.arg
    return out


@lru_cache(maxsize=64)
def _statement(table: Table, columns: tuple[str, ...], tail: str) -> TextClause:
    arrays = ", ".join(f"CAST(:{name} AS {_pg_type(table, name)}[])" for name in columns)
    picks = ", ".join(
        f"u.{name}::jsonb" if _is_json(table, name) else f"u.{name}" for name in columns
    )
    names = ", ".join(columns)
    # Names come from the table's metadata and ``tail`` from our code; values are all bound.
    sql = f"INSERT INTO {table.name} ({names}) SELECT {picks} "
    return text(
        sql + f"FROM unnest({arrays}) WITH ORDINALITY AS u({names}, ord) ORDER BY u.ord {tail}"
    )


async def unnest_insert(
    session: AsyncSession,
    table: Table,
    columns: dict[str, Sequence[Any]],
    tail: str = "",
    params: dict[str, Any] | None = None,
) -> Any:
    """Insert the rows given column by column (equal lengths); ``tail`` is the SQL after the
    ``SELECT`` (``ON CONFLICT ...``, ``RETURNING ...``) with its own bound ``params``. JSON
    columns take ``json_text`` values. Returns the result, so a ``RETURNING`` tail is read."""
    values = {name: list(column) for name, column in columns.items()}
    size = len(next(iter(values.values()), []))
    for name, value in _defaults(table, tuple(columns)).items():
        values[name] = [json_text(value) if _is_json(table, name) else value] * size
    stmt = _statement(table, tuple(values), tail)
    return await session.execute(stmt, values | (params or {}))
