"""The outbox: every message the bot posts by itself reaches its conversation exactly once.

Two modes share one way of posting (claim with a lease → pace the channel → post with the key in
the message's metadata → confirm → after a crash, find the message again by that key):

- `deliver`: what the engine decided (`Fresh`) and the store says is claimed or due for an edit:
  alerts (a digest for a storm), daily summaries, and posted alerts edited to their outcome.
  The engine has already said whether each claim still applies; this pass only renders and posts.
- `post_once`: a message its sender renders on the spot (a followed run's thread reply, a reminder
  or escalation, a started run's announcement; `AlertKind.posted_by_sender`). The sender retries it
  on its next pass; a claim left unconfirmed is looked for in the conversation before posting again.

A claim is leased to one process at a time, so two schedulers (a failover, a split) never post the
same message. Slack's 429 and a channel the bot cannot post to are recorded on the claim.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol, TypeVar

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
from bot.blocks.exposure import for_exposure, minimal_outcome
from bot.blocks.outcomes import outcome_text
from bot.blocks.presentation import Presentation
from bot.blocks.stats import stats_message
from bot.blocks.text import clip, escape
from bot.core.exposure import Exposure, ExternalChannels
from bot.core.keys import AlertKey, AlertKind
from bot.core.outcomes import Outcome, OutcomeVerb
from bot.core.records import Alert, AlertState
from bot.core.stats import Window, scheduled_at, zone
from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroError
from bot.fabro.models import PullRequestOpened, PullRequestState, Run
from bot.fabro.outputs import RunBilling
from bot.failpoints import crash_point
from bot.slack.channels import Exposures
from bot.slack.webapi import CHANNEL_ERRORS, EditBudget, app_self, slack_error
from bot.slack.webapi import retry_after as slack_retry_after
from bot.store.base import AlertLog, Follows, Spending, Subscriptions
from bot.telling.daily import Daily
from bot.telling.rules import Wanted

__all__ = ["CHANNEL_ERRORS", "CycleReport", "Delivery", "Fresh", "Lease"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_BROKEN_RETRY = timedelta(minutes=10)
_HISTORY_MARGIN = timedelta(minutes=5)


class OutboxStore(AlertLog, Subscriptions, Follows, Spending, Protocol):
    """What the outbox touches: the alert log, broken channels and summaries, live cards on alerts,
    and the day's spend a budget alert tells."""


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


Place = tuple[AlertKey, str]  # an alert and the channel it goes to


@dataclass
class Fresh:
    """What one engine pass decided, for delivery to post: the claims it just made (surely not in
    Slack yet), the claims left from earlier passes decided again (None: no longer current), those it
    could not decide because Fabro could not be read, and the runs it read."""

    claims: dict[Place, Wanted] = field(default_factory=dict)
    decided: dict[Place, Wanted | None] = field(default_factory=dict)
    unreadable: dict[Place, str] = field(default_factory=dict)
    runs: dict[str, Run] = field(default_factory=dict)


@dataclass(frozen=True)
class _Claimed:
    """Whether a message posted by its sender is to be posted now; its ts when it was already."""

    go: bool
    ts: str | None = None


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
    store: OutboxStore
    fabro: FabroClient
    slack: AsyncWebClient
    clock: Callable[[], datetime]
    presentation: Presentation = field(default_factory=Presentation)
    digest_threshold: int = 5
    cost_alert_usd: float | None = None  # COST_ALERT_USD, said on the cost alert
    daily_budget_usd: float | None = None  # DAILY_BUDGET_USD
    pace: float = 1.0  # seconds between two writes to one channel
    lease: Lease = field(default_factory=Lease)
    daily: Daily | None = None  # reads the picture for channels' daily summaries
    budget: EditBudget | None = None  # chat.update calls of the whole workspace, shared with live cards
    # What each channel may see of a run (EXTERNAL_CHANNELS); everything unless the app says otherwise.
    exposures: Exposures = field(default_factory=lambda: Exposures(None, ExternalChannels.FULL))
    # Claims this process made and has not posted yet, with what renders them without reading Fabro again.
    _renders: dict[Place, Wanted] = field(default_factory=dict, init=False)
    _fresh: Fresh = field(default_factory=Fresh, init=False)
    _runs: dict[str, Run] = field(default_factory=dict, init=False)
    # What one delivery read about a run (the run, its failure, its questions), shared by every channel and DM.
    _reads: dict[tuple[str, str], asyncio.Future[Any]] = field(default_factory=dict, init=False)
    _next_write: dict[str, float] = field(default_factory=dict, init=False)
    _broken: dict[str, str] = field(default_factory=dict, init=False)
    _delivering: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)  # one pass at a time

    async def exposure(self, channel: str) -> Exposure:
        """What a message for everyone in `channel` may show."""
        return await self.exposures.of(channel)

    async def fit(
        self, channel: str, message: dict[str, Any], run: Run, *, outcome: Outcome | None = None
    ) -> dict[str, Any]:
        """`message` about `run` as everyone in `channel` may see it: unchanged, or reduced to the run's
        status, title and link in a channel shared with another organisation (`for_exposure`)."""
        return for_exposure(message, run, await self.exposure(channel), self.presentation, outcome=outcome)

    def holds(self, place: Place) -> bool:
        """True for a claim this process made and can still render without asking Fabro again."""
        return place in self._renders

    async def deliver(self, report: CycleReport, fresh: Fresh | None = None) -> None:
        """Post what is claimed and due, edit what has an outcome, channel by channel."""
        async with self._delivering:
            await self._deliver(report, fresh or Fresh())

    async def _deliver(self, report: CycleReport, fresh: Fresh) -> None:
        self._renders.update(fresh.claims)
        self._fresh = fresh
        self._runs = dict(fresh.runs)
        self._reads = {}
        now = self.clock()
        # Messages their senders post are claimed in the same table, but their senders retry them.
        due = [a for a in await self.store.deliveries_due(now) if not a.kind.posted_by_sender]
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
                    log.info(
                        "alert %s was already in %s (ts %s): recorded, not posted again",
                        alert.key,
                        channel,
                        ts,
                        extra={"alert": alert.key},
                    )
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

    # -- posted by their senders -----------------------------------------------------------------

    async def post_once(
        self,
        key: AlertKey,
        channel: str,
        message: dict[str, Any],
        *,
        thread_ts: str | None = None,
        crash_prefix: str = "once",
    ) -> bool:
        """Post `message` under `key` in `channel` (in the thread `thread_ts`) unless it was; True if posted now."""
        _ts, posted = await self.reply_once(key, channel, message, thread_ts=thread_ts, crash_prefix=crash_prefix)
        return posted

    async def reply_once(
        self,
        key: AlertKey,
        channel: str,
        message: dict[str, Any],
        *,
        thread_ts: str | None = None,
        crash_prefix: str = "once",
    ) -> tuple[str | None, bool]:
        """`post_once`, also telling the message's ts (None when it was posted before and is not known).

        Slack's errors are recorded on the claim and raised: the sender tries again on its next pass,
        and a claim Slack refused is posted then without looking for it first.
        """
        claimed = await self._claim_once(
            key, channel, lambda: _find_in_conversation(self.slack, key, channel, thread_ts)
        )
        if not claimed.go:
            return claimed.ts, False
        crash_point(f"{crash_prefix}.claimed")
        await self._pace(channel)
        try:
            posted = await self.slack.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=message["text"],
                blocks=message.get("blocks"),
                metadata=alert_metadata(key),
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            await self._refused_once(key, channel, exc)
            raise
        crash_point(f"{crash_prefix}.posted")
        await self.store.confirm_posted(key, channel, str(posted["ts"]), self.clock())
        return str(posted["ts"]), True

    async def upload_once(
        self,
        key: AlertKey,
        channel: str,
        *,
        filename: str,
        content: bytes,
        title: str,
        comment: str,
        thread_ts: str | None = None,
        crash_prefix: str = "upload",
    ) -> bool:
        """Upload a file under `key` into `channel` (the thread `thread_ts`) unless it was; True if uploaded now.

        Slack keeps no metadata on a file, so `filename` must name the intent: a claim left by a crash
        is settled by finding a file of that name in the thread (or the channel's recent history)."""
        find = functools.partial(_find_file, self.slack, filename, channel, thread_ts)
        claimed = await self._claim_once(key, channel, find)
        if not claimed.go:
            return False
        crash_point(f"{crash_prefix}.claimed")
        await self._pace(channel)
        try:
            # Slack's current upload: files.getUploadURLExternal, the bytes to that URL, files.completeUploadExternal.
            done = await self.slack.files_upload_v2(
                channel=channel,
                thread_ts=thread_ts,
                filename=filename,
                content=content,
                title=title,
                initial_comment=comment,
            )
        except SlackApiError as exc:
            await self._refused_once(key, channel, exc)
            raise
        crash_point(f"{crash_prefix}.posted")
        shared = done.get("file") or {}
        await self.store.confirm_posted(key, channel, str(shared.get("id") or filename), self.clock())
        return True

    async def _claim_once(self, key: AlertKey, channel: str, find: Callable[[], Awaitable[str | None]]) -> _Claimed:
        """Claim `key` in `channel` with this process's lease; a claim left unconfirmed is looked for first."""
        now = self.clock()
        lease = self.lease
        if await self.store.claim_alert(key, channel, now, owner=lease.owner, lease_until=lease.until(now)):
            return _Claimed(go=True)
        earlier = next(
            (a for a in await self.store.alerts_for_run(key.run_id) if a.key == key and a.channel == channel), None
        )
        if earlier is None or earlier.state is not AlertState.CLAIMED:
            return _Claimed(go=False, ts=earlier.ts if earlier else None)  # posted before, or settled
        if not await self.store.take_over(key, channel, owner=lease.owner, now=now, until=lease.hold_until(now)):
            return _Claimed(go=False)  # another process is posting it now
        if not earlier.unposted:
            found = await find()
            if found is not None:
                await self.store.confirm_posted(key, channel, found, now)
                return _Claimed(go=False, ts=found)
        return _Claimed(go=True)

    async def _refused_once(self, key: AlertKey, channel: str, exc: SlackApiError) -> None:
        error = slack_error(exc)
        wait = timedelta(seconds=slack_retry_after(exc)) if error == "ratelimited" else timedelta(0)
        await self.store.delivery_failed(key, channel, error=error, unposted=True, retry_at=self.clock() + wait)

    async def post_now(self, channel: str, message: dict[str, Any], *, thread_ts: str | None = None) -> str:
        """Post a message that is keyed elsewhere (a live card: its follow records its ts), paced with the
        channel's other writes, in `thread_ts` when given; its ts. Slack's errors are raised to the person
        who asked for it."""
        await self._pace(channel)
        posted = await self.slack.chat_postMessage(
            channel=channel,
            thread_ts=thread_ts,
            text=message["text"],
            blocks=message["blocks"],
            unfurl_links=False,
            unfurl_media=False,
        )
        return str(posted["ts"])

    async def announce(
        self, key: AlertKey, places: list[str], message: dict[str, Any], *, thread_ts: str | None = None
    ) -> str | None:
        """Post `message` once in the first of `places` that takes it (a channel, then a person's DM);
        where it went, or None when nowhere would (each refusal is logged). `thread_ts` is a thread
        in the first place."""
        for where in places:
            thread = thread_ts if where == places[0] else None
            try:
                posted = await self.post_once(key, where, message, thread_ts=thread, crash_prefix="announce")
                if posted or await self._posted(key, where):
                    return where
                continue  # settled there as not posted: the next place
            except SlackApiError as exc:
                if slack_error(exc) not in CHANNEL_ERRORS:
                    log.warning("could not post %s to %s: %s", key, where, slack_error(exc))
                    return None
                # Nobody will post it there: settle the claim, and try the next place.
                await self.store.resolve_alert(key, where, Outcome(OutcomeVerb.NOT_POSTED), self.clock())
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("could not post %s to %s: %s", key, where, type(exc).__name__)
                return None
        return None

    async def _posted(self, key: AlertKey, channel: str) -> bool:
        return any(a.key == key and a.channel == channel and a.ts for a in await self.store.alerts_for_run(key.run_id))

    async def _lease(self, alert: Alert) -> bool:
        now = self.clock()
        return await self.store.take_over(
            alert.key, alert.channel, owner=self.lease.owner, now=now, until=self.lease.hold_until(now)
        )

    async def _post_alert(self, channel: str, alert: Alert, report: CycleReport) -> bool:
        unreadable = self._fresh.unreadable.get((alert.key, channel))
        if unreadable is not None:
            await self._failed(channel, [alert], unreadable, unposted=True, report=report)
            return True
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
        message = digest_message(
            items, command=self.presentation.command, web_base=self.presentation.web_base, key=batch
        )
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
        place = (alert.key, channel)
        wanted = self._renders.get(place)
        if wanted is None:
            if place not in self._fresh.decided:
                return None  # not decided by this pass (a claim another pass made meanwhile): the next one does
            wanted = self._fresh.decided[place]
            if wanted is None:
                await self.store.resolve_alert(alert.key, channel, Outcome(OutcomeVerb.NOT_POSTED), self.clock())
                log.info(
                    "alert %s for %s was no longer current when it could be posted",
                    alert.key,
                    channel,
                    extra={"alert": alert.key},
                )
                return None
        card = await self._card(wanted, alert)
        return await self.fit(channel, card, wanted.run)

    async def _card(self, wanted: Wanted, alert: Alert) -> dict[str, Any]:
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
            return cost_alert(run, bill, over_usd=over, now=now, web_base=self.presentation.web_base, key=alert.key)
        if wanted.kind is AlertKind.SUCCEEDED:
            return succeeded_alert(run, now=now, web_base=self.presentation.web_base, key=alert.key)
        if wanted.kind in (AlertKind.FAILED, AlertKind.CANCELLED):
            failure = await self._once("failure", run.id, lambda: self.fabro.latest_failure(run.id))
            return failed_alert(run, now=now, failure=failure, web_base=self.presentation.web_base, key=alert.key)
        if wanted.kind is AlertKind.QUESTION and wanted.question is not None:
            return question_alert(
                run,
                wanted.question,
                now=now,
                asked_at=run.updated_at,
                web_base=self.presentation.web_base,
                key=alert.key,
            )
        return approval_alert(run, now=now, web_base=self.presentation.web_base, key=alert.key)

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
        return pr_alert(run, now=now, opened=opened, state=state, web_base=self.presentation.web_base, key=key)

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
        minimal = (await self.exposure(channel)).minimal  # a shared channel sees no costs
        return budget_alert(
            day,
            spent,
            self.daily_budget_usd,
            top,
            tz=str(tz),
            command=self.presentation.command,
            key=alert.key,
            minimal=minimal,
        )

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
            picture,
            now=self.clock(),
            web_base=self.presentation.web_base,
            command=self.presentation.command,
            heading=heading,
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
            minimal = (await self.exposure(channel)).minimal
            if alert.batch:
                said = outcome_text(minimal_outcome(alert.outcome) if minimal else alert.outcome)
                text = f"`{escape(run.id[:10])}` {escape(clip(run.title or run.id, 80))}: {said}"
                await self.slack.chat_postMessage(channel=channel, thread_ts=alert.ts, text=text, unfurl_links=False)
            else:
                message = resolved_alert(
                    run, outcome=outcome_text(alert.outcome), now=self.clock(), web_base=self.presentation.web_base
                )
                message = await self.fit(channel, message, run, outcome=alert.outcome)
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
                    extra={"alert": alert.key},
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
            # Not a retry loop (stamina's job) but a schedule kept in the store, so it survives a
            # restart and any replica picks it up: the next try's time is written down instead.
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
                extra={"alert": alert.key},
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
        me = await app_self(self.slack)  # only the bot's own messages count, whatever metadata others copy
        bot_id = me.bot_id if me is not None else None
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
                    key = metadata_key(message, bot_id)
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
        # One write per `pace` seconds per channel, reserved in order: a next-free time per channel.
        # aiolimiter's AsyncLimiter(1, pace) per channel would do the same; it is not used because
        # `pace` may be 0 (no pacing: AsyncLimiter cannot express that) and a limiter object per
        # channel is more state than one number, for no behaviour gained.
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


async def _find_in_conversation(
    slack: AsyncWebClient, key: AlertKey, channel: str, thread_ts: str | None
) -> str | None:
    """The ts of a message already posted with this key (a post whose answer was lost)."""
    if thread_ts:
        answer = await slack.conversations_replies(channel=channel, ts=thread_ts, include_all_metadata=True, limit=200)
    else:
        answer = await slack.conversations_history(channel=channel, include_all_metadata=True, limit=200)
    wanted = key.encode()
    me = await app_self(slack)  # only the bot's own messages count, whatever metadata others copy
    bot_id = me.bot_id if me is not None else None
    return next((str(m["ts"]) for m in answer.get("messages") or [] if metadata_key(m, bot_id) == wanted), None)


async def _find_file(slack: AsyncWebClient, filename: str, channel: str, thread_ts: str | None) -> str | None:
    """The id of a file already shared under `filename` (an upload whose answer was lost)."""
    if thread_ts:
        answer = await slack.conversations_replies(channel=channel, ts=thread_ts, limit=200)
    else:
        answer = await slack.conversations_history(channel=channel, limit=200)
    for message in answer.get("messages") or []:
        for shared in message.get("files") or []:
            if isinstance(shared, dict) and shared.get("name") == filename:
                return str(shared.get("id") or filename)
    return None
