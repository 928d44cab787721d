"""Dates, times and numbers as the reader expects them: their language and their time zone.

Every time a person reads goes through ``datetime``; the language and the zone
are the request's (``activate_locale`` / ``activate_time_zone``): the user's
profile on signed-in pages, the browser's Accept-Language on public ones.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import dates, numbers

from backend.i18n import current_locale, current_time_zone


def zone(name: str | None = None) -> ZoneInfo:
    """The IANA zone ``name`` (or the request's), UTC when it is unknown."""
    try:
        return ZoneInfo(name or current_time_zone())
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def format_datetime(value: datetime | str | None, *, seconds: bool = False) -> str:
    """``27 nov. 2026 14:48 CET`` in Swedish, ``Nov 27, 2026 14:48 CET`` in English; ``—`` for none.

    Accepts ISO text too, as stored in JSON columns (consent times, payloads).
    """
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    local = value.astimezone(zone())
    day = dates.format_date(local, format="medium", locale=current_locale())
    time = local.strftime("%H:%M:%S" if seconds else "%H:%M")
    return f"{day} {time} {local.tzname()}"


def format_date(value: datetime | None) -> str:
    if value is None:
        return "—"
    return dates.format_date(value.astimezone(zone()), format="medium", locale=current_locale())


def format_day(value: date) -> str:
    """A calendar day as charts label it: ``27 nov. 2026`` (sv), ``Nov 27, 2026`` (en)."""
    return dates.format_date(value, format="medium", locale=current_locale())


def format_number(value: float | int) -> str:
    return numbers.format_decimal(value, locale=current_locale())


def format_percent(value: float) -> str:
    """``67 %`` in Swedish, ``67%`` in English; one decimal when it matters."""
    return numbers.format_percent(value, "#,##0.#%", locale=current_locale())


def format_duration(value: timedelta) -> str:
    """``2 days 5 hours`` (``2 dagar 5 timmar``): the two largest units, never a fraction."""
    seconds = int(value.total_seconds())
    parts = []
    units: tuple[tuple[Literal["day", "hour", "minute"], int], ...] = (
        ("day", 86400),
        ("hour", 3600),
        ("minute", 60),
    )
    for unit, size in units:
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(
                dates.format_timedelta(
                    timedelta(seconds=amount * size),
                    threshold=1e9,
                    granularity=unit,
                    format="long",
                    locale=current_locale(),
                )
            )
    return " ".join(parts[:2]) or dates.format_timedelta(
        timedelta(0), granularity="second", format="long", locale=current_locale()
    )
