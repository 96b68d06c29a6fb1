"""Following a run in a channel: a live card edited in place as it moves, and a thread told what matters.

A follow is stored per run and channel with the last event `seq` it handled. Only the
scheduler leader follows: each poll cycle it reads what happened since that `seq`, and with
the event stream on, a per-run stream (on connections of its own) wakes it within a second.
Each thread reply is claimed under its own key (`update:<run>:<seq>`), posted with that key in
its metadata, and confirmed; the `seq` moves only after, so a restart or a failover neither
skips nor repeats a reply (a claim left by a crash is looked for in the thread first).

Card edits go through one budget for the workspace (Slack's Tier 3 for chat.update, about 50 a
minute, shared with alert edits): a message is edited at once, then at most every 3 seconds;
later states wait and merge, and the last state always lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.live import live_card, update_reply
from bot.core.errors import CannotPost, FollowLimit, Refusal, Refused
from bot.core.keys import AlertKey, AlertKind
from bot.core.records import Follow
from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroError
from bot.fabro.models import Run
from bot.slack.webapi import CHANNEL_ERRORS, TRANSPORT_ERRORS, EditBudget, slack_error
from bot.store.base import Store
from bot.telling.once import post_once

__all__ = ["CardEditor", "Follower"]

log = logging.getLogger(__name__)

_END_EVENTS = frozenset({"run.completed", "run.failed"})


@dataclass
class CardEditor:
    """Edits messages within the budget: at once, then at most every `spacing` seconds; the last state lands."""

    slack: AsyncWebClient
    budget: EditBudget
    spacing: float = 3.0
    _last: dict[tuple[str, str], float] = field(default_factory=dict, init=False)
    _pending: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, init=False)
    _flushing: dict[tuple[str, str], asyncio.Task[None]] = field(default_factory=dict, init=False)
    edits: int = field(default=0, init=False)

    async def edit(self, channel: str, ts: str, message: dict[str, Any]) -> None:
        where = (channel, ts)
        self._pending[where] = message  # a newer state replaces one still waiting
        if where in self._flushing:
            return
        delay = max(self._last.get(where, float("-inf")) + self.spacing - time.monotonic(), self.budget.wait(), 0.0)
        if delay == 0:
            await self._flush(where)
            return
        self._flushing[where] = asyncio.create_task(self._later(where, delay), name=f"card-edit-{ts}")

    async def _later(self, where: tuple[str, str], delay: float) -> None:
        try:
            await asyncio.sleep(delay)
            while (wait := self.budget.wait()) > 0:  # noqa: ASYNC110 - the budget frees up with time alone
                await asyncio.sleep(wait)
            await self._flush(where)
        finally:
            self._flushing.pop(where, None)

    async def _flush(self, where: tuple[str, str]) -> None:
        message = self._pending.pop(where, None)
        if message is None:
            return
        self.budget.spend()
        self._last[where] = time.monotonic()
        try:
            await self.slack.chat_update(channel=where[0], ts=where[1], text=message["text"], blocks=message["blocks"])
            self.edits += 1
        except TRANSPORT_ERRORS as exc:
            reason = slack_error(exc) if isinstance(exc, SlackApiError) else type(exc).__name__
            log.warning("could not edit the live card %s in %s: %s", where[1], where[0], reason)

    async def drain(self) -> None:
        """Let every waiting edit land (at shutdown)."""
        await asyncio.gather(*list(self._flushing.values()), return_exceptions=True)


@dataclass
class Follower:
    store: Store
    fabro: FabroClient
    slack: AsyncWebClient
    clock: Callable[[], datetime]
    editor: CardEditor
    web_base: str | None = None
    follow_max: int = 50
    live: bool = True  # per-run streams wake the follower; without them, each poll cycle does
    _locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict, init=False)
    _streams: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False)

    # -- following and unfollowing ---------------------------------------------------------------

    async def follow(self, selector: str, *, channel: str, user_id: str, message_ts: str | None = None) -> Follow:
        """Follow a run in `channel`: on the alert message `message_ts` when it is one of ours, else on a
        live card posted there for everyone."""
        run = await self.fabro.find_run(selector)
        if run.is_terminal:
            raise Refused(Refusal.ENDED, run=run)
        for existing in await self.store.follows(run.id):
            if existing.channel == channel:
                return existing
        if len(await self.store.follows()) >= self.follow_max:
            raise FollowLimit(self.follow_max)
        # Where the thread starts: what happened before the follow is not retold, and nothing after it
        # is missed (read before the card exists, so an event while it is posted is still told).
        recent = await self.fabro.recent_events(run.id, limit=1)
        last_seq = max((e.seq or 0 for e in recent), default=0)
        card = live_card(run, await self._stages(run.id), now=self.clock(), web_base=self.web_base)
        on_alert = message_ts is not None and bool(await self.store.alerts_at(channel, message_ts))
        if on_alert and message_ts is not None:
            ts = message_ts
            await self.editor.edit(channel, ts, card)
        else:
            ts = await self._post_card(channel, card)
        follow = Follow(run.id, channel, ts, user_id, self.clock(), last_seq)
        await self.store.add_follow(follow)
        log.info("user=%s follows run %s in %s (card %s)", user_id, run.id, channel, ts)
        return follow

    async def unfollow(self, selector: str, *, channel: str) -> Run | None:
        run = await self.fabro.find_run(selector)
        removed = await self.store.remove_follow(run.id, channel)
        if not await self.store.follows(run.id):
            self._stop_stream(run.id)
        return run if removed else None

    async def _post_card(self, channel: str, card: dict[str, Any]) -> str:
        try:
            posted = await self.slack.chat_postMessage(
                channel=channel, text=card["text"], blocks=card["blocks"], unfurl_links=False, unfurl_media=False
            )
        except SlackApiError as exc:
            if slack_error(exc) in CHANNEL_ERRORS or slack_error(exc) in ("not_allowed", "cannot_dm_bot"):
                raise CannotPost(channel, slack_error(exc)) from exc
            raise
        return str(posted["ts"])

    # -- keeping up ------------------------------------------------------------------------------------

    async def sync_all(self) -> None:
        """One pass over every follow (each poll cycle, on the leader); opens the streams that are missing."""
        for follow in await self.store.follows():
            await self.sync(follow.run_id, follow.channel)
            if self.live and follow.run_id not in self._streams:
                self._start_stream(follow.run_id)

    async def sync(self, run_id: str, channel: str) -> None:
        """Handle what happened to the run since the follow's last `seq`: replies, then the card."""
        lock = self._locks.setdefault((run_id, channel), asyncio.Lock())
        async with lock:
            follow = next((f for f in await self.store.follows(run_id) if f.channel == channel), None)
            if follow is None:
                return
            try:
                await self._sync(follow)
            except (FabroError, *TRANSPORT_ERRORS) as exc:
                # Nothing is lost: the seq did not move past what was not told.
                log.info("following %s in %s: deferred (%s)", run_id, channel, type(exc).__name__)

    async def _sync(self, follow: Follow) -> None:
        events = sorted(
            (e for e in await self.fabro.events_since(follow.run_id, follow.last_seq + 1) if e.seq is not None),
            key=lambda e: e.seq or 0,
        )
        if not events:
            return
        run = await self.fabro.get_run(follow.run_id)
        alerted = {a.key for a in await self.store.alerts_for_run(run.id) if a.channel == follow.channel}
        ended = False
        for event in events:
            question = AlertKey(AlertKind.QUESTION, run.id, str(event.properties.get("question_id") or "?"))
            reply = update_reply(
                event, run, now=self.clock(), web_base=self.web_base, with_controls=question not in alerted
            )
            if reply is not None:
                await self._reply(follow, event.seq or 0, reply)
            await self.store.set_follow_seq(follow.run_id, follow.channel, event.seq or 0)
            ended = ended or event.event in _END_EVENTS
        card = live_card(run, await self._stages(run.id), now=self.clock(), web_base=self.web_base)
        await self.editor.edit(follow.channel, follow.ts, card)
        if ended or run.is_terminal:
            await self.store.remove_follow(follow.run_id, follow.channel)
            log.info("run %s ended: no longer followed in %s", run.id, follow.channel)

    async def _reply(self, follow: Follow, seq: int, reply: dict[str, Any]) -> None:
        """Post one thread reply exactly once, across crashes."""
        key = AlertKey(AlertKind.UPDATE, follow.run_id, str(seq))
        await post_once(
            self.store, self.slack, self.clock, key, follow.channel, reply, thread_ts=follow.ts, crash_prefix="follow"
        )

    async def _stages(self, run_id: str) -> list[Any]:
        try:
            return await self.fabro.stages(run_id)
        except FabroError:
            return []

    # -- per-run streams -------------------------------------------------------------------------------

    def _start_stream(self, run_id: str) -> None:
        self._streams[run_id] = asyncio.create_task(self._listen(run_id), name=f"follow-{run_id}")

    def _stop_stream(self, run_id: str) -> None:
        task = self._streams.pop(run_id, None)
        if task is not None:
            task.cancel()

    async def _listen(self, run_id: str) -> None:
        """Wake the follower on each event of the run; the events themselves are read by `sync`."""
        failures = 0
        while await self.store.follows(run_id):
            since = min(f.last_seq for f in await self.store.follows(run_id)) + 1
            try:
                async with self.fabro.attach_run(run_id, since) as events:
                    async for _ in events:
                        failures = 0
                        for follow in await self.store.follows(run_id):
                            await self.sync(run_id, follow.channel)
                for follow in await self.store.follows(run_id):  # the stream ended: the run may have
                    await self.sync(run_id, follow.channel)
            except Exception as exc:  # noqa: BLE001 - any failure: back off and follow again; the poll stands in
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "the stream of run %s broke (%s); following by polling meanwhile", run_id, exc)
            await asyncio.sleep(min(30.0, 0.5 * 2**failures) * random.uniform(0.5, 1.0))
        self._streams.pop(run_id, None)

    async def stop(self) -> None:
        for run_id in list(self._streams):
            self._stop_stream(run_id)
        with contextlib.suppress(Exception):
            await self.editor.drain()
