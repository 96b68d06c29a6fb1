"""The bot's Home tab: what waits on the person looking, what waits on anyone, and their runs.

Waiting runs come from Fabro's waiting buckets; whose they are, and the person's own runs, from the
bot's index (Fabro cannot list runs by creator). One read of the waiting runs serves every Home
(opens a few seconds apart share it, and a read in flight is joined, never repeated).

Refreshing runs in a task of its own, never inside the alert cycle: the cycle only marks who is
affected when the index changes (the run's owner, by user or login; everyone when what waits on
anyone changed) and wakes the task. The task republishes those Homes whose content changed, at
most once every `REPUBLISH_EVERY` per person, within a budget of `views.publish` calls that
opens spend too (Slack's Tier 4). Per viewer it keeps a few bytes (a digest of what was shown and
their logins), never a view.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.home import home_view
from bot.blocks.presentation import Presentation
from bot.core.records import IndexedRun
from bot.core.tasks import stop_task
from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroError
from bot.fabro.filters import RunFilter
from bot.fabro.models import Run
from bot.people.identity import Linker
from bot.people.mine import my_runs
from bot.people.notify import Personal
from bot.slack.webapi import TRANSPORT_ERRORS, EditBudget, slack_error
from bot.store.base import People

__all__ = ["REPUBLISH_EVERY", "Home", "Waiting"]

log = logging.getLogger(__name__)

REPUBLISH_EVERY = 10.0  # seconds, per person
WAITING_FOR = 5.0  # seconds one read of the waiting runs serves opens
YOUR_RUNS = 10
MAX_VIEWERS = 10_000  # people whose Home is kept up to date; the longest unseen is forgotten first
# A paused run can still wait on an answer: it is `paused` with its question, in the running bucket.
WAITING_PAGES = 50  # of 100 waiting runs each: a bound, far above what a team keeps waiting
_WAITING = RunFilter(statuses=("blocked", "pending", "running"), sort="created_at", direction="asc", limit=100)
_WAITING_BUCKETS = frozenset({"blocked", "pending"})


@dataclass(frozen=True)
class Waiting:
    runs: list[tuple[Run, str | None]]  # each waiting run and its owner (a Slack user), the oldest first
    unavailable: bool = False  # Fabro did not answer

    def fingerprint(self) -> str:
        """What a Home shows of these runs changes exactly when this does (time passing aside)."""
        shown = [(run.id, str(run.updated_at), owner) for run, owner in self.runs]
        return hashlib.blake2b(json.dumps(shown).encode(), digest_size=16).hexdigest()


@dataclass
class _Viewer:
    logins: tuple[str, ...] = ()  # as of their last Home: whose runs' changes concern them
    digest: bytes = b""  # of the view last published
    published_at: float = float("-inf")


@dataclass
class Home:
    store: People
    fabro: FabroClient
    linker: Linker
    personal: Personal
    clock: Callable[[], datetime]
    presentation: Presentation = field(default_factory=Presentation)
    monotonic: Callable[[], float] = time.monotonic
    budget: EditBudget = field(default_factory=lambda: EditBudget(per_minute=100))  # views.publish, Tier 4
    max_viewers: int = MAX_VIEWERS
    recheck: float = REPUBLISH_EVERY  # seconds before Homes still marked (published too recently) are looked at
    _viewers: OrderedDict[str, _Viewer] = field(default_factory=OrderedDict, init=False)
    _urgent: dict[str, None] = field(default_factory=dict, init=False)  # their own runs changed
    _dirty: dict[str, None] = field(default_factory=dict, init=False)  # what waits on anyone changed
    _held: tuple[float, Waiting] | None = field(default=None, init=False)  # the last read, and when
    _refreshing: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _reading: asyncio.Task[Waiting] | None = field(default=None, init=False)
    _waiting_changed: bool = field(default=False, init=False)
    _shown_waiting: str | None = field(default=None, init=False)  # fingerprint the viewers last got
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    async def view(
        self,
        user_id: str,
        *,
        notice: str | None = None,
        waiting: Waiting | None = None,
        logins: list[str] | None = None,
    ) -> dict[str, Any]:
        now = self.clock()
        if logins is None:
            pinned, linked = await self.linker.logins_of(user_id)
            logins = pinned + linked
        waiting = waiting or await self.waiting()
        yours = await my_runs(self.store, user_id, logins, limit=YOUR_RUNS) if logins else None
        return home_view(
            notice=notice,
            linked=bool(logins),
            mine=[run for run, owner in waiting.runs if owner == user_id],
            others=[run for run, owner in waiting.runs if owner != user_id],
            unavailable=waiting.unavailable,
            yours=yours.entries if yours is not None else None,
            yours_total=yours.total if yours is not None else 0,
            now=now,
            web_base=self.presentation.web_base,
            command=self.presentation.command,
        )

    async def waiting(self, *, fresh: bool = False) -> Waiting:
        """Every question and approval waiting in Fabro, the oldest first, with whose run it is.

        The same for every person: one read serves every Home for `WAITING_FOR` seconds (unless
        the index changed meanwhile, or `fresh`), and a read in flight is joined.
        """
        held = self._held
        if not fresh and held is not None and self.monotonic() - held[0] < WAITING_FOR:
            return held[1]
        if fresh or self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read_waiting(), name="home-waiting")
        return await asyncio.shield(self._reading)

    async def _read_waiting(self) -> Waiting:
        found: list[Run] = []
        try:
            # Every page, not only the first 100: "… and N more" must be exact.
            for page_number in range(WAITING_PAGES):
                listing = await self.fabro.list_runs(replace(_WAITING, offset=page_number * _WAITING.limit))
                found += listing.data
                if not listing.meta.has_more or not listing.data:
                    break
        except FabroError as exc:
            log.warning("Home: waiting runs unavailable: %s", exc)
            self._held = None
            return Waiting([], unavailable=True)
        runs = [r for r in dict((r.id, r) for r in found).values() if r.current_question or r.awaits_approval]
        waiting = Waiting([(run, await self.personal.owner_of(run)) for run in runs])
        self._held = (self.monotonic(), waiting)
        return waiting

    async def publish(
        self,
        client: AsyncWebClient,
        user_id: str,
        *,
        force: bool = True,
        notice: str | None = None,
        waiting: Waiting | None = None,
    ) -> bool:
        """Publish `user_id`'s Home (opened, or acted on: `force`); unless `force`, only if it changed.

        An open remembers the person as a viewer, whose Home is then kept up to date.
        """
        viewer = self._viewers.get(user_id)
        if viewer is None:
            viewer = self._viewers[user_id] = _Viewer()
            while len(self._viewers) > self.max_viewers:
                forgotten, _ = self._viewers.popitem(last=False)
                self._urgent.pop(forgotten, None)
                self._dirty.pop(forgotten, None)
        if force:
            self._viewers.move_to_end(user_id)
        if notice is not None:
            self._held = None  # after an action, what waits is read again
        pinned, linked = await self.linker.logins_of(user_id)
        viewer.logins = tuple(pinned + linked)
        view = await self.view(user_id, notice=notice, waiting=waiting, logins=[*viewer.logins])
        digest = hashlib.blake2b(json.dumps(view).encode(), digest_size=16).digest()  # built in a fixed order
        if not force and viewer.digest == digest:
            return False
        self.budget.spend()
        try:
            await client.views_publish(user_id=user_id, view=view)
        except TRANSPORT_ERRORS as exc:
            # It costs this one Home: the others of a refresh still go.
            reason = slack_error(exc) if isinstance(exc, SlackApiError) else type(exc).__name__
            log.warning("Home of %s not published: %s", user_id, reason)
            return False
        viewer.digest, viewer.published_at = digest, self.monotonic()
        return True

    # -- keeping Homes up to date, off the alert path -----------------------------------------------

    def changed(self, before: IndexedRun | None, after: IndexedRun) -> None:
        """The index learned `after` (it held `before`): mark whose Home it concerns. Never waits."""
        if not self._viewers:
            return
        owners = {e.owner for e in (before, after) if e is not None and e.owner}
        logins = {e.login for e in (before, after) if e is not None and e.login}
        for user_id, viewer in self._viewers.items():
            if user_id in owners or logins.intersection(viewer.logins):
                self._urgent[user_id] = None
        if any(e is not None and e.status in _WAITING_BUCKETS for e in (before, after)):
            self._waiting_changed = True
            self._held = None
        if self._urgent or self._waiting_changed:
            self._wake.set()

    async def refresh(self, client: AsyncWebClient) -> int:
        """Republish the Homes marked since the last refresh whose content changed; returns how many.

        Nothing marked: nothing read. Fabro is asked once, and only when what waits may have changed.
        A Home published less than `REPUBLISH_EVERY` ago stays marked for a later refresh.
        """
        async with self._refreshing:
            return await self._refresh(client)

    async def _refresh(self, client: AsyncWebClient) -> int:
        waiting: Waiting | None = None
        if self._waiting_changed:
            self._waiting_changed = False
            waiting = await self.waiting(fresh=True)
            if waiting.unavailable:
                self._waiting_changed = True  # asked again at the next refresh
            elif waiting.fingerprint() != self._shown_waiting:
                self._shown_waiting = waiting.fingerprint()
                self._dirty.update(dict.fromkeys(self._viewers))
        count = 0
        for marked in (self._urgent, self._dirty):
            for user_id in list(marked):
                viewer = self._viewers.get(user_id)
                if viewer is None:
                    marked.pop(user_id, None)
                    continue
                if self.monotonic() - viewer.published_at < REPUBLISH_EVERY:
                    continue
                while (wait := self.budget.wait()) > 0:  # noqa: ASYNC110 - the budget frees up with time alone
                    await asyncio.sleep(wait)
                if waiting is None:
                    waiting = await self.waiting()  # once per pass, however many Homes it serves
                if waiting.unavailable:
                    self._waiting_changed = True  # Fabro did not answer: these wait for the next pass
                    return count
                self._urgent.pop(user_id, None)
                self._dirty.pop(user_id, None)
                count += await self.publish(client, user_id, force=False, waiting=waiting)
        return count

    def start(self, client: AsyncWebClient) -> None:
        """Keep Homes up to date in a task of this Home's own."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(client), name="home-refresh")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)

    async def _run(self, client: AsyncWebClient) -> None:
        while True:
            # Marked Homes published too recently are looked at again once they may be.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.recheck):
                    await self._wake.wait()
            self._wake.clear()
            if not (self._urgent or self._dirty or self._waiting_changed):
                continue
            try:
                await self.refresh(client)
            except Exception:
                log.exception("Home refresh failed; the next one retries")
