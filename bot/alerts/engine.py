"""The alert engine: find what changed in Fabro, decide the alerts that makes, post each one
exactly once, and keep posted alerts true as their runs move on.

One cycle:
1. Poll. Runs are listed by `updated_at`, newest first, and paging stops at the watermark
   (the newest change already handled), so an idle cycle costs one Fabro request however
   many runs exist. The one listing covers all three watched buckets (failed, blocked,
   pending) and also shows runs *leaving* them, which is what makes an alert go stale.
2. Reconcile each changed run: claim the alerts it deserves in the store (a unique key per
   alert and channel decides each alert once), and record the outcome of posted alerts that
   no longer hold. The watermark moves only after that, so a crash replays the cycle.
3. Deliver: post claimed alerts (one digest instead when a channel gets a storm), tagged
   with Slack message metadata; confirm them in the store; edit stale ones in place.
   A claim this process did not make may already be in Slack (the process died between
   posting and confirming), so the channel's history is searched for its metadata first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.alerts.outcomes import alert_key_of_action, outcome_of, retried_outcome
from bot.alerts.rules import SUBSCRIPTION_KINDS, Wanted, channels_for, wanted_alerts
from bot.blocks.alerts import (
    ALERT_EVENT_TYPE,
    approval_alert,
    digest_message,
    failed_alert,
    question_alert,
    resolved_alert,
)
from bot.blocks.runs import run_web_url
from bot.blocks.text import clip, escape
from bot.failpoints import crash_point
from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroError, FabroNotFound
from bot.fabro.models import Question, Run
from bot.store.base import Alert, AlertState, Store, Subscription

__all__ = ["Alerter", "CycleReport", "Watermark", "updated_at"]

log = logging.getLogger(__name__)

WATERMARK = "alerts.watermark"
HISTORY_BEFORE = "alerts.history_before"
FIRST_PAGE = 20      # an idle cycle reads this many runs and stops
PAGE = 100           # Fabro's largest page, for catching up
# Slack errors that mean "this channel cannot take our posts until a person fixes it".
CHANNEL_ERRORS = frozenset({
    "not_in_channel", "channel_not_found", "is_archived", "restricted_action",
    "restricted_action_read_only_channel", "team_access_not_granted", "ekm_access_denied",
})
_BROKEN_RETRY = timedelta(minutes=10)
_HISTORY_MARGIN = timedelta(minutes=5)


def updated_at(run: Run) -> datetime | None:
    """Fabro's `updated_at` sort key: the last event, else creation."""
    return run.timestamps.last_event_at or run.timestamps.created_at


@dataclass(frozen=True)
class Watermark:
    """The newest change handled: its time and the runs changed at exactly that time."""

    at: datetime | None
    ids: frozenset[str] = frozenset()

    def dump(self) -> str:
        return json.dumps({"at": self.at.isoformat() if self.at else None, "ids": sorted(self.ids)})

    @classmethod
    def load(cls, text: str | None) -> Watermark | None:
        if not text:
            return None
        data = json.loads(text)
        at = datetime.fromisoformat(data["at"]) if data.get("at") else None
        return cls(at, frozenset(data.get("ids") or ()))

    def has_seen(self, run: Run) -> bool:
        """True when `run` is at or behind the mark and was handled in that state."""
        when = updated_at(run)
        if self.at is None or when is None:
            return False
        return when < self.at or (when == self.at and run.id in self.ids)


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
class Alerter:
    """Polls Fabro and keeps channel alerts exactly once and up to date."""

    store: Store
    fabro: FabroClient
    slack: AsyncWebClient
    clock: Callable[[], datetime]
    default_channel: str | None = None
    web_base: str | None = None
    command: str = "/runs"
    digest_threshold: int = 5
    pace: float = 1.0                       # seconds between two writes to one channel
    # How long a delivery is reserved for the process that claimed it. Another scheduler
    # (a split, a failover) leaves it alone until then; after a crash it is taken over.
    # Zero for a single process on SQLite: nobody else could be delivering.
    lease: timedelta = timedelta(0)
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)
    _renders: dict[tuple[str, str], Wanted] = field(default_factory=dict, init=False)
    _runs: dict[str, Run] = field(default_factory=dict, init=False)
    _next_write: dict[str, float] = field(default_factory=dict, init=False)
    _broken: dict[str, str] = field(default_factory=dict, init=False)
    _history_before: datetime | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _closed: bool = field(default=False, init=False)
    has_subscriptions: bool = field(default=False, init=False)   # as of the last cycle

    # -- the cycle -------------------------------------------------------------------------

    async def close(self, timeout: float = 10.0) -> None:
        """Start no more cycles, and wait up to `timeout` seconds for one in progress to finish."""
        self._closed = True
        try:
            async with asyncio.timeout(timeout), self._lock:
                pass
        except TimeoutError:
            log.warning("an alert cycle was still running at shutdown; its claims are resolved on restart")

    async def subscriptions(self) -> list[Subscription]:
        """Stored subscriptions, plus `ALERT_CHANNEL` as subscription 0 when it is set."""
        subs = await self.store.subscriptions()
        if self.default_channel:
            subs.insert(0, Subscription(0, self.default_channel, SUBSCRIPTION_KINDS))
        return subs

    async def cycle(self) -> CycleReport:
        """Poll, reconcile and deliver once. Never raises for Fabro or Slack trouble."""
        async with self._lock:
            report = CycleReport()
            if self._closed:
                report.skipped = "closed"
                return report
            self._runs.clear()
            subs = await self.subscriptions()
            self.has_subscriptions = bool(subs)
            if not subs:
                report.skipped = "no subscriptions"
            else:
                try:
                    await self._poll(subs, report)
                except FabroError as exc:
                    report.skipped = "fabro"
                    log.warning(
                        "alert poll skipped: %s (request_id=%s); changes will be picked up when Fabro answers",
                        exc, exc.request_id,
                    )
            await self._deliver(report)
            if report.claimed or report.posted or report.updated or report.failed:
                log.info(
                    "alert cycle: %d changed runs, %d claimed, %d posted (%d digests), %d updated, %d failed",
                    report.changed, report.claimed, report.posted, report.digests, report.updated, report.failed,
                )
            return report

    async def reconcile_run(self, run_id: str) -> CycleReport:
        """Reconcile one run now (the event stream saw it change) and deliver, exactly as a cycle would."""
        async with self._lock:
            report = CycleReport()
            subs = await self.subscriptions()
            # Before the first cycle has drawn the line between history and news, wait for it.
            if self._closed or not subs or await self.store.get_mark(WATERMARK) is None:
                report.skipped = "not ready"
                return report
            await self._load_history_mark()
            self._runs.clear()
            try:
                run = await self.fabro.get_run(run_id)
                await self.reconcile(run, subs, fresh=True, report=report)
            except FabroError as exc:
                report.skipped = "fabro"
                log.info("live alert for %s deferred to the next poll: %s", run_id, exc)
                return report
            report.changed = 1
            if report.claimed:
                crash_point("alert.claimed")
            await self._deliver(report)
            return report

    async def _poll(self, subs: list[Subscription], report: CycleReport) -> None:
        mark = Watermark.load(await self.store.get_mark(WATERMARK))
        if mark is None:
            await self._first_start(subs, report)
            return
        await self._load_history_mark()
        changed, newest = await self._changed_since(mark)
        for run in changed:
            # Runs at the mark's instant are looked at again, from what the listing says
            # (no extra request): a change within the same instant must not slip through.
            fresh = not mark.has_seen(run)
            report.changed += fresh
            await self.reconcile(run, subs, fresh=fresh, report=report)
        if report.claimed:
            crash_point("alert.claimed")
        if newest != mark:
            await self.store.set_mark(WATERMARK, newest.dump())

    async def _first_start(self, subs: list[Subscription], report: CycleReport) -> None:
        """Failures from before the bot existed are history; questions and approvals still need someone."""
        newest_page = await self.fabro.list_runs(_listing(limit=1))
        newest = updated_at(newest_page.data[0]) if newest_page.data else None
        waiting: list[Run] = []
        for bucket in ("blocked", "pending"):
            waiting += await self._whole_bucket(bucket)
        await self.store.set_mark(HISTORY_BEFORE, newest.isoformat() if newest else "")
        self._history_before = newest
        for run in waiting:
            await self.reconcile(run, subs, fresh=True, report=report)
        if report.claimed:
            crash_point("alert.claimed")
        ids = frozenset(r.id for r in newest_page.data if updated_at(r) == newest)
        await self.store.set_mark(WATERMARK, Watermark(newest, ids).dump())
        log.info(
            "first alert cycle: failures before %s are history and not posted; %d runs are waiting for people",
            newest.isoformat() if newest else "now", len(waiting),
        )

    async def _load_history_mark(self) -> None:
        if self._history_before is None:
            value = await self.store.get_mark(HISTORY_BEFORE)
            self._history_before = datetime.fromisoformat(value) if value else None

    async def _whole_bucket(self, bucket: str) -> list[Run]:
        runs: list[Run] = []
        offset = 0
        while True:
            page = await self.fabro.list_runs(
                [("status", bucket), ("sort", "updated_at"), ("direction", "desc"),
                 ("page[limit]", str(PAGE)), ("page[offset]", str(offset))]
            )
            runs += page.data
            if not page.meta.has_more or not page.data:
                return runs
            offset += len(page.data)

    async def _changed_since(self, mark: Watermark) -> tuple[list[Run], Watermark]:
        """Runs changed at or after the mark, newest first, and the mark to keep afterwards."""
        changed: dict[str, Run] = {}
        newest, newest_ids = mark.at, set(mark.ids)
        offset, limit = 0, FIRST_PAGE
        while True:
            page = await self.fabro.list_runs(_listing(limit=limit, offset=offset))
            # Pages are ordered by (updated_at, id) descending: once a page ends on a run that
            # was handled, the rest is older (or shares the mark's instant and was handled).
            reached = bool(page.data) and mark.has_seen(page.data[-1])
            for run in page.data:
                when = updated_at(run)
                if when is None:
                    continue
                if mark.at is not None and when < mark.at:
                    reached = True
                    break
                # A run can move up while we page (it changed again): keep its first, newest copy.
                changed.setdefault(run.id, run)
                if newest is None or when > newest:
                    newest, newest_ids = when, {run.id}
                elif when == newest:
                    newest_ids.add(run.id)
            if reached or not page.meta.has_more or not page.data:
                break
            offset += len(page.data)
            limit = PAGE
        return list(changed.values()), Watermark(newest, frozenset(newest_ids))

    # -- deciding ----------------------------------------------------------------------------

    async def reconcile(
        self, run: Run, subs: list[Subscription] | None = None, *, fresh: bool = True, report: CycleReport | None = None
    ) -> None:
        """Bring the alerts about `run` in line with its state: claim new ones, settle stale ones.

        `fresh` means the run changed since it was last looked at, so its pending questions
        are worth a request; otherwise its `current_question` stands for them.
        """
        report = report or CycleReport()
        subs = subs if subs is not None else await self.subscriptions()
        self._runs[run.id] = run
        now = self.clock()
        existing = await self.store.alerts_for_run(run.id)
        questions: list[Question] | None = None
        if fresh and run.bucket == "blocked":
            try:
                questions = await self.fabro.list_questions(run.id)
            except FabroNotFound:
                questions = None
        wanted = [w for w in wanted_alerts(run, questions) if self._is_news(w)]
        have = {(a.key, a.channel) for a in existing}
        for w in wanted:
            for channel in channels_for(subs, run, w.kind):
                if (w.key, channel) in have:
                    continue
                if await self.store.claim_alert(
                    w.key, channel, run.id, w.kind, now, owner=self.owner, lease_until=now + self.lease
                ):
                    self._renders[(w.key, channel)] = w
                    report.claimed += 1

        # Pending questions are only known when they were fetched: a run still blocked but
        # not re-read may have more questions than its current one.
        unsure_of_questions = run.bucket == "blocked" and questions is None
        still = {w.key for w in wanted}
        stale = [
            a for a in existing
            if a.state is AlertState.POSTED and a.outcome is None and a.key not in still
            and not (a.kind == "question" and unsure_of_questions)
        ]
        if stale:
            # An action taken from Slack knows who acted (Fabro only knows the bot's token):
            # its record wins, and an action still in flight settles its alerts itself.
            ours = {alert_key_of_action(a.key): a for a in await self.store.actions_for_run(run.id)}
            stale = [a for a in stale if getattr(ours.get(a.key), "state", None) != "pending"]
            events = await self.fabro.recent_events(run.id) if stale else []
            for alert in stale:
                action = ours.get(alert.key)
                outcome = (
                    action.result.rsplit(" · ", 1)[0] if action is not None and action.state == "done" and action.result
                    else outcome_of(alert.kind, alert.key, run, events)
                )
                await self.store.set_outcome(alert.key, alert.channel, outcome)
        if run.retried_from:
            outcome = retried_outcome(run, run_web_url(run, self.web_base))
            for alert in await self.store.alerts_for_run(run.retried_from):
                if alert.kind == "failed" and alert.state is AlertState.POSTED and alert.outcome is None:
                    await self.store.set_outcome(alert.key, alert.channel, outcome)

    def _is_news(self, wanted: Wanted) -> bool:
        """Failures from before the first cycle are history, not news."""
        if wanted.kind != "failed" or self._history_before is None:
            return True
        failed_at = wanted.run.timestamps.completed_at or updated_at(wanted.run)
        return failed_at is None or failed_at > self._history_before

    # -- delivering -----------------------------------------------------------------------------

    async def _deliver(self, report: CycleReport) -> None:
        now = self.clock()
        claims = [a for a in await self.store.alerts_in_state(AlertState.CLAIMED) if _due(a, now)]
        updates = [a for a in await self.store.alerts_in_state(AlertState.POSTED) if a.update_pending and _due(a, now)]
        if not claims and not updates:
            return
        self._broken = await self.store.broken_channels()
        by_channel: dict[str, tuple[list[Alert], list[Alert]]] = defaultdict(lambda: ([], []))
        for alert in claims:
            by_channel[alert.channel][0].append(alert)
        for alert in updates:
            by_channel[alert.channel][1].append(alert)
        await asyncio.gather(*(
            self._deliver_to(channel, posts, edits, report) for channel, (posts, edits) in by_channel.items()
        ))

    async def _deliver_to(self, channel: str, claims: list[Alert], updates: list[Alert], report: CycleReport) -> None:
        # Only what this process holds the lease for: never two schedulers on one alert.
        claims = [a for a in claims if await self._lease(a)]
        updates = [a for a in updates if await self._lease(a)]
        # A claim may already be in Slack unless it is a fresh one of ours, or Slack refused it:
        # one left by a crash, or one whose post timed out, is looked for before posting again.
        unsure = [
            a for a in claims
            if not a.unposted and (a.attempts > 0 or (a.key, channel) not in self._renders)
        ]
        if unsure:
            found = await self._find_posted(channel, unsure)
            if found is None:
                return
            for alert in unsure:
                ts = found.get(alert.batch or alert.key)
                if ts is not None:
                    await self.store.confirm_posted(alert.key, channel, ts, self.clock())
                    report.deduplicated += 1
                    log.info("alert %s was already in %s (ts %s): recorded, not posted again", alert.key, channel, ts)
            claims = [a for a in claims if not (a in unsure and (a.batch or a.key) in found)]

        batches: dict[str, list[Alert]] = defaultdict(list)
        for alert in claims:
            if alert.batch:
                batches[alert.batch].append(alert)
        singles = [a for a in claims if not a.batch]
        # A storm is digested whether it was decided this cycle or before a restart.
        new = [a for a in singles if a.attempts == 0]
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
        # Long enough to cover this delivery even when Slack makes it wait (429, pacing).
        until = now + max(self.lease, timedelta(minutes=2)) if self.lease else now
        return await self.store.take_over(alert.key, alert.channel, owner=self.owner, now=now, until=until)

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
        items: list[tuple[str, Run]] = []
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
        wanted = self._renders.get((alert.key, channel))
        if wanted is None:
            run = await self._run(alert.run_id)
            questions = await self.fabro.list_questions(run.id) if alert.kind == "question" else None
            wanted = next((w for w in wanted_alerts(run, questions) if w.key == alert.key), None)
            if wanted is None:
                await self.store.resolve_alert(alert.key, channel, "Not posted: no longer current", self.clock())
                log.info("alert %s for %s was no longer current when it could be posted", alert.key, channel)
                return None
        run, now = wanted.run, self.clock()
        if wanted.kind == "failed":
            return failed_alert(run, now=now, failure=await self.fabro.latest_failure(run.id), web_base=self.web_base, key=alert.key)
        if wanted.kind == "question" and wanted.question is not None:
            return question_alert(run, wanted.question, now=now, asked_at=updated_at(run), web_base=self.web_base, key=alert.key)
        return approval_alert(run, now=now, web_base=self.web_base, key=alert.key)

    async def _post(self, channel: str, message: dict[str, Any], alerts: list[Alert], report: CycleReport) -> bool:
        """Post one message standing for `alerts`; False when the channel should not be tried again now."""
        await self._pace(channel)
        try:
            response = await self.slack.chat_postMessage(
                channel=channel, text=message["text"], blocks=message["blocks"], metadata=message.get("metadata"),
                unfurl_links=False, unfurl_media=False,
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
        await self._pace(channel)
        try:
            if alert.batch:
                text = f"`{escape(run.id[:10])}` {escape(clip(run.title or run.id, 80))}: {alert.outcome}"
                await self.slack.chat_postMessage(channel=channel, thread_ts=alert.ts, text=text, unfurl_links=False)
            else:
                message = resolved_alert(run, outcome=alert.outcome, now=self.clock(), web_base=self.web_base)
                await self.slack.chat_update(channel=channel, ts=alert.ts, text=message["text"], blocks=message["blocks"])
        except SlackApiError as exc:
            if exc.response.get("error") in ("message_not_found", "cant_update_message", "edit_window_closed"):
                log.info("alert %s in %s could not be edited (%s); recorded as resolved", alert.key, channel, exc.response.get("error"))
            else:
                return await self._slack_refused(channel, [alert], exc, report)
        except (aiohttp.ClientError, TimeoutError) as exc:
            await self._failed(channel, [alert], f"transport: {type(exc).__name__}", unposted=True, report=report)
            return False
        await self.store.resolve_alert(alert.key, channel, alert.outcome, self.clock())
        report.updated += 1
        return True

    async def _slack_refused(self, channel: str, alerts: list[Alert], exc: SlackApiError, report: CycleReport) -> bool:
        error = str(exc.response.get("error") or "unknown_error")
        if error in CHANNEL_ERRORS:
            await self._failed(channel, alerts, error, unposted=True, report=report, retry_in=_BROKEN_RETRY)
            if await self.store.mark_broken(channel, error):
                log.error(
                    "cannot post alerts to %s: %s. Invite the bot to the channel or remove its subscriptions;"
                    " alerts for it are kept and retried", channel, error,
                )
            self._broken[channel] = error
            return False
        if error == "ratelimited":
            retry_after = _retry_after(exc)
            await self._failed(channel, alerts, error, unposted=True, report=report, retry_in=timedelta(seconds=retry_after))
            return False
        await self._failed(channel, alerts, error, unposted=True, report=report)
        return True

    async def _failed(
        self, channel: str, alerts: list[Alert], error: str, *, unposted: bool, report: CycleReport,
        retry_in: timedelta | None = None,
    ) -> None:
        report.failed += len(alerts)
        for alert in alerts:
            delay = retry_in or timedelta(seconds=min(30 * 2 ** alert.attempts, 900))
            await self.store.delivery_failed(
                alert.key, channel, error=error, unposted=unposted, retry_at=self.clock() + delay
            )
            log.warning(
                "alert %s to %s not delivered (%s), attempt %d; retrying in %ds",
                alert.key, channel, error, alert.attempts + 1, int(delay.total_seconds()),
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
                    channel=channel, oldest=f"{oldest.timestamp():.6f}", include_all_metadata=True,
                    limit=200, cursor=cursor,
                )
                for message in response.get("messages") or []:
                    metadata = message.get("metadata") or {}
                    payload = metadata.get("event_payload") or {}
                    if metadata.get("event_type") == ALERT_EVENT_TYPE and payload.get("key"):
                        found.setdefault(str(payload["key"]), str(message["ts"]))
                cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    return found
        except SlackApiError as exc:
            error = str(exc.response.get("error"))
            if error in CHANNEL_ERRORS:
                await self._slack_refused(channel, alerts, exc, CycleReport())
                return None
            if error in ("missing_scope", "not_allowed_token_type"):
                log.error(
                    "cannot read %s's history (%s) to check for alerts left by a crash; posting them anyway."
                    " Add channels:history and groups:history to the app to rule out duplicates", channel, error,
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
            run = self._runs[run_id] = await self.fabro.get_run(run_id)
        return run


def _listing(*, limit: int, offset: int = 0) -> list[tuple[str, str]]:
    return [
        ("sort", "updated_at"), ("direction", "desc"), ("include_archived", "true"),
        ("page[limit]", str(limit)), ("page[offset]", str(offset)),
    ]


def _due(alert: Alert, now: datetime) -> bool:
    return alert.next_attempt_at is None or alert.next_attempt_at <= now


def _retry_after(exc: SlackApiError) -> int:
    headers = getattr(exc.response, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return 30
