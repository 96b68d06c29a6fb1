"""Stopping what the bot started: a task cancelled without losing the caller's own cancellation,
and the work in flight that stopping first waits for, then cancels.

Python 3.11 counts cancellations per task (`Task.cancelling()`): a `CancelledError` may be
swallowed only by the code that asked for it, never on the way out of a caller that was itself
cancelled. Nothing here waits without a bound: a task that ignores its cancellation is named in
the log and left behind, so stopping always ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["InFlight", "stop_task"]

log = logging.getLogger(__name__)


async def stop_task(task: asyncio.Task[Any] | None, *, timeout: float = 5.0) -> None:
    """Cancel `task` and wait for it to end, at most `timeout` seconds.

    Its `CancelledError` is not ours: it is swallowed, unless the caller was cancelled too, and
    then it goes on. Any other way the task ended was its own to report; it is not raised here.
    """
    if task is None or task is asyncio.current_task():
        return
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        log.warning("task %s did not stop within %g s of being cancelled; left behind", task.get_name(), timeout)
        return
    if not task.cancelled():
        task.exception()  # retrieved: how it ended is its own business, logged where it happened


class InFlight:
    """Work begun for someone that stopping lets finish: a person's request being answered after
    its ack, a follow-up it started, an alert cycle under way.

    A task is held from `enter` to `leave` (or for the life of a task `spawn` started). `settle`
    waits for every holder to leave, then cancels those still inside and waits for them, briefly.
    """

    def __init__(self) -> None:
        self._held: dict[asyncio.Task[Any], int] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._spawned: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._held)

    def enter(self, task: asyncio.Task[Any] | None = None) -> None:
        task = task or asyncio.current_task()
        if task is not None:
            self._held[task] = self._held.get(task, 0) + 1
            self._idle.clear()

    def leave(self, task: asyncio.Task[Any] | None = None) -> None:
        task = task or asyncio.current_task()
        if task is None or task not in self._held:
            return
        self._held[task] -= 1
        if self._held[task] <= 0:
            del self._held[task]
        if not self._held:
            self._idle.set()

    @contextmanager
    def held(self) -> Iterator[None]:
        """The current task is in flight for the duration of the block."""
        task = asyncio.current_task()
        self.enter(task)
        try:
            yield
        finally:
            self.leave(task)

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """A task of its own for work that outlives the request that began it, held until it ends."""
        task = asyncio.create_task(work, name=name)
        self._spawned.add(task)  # kept, so it is not collected while it runs
        self.enter(task)

        def ended(done: asyncio.Task[None]) -> None:
            self._spawned.discard(done)
            self.leave(done)

        task.add_done_callback(ended)
        return task

    async def settle(self, timeout: float, *, cancelled_within: float = 3.0) -> list[str]:
        """Wait up to `timeout` seconds for the work in flight to finish; cancel what is left and
        wait up to `cancelled_within` seconds more for it to unwind. The names of what was cancelled."""
        await asyncio.sleep(0)  # a task started just now takes its first step, and holds
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                await self._idle.wait()
            return []
        except TimeoutError:
            pass
        late = list(self._held)
        for task in late:
            task.cancel()
        try:
            async with asyncio.timeout(cancelled_within):
                await self._idle.wait()
        except TimeoutError:
            still = ", ".join(sorted(t.get_name() for t in self._held))
            log.warning("work still in flight after it was cancelled, left behind: %s", still)
        return sorted(t.get_name() for t in late)
