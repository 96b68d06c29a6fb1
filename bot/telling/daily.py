"""The daily picture from Fabro: the runs of a window, read newest-change first, and who is waited on."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.core.stats import Picture, Window, bounds, picture
from bot.fabro.client import FabroClient
from bot.fabro.filters import RunFilter
from bot.fabro.models import Run

__all__ = ["MAX_PAGES", "Daily"]

log = logging.getLogger(__name__)

MAX_PAGES = 10  # 1,000 runs changed in the window at most; past that the picture says it is partial
_PAGE = 100


@dataclass
class Daily:
    fabro: FabroClient
    clock: Callable[[], datetime]
    max_pages: int = MAX_PAGES

    async def picture(self, window: Window, tz: ZoneInfo, *, now: datetime | None = None) -> Picture:
        now = now or self.clock()
        start, end = bounds(window, now, tz)
        runs, partial = await self._changed_since(start)
        return picture(runs, await self._waiting(), window=window, start=start, end=end, tz=str(tz), partial=partial)

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
        waiting = RunFilter(statuses=("blocked", "pending"), sort="updated_at", direction="asc", limit=_PAGE)
        return [r for r in (await self.fabro.list_runs(waiting)).data if r.bucket == "blocked" or r.awaits_approval]
