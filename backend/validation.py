"""Small checks on what people type, shared by forms and the API."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar.params import PathParameter, QueryParameter

from backend.i18n import gettext as _

# Deliberately loose: one @, something on both sides, a dot in the domain, no spaces.
# Deliverability is the mail server's judgement, not ours.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def clean_email(value: str) -> str | None:
    """The email lower-cased and trimmed, or None if it cannot be an address."""
    value = value.strip().lower()
    if len(value) > 320 or not _EMAIL.match(value):
        return None
    return value


# The widest integer both databases store (BIGINT): ids and page numbers beyond
# it cannot name a row, and passing them on would overflow the driver.
DB_INT_MAX = 2**63 - 1
# How deep a JSON body may nest. Real payloads stay under ten levels; the bound
# keeps decoding and validation far from Python's recursion limit.
MAX_JSON_DEPTH = 32
# Dates Touchflow stores: 0001-01-01 in a zone east of UTC is before year 1 in UTC.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)

# Free text in a query string: no NUL (PostgreSQL cannot compare it), a sane length.
SearchText = Annotated[
    str, QueryParameter(max_length=200, pattern=r"^[^\x00]*$", description="Text to look for.")
]
# The largest id the API takes: the OpenAPI schema states bounds as floats, and
# 2^63 - 1024 is the largest float below 2^63, so schema and server agree exactly.
MAX_ID = 2**63 - 1024
RowId = Annotated[int, PathParameter(ge=1, le=MAX_ID, description="A positive id.")]


class BadJson(ValueError):
    """A body that is not UTF-8 JSON within the depth limit; the message is for people."""


def json_depth_within(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` (decoded JSON) nests no deeper than ``limit``; no recursion."""
    return _first_problem(value, limit) != "depth"


def _first_problem(value: Any, limit: int) -> str | None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "nul"
            continue
        if isinstance(item, dict):
            children: Iterable[Any] = [*item.keys(), *item.values()]
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return "depth"
        stack.extend((child, depth + 1) for child in children)
    return None


def _too_deep(value: Any, limit: int) -> bool:
    """The nesting alone, a level at a time: a few C-speed list passes, no string looked at."""
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 1
    while level:
        if depth > limit:
            return True
        below: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            below += [child for child in children if isinstance(child, (dict, list))]
        level, depth = below, depth + 1
    return False


def _may_hold_nul(raw: bytes | str) -> bool:
    """Whether decoded text can contain NUL: JSON writes it only as the escape ``\\u0000``
    (a raw NUL is malformed), so text without that escape has none to look for."""
    if isinstance(raw, bytes):
        return b"\\u0000" in raw
    return "\\u0000" in raw


def parse_json(raw: bytes | str) -> Any:
    """Decode a JSON body, refusing invalid UTF-8, malformed JSON and deep nesting (``BadJson``)."""
    if isinstance(raw, bytes):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadJson(
                _("The body is not valid UTF-8 (byte %(at)d).") % {"at": exc.start}
            ) from None
    try:
        value = msgspec.json.decode(raw)
    except RecursionError:
        value = _TOO_DEEP
    except msgspec.DecodeError as exc:
        raise BadJson(_("The body is not JSON: %(reason)s") % {"reason": exc}) from None
    if value is _TOO_DEEP:
        problem: str | None = "depth"
    elif _may_hold_nul(raw):
        problem = _first_problem(value, MAX_JSON_DEPTH)
    else:
        # Walking every string of a large body costs more than decoding it.
        problem = "depth" if _too_deep(value, MAX_JSON_DEPTH) else None
    if problem == "depth":
        raise BadJson(_("The JSON nests deeper than %(n)d levels.") % {"n": MAX_JSON_DEPTH})
    if problem == "nul":
        # PostgreSQL cannot store it, and no real text holds it.
        raise BadJson(_("Text in the body may not contain the NUL character (\\u0000)."))
    return value


_TOO_DEEP = object()


def within_date_range(value: datetime) -> datetime:
    """``value`` if Touchflow can store it (1900 to 9998, any zone), else ValueError."""
    try:
        in_utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:
        in_utc = None
    if in_utc is None or not EARLIEST <= in_utc < LATEST:
        raise ValueError("the date must be between 1900-01-01 and 9998-12-31")
    return value
