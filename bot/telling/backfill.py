"""The run index filled from Fabro, in the background: on first start, and after an outage.

Home, `/runs mine`, stats and owner DMs read the bot's own index of runs (Fabro cannot list runs by
creator), and the poller indexes a run only when it sees it change. Runs older than the bot, or
that changed while it was down for longer than the poll window, would be unknown: so the newest
runs are read once, page by page (bounded, paced), by the leader, never inside a cycle. Indexing
is an upsert of what Fabro says now, so reading a run twice, or on two replicas, changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroError, FabroUnreadable
from bot.fabro.filters import RunFilter
from bot.people.notify import Personal
from bot.store.base import Store

__all__ = ["BACKFILLED", "POLLED", "Backfill"]

log = logging.getLogger(__name__)

BACKFILLED = "index.backfilled_at"  # when the index was last filled from Fabro
POLLED = "alerts.polled_at"  # when a cycle last read Fabro: a gap longer than the window is an outage
PAGE = 100


@dataclass
class Backfill:
    store: Store
    fabro: FabroClient
    personal: Personal
    clock: Callable[[], datetime]
    is_leader: Callable[[], bool]
    window: timedelta  # an outage longer than this is filled in again
    web_base: str | None = None
    pages: int = 20  # of 100 runs each, the newest first: a bound, whatever Fabro holds
    pace: float = 1.0  # seconds between two pages, so Fabro serves others in between
    wait_for_leader: float = 30.0  # seconds; another replica leads otherwise, and fills it

    async def due(self) -> bool:
        """Never filled yet, or the last cycle that read Fabro is older than the window."""
        if await self.store.get_mark(BACKFILLED) is None:
            return True
        polled = await self.store.get_mark(POLLED)
        return polled is not None and self.clock() - datetime.fromisoformat(polled) > self.window

    async def polled(self) -> None:
        """A cycle read Fabro just now."""
        await self.store.set_mark(POLLED, self.clock().isoformat())

    async def fill(self) -> None:
        """`run`, as a task of its own."""
        await self.run()

    async def run(self) -> int:
        """Fill the index from the newest runs; returns how many were indexed. Never raises for Fabro."""
        waited = 0.0
        while not self.is_leader():
            if waited >= self.wait_for_leader:
                return 0
            await asyncio.sleep(0.5)
            waited += 0.5
        indexed = 0
        try:
            for number in range(self.pages):
                listing = RunFilter(
                    sort="updated_at", direction="desc", limit=PAGE, offset=number * PAGE, include_archived=True
                )
                page = await self.fabro.list_runs(listing)
                for run in page.data:
                    try:
                        await self.personal.index(run, self.web_base)
                        indexed += 1
                    except FabroUnreadable as exc:  # one run that cannot be read costs only itself
                        log.warning("run %s left out of the index: %s", run.id, exc)
                if not page.meta.has_more or not page.data:
                    break
                await asyncio.sleep(self.pace)
        except FabroError as exc:
            log.warning("index backfill stopped after %d runs: %s; it is tried again on the next start", indexed, exc)
            return indexed
        await self.store.set_mark(BACKFILLED, self.clock().isoformat())
        log.info("index backfill: %d runs read from Fabro", indexed)
        return indexed
