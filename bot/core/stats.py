"""The daily picture: what ran in a window, what it cost, and what waits on people now.  [pure]

Windows are days in a person's own time zone: `today` (since local midnight), `yesterday`,
and `week` (the last seven days, today included). A run counts when it finished inside the
window; its outcome is succeeded, failed, or cancelled (a denial is a decision too).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.fabro.models import Run

__all__ = [
    "DECISIONS",
    "Picture",
    "Window",
    "bounds",
    "due_day",
    "local_day",
    "picture",
    "scheduled_at",
    "zone",
]

DECISIONS = frozenset({"cancelled", "approval_denied"})


class Window(enum.StrEnum):
    TODAY = "today"
    YESTERDAY = "yesterday"
    WEEK = "week"


def bounds(window: Window, now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of `window` in `tz`, as aware datetimes."""
    today = now.astimezone(tz).date()
    midnight = _midnight(today, tz)
    if window is Window.TODAY:
        return midnight, now
    if window is Window.YESTERDAY:
        return _midnight(today - timedelta(days=1), tz), midnight
    return _midnight(today - timedelta(days=6), tz), now


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)


@dataclass(frozen=True)
class Picture:
    window: Window
    start: datetime
    end: datetime
    tz: str
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    cost_micros: int = 0
    without_cost: int = 0
    slowest: tuple[Run, float] | None = None  # the run and its seconds
    priciest: Run | None = None
    waiting: list[Run] = field(default_factory=list)  # questions and approvals, oldest first
    partial: bool = False  # the window was read only in part (the request cap was reached)

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.cancelled


def _seconds(run: Run) -> float | None:
    if run.timing and run.timing.wall_time_ms is not None:
        return run.timing.wall_time_ms / 1000
    start = run.timestamps.started_at or run.timestamps.created_at
    end = run.timestamps.completed_at
    return (end - start).total_seconds() if start and end else None


def picture(
    runs: Iterable[Run],
    waiting: Iterable[Run],
    *,
    window: Window,
    start: datetime,
    end: datetime,
    tz: str,
    partial: bool = False,
) -> Picture:
    counts = {"succeeded": 0, "failed": 0, "cancelled": 0}
    cost, without = 0, 0
    slowest: tuple[Run, float] | None = None
    priciest: Run | None = None
    seen: set[str] = set()
    for run in runs:
        done = run.timestamps.completed_at
        if run.id in seen or not run.is_terminal or done is None or not start <= done < end:
            continue
        seen.add(run.id)
        if run.status.kind == "succeeded":
            counts["succeeded"] += 1
        elif run.status.reason in DECISIONS:
            counts["cancelled"] += 1
        else:
            counts["failed"] += 1
        micros = run.billing.total_usd_micros if run.billing else None
        if micros is None:
            without += 1
        else:
            cost += micros
            if priciest is None or micros > (priciest.billing.total_usd_micros or 0 if priciest.billing else 0):
                priciest = run
        took = _seconds(run)
        if took is not None and (slowest is None or took > slowest[1]):
            slowest = (run, took)
    ordered = sorted(waiting, key=lambda r: (r.updated_at or end, r.id))
    return Picture(
        window,
        start,
        end,
        tz,
        counts["succeeded"],
        counts["failed"],
        counts["cancelled"],
        cost,
        without,
        slowest,
        priciest,
        ordered,
        partial,
    )


def zone(name: str) -> ZoneInfo:
    """A time zone by name; an unknown one is UTC (Slack's profile or a stored setting may be odd)."""
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return ZoneInfo("UTC")


def scheduled_at(at: str, tz: ZoneInfo, day: date) -> datetime:
    """The moment `HH:MM` on `day` in `tz`."""
    hours, minutes = (int(part) for part in at.split(":", 1))
    return datetime.combine(day, time(hours, minutes), tzinfo=tz)


def due_day(at: str, tz: ZoneInfo, now: datetime, since: datetime) -> date | None:
    """The local day whose summary is due now (its hour has passed today, and came after the
    summary was set), or None. A summary missed while the bot was down is still due that day."""
    today = now.astimezone(tz).date()
    moment = scheduled_at(at, tz, today)
    return today if since <= moment <= now else None


def local_day(now: datetime, tz: ZoneInfo) -> tuple[date, datetime, datetime]:
    """The day `now` falls on in `tz`, and when it starts and ends (as aware times)."""
    day = now.astimezone(tz).date()
    start = datetime.combine(day, time(), tzinfo=tz)
    return day, start, datetime.combine(day + timedelta(days=1), time(), tzinfo=tz)
