"""Alerts as things happen: Fabro's global event stream triggers the same reconcile as the poll.

The stream is live only and lossy (no replay, a slow reader loses events, approval
requests never appear on it), so it only speeds alerts up: the poll stays the safety
net, and every reconnection is followed by a reconciling poll. Only the scheduler
leader listens, and only while some channel wants alerts. Followed runs take their events from it
too (`on_event`). Reconnection backs off exponentially, capped, with jitter (stamina).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import stamina

from bot.core.tasks import stop_task
from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroError
from bot.fabro.models import RunEvent

__all__ = ["LIVE_EVENTS", "LiveAlerts"]

log = logging.getLogger(__name__)

# Events after which a run's alerts may have changed.
LIVE_EVENTS = frozenset(
    {
        "run.failed",
        "run.completed",
        "run.blocked",
        "run.unblocked",
        "run.archived",
        "run.unarchived",
        "run.superseded_by",
        "run.cancel.requested",
        "interview.started",
        "interview.completed",
        "interview.timeout",
        "interview.interrupted",
    }
)
# Not listed: run.created, run.pending, run.approved and run.denied never reach the global
# stream (it carries only what the server executes); approvals are found by the poll.


@dataclass
class LiveAlerts:
    fabro: FabroClient
    reconcile_run: Callable[[str], Awaitable[object]]
    reconcile_all: Callable[[], Awaitable[object]]
    should_listen: Callable[[], bool]  # the leader, with channels to alert
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    idle_timeout: float = 300.0
    on_state: Callable[[bool], None] | None = None
    on_event: Callable[[RunEvent], None] | None = None  # every event with a run (followed runs ride on it)
    connected: bool = field(default=False, init=False)
    connections: int = field(default=0, init=False)
    _pending: dict[str, None] = field(default_factory=dict, init=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False)
    _catching_up: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="fabro-event-stream"),
            asyncio.create_task(self._work(), name="live-alerts"),
        ]

    async def stop(self) -> None:
        # Each task is cancelled and waited for, boundedly; the catching-up poll too, which would
        # otherwise go on writing into a store being closed.
        for task in [*self._tasks, *self._catching_up]:
            await stop_task(task)
        self._tasks = []
        self._set_connected(False)

    async def _listen(self) -> None:
        while True:
            if not self.should_listen():
                self._set_connected(False)
                await asyncio.sleep(1.0)
                continue
            # stamina paces reconnecting after failures: exponential, capped, jittered. A stream
            # that delivered before it ended is a recovery, so the next one starts a fresh count.
            async for attempt in stamina.retry_context(
                on=Exception,
                attempts=None,
                timeout=None,
                wait_initial=self.backoff_base,
                wait_max=self.backoff_cap,
                wait_jitter=self.backoff_base,
            ):
                with attempt:
                    await self._session(first_failure=attempt.num == 1)
            await asyncio.sleep(self.backoff_base)

    async def _session(self, *, first_failure: bool) -> None:
        """One connection to the stream, until it ends. Raises only when it delivered nothing."""
        delivered = False
        try:
            async with self.fabro.attach(idle_timeout=self.idle_timeout) as events:
                self._set_connected(True)
                self.connections += 1
                if self.connections > 1:
                    # Whatever happened while we were away was not replayed: poll for it.
                    polling = asyncio.create_task(self._catch_up(), name="live-catch-up")
                    self._catching_up.add(polling)
                    polling.add_done_callback(self._catching_up.discard)
                async for event in events:
                    delivered = True
                    if not self.should_listen():
                        break
                    if self.on_event is not None and event.run_id:
                        self.on_event(event)
                    if event.event in LIVE_EVENTS and event.run_id:
                        self._pending[event.run_id] = None
                        self._wake.set()
            log.info("Fabro's event stream ended; reconnecting")
        except Exception as exc:  # whatever ends the stream, it is reconnected; the poll stands in
            # Said once per outage, not at every retry (a Fabro without the stream would flood the log).
            level = logging.WARNING if first_failure or delivered else logging.DEBUG
            request_id = exc.request_id if isinstance(exc, FabroError) else None
            log.log(
                level,
                "Fabro's event stream is unavailable (%s: %s, request_id=%s); reconnecting with backoff,"
                " polling meanwhile",
                type(exc).__name__,
                exc,
                request_id,
                extra={"request_id": request_id},
            )
            if not delivered:
                raise
        finally:
            self._set_connected(False)

    async def _catch_up(self) -> None:
        try:
            await self.reconcile_all()
        except Exception:
            log.exception("the reconciling poll after a reconnect failed")

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                run_id = next(iter(self._pending))
                del self._pending[run_id]
                try:
                    await self.reconcile_run(run_id)
                except Exception:
                    log.exception("live alert for run %s failed; the next poll will pick it up", run_id)

    def _set_connected(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected = connected
            if self.on_state is not None:
                self.on_state(connected)
