"""The alert cycle on a clock: APScheduler 3.11 on the bot's own event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

__all__ = ["JOB_ID", "start_scheduler"]

log = logging.getLogger(__name__)

JOB_ID = "alert-cycle"


def start_scheduler(cycle: Callable[[], Awaitable[object]], interval_seconds: float) -> AsyncIOScheduler:
    """Run `cycle` now and then every `interval_seconds`, never two at once.

    `max_instances=1`: a slow cycle (Fabro slow, Slack pacing a storm) is never overlapped.
    `coalesce=True`: runs missed meanwhile collapse into one, so the job never piles up.
    `misfire_grace_time`: a run up to one interval late still happens; later ones are
    folded into the next.
    """

    async def guarded() -> None:
        try:
            await cycle()
        except asyncio.CancelledError:
            log.info("alert cycle stopped with the bot")  # shutting down: the store finished its last write
        except Exception:
            log.exception("alert cycle failed; the next one will retry")

    scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
    scheduler.add_job(
        guarded,
        IntervalTrigger(seconds=interval_seconds, timezone=UTC),
        id=JOB_ID,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, int(interval_seconds)),
        next_run_time=datetime.now(UTC),
    )
    scheduler.start()
    return scheduler
