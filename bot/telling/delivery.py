"""Delivering alerts to Slack: post each claimed alert once (a digest for a storm), edit posted
ones to their outcome, pace writes per channel, and recover claims a crash left behind.

The engine decides and claims; this module only delivers what the store says is claimed
or due for an edit. A delivery is leased to one process at a time, so two schedulers (a
failover, a split) never deliver the same alert. A claim that may already be in Slack
(the process died between posting and recording, or a post timed out) is looked up in
the channel's history, by the message metadata every alert carries, before it is posted.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.alerts import (
    alert_metadata,
    approval_alert,
    budget_alert,
    cost_alert,
    digest_message,
    failed_alert,
    metadata_key,
    pr_alert,
    question_alert,
    resolved_alert,
    succeeded_alert,
)
from bot.blocks.outcomes import outcome_text
from bot.blocks.stats import stats_message
from bot.blocks.text import clip, escape
from bot.core.keys import AlertKey, AlertKind
from bot.core.outcomes import Outcome, OutcomeVerb
from bot.core.records import Alert, AlertState
from bot.core.stats import Window, scheduled_at, zone
from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroError
from bot.fabro.models import PullRequestOpened, PullRequestState, Run
from bot.fabro.outputs import RunBilling
from bot.failpoints import crash_point
from bot.slack.webapi import CHANNEL_ERRORS, EditBudget, slack_error
from bot.slack.webapi import retry_after as slack_retry_after
from bot.store.base import Store
from bot.telling.daily import Daily
from bot.telling.rules import Wanted, wanted_alerts

__all__ = ["CHANNEL_ERRORS", "CycleReport", "Delivery", "Fresh", "Lease"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_BROKEN_RETRY = timedelta(minutes=10)
_HISTORY_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class Lease:
    """Who delivers an alert, and for how long another scheduler must leave it alone.

    `duration` reserves a fresh claim for the process that made it: another scheduler (a
    split, a failover) leaves it alone until then, and after a crash it is taken over.
    Zero for a single process on SQLite: nobody else could be delivering.
    """

    owner: str = field(default_factory=lambda: uuid.uuid4().hex)
    duration: timedelta = timedelta(0)

    def until(self, now: datetime) -> datetime:
        """The end of a claim's reservation."""
        return now + self.duration

    def hold_until(self, now: datetime) -> datetime:
        """The end of a delivery in progress: long enough even when Slack makes it wait (429, pacing)."""
        return now + max(self.duration, timedelta(minutes=2)) if self.duration else now


@dataclass
class Fresh:
    """What one engine pass handed to delivery: the claims it just made, and the runs it read."""

    claims: dict[tuple[AlertKey, str], Wanted] = field(default_factory=dict)
    runs: dict[str, Run] = field(default_factory=dict)


@dataclass
class CycleReport:
    changed: int = 0
    claimed: int = 0
    posted: int = 0
    digests: int = 0
    updated: int = 0
    deduplicated: int = 0
    failed: int = 0
    skipped: str | None = None


@dataclass
class Delivery:
    store: Store
    fabro: FabroClient
    slack: AsyncWebClient
    clock: Callable[[], datetime]
    web_base: str | None = None
    command: str = "/runs"
    digest_threshold: int = 5
    cost_alert_usd: float | None = None  # COST_ALERT_USD, said on the cost alert
    daily_budget_usd: float | None = None  # DAILY_BUDGET_USD
    pace: float = 1.0  # seconds between two writes to one channel
    lease: Lease = field(default_factory=Lease)
    daily: Daily | None = None  # reads the picture for channels' daily summaries
    budget: EditBudget | None = None  # chat.update calls of the whole workspace, shared with live cards
    # Claims this process made and has not posted yet, with what renders them without reading Fabro again.
    _renders: dict[tuple[AlertKey, str], Wanted] = field(default_factory=dict, init=False)
    _runs: dict[str, Run] = field(default_factory=dict, init=False)
    # What one delivery read about a run (the run, its failure, its questions), shared by every channel and DM.
    _reads: dict[tuple[str, str], asyncio.Future[Any]] = field(default_factory=dict, init=False)
    _next_write: dict[str, float] = field(default_factory=dict, init=False)
    _broken: dict[str, str] = field(default_factory=dict, init=False)

    async def deliver(self, report: CycleReport, fresh: Fresh | None = None) -> None:
        """Post what is claimed and due, edit what has an outcome, channel by channel."""
        fresh = fresh or Fresh()
        self._renders.update(fresh.claims)
        self._runs = dict(fresh.runs)
        self._reads = {}
        now = self.clock()
        # Thread replies of followed runs are claimed in the same table, but their follower delivers them.
        # Thread updates and replies are posted by whoever claimed them (bot.telling.once), not here.
        due = [a for a in await self.store.deliveries_due(now) if a.kind not in (AlertKind.UPDATE, AlertKind.REPLY)]
        claims = [a for a in due if a.state is AlertState.CLAIMED]
        updates = [a for a in due if a.update_pending]
        if not claims and not updates:
            return
        self._broken = await self.store.broken_channels()
        by_channel: dict[str, tuple[list[Alert], list[Alert]]] = defaultdict(lambda: ([], []))
        for alert in claims:
            by_channel[alert.channel][0].append(alert)
        for alert in updates:
            by_channel[alert.channel][1].append(alert)
        await asyncio.gather(
            *(self._deliver_to(channel, posts, edits, report) for channel, (posts, edits) in by_channel.items())
        )

    async def _deliver_to(self, channel: str, claims: list[Alert], updates: list[Alert], report: CycleReport) -> None:
        # Only what this process holds the lease for: never two schedulers on one alert.
        claims = [a for a in claims if await self._lease(a)]
        updates = [a for a in updates if await self._lease(a)]
        # A claim may already be in Slack unless it is a fresh one of ours, or Slack refused it:
        # one left by a crash, or one whose post timed out, is looked for before posting again.
        unsure = [a for a in claims if not a.unposted and (a.attempts > 0 or (a.key, channel) not in self._renders)]
        if unsure:
            found = await self._find_posted(channel, unsure)
            if found is None:
                return
            for alert in unsure:
                ts = found.get(alert.batch or alert.key.encode())
                if ts is not None:
                    await self.store.confirm_posted(alert.key, channel, ts, self.clock())
                    report.deduplicated += 1
                    log.info("alert %s was already in %s (ts %s): recorded, not posted again", alert.key, channel, ts)
            claims = [a for a in claims if not (a in unsure and (a.batch or a.key.encode()) in found)]

        batches: dict[str, list[Alert]] = defaultdict(list)
        for alert in claims:
            if alert.batch:
                batches[alert.batch].append(alert)
        singles = [a for a in claims if not a.batch]
        # A storm is digested whether it was decided this cycle or before a restart.
        new = [a for a in singles if a.attempts == 0 and a.kind not in (AlertKind.SUMMARY, AlertKind.BUDGET)]
        if len(new) > self.digest_threshold:
            batch = f"digest:{uuid.uuid4().hex}"
            await self.store.assign_batch([a.key for a in new], channel, batch)
            batches[batch] = new
            singles = [a for a in singles if a not in new]

        for batch, members in batches.items():
            if not await self._post_digest(channel, batch, members, report):
                return
        for alert in singles:
            if not await self._post_alert(channel, alert, report):
                return
        for alert in updates:
            if not await self._update(channel, alert, report):
                return

    async def _lease(self, alert: Alert) -> bool:
        now = self.clock()
        return await self.store.take_over(
            alert.key, alert.channel, owner=self.lease.owner, now=now, until=self.lease.hold_until(now)
        )

    async def _post_alert(self, channel: str, alert: Alert, report: CycleReport) -> bool:
        try:
            message = await self._render(channel, alert)
        except FabroError as exc:
            await self._failed(channel, [alert], f"fabro: {exc}", unposted=True, report=report)
            return True
        if message is None:
            return True
        return await self._post(channel, message, [alert], report)

    async def _post_digest(self, channel: str, batch: str, members: list[Alert], report: CycleReport) -> bool:
        items: list[tuple[AlertKind, Run]] = []
        try:
            for alert in members:
                wanted = self._renders.get((alert.key, channel))
                items.append((alert.kind, wanted.run if wanted else await self._run(alert.run_id)))
        except FabroError as exc:
            await self._failed(channel, members, f"fabro: {exc}", unposted=True, report=report)
            return True
        message = digest_message(items, command=self.command, web_base=self.web_base, key=batch)
        posted = await self._post(channel, message, members, report)
        if posted:
            report.digests += 1
        return posted

    async def _render(self, channel: str, alert: Alert) -> dict[str, Any] | None:
        """The card for a claimed alert, or None (and the claim settled) when it no longer applies."""
        if alert.kind is AlertKind.SUMMARY:
            return await self._summary(channel, alert)
        if alert.kind is AlertKind.BUDGET:
            return await self._budget(channel, alert)
        wanted = self._renders.get((alert.key, channel))
        if wanted is None:
            run = await self._run(alert.run_id)
            questions = (
                await self._once("questions", run.id, lambda: self.fabro.list_questions(run.id))
                if alert.kind is AlertKind.QUESTION
                else None
            )
            wanted = next((w for w in wanted_alerts(run, questions) if w.key == alert.key), None)
            if wanted is None and alert.kind is AlertKind.COST:
                wanted = Wanted(alert.key, run)  # a cost once crossed stays crossed
            if wanted is None:
                await self.store.resolve_alert(alert.key, channel, Outcome(OutcomeVerb.NOT_POSTED), self.clock())
                log.info("alert %s for %s was no longer current when it could be posted", alert.key, channel)
                return None
        run, now = wanted.run, self.clock()
        if wanted.kind is AlertKind.PR:
            return await self._pr(run, alert.key, now)
        if wanted.kind is AlertKind.COST:
            try:
                bill: RunBilling | None = await self.fabro.run_billing(run.id)
            except FabroError as exc:
                log.info("cost alert for %s posted without its stages: %s", run.id, exc)
                bill = None
            over = self.cost_alert_usd or 0.0
            return cost_alert(run, bill, over_usd=over, now=now, web_base=self.web_base, key=alert.key)
        if wanted.kind is AlertKind.SUCCEEDED:
            return succeeded_alert(run, now=now, web_base=self.web_base, key=alert.key)
        if wanted.kind in (AlertKind.FAILED, AlertKind.CANCELLED):
            failure = await self._once("failure", run.id, lambda: self.fabro.latest_failure(run.id))
            return failed_alert(run, now=now, failure=failure, web_base=self.web_base, key=alert.key)
        if wanted.kind is AlertKind.QUESTION and wanted.question is not None:
            return question_alert(
                run, wanted.question, now=now, asked_at=run.updated_at, web_base=self.web_base, key=alert.key
            )
        return approval_alert(run, now=now, web_base=self.web_base, key=alert.key)

    async def _pr(self, run: Run, key: AlertKey, now: datetime) -> dict[str, Any]:
        """A pull request alert; what its event and GitHub say is added when Fabro can tell it."""
        number = int(key.question_id) if key.question_id and key.question_id.isdigit() else None
        opened: PullRequestOpened | None = None
        state: PullRequestState | None = None
        try:
            opened = await self.fabro.opened_pull_request(run.id, number)
            state = await self.fabro.pull_request(run.id)
        except FabroError as exc:
            log.info("pull request %s of %s posted without its details: %s", number, run.id, exc)
        return pr_alert(run, now=now, opened=opened, state=state, web_base=self.web_base, key=key)

    async def _budget(self, channel: str, alert: Alert) -> dict[str, Any] | None:
        """The day's spend against DAILY_BUDGET_USD, as the index knows it when it is posted."""
        if self.daily_budget_usd is None:
            await self.store.resolve_alert(alert.key, channel, Outcome(OutcomeVerb.NOT_POSTED), self.clock())
            return None
        setting = next(iter(await self.store.summaries(channel)), None)
        tz = zone(setting.tz if setting else "UTC")
        day = date.fromisoformat(alert.run_id)
        start = datetime.combine(day, time(), tzinfo=tz)
        spent, top = await self.store.spend_between(start, start + timedelta(days=1))
        return budget_alert(day, spent, self.daily_budget_usd, top, tz=str(tz), command=self.command, key=alert.key)

    async def _summary(self, channel: str, alert: Alert) -> dict[str, Any] | None:
        """The channel's daily summary for the day its key names: yesterday's picture, as of its hour."""
        setting = next(iter(await self.store.summaries(channel)), None)
        if setting is None or self.daily is None:
            await self.store.resolve_alert(alert.key, channel, Outcome(OutcomeVerb.NOT_POSTED), self.clock())
            return None
        tz = zone(setting.tz)
        day = date.fromisoformat(alert.run_id)
        picture = await self.daily.picture(Window.YESTERDAY, tz, now=scheduled_at(setting.at, tz, day))
        heading = f"Yesterday in Fabro ({(day - timedelta(days=1)).strftime('%A %-d %B')})"
        message = stats_message(
            picture, now=self.clock(), web_base=self.web_base, command=self.command, heading=heading
        )
        message["metadata"] = alert_metadata(alert.key)
        return message

    async def _post(self, channel: str, message: dict[str, Any], alerts: list[Alert], report: CycleReport) -> bool:
        """Post one message standing for `alerts`; False when the channel should not be tried again now."""
        await self._pace(channel)
        try:
            response = await self.slack.chat_postMessage(
                channel=channel,
                text=message["text"],
                blocks=message["blocks"],
                metadata=message.get("metadata"),
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            return await self._slack_refused(channel, alerts, exc, report)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # The post may or may not have reached Slack: the next attempt looks before posting.
            await self._failed(channel, alerts, f"transport: {type(exc).__name__}", unposted=False, report=report)
            return False
        crash_point("alert.posted")
        ts = str(response["ts"])
        for alert in alerts:
            await self.store.confirm_posted(alert.key, channel, ts, self.clock())
            self._renders.pop((alert.key, channel), None)
        crash_point("alert.confirmed")
        report.posted += 1
        await self._works_again(channel)
        return True

    async def _update(self, channel: str, alert: Alert, report: CycleReport) -> bool:
        """Edit a posted alert to its outcome (a digest gets a thread reply instead)."""
        assert alert.outcome is not None and alert.ts is not None
        try:
            run = await self._run(alert.run_id)
        except FabroError as exc:
            await self._failed(channel, [alert], f"fabro: {exc}", unposted=True, report=report)
            return True
        if await self.store.follow_at(channel, alert.ts):
            # A followed alert's message is the run's live card: its renderer owns the message now.
            await self.store.resolve_alert(alert.key, channel, alert.outcome, self.clock())
            return True
        await self._pace(channel)
        if self.budget is not None and not alert.batch:
            while (wait := self.budget.wait()) > 0:  # noqa: ASYNC110 - the budget frees up with time alone
                await asyncio.sleep(wait)
            self.budget.spend()
        try:
            if alert.batch:
                said = outcome_text(alert.outcome)
                text = f"`{escape(run.id[:10])}` {escape(clip(run.title or run.id, 80))}: {said}"
                await self.slack.chat_postMessage(channel=channel, thread_ts=alert.ts, text=text, unfurl_links=False)
            else:
                message = resolved_alert(
                    run, outcome=outcome_text(alert.outcome), now=self.clock(), web_base=self.web_base
                )
                await self.slack.chat_update(
                    channel=channel, ts=alert.ts, text=message["text"], blocks=message["blocks"]
                )
        except SlackApiError as exc:
            if slack_error(exc) in ("message_not_found", "cant_update_message", "edit_window_closed"):
                log.info(
                    "alert %s in %s could not be edited (%s); recorded as resolved",
                    alert.key,
                    channel,
                    slack_error(exc),
                )
            else:
                return await self._slack_refused(channel, [alert], exc, report)
        except (aiohttp.ClientError, TimeoutError) as exc:
            await self._failed(channel, [alert], f"transport: {type(exc).__name__}", unposted=True, report=report)
            return False
        await self.store.resolve_alert(alert.key, channel, alert.outcome, self.clock())
        report.updated += 1
        return True

    async def _slack_refused(self, channel: str, alerts: list[Alert], exc: SlackApiError, report: CycleReport) -> bool:
        error = slack_error(exc)
        if error in CHANNEL_ERRORS:
            await self._failed(channel, alerts, error, unposted=True, report=report, retry_in=_BROKEN_RETRY)
            if await self.store.mark_broken(channel, error):
                log.error(
                    "cannot post alerts to %s: %s. Invite the bot to the channel or remove its subscriptions;"
                    " alerts for it are kept and retried",
                    channel,
                    error,
                )
            self._broken[channel] = error
            return False
        if error == "ratelimited":
            retry_after = slack_retry_after(exc)
            await self._failed(
                channel, alerts, error, unposted=True, report=report, retry_in=timedelta(seconds=retry_after)
            )
            return False
        await self._failed(channel, alerts, error, unposted=True, report=report)
        return True

    async def _failed(
        self,
        channel: str,
        alerts: list[Alert],
        error: str,
        *,
        unposted: bool,
        report: CycleReport,
        retry_in: timedelta | None = None,
    ) -> None:
        report.failed += len(alerts)
        for alert in alerts:
            delay = retry_in or timedelta(seconds=min(30 * 2**alert.attempts, 900))
            await self.store.delivery_failed(
                alert.key, channel, error=error, unposted=unposted, retry_at=self.clock() + delay
            )
            log.warning(
                "alert %s to %s not delivered (%s), attempt %d; retrying in %ds",
                alert.key,
                channel,
                error,
                alert.attempts + 1,
                int(delay.total_seconds()),
            )

    async def _works_again(self, channel: str) -> None:
        if channel in self._broken:
            del self._broken[channel]
            await self.store.mark_broken(channel, None)
            log.info("posting to %s works again", channel)

    async def _find_posted(self, channel: str, alerts: list[Alert]) -> dict[str, str] | None:
        """Alert keys already in `channel` (from their metadata) → message ts; None if unknowable now."""
        oldest = min(a.claimed_at or self.clock() for a in alerts) - _HISTORY_MARGIN
        found: dict[str, str] = {}
        cursor: str | None = None
        try:
            for _ in range(50):
                response = await self.slack.conversations_history(
                    channel=channel,
                    oldest=f"{oldest.timestamp():.6f}",
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
                for message in response.get("messages") or []:
                    key = metadata_key(message)
                    if key is not None:
                        found.setdefault(key, str(message["ts"]))
                cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    return found
        except SlackApiError as exc:
            error = slack_error(exc)
            if error in CHANNEL_ERRORS:
                await self._slack_refused(channel, alerts, exc, CycleReport())
                return None
            if error in ("missing_scope", "not_allowed_token_type"):
                log.error(
                    "cannot read %s's history (%s) to check for alerts left by a crash; posting them anyway."
                    " Add channels:history and groups:history to the app to rule out duplicates",
                    channel,
                    error,
                )
                return found
            log.warning("could not read %s's history (%s); will look again next cycle", channel, error)
            return None
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not read %s's history (%s); will look again next cycle", channel, type(exc).__name__)
            return None
        return found

    async def _pace(self, channel: str) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        at = self._next_write.get(channel, now)
        if at > now:
            await asyncio.sleep(at - now)
        self._next_write[channel] = max(now, at) + self.pace

    async def _run(self, run_id: str) -> Run:
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = await self._once("run", run_id, lambda: self.fabro.get_run(run_id))
        return run

    async def _once(self, what: str, run_id: str, read: Callable[[], Awaitable[T]]) -> T:
        """Read `what` about a run once in this delivery: channels delivered at the same time share the
        read in flight, and its answer or its error."""
        future = self._reads.get((what, run_id))
        if future is None:
            future = self._reads[(what, run_id)] = asyncio.ensure_future(read())
        result: T = await asyncio.shield(future)
        return result
