"""Retention: what ended more than `RETENTION_DAYS` ago is forgotten, a small batch at a time, by the leader.

Settled alerts and their once-keys, settled actions, follows of ended runs and index entries of
runs that ended go; nothing pending, nothing waiting on a person, nothing a message in Slack still
needs (the store decides which rows qualify, in `forget`). Batches are small and spaced so that a
sweep never holds the database for long; the sweep runs in its own task, never inside a cycle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.store.base import Store

__all__ = ["Retention"]

log = logging.getLogger(__name__)


@dataclass
class Retention:
    store: Store
    clock: Callable[[], datetime]
    days: int
    is_leader: Callable[[], bool]
    batch: int = 500  # rows per table and statement
    every: float = 3600.0  # seconds between sweeps
    pause: float = 0.2  # seconds between two batches, so other statements go in between

    async def sweep(self) -> int:
        """Forget everything due now, batch by batch; returns how many rows went."""
        before = self.clock() - timedelta(days=self.days)
        total = 0
        while self.is_leader():
            gone = await self.store.forget(before, batch=self.batch)
            total += gone
            if gone == 0:
                break
            await asyncio.sleep(self.pause)
        if total:
            log.info("retention: forgot %d rows of what ended before %s", total, before.date().isoformat())
        return total

    async def run(self) -> None:
        """Sweep every `every` seconds while this replica leads, until cancelled."""
        while True:
            if self.is_leader():
                try:
                    await self.sweep()
                except Exception:
                    log.exception("retention sweep failed; the next one retries")
            await asyncio.sleep(self.every)
