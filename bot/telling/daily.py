"""The daily picture from Fabro: the runs of a window, read newest-change first, and who is waited on.

Reads are shared: people asking at the same moment join the read in flight, and a read serves
every picture for `CACHE_FOR` seconds (a read since an earlier start covers a later one, whatever
each person's time zone). Each read is capped at `MAX_PAGES` pages of 100; past that the picture
says it is partial.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from bot.core.stats import Picture, Window, bounds, picture
from bot.fabro.client import FabroClient
from bot.fabro.filters import RunFilter
from bot.fabro.models import Run

__all__ = ["CACHE_FOR", "MAX_PAGES", "Daily"]

log = logging.getLogger(__name__)

MAX_PAGES = 10  # 1,000 runs changed in the window at most; past that the picture says it is partial
_PAGE = 100
CACHE_FOR = 30.0  # seconds a read serves further pictures
_KEPT = 8  # reads kept at most (one per distinct window start)

T = TypeVar("T")


@dataclass
class _Read(Generic[T]):
    since: datetime | None  # the runs changed since then (None: what waits now)
    at: float
    task: asyncio.Task[T]

    def usable(self) -> bool:
        """Still reading, or read without an error."""
        return not self.task.done() or (not self.task.cancelled() and self.task.exception() is None)


@dataclass
class Daily:
    fabro: FabroClient
    clock: Callable[[], datetime]
    max_pages: int = MAX_PAGES
    cache_for: float = CACHE_FOR
    monotonic: Callable[[], float] = time.monotonic
    _changed: list[_Read[tuple[list[Run], bool]]] = field(default_factory=list, init=False)
    _waits: list[_Read[list[Run]]] = field(default_factory=list, init=False)

    async def picture(self, window: Window, tz: ZoneInfo, *, now: datetime | None = None) -> Picture:
        now = now or self.clock()
        start, end = bounds(window, now, tz)
        runs, partial = await self._shared_changed(start)
        waiting = await self._shared(self._waits, None, self._waiting)
        return picture(runs, waiting, window=window, start=start, end=end, tz=str(tz), partial=partial)

    async def _shared_changed(self, start: datetime) -> tuple[list[Run], bool]:
        """The runs changed since `start`, from a read made for an earlier or equal start when one is fresh."""
        self._fresh_only(self._changed)
        for read in self._changed:
            if read.since is not None and read.since <= start and read.usable():
                runs, partial = await asyncio.shield(read.task)
                # A capped read made for an earlier start may stop before this one's start.
                if not partial or read.since == start:
                    return runs, partial
                break
        return await self._shared(self._changed, start, lambda: self._changed_since(start))

    async def _shared(self, reads: list[_Read[T]], since: datetime | None, read: Callable[[], Awaitable[T]]) -> T:
        """Join the read for `since` in flight or still fresh, else start one."""
        self._fresh_only(reads)
        for held in reads:
            if held.since == since and held.usable():
                return await asyncio.shield(held.task)

        async def reading() -> T:
            return await read()

        task = asyncio.create_task(reading(), name="daily-read")
        reads.insert(0, _Read(since, self.monotonic(), task))
        del reads[_KEPT:]
        return await asyncio.shield(task)

    def _fresh_only(self, reads: list[_Read[T]]) -> None:
        now = self.monotonic()
        reads[:] = [r for r in reads if now - r.at < self.cache_for and r.usable()]

    async def _changed_since(self, start: datetime) -> tuple[list[Run], bool]:
        """Every run that changed since `start` (a run that finished then changed then too), archived included."""
        runs: list[Run] = []
        for page in range(self.max_pages):
            listing = RunFilter(
                sort="updated_at", direction="desc", limit=_PAGE, offset=page * _PAGE, include_archived=True
            )
            batch = await self.fabro.list_runs(listing)
            runs += batch.data
            oldest = batch.data[-1].updated_at if batch.data else None
            if not batch.meta.has_more or not batch.data or (oldest is not None and oldest < start):
                return runs, False
        log.info("the daily picture read %d pages and stopped: it is partial", self.max_pages)
        return runs, True

    async def _waiting(self) -> list[Run]:
        """Questions and approvals waiting on people now (the longest-waiting first, up to a page)."""
        # A question on a paused run waits too: the run is `paused` with `prior_block`, in the running bucket.
        waiting = RunFilter(statuses=("blocked", "pending", "running"), sort="updated_at", direction="asc", limit=_PAGE)
        runs = (await self.fabro.list_runs(waiting)).data
        return [r for r in runs if r.bucket == "blocked" or r.awaits_approval or r.current_question is not None]
