"""One dispatch from a parsed `/runs` command to its reply, for the slash command and `preview`."""

from __future__ import annotations

import difflib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, assert_never
from zoneinfo import ZoneInfo

from bot.answers import Answerer
from bot.blocks.replies import help_message, notice, usage_error_message
from bot.blocks.start import start_card, unknown_automation
from bot.blocks.stats import stats_message
from bot.boundary import Failed, attempt
from bot.daily import Daily
from bot.following import Follower
from bot.query import (
    FollowRun,
    Help,
    Parsed,
    RunLookup,
    RunQuery,
    Start,
    Stats,
    Subscribe,
    Subscriptions,
    Summary,
    Unsubscribe,
    UsageError,
)
from bot.stats import Window
from bot.subscriptions import SubscriptionDesk

__all__ = ["NEEDS_A_CHANNEL", "Caller", "Commands", "Reply"]

START_NEEDS_SLACK = (
    "`{command} start` opens a window in Slack listing the automations you can start;"
    " `{command} start <automation-id>` asks you to confirm one."
)
FOLLOW_NEEDS_SLACK = "Runs are followed in a Slack channel: run `{command} follow <run-id>` there."
NEEDS_A_CHANNEL = "Subscriptions belong to a Slack channel: run `{command} {words}` in the channel itself."


@dataclass(frozen=True)
class Caller:
    """Who asked, and where: a Slack user in a channel, or nobody (the CLI's preview)."""

    user_id: str | None = None
    channel: str | None = None


@dataclass(frozen=True)
class Reply:
    message: dict[str, Any]
    public: bool = False  # posted for the whole channel (a change to where alerts go), not only the caller
    status: str = "ok"  # for /metrics: ok, help, usage_error, fabro_error, not_allowed, error…


async def _utc(_: str | None) -> ZoneInfo:
    return ZoneInfo("UTC")


@dataclass
class Commands:
    answerer: Answerer
    desk: SubscriptionDesk | None = None  # None where there is no channel (the CLI)
    command: str = "/runs"
    daily: Daily | None = None
    zone_of: Callable[[str | None], Awaitable[ZoneInfo]] = _utc  # a person's time zone (Slack's profile)
    follower: Follower | None = None  # None where there is no channel to follow in (the CLI)
    new_intent: Callable[[], str] = lambda: uuid.uuid4().hex[:20]

    @staticmethod
    def instant(parsed: Parsed) -> bool:
        """Answered without Fabro or the store: fast enough for the acknowledgement itself."""
        return isinstance(parsed, Help | UsageError)

    async def reply(self, parsed: Parsed, caller: Caller) -> Reply:
        selector = parsed.selector if isinstance(parsed, RunLookup) else None
        if isinstance(parsed, FollowRun):
            selector = parsed.selector
        if isinstance(parsed, RunQuery) and parsed.parent_id:
            selector = parsed.parent_id  # a prefix that matches no run, or several, is told as /runs <id> tells it
        result = await attempt(
            self._reply(parsed, caller), what=f"{self.command} command", command=self.command, selector=selector
        )
        if isinstance(result, Failed):
            return Reply(result.message, status=result.status)
        return result

    async def _reply(self, parsed: Parsed, caller: Caller) -> Reply:
        match parsed:
            case Help():
                return Reply(help_message(self.command), status="help")
            case UsageError():
                return Reply(usage_error_message(parsed, self.command), status="usage_error")
            case RunQuery():
                return Reply(await self.answerer.listing(parsed))
            case RunLookup():
                return Reply(await self.answerer.detail(parsed))
            case Subscribe() | Subscriptions() | Unsubscribe() | Summary():
                return await self._subscriptions(parsed, caller)
            case Start():
                return await self._start(parsed, caller)
            case FollowRun():
                return await self._follow(parsed, caller)
            case Stats():
                daily = self.daily or Daily(self.answerer.fabro, self.answerer.clock)
                tz = await self.zone_of(caller.user_id)
                picture = await daily.picture(Window(parsed.window), tz)
                now = self.answerer.clock()
                return Reply(stats_message(picture, now=now, web_base=self.answerer.web_base, command=self.command))
            case _:
                assert_never(parsed)

    async def _follow(self, parsed: FollowRun, caller: Caller) -> Reply:
        if self.follower is None or caller.channel is None or caller.user_id is None:
            return Reply(notice(FOLLOW_NEEDS_SLACK.format(command=self.command)))
        if parsed.stop:
            run = await self.follower.unfollow(parsed.selector, channel=caller.channel)
            said = (
                f"No longer following `{parsed.selector}` here."
                if run
                else f"`{parsed.selector}` is not followed here."
            )
            return Reply(notice(said))
        follow = await self.follower.follow(parsed.selector, channel=caller.channel, user_id=caller.user_id)
        return Reply(
            notice(f"Following run `{follow.run_id}` here: its live card shows where it is, its thread what matters.")
        )

    async def _start(self, parsed: Start, caller: Caller) -> Reply:
        """`/runs start <id>`: a confirmation to the asker alone (the window for a bare `start` is Slack's)."""
        if parsed.automation_id is None:
            return Reply(notice(START_NEEDS_SLACK.format(command=self.command)))
        presets = [p for p in await self.answerer.fabro.automations() if p.startable]
        preset = next((p for p in presets if p.id == parsed.automation_id), None)
        if preset is None:
            close = difflib.get_close_matches(parsed.automation_id, [p.id for p in presets], n=3, cutoff=0.5)
            return Reply(unknown_automation(parsed.automation_id, close, self.command), status="usage_error")
        return Reply(start_card(preset, intent=self.new_intent(), channel=caller.channel))

    async def _subscriptions(self, parsed: Subscribe | Subscriptions | Unsubscribe | Summary, caller: Caller) -> Reply:
        if self.desk is None or caller.channel is None or caller.user_id is None:
            words = {
                Subscribe: "subscribe",
                Subscriptions: "subscriptions",
                Unsubscribe: "unsubscribe",
                Summary: "summary",
            }[type(parsed)]
            return Reply(notice(NEEDS_A_CHANNEL.format(command=self.command, words=words)))
        match parsed:
            case Summary():
                tz = await self.zone_of(caller.user_id)
                now = self.answerer.clock()
                reply = await self.desk.summary(
                    parsed, channel=caller.channel, user_id=caller.user_id, tz=str(tz), now=now
                )
            case Subscribe():
                reply = await self.desk.subscribe(parsed, channel=caller.channel, user_id=caller.user_id)
            case Unsubscribe():
                reply = await self.desk.unsubscribe(parsed, channel=caller.channel, user_id=caller.user_id)
            case Subscriptions():
                reply = await self.desk.list(channel=caller.channel)
        return Reply(reply.message, public=reply.public)
