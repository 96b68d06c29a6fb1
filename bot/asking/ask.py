"""Ask Fabro about a run, in the run's thread: one session per run and thread, one answer per question.

A question gets one reply in the thread, posted through the outbox at once ("Fabro is reading
the run…") and edited as Fabro's answer streams in (`run.session.assistant_delta`): the first
text as soon as it comes, then at most one edit a second, and never past the workspace's edit
budget. The final edit holds the complete answer; one too long for a message continues in more
replies, so nothing is cut. A failed turn ends in one sentence saying why.

Questions in one thread are answered one after the other, never interleaved: a second one waits
for the first (and says so), also when it was asked on another replica (Fabro refuses a turn
while the session has one: the question waits for it, a minute at most, then says it could
not). The session id is stored per run and thread, the first stored winning when replicas race,
so after a restart the conversation goes on where it was. Who may ask is `ALLOW_ANSWER`'s rule.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.exposure import kept_inside
from bot.blocks.inspect import (
    ANSWER_CHUNK,
    answer_chunks,
    answer_message,
    ask_failure_text,
    ask_unavailable_text,
)
from bot.blocks.replies import notice
from bot.blocks.text import clip, escape
from bot.core.errors import NotPosted
from bot.core.keys import ActionKey, ActionState, AlertKey, AlertKind, Verb
from bot.core.records import Action
from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroConflict, FabroError, FabroNotFound
from bot.fabro.models import Run
from bot.failpoints import crash_point
from bot.people.permissions import CLASS_OF, Permissions, owner_lookup
from bot.slack.webapi import TRANSPORT_ERRORS, EditBudget, slack_error
from bot.store.base import Store
from bot.telling.delivery import Delivery

__all__ = ["RECOVER_AFTER", "AskDesk", "Asked", "session_mark"]

log = logging.getLogger(__name__)


# An answer still being written this long after it was asked was left by a crash (or runs long:
# Fabro's session status tells the two apart).
RECOVER_AFTER = timedelta(minutes=2)


def session_mark(run_id: str, channel: str, thread: str) -> str:
    """Where the thread's session id is kept (the store's marks)."""
    return f"ask.session:{run_id}:{channel}:{thread}"


_WAITING = "_Waiting for Fabro to finish the question before this one…_"


async def _never_external(_: str) -> bool:
    return False


@dataclass(frozen=True)
class Asked:
    """How a question ended: `answer` (Fabro's text, maybe partial) and `failure` (a sentence, or None)."""

    answer: str
    failure: str | None
    replies: int  # messages the answer took


@dataclass
class _Answer:
    """The reply being written, and when it was last shown."""

    channel: str
    thread: str
    ts: str | None
    text: str = ""
    shown: str = ""
    last_edit: float = float("-inf")
    changed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class AskDesk:
    fabro: FabroClient
    store: Store
    slack: AsyncWebClient
    clock: Callable[[], datetime]
    budget: EditBudget
    outbox: Delivery  # each reply once, in the run's thread
    permissions: Permissions | None = None  # who may ask: `ALLOW_ANSWER`
    owner_of: Callable[[Run], Awaitable[str | None]] | None = None  # for a rule naming `owner`
    edit_every: float = 1.0  # seconds between two edits of a reply being written
    # How long a question waits for the thread's session to finish another replica's turn; well
    # under RECOVER_AFTER, so a question waiting is never taken for one a crash left.
    busy_wait: float = 60.0
    busy_poll: float = 1.0  # seconds between two looks at a session busy elsewhere
    # A channel shared with another organisation under EXTERNAL_CHANNELS=minimal: Fabro's answers stay out of it.
    external: Callable[[str], Awaitable[bool]] = _never_external
    command: str = "/runs"  # where a refused question can look at the run privately
    monotonic: Callable[[], float] = field(default=lambda: asyncio.get_running_loop().time())
    _turns: dict[str, asyncio.Lock] = field(default_factory=dict, init=False)
    _live: set[str] = field(default_factory=set, init=False)  # intents being answered in this process

    async def ask(self, user_id: str, run_id: str, channel: str, thread: str, words: str, intent: str) -> Asked | None:
        """Ask `words` about the run in `thread`, once per `intent`; None when that was done already."""
        if self.permissions is not None:
            owner = owner_lookup(self.fabro.get_run, self.owner_of, run_id)
            await self.permissions.check(CLASS_OF[Verb.ASK], user_id, owner, what=Verb.ASK)
        key = AlertKey(AlertKind.REPLY, run_id, f"ask.{intent}")
        if await self.external(channel):
            refused = kept_inside("ask", run_id=run_id, command=self.command)
            await self.outbox.reply_once(key, channel, refused, thread_ts=thread)
            return None
        run = await self.fabro.get_run(run_id)
        if run.ask_fabro is not None and not run.ask_fabro.available:
            said = ask_unavailable_text(run.ask_fabro.unavailable_reason)
            await self.outbox.reply_once(key, channel, notice(said), thread_ts=thread)
            return Asked("", said, 1)
        mark = session_mark(run_id, channel, thread)
        turn = self._turns.setdefault(mark, asyncio.Lock())
        waiting = turn.locked()
        first = _WAITING if waiting else "_Reading the run…_"
        placeholder = answer_message(first, run_id=run_id, writing=True)
        try:
            ts, posted = await self.outbox.reply_once(key, channel, placeholder, thread_ts=thread)
        except SlackApiError as exc:
            raise NotPosted(slack_error(exc)) from exc
        if not posted:
            return None  # Slack sent the same question again: it is answered (or being answered) once
        log.info("user=%s asked Fabro about run %s in %s", user_id, run_id, channel)
        # Recorded before Fabro is asked: a crash from here on is finished by `recover`.
        record = ActionKey.of(Verb.ASK, intent)
        detail = {"run": run_id, "channel": channel, "thread": thread, "ts": ts, "words": words}
        await self.store.begin_action(
            Action(record, Verb.ASK, user_id, self.clock(), detail=json.dumps(detail)), stale_before=self.clock()
        )
        self._live.add(intent)
        try:
            async with turn:
                reply = _Answer(channel, thread, ts)
                text, failure = await self._turn(run_id, mark, words, reply)
                asked = await self._finish(run_id, key, reply, text, failure)
        except asyncio.CancelledError:
            raise  # stopped mid-answer: the record stays pending, and `recover` finishes the reply later
        except BaseException as exc:
            await self.store.finish_action(record, state=ActionState.FAILED)
            await self._gave_up(run_id, key, _Answer(channel, thread, ts), exc)
            raise
        finally:
            self._live.discard(intent)
        await self.store.finish_action(record, state=ActionState.DONE)
        return asked

    async def _gave_up(self, run_id: str, key: AlertKey, reply: _Answer, error: BaseException) -> None:
        """The reply being written says the question went unanswered (the asker is told why, too)."""
        said = "Fabro could not be asked"
        if isinstance(error, FabroError):
            said += f" ({clip(error.detail, 300)}"
            said += f", request id {error.request_id})" if error.request_id else ")"
        try:
            await self._finish(run_id, key, reply, "", said + ": ask again in a moment.")
        except (*TRANSPORT_ERRORS, FabroError) as exc:
            log.warning("could not say in the thread that a question went unanswered: %s", type(exc).__name__)

    async def recover(self) -> int:
        """Finish the answers a crash left being written: each reply gets the answer Fabro kept in the
        session's transcript (or says it was lost). Returns how many were settled."""
        settled = 0
        for action in await self.store.unsettled(Verb.ASK, before=self.clock() - RECOVER_AFTER):
            try:
                settled += await self._recover(action)
            except (FabroError, *TRANSPORT_ERRORS) as exc:  # tried again next cycle
                log.info("could not finish an unfinished answer yet: %s", type(exc).__name__)
        return settled

    async def _recover(self, action: Action) -> int:
        """One unfinished answer: 1 when it is settled now, 0 when it is left for later."""
        intent = action.key.run_id
        if intent in self._live:
            return 0  # still being answered in this process
        try:
            detail = json.loads(action.detail or "{}")
            run_id, channel, thread = str(detail["run"]), str(detail["channel"]), str(detail["thread"])
            ts, words = detail.get("ts"), str(detail["words"])
        except (ValueError, KeyError, TypeError):
            await self.store.finish_action(action.key, state=ActionState.FAILED, note="unreadable record")
            return 0
        answer: str | None = None
        session_id = await self.store.get_mark(session_mark(run_id, channel, thread)) or None
        if session_id is not None:
            try:
                session = await self.fabro.get_session(session_id)
            except FabroNotFound:
                session = None
            if session is not None and session.status == "running":
                return 0  # Fabro is still answering (here or on another replica): look again later
            answer = session.answer_to(words) if session is not None else None
        reply = _Answer(channel, thread, ts if isinstance(ts, str) else None)
        key = AlertKey(AlertKind.REPLY, run_id, f"ask.{intent}")
        failure = None if answer else ask_failure_text("lost")
        await self._finish(run_id, key, reply, answer or "", failure)
        await self.store.finish_action(action.key, state=ActionState.DONE if answer else ActionState.FAILED)
        log.info("finished an answer left unfinished by a restart (run %s)", run_id)
        return 1

    async def _turn(self, run_id: str, mark: str, words: str, reply: _Answer) -> tuple[str, str | None]:
        """Send the question and follow its stream; a session Fabro no longer knows is made again, once,
        and one answering another replica's question is waited for (up to `busy_wait`)."""
        remade = False
        waiting_since: float | None = None
        while True:
            session_id = await self._session(run_id, mark)
            try:
                return await self._stream(session_id, words, reply)
            except FabroNotFound:
                if remade:
                    raise
                remade = True
                log.info("session %s of run %s is gone; starting a new one", session_id, run_id)
                await self._forget(mark)
            except FabroConflict as exc:
                if exc.code != "session_active_turn":
                    raise
                if waiting_since is None:  # the reply says so while it waits
                    waiting_since = self.monotonic()
                    if reply.ts is not None:
                        await self._pace(reply)
                        await self._edit(reply, answer_message(_WAITING, run_id="", writing=True))
                if not await self._idle(session_id, until=waiting_since + self.busy_wait):
                    return "", ask_failure_text("busy")

    async def _idle(self, session_id: str, *, until: float) -> bool:
        """Whether the session's turn (another replica's) ended before `until`: Fabro is asked each
        `busy_poll` seconds. A session gone meanwhile counts as idle: the turn makes it again."""
        while self.monotonic() < until:
            await asyncio.sleep(self.busy_poll)
            try:
                session = await self.fabro.get_session(session_id)
            except FabroNotFound:
                return True
            if session.status != "running" and session.active_turn is None:
                return True
        return False

    async def _session(self, run_id: str, mark: str) -> str:
        """The thread's session: the stored one, else a new one. Two replicas asking at once for a
        thread without one both make one, and both go on with the one stored first."""
        stored = await self.store.get_mark(mark)
        if stored:
            return stored
        made = (await self.fabro.create_session(run_id)).id
        if stored is None and await self.store.add_mark(mark, made):
            return made
        if stored is None:  # another replica stored its session first: the thread keeps that one
            return await self.store.get_mark(mark) or made
        await self.store.set_mark(mark, made)  # the thread's session was forgotten: this is the new one
        return made

    async def _forget(self, mark: str) -> None:
        # Marks cannot be deleted: an empty one reads as "no session".
        await self.store.set_mark(mark, "")

    async def _stream(self, session_id: str, words: str, reply: _Answer) -> tuple[str, str | None]:
        editor = asyncio.create_task(self._edits(reply), name=f"ask-edits-{session_id}")
        failure: str | None = None
        try:
            async with self.fabro.turn(session_id, words) as events:
                crash_point("ask.asked")
                async for event in events:
                    props = event.properties
                    if event.event == "run.session.assistant_delta" and isinstance(props.get("delta"), str):
                        reply.text += props["delta"]
                        reply.changed.set()
                    elif event.event == "run.session.assistant_message" and isinstance(props.get("text"), str):
                        reply.text = props["text"]  # the whole message: what the deltas should have made
                        reply.changed.set()
                    elif event.event == "run.session.turn.failed":
                        code = props.get("code")
                        failure = ask_failure_text(code if isinstance(code, str) else None)
                    elif event.event == "run.session.turn.interrupted":
                        failure = ask_failure_text("interrupted")
                    elif event.event == "run.session.turn.succeeded":
                        output = props.get("output")
                        if not reply.text and isinstance(output, str):
                            reply.text = output
        except FabroError as exc:
            if isinstance(exc, FabroNotFound | FabroConflict):
                raise
            log.info("the answer stream of session %s broke: %r", session_id, exc)
            failure = ask_failure_text("broken")
        finally:
            editor.cancel()
        return reply.text, failure

    async def _edits(self, reply: _Answer) -> None:
        """Show the answer as it grows: the first text at once, then at most one edit per `edit_every`."""
        while True:
            await reply.changed.wait()
            reply.changed.clear()
            await self._pace(reply)
            if reply.text == reply.shown or reply.ts is None:
                continue
            shown = reply.text
            chunk = escape(shown)
            if len(chunk) > ANSWER_CHUNK:  # the rest comes in the final replies
                chunk = clip(chunk, ANSWER_CHUNK - 40) + " _(continued below when done)_"
            await self._edit(reply, answer_message(chunk, run_id="", writing=True))
            reply.shown = shown

    async def _pace(self, reply: _Answer) -> None:
        """Wait until the reply may be edited again: `edit_every` after its last edit, and while the
        workspace's edit budget has room (looked at again each second, as other writers spend it)."""
        while True:
            wait = max(reply.last_edit + self.edit_every - self.monotonic(), self.budget.wait())
            if wait <= 0:
                return
            await asyncio.sleep(min(wait, 1.0))

    async def _edit(self, reply: _Answer, message: dict[str, Any]) -> bool:
        assert reply.ts is not None
        self.budget.spend()
        reply.last_edit = self.monotonic()
        try:
            await self.slack.chat_update(
                channel=reply.channel, ts=reply.ts, text=str(message["text"]), blocks=message["blocks"]
            )
            return True
        except TRANSPORT_ERRORS as exc:
            log.warning("could not edit Fabro's answer in %s: %s", reply.channel, type(exc).__name__)
            return False

    async def _finish(self, run_id: str, key: AlertKey, reply: _Answer, text: str, failure: str | None) -> Asked:
        """The complete answer in place of the one being written; what does not fit, in more replies."""
        chunks = answer_chunks(text) if text.strip() or failure is None else []
        if not chunks:
            chunks, failure = [escape(failure or "")], None
        parts = len(chunks)
        await self._pace(reply)  # the final edit keeps the pace too
        failure = escape(failure) if failure is not None else None
        first = answer_message(chunks[0], run_id=run_id, part=1, parts=parts, note=failure if parts == 1 else None)
        if reply.ts is not None:
            await self._edit(reply, first)
        for index, chunk in enumerate(chunks[1:], start=2):
            note = failure if index == parts else None
            message = answer_message(chunk, run_id=run_id, part=index, parts=parts, note=note)
            more = AlertKey(AlertKind.REPLY, run_id, f"{key.question_id}.{index}")
            await self.outbox.reply_once(more, reply.channel, message, thread_ts=reply.thread)
        return Asked(text, failure, parts)
