"""Fatigue rules, as pure functions: frequency caps and sending windows.

The gate (``runtime.messaging.gate``) reads the counts from the database and
asks these functions whether a marketing message may leave now and, if not,
the earliest moment it may.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Cap", "SendingWindow", "cap_release", "parse_caps", "zone"]


@dataclass(frozen=True)
class Cap:
    """At most ``limit`` marketing messages on ``channel`` ("all": any channel) per ``period``."""

    channel: str
    limit: int
    period: timedelta

    def describe(self) -> str:
        hours = int(self.period.total_seconds() // 3600)
        span = f"{hours // 24} days" if hours % 24 == 0 else f"{hours} hours"
        where = "messages" if self.channel == "all" else f"{self.channel} messages"
        return f"frequency cap: at most {self.limit} marketing {where} per {span}"


def parse_caps(caps: Mapping[str, str]) -> list[Cap]:
    """``{"email": "3/7d", "all": "5/7d"}`` as ``Cap``s (the settings validated the format)."""
    parsed = []
    for channel, spec in caps.items():
        count, _, span = spec.strip().partition("/")
        amount, unit = int(span[:-1]), span[-1]
        period = timedelta(days=amount) if unit == "d" else timedelta(hours=amount)
        parsed.append(Cap(channel=channel, limit=int(count), period=period))
    return parsed


def cap_release(cap: Cap, sent_at: Sequence[datetime], now: datetime) -> datetime | None:
    """When the cap allows one more message, or ``None`` if it allows one now.

    ``sent_at`` holds the times of the messages that count against the cap.
    """
    recent = sorted(at for at in sent_at if at > now - cap.period)
    if len(recent) < cap.limit:
        return None
    # The oldest message that must age out of the window before one more fits.
    return recent[len(recent) - cap.limit] + cap.period


def zone(name: str | None, default: str) -> ZoneInfo:
    """The contact's time zone, or the default when unset or unknown."""
    for candidate in (name, default):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


@dataclass(frozen=True)
class SendingWindow:
    """Quiet hours (``start``-``end`` local time, may cross midnight) and allowed weekdays."""

    quiet_start: time | None
    quiet_end: time | None
    days: frozenset[int]

    @classmethod
    def parse(cls, quiet_hours: str, days: Iterable[int]) -> SendingWindow:
        allowed = frozenset(int(d) for d in days) or frozenset(range(7))
        if not quiet_hours:
            return cls(None, None, allowed)
        start, _, end = quiet_hours.partition("-")
        return cls(_clock(start), _clock(end), allowed)

    def _quiet(self, local: datetime) -> bool:
        if self.quiet_start is None or self.quiet_end is None:
            return False
        at = local.time()
        if self.quiet_start <= self.quiet_end:
            return self.quiet_start <= at < self.quiet_end
        return at >= self.quiet_start or at < self.quiet_end

    def allows(self, moment: datetime, tz: ZoneInfo) -> bool:
        local = moment.astimezone(tz)
        return local.weekday() in self.days and not self._quiet(local)

    def next_open(self, moment: datetime, tz: ZoneInfo) -> datetime:
        """The first moment at or after ``moment`` inside the window (UTC)."""
        if self.allows(moment, tz):
            return moment
        local = moment.astimezone(tz)
        # Windows open at the end of quiet hours or at midnight of an allowed day;
        # try those boundaries in order for the next eight days.
        opens = [time(0, 0)] + ([self.quiet_end] if self.quiet_end is not None else [])
        for offset in range(9):
            day = local.date() + timedelta(days=offset)
            for at in sorted(opens):
                candidate = datetime.combine(day, at, tzinfo=tz)
                if candidate > local and self.allows(candidate, tz):
                    return candidate.astimezone(UTC)
        return moment + timedelta(days=1)  # no allowed day configured: try again tomorrow
