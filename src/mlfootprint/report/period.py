"""Report periods (`--since/--until`, `--month`) and the CLI's usage error.

A period is half-open, [since, until). Times are ISO 8601 dates or date-times; naive ones
are UTC. A date-only ``--until`` means the *end* of that day (``--until 2026-11-30``
includes 30 November), a date-only ``--since`` its start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

__all__ = ["Period", "UsageError", "parse_period"]


class UsageError(ValueError):
    """Bad command-line input: exit status 2, with the flag named."""

    def __init__(self, flag: str, reason: str) -> None:
        super().__init__(f"{flag}: {reason}")
        self.flag = flag
        self.reason = reason


@dataclass(frozen=True)
class Period:
    """[since_s, until_s) in Unix seconds; None = open on that side."""

    since_s: float | None = None
    until_s: float | None = None
    label: str = "all time"

    @property
    def bounded(self) -> bool:
        return self.since_s is not None or self.until_s is not None


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _parse_instant(flag: str, text: str, *, end_of_day: bool) -> datetime:
    value = text.strip()
    try:
        if _DATE.match(value):
            day = date.fromisoformat(value)
            dt = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return dt + timedelta(days=1) if end_of_day else dt
        if value.endswith(("Z", "z")):
            value = value[:-1] + "+00:00"
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            flag, f"{text!r} is not an ISO 8601 date or date-time (e.g. 2026-11-01 or 2026-11-01T08:00:00Z)"
        ) from None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_period(since: str | None = None, until: str | None = None, month: str | None = None) -> Period:
    """Validate the period flags; raise :class:`UsageError` naming the flag at fault."""
    if month is not None:
        if since is not None or until is not None:
            raise UsageError("--month", "cannot be combined with --since/--until; use one or the other")
        m = _MONTH.match(month.strip())
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise UsageError("--month", f"{month!r} is not a month in the form YYYY-MM (e.g. 2026-11)")
        year, mon = int(m.group(1)), int(m.group(2))
        start = datetime(year, mon, 1, tzinfo=UTC)
        end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
        return Period(start.timestamp(), end.timestamp(), label=f"{year:04d}-{mon:02d}")
    start_dt = _parse_instant("--since", since, end_of_day=False) if since is not None else None
    end_dt = _parse_instant("--until", until, end_of_day=True) if until is not None else None
    if start_dt is not None and end_dt is not None and end_dt <= start_dt:
        raise UsageError("--until", f"{until!r} is not after --since {since!r}; the period would be empty")
    if start_dt is None and end_dt is None:
        return Period()
    label = f"{_iso(start_dt) if start_dt else '…'} to {_iso(end_dt) if end_dt else 'now'}"
    return Period(
        start_dt.timestamp() if start_dt else None,
        end_dt.timestamp() if end_dt else None,
        label=label,
    )
