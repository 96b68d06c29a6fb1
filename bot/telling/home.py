"""The bot's Home tab: what waits on the person looking, what waits on anyone, and their runs.

Waiting runs come from Fabro's waiting buckets (one request); whose they are, and the person's own
runs, from the bot's index (Fabro cannot list runs by creator). A person's Home is republished when
what it shows changed, at most once every `REPUBLISH_EVERY` per person.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import kit
from bot.blocks.controls import approval_controls, question_controls, retry_control
from bot.blocks.runs import STATUS_EMOJI, UNKNOWN_EMOJI, link_buttons, run_summary
from bot.blocks.text import ago, clip, escape, link
from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroError
from bot.fabro.filters import RunFilter
from bot.fabro.models import Run
from bot.people.identity import Linker
from bot.people.notify import Personal
from bot.slack.webapi import slack_error
from bot.store.base import Store

__all__ = ["REPUBLISH_EVERY", "Home", "Waiting"]

log = logging.getLogger(__name__)

REPUBLISH_EVERY = 10.0  # seconds, per person
WAITING_ON_ANYONE = 8  # shown before "… and N more"
YOUR_RUNS = 10
_WAITING = RunFilter(statuses=("blocked", "pending"), sort="created_at", direction="asc", limit=100)


@dataclass(frozen=True)
class Waiting:
    runs: list[tuple[Run, str | None]]  # each waiting run and its owner (a Slack user), the oldest first
    unavailable: bool = False  # Fabro did not answer


@dataclass
class Home:
    store: Store
    fabro: FabroClient
    linker: Linker
    personal: Personal
    clock: Callable[[], datetime]
    web_base: str | None = None
    command: str = "/runs"
    monotonic: Callable[[], float] = time.monotonic
    _shown: dict[str, tuple[float, str]] = field(default_factory=dict, init=False)  # user → (when, digest)

    async def view(self, user_id: str, *, notice: str | None = None, waiting: Waiting | None = None) -> dict[str, Any]:
        now = self.clock()
        pinned, linked = await self.linker.logins_of(user_id)
        logins = pinned + linked
        blocks: list[dict[str, Any]] = [kit.header("Fabro runs")]
        if notice:
            blocks.append(kit.context(clip(notice, 1000), block_id="home:notice"))
        if not logins:
            blocks.append(
                kit.section(
                    ":wave: Link your GitHub login to see what waits on you here and get direct messages about"
                    f" your runs: `{escape(self.command)} link <login>`."
                )
            )
        waiting = waiting or await self.waiting()
        unavailable = waiting.unavailable
        mine = [run for run, owner in waiting.runs if owner == user_id]
        others = [run for run, owner in waiting.runs if owner != user_id]
        if logins:
            blocks.append(kit.header("Waiting on you"))
            if unavailable:
                blocks.append(kit.context(":warning: Fabro did not answer; this shows again when it does."))
            elif not mine:
                blocks.append(kit.context("Nothing is waiting on you."))
            for run in mine:
                blocks += self._waiting(run, now)
        blocks.append(kit.header("Waiting on anyone"))
        if not others and not unavailable:
            blocks.append(kit.context("Nothing else is waiting."))
        for run in others[:WAITING_ON_ANYONE]:
            blocks += self._waiting(run, now)
        if len(others) > WAITING_ON_ANYONE:
            more = len(others) - WAITING_ON_ANYONE
            blocks.append(kit.context(f"… and {more} more: `{escape(self.command)} blocked pending` lists them."))
        if logins:
            blocks += await self._your_runs(user_id, logins, now)
        return {"type": "home", "blocks": kit.within_budget(blocks[:100])}

    async def waiting(self) -> Waiting:
        """Every question and approval waiting in Fabro, the oldest first, with whose run it is.

        The same for every person: a refresh reads it once and shows each person their part.
        """
        try:
            listing = await self.fabro.list_runs(_WAITING)
        except FabroError as exc:
            log.warning("Home: waiting runs unavailable: %s", exc)
            return Waiting([], unavailable=True)
        runs = [r for r in listing.data if r.current_question or r.awaits_approval]
        return Waiting([(run, await self.personal.owner_of(run)) for run in runs])

    async def _your_runs(self, user_id: str, logins: list[str], now: datetime) -> list[dict[str, Any]]:
        blocks = [kit.header("Your runs")]
        runs = await self.store.runs_of(user_id, logins, YOUR_RUNS)
        if not runs:
            blocks.append(kit.context("No runs of yours seen yet."))
        for entry in runs:
            emoji = STATUS_EMOJI.get(entry.status, UNKNOWN_EMOJI)
            title = link(entry.web_url, clip(escape(entry.title), 120)) if entry.web_url else escape(entry.title)
            when = ago(entry.updated_at, now) or ""
            blocks.append(kit.section(f"{emoji} *{escape(entry.status)}* — {title} · `{entry.run_id[:10]}` · {when}"))
            if entry.status == "failed":
                blocks += retry_control(entry.run_id)
        return blocks

    def _waiting(self, run: Run, now: datetime) -> list[dict[str, Any]]:
        """The run, the same controls as its card (answering, approving), and its links."""
        question = run.current_question
        controls = question_controls(run, question) if question else approval_controls(run)
        buttons = link_buttons(run, self.web_base, follow=False)
        blocks = [kit.section(run_summary(run, now)), *controls, kit.actions(*buttons)]
        return [b for b in blocks if b]

    async def publish(
        self,
        client: AsyncWebClient,
        user_id: str,
        *,
        force: bool = True,
        notice: str | None = None,
        waiting: Waiting | None = None,
    ) -> bool:
        """Publish `user_id`'s Home; unless `force`, only if it changed and not within the last 10 s."""
        if not force and not self._due(user_id):
            return False
        shown = self._shown.get(user_id)
        view = await self.view(user_id, notice=notice, waiting=waiting)
        digest = hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()
        if not force and shown and shown[1] == digest:
            return False
        try:
            await client.views_publish(user_id=user_id, view=view)
        except SlackApiError as exc:
            log.warning("Home of %s not published: %s", user_id, slack_error(exc))
            return False
        self._shown[user_id] = (self.monotonic(), digest)
        return True

    def _due(self, user_id: str) -> bool:
        shown = self._shown.get(user_id)
        return shown is None or self.monotonic() - shown[0] >= REPUBLISH_EVERY

    async def refresh(self, client: AsyncWebClient) -> int:
        """Republish the Homes of people who looked, where something they see changed.

        Fabro is asked once per refresh, and only when someone's Home is due.
        """
        due = [user_id for user_id in self._shown if self._due(user_id)]
        if not due:
            return 0
        waiting = await self.waiting()
        count = 0
        for user_id in due:
            count += await self.publish(client, user_id, force=False, waiting=waiting)
        return count
