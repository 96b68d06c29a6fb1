"""Following a run in a channel: a live card edited in place as it moves, and a thread told what matters.

A follow is stored per run and channel with the last event `seq` it handled. When its run ends it
is kept as ended, and a resume from Slack takes it up again (same card, same thread, same `seq`). Only the
scheduler leader follows. Its news rides Fabro's global event stream (the one alerts listen to):
an event that follows the stored `seq` is told as it is, with no read of the run's events; a gap
(the stream is lossy) is filled by reading from the stored `seq`. The poll cycle stands in for
the stream: it syncs only the followed runs its one listing saw change, so an idle cycle costs
nothing per followed run, and a first cycle (after a start or a failover) syncs them all.
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
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.live import live_card, update_reply
from bot.blocks.presentation import Presentation
from bot.core.errors import CannotPost, FollowLimit, Refusal, Refused
from bot.core.keys import AlertKey, AlertKind
from bot.core.records import Follow
from bot.core.tasks import stop_task
from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroError
from bot.fabro.models import Run, RunEvent
from bot.people.permissions import ActionClass, Permissions
from bot.slack.webapi import CHANNEL_ERRORS, TRANSPORT_ERRORS, EditBudget, slack_error
from bot.store.base import AlertLog, Follows
from bot.telling.delivery import Delivery

__all__ = ["CardEditor", "Follower"]

log = logging.getLogger(__name__)

_END_EVENTS = frozenset({"run.completed", "run.failed"})
# A failed run resumed in place goes back to work after its end: an end told before these is behind it.
_BACK_TO_WORK = frozenset({"run.start_requested", "run.runnable", "run.started"})
# In a channel shared with another organisation, the thread hears only of these, as the minimal card.
_TOLD_OUTSIDE = _END_EVENTS | {"interview.started"}


class FollowStore(Follows, AlertLog, Protocol):
    """What following touches: the follows, and the alerts a live card may sit on."""


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
    store: FollowStore
    fabro: FabroClient
    outbox: Delivery  # posts the live card and each thread reply (once, across crashes)
    clock: Callable[[], datetime]
    editor: CardEditor
    presentation: Presentation = field(default_factory=Presentation)
    follow_max: int = 50  # runs followed in one channel; one person may hold a quarter of them
    permissions: Permissions | None = None  # unfollowing someone else's follow needs ALLOW_OPERATE
    owner_of: Callable[[Run], Awaitable[str | None]] | None = None
    _locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict, init=False)
    _followed: set[str] = field(default_factory=set, init=False)  # run ids, as of the last pass
    _synced: bool = field(default=False, init=False)  # a full pass was made since this process led
    _inbox: dict[str, list[RunEvent]] = field(default_factory=dict, init=False)  # from the stream
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _worker: asyncio.Task[None] | None = field(default=None, init=False)

    # -- following and unfollowing ---------------------------------------------------------------

    async def follow(
        self,
        selector: str,
        *,
        channel: str,
        user_id: str,
        message_ts: str | None = None,
        thread_ts: str | None = None,
    ) -> Follow:
        """Follow a run in `channel`: on the alert message `message_ts` when it is one of ours, else on a
        live card posted there for everyone."""
        run = await self.fabro.find_run(selector)
        if run.is_terminal:
            raise Refused(Refusal.ENDED, run=run)
        for existing in await self.store.follows(run.id):
            if existing.channel == channel:
                return existing
        if (limit := await self._limit_in(channel, user_id)) is not None:
            raise limit
        # Where the thread starts: what happened before the follow is not retold, and nothing after it
        # is missed (read before the card exists, so an event while it is posted is still told).
        recent = await self.fabro.recent_events(run.id, limit=1)
        last_seq = max((e.seq or 0 for e in recent), default=0)
        card = live_card(run, await self._stages(run.id), now=self.clock(), web_base=self.presentation.web_base)
        card = await self.outbox.fit(channel, card, run)
        on_alert = message_ts is not None and bool(await self.store.alerts_at(channel, message_ts))
        if on_alert and message_ts is not None:
            ts = message_ts
            await self.editor.edit(channel, ts, card)
        else:
            ts = await self._post_card(channel, card, thread_ts)
        follow = Follow(run.id, channel, ts, user_id, self.clock(), last_seq, None if on_alert else thread_ts)
        await self.store.add_follow(follow)
        self._followed.add(run.id)
        log.info("user=%s follows run %s in %s (card %s)", user_id, run.id, channel, ts)
        return follow

    async def unfollow(self, selector: str, *, channel: str, user_id: str | None = None) -> Run | None:
        run = await self.fabro.find_run(selector)
        kept = [*await self.store.follows(run.id), *await self.store.ended_follows(run.id)]
        mine = [f for f in kept if f.channel == channel]  # an ended one too: a resume would take it up
        if self.permissions is not None and mine and user_id is not None and mine[0].created_by != user_id:
            owner_of = self.owner_of

            async def owner() -> str | None:
                return await owner_of(run) if owner_of is not None else None

            await self.permissions.check(
                ActionClass.OPERATE, user_id, owner, what="stop someone else's follow of this run"
            )
        removed = await self.store.remove_follow(run.id, channel)
        if not await self.store.follows(run.id):
            self._followed.discard(run.id)
        return run if removed else None

    async def _post_card(self, channel: str, card: dict[str, Any], thread_ts: str | None = None) -> str:
        try:
            return await self.outbox.post_now(channel, card, thread_ts=thread_ts)
        except SlackApiError as exc:
            if slack_error(exc) in CHANNEL_ERRORS or slack_error(exc) in ("not_allowed", "cannot_dm_bot"):
                raise CannotPost(channel, slack_error(exc)) from exc
            raise

    # -- keeping up ------------------------------------------------------------------------------------

    async def sync_all(self, changed: Collection[str] | None = None) -> None:
        """One pass over the follows (each poll cycle, on the leader): those whose run is in `changed`
        (what the cycle's listing saw change), or every one when `changed` is None or no full pass
        was made yet since this process leads."""
        follows = await self.store.follows()
        self._followed = {f.run_id for f in follows}
        everyone = changed is None or not self._synced
        for follow in follows:
            if everyone or (changed is not None and follow.run_id in changed):
                await self.sync(follow.run_id, follow.channel)
        self._synced = self._synced or everyone

    def on_event(self, event: RunEvent) -> None:
        """An event from Fabro's global stream: a followed run's is handled soon, in order. Never waits."""
        if event.run_id is None or event.run_id not in self._followed:
            return
        self._inbox.setdefault(event.run_id, []).append(event)
        self._wake.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="follow-stream")

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._inbox:
                run_id = next(iter(self._inbox))
                events = self._inbox.pop(run_id)
                try:
                    for follow in await self.store.follows(run_id):
                        await self.sync(run_id, follow.channel, events)
                except Exception:
                    log.exception("following %s from the stream failed; the next poll picks it up", run_id)

    async def sync(self, run_id: str, channel: str, events: list[RunEvent] | None = None) -> None:
        """Handle what happened to the run since the follow's last `seq`: replies, then the card.

        `events` came from the stream: when they continue the stored `seq` they are told as they
        are; otherwise (a gap, or no events given) what happened is read from the stored `seq`.
        """
        lock = self._locks.setdefault((run_id, channel), asyncio.Lock())
        async with lock:
            follow = next((f for f in await self.store.follows(run_id) if f.channel == channel), None)
            if follow is None:
                return
            try:
                await self._sync(follow, events)
            except (FabroError, *TRANSPORT_ERRORS) as exc:
                # Nothing is lost: the seq did not move past what was not told.
                log.info("following %s in %s: deferred (%s)", run_id, channel, type(exc).__name__)

    async def _sync(self, follow: Follow, given: list[RunEvent] | None = None) -> None:
        expected = follow.last_seq + 1
        fed = {e.seq: e for e in given or () if e.seq is not None and e.seq >= expected}  # duplicates collapse
        seqs = sorted(fed)
        if given is not None and not seqs:
            return  # already told (the stream can deliver an event twice)
        if seqs and seqs == list(range(expected, expected + len(seqs))):
            events = [fed[seq] for seq in seqs]
        else:  # polling, or a gap in what the stream brought: read from the stored seq
            events = sorted(
                (e for e in await self.fabro.events_since(follow.run_id, expected) if e.seq is not None),
                key=lambda e: e.seq or 0,
            )
        if not events:
            return
        run = await self.fabro.get_run(follow.run_id)
        alerted = {a.key for a in await self.store.alerts_for_run(run.id) if a.channel == follow.channel}
        ended = False
        minimal = (await self.outbox.exposure(follow.channel)).minimal
        for event in events:
            question = AlertKey(AlertKind.QUESTION, run.id, str(event.properties.get("question_id") or "?"))
            reply = update_reply(
                event, run, now=self.clock(), web_base=self.presentation.web_base, with_controls=question not in alerted
            )
            if reply is not None and minimal:
                reply = await self.outbox.fit(follow.channel, reply, run) if event.event in _TOLD_OUTSIDE else None
            if reply is not None:
                await self._reply(follow, event.seq or 0, reply)
            await self.store.set_follow_seq(follow.run_id, follow.channel, event.seq or 0)
            ended = event.event in _END_EVENTS or (ended and event.event not in _BACK_TO_WORK)
        card = live_card(run, await self._stages(run.id), now=self.clock(), web_base=self.presentation.web_base)
        await self.editor.edit(follow.channel, follow.ts, await self.outbox.fit(follow.channel, card, run))
        if ended or run.is_terminal:
            # Kept, ended: a resume from Slack takes the same thread up again (see `resumed`).
            await self.store.end_follow(follow.run_id, follow.channel, self.clock())
            log.info("run %s ended: no longer followed in %s", run.id, follow.channel)

    async def resumed(self, run: Run) -> list[Follow]:
        """The run was resumed in place from Slack: follow it again wherever it was followed when it
        ended, on the same card and thread, from the stored `seq` (nothing is told twice). A channel
        at its `follow_max` (or a person at their share) does not take it up again."""
        taken_up = []
        for ended in await self.store.ended_follows(run.id):
            if await self._limit_in(ended.channel, ended.created_by) is not None:
                log.info("run %s resumed: not followed again in %s (at its limit)", run.id, ended.channel)
                continue
            if not await self.store.reopen_follow(run.id, ended.channel):
                continue  # taken up, or unfollowed, meanwhile
            taken_up.append(ended)
            self._followed.add(run.id)
            card = live_card(run, await self._stages(run.id), now=self.clock(), web_base=self.presentation.web_base)
            await self.editor.edit(ended.channel, ended.ts, await self.outbox.fit(ended.channel, card, run))
            log.info("run %s resumed: followed again in %s (card %s)", run.id, ended.channel, ended.ts)
        return taken_up

    async def _limit_in(self, channel: str, user_id: str | None) -> FollowLimit | None:
        """Why one more follow in `channel` by `user_id` is refused: the channel holds `follow_max`
        follows, or the person a quarter of them. None: there is room."""
        here = [f for f in await self.store.follows() if f.channel == channel]
        if len(here) >= self.follow_max:
            return FollowLimit(self.follow_max)
        share = max(1, self.follow_max // 4)
        if user_id is not None and len([f for f in here if f.created_by == user_id]) >= share:
            return FollowLimit(self.follow_max, per_person=share)
        return None

    async def _reply(self, follow: Follow, seq: int, reply: dict[str, Any]) -> None:
        """Post one thread reply exactly once, across crashes."""
        key = AlertKey(AlertKind.UPDATE, follow.run_id, str(seq))
        await self.outbox.post_once(key, follow.channel, reply, thread_ts=follow.replies_to, crash_prefix="follow")

    async def _stages(self, run_id: str) -> list[Any]:
        try:
            return await self.fabro.stages(run_id)
        except FabroError:
            return []

    async def stop(self) -> None:
        """Stop following (this process no longer leads, or stops): the next leader starts with a full pass."""
        self._synced = False
        self._inbox.clear()
        worker, self._worker = self._worker, None
        await stop_task(worker)
        with contextlib.suppress(Exception):
            await self.editor.drain()
