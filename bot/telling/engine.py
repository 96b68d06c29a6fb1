"""The alert engine: find what changed in Fabro and decide the alerts that makes.

One cycle:
1. Poll. Runs are listed by `updated_at`, newest first, and paging stops at the watermark
   (the newest change already handled), so an idle cycle costs one Fabro request however
   many runs exist. The one listing covers all three watched buckets (failed, blocked,
   pending) and also shows runs *leaving* them, which is what makes an alert go stale.
2. Reconcile each changed run: claim the alerts it deserves in the store (a unique key per
   alert and channel decides each alert once), and record the outcome of posted alerts that
   no longer hold. The watermark moves only after that, so a crash replays the cycle.
3. Decide again the claims left from earlier passes (a crash, Slack refusing): still current,
   or settled as not posted. Steps 1–3 are `decide`; it returns a `Fresh` for the outbox.
4. Deliver (`delivery.py`, the outbox): post what is claimed, edit what has an outcome. The
   leader's tick calls `decide` then `Delivery.deliver`; `cycle` does both, for tests and tools.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from bot.blocks.presentation import Presentation
from bot.core.keys import ActionScope, ActionState, AlertKey, AlertKind, ended_by, failure_of
from bot.core.outcomes import Outcome, OutcomeVerb, events_tell, outcome_of
from bot.core.records import Alert, AlertState, IndexedRun, Subscription
from bot.core.stats import due_day, local_day, zone
from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroError, FabroNotFound, FabroUnreadable
from bot.fabro.filters import RunFilter
from bot.fabro.models import Question, Run
from bot.failpoints import crash_point
from bot.people.notify import Personal
from bot.store.base import Actions, AlertLog, Marks, Spending, Subscriptions
from bot.telling.delivery import CycleReport, Delivery, Fresh
from bot.telling.rules import DEFAULT_KINDS, Wanted, channels_for, matches, wanted_alerts

__all__ = ["Alerter", "CycleReport", "Watermark", "log_cycle"]

log = logging.getLogger(__name__)

WATERMARK = "alerts.watermark"
HISTORY_BEFORE = "alerts.history_before"
FIRST_PAGE = 20  # an idle cycle reads this many runs and stops
PAGE = 100  # Fabro's largest page, for catching up
CATCH_UP_PAGES = 5  # a new subscription reads at most this many pages of each waiting bucket


def changed_at(run: Run) -> datetime | None:
    """When Fabro says the run last changed, at the precision it sorts by: milliseconds.

    The JSON carries finer times; comparing those would put two runs that changed in the same
    millisecond in an order Fabro's listing does not, and the poll could stop before one of them.
    """
    when = run.updated_at
    return when.replace(microsecond=when.microsecond // 1000 * 1000) if when else None


class EngineStore(AlertLog, Actions, Marks, Subscriptions, Spending, Protocol):
    """What the engine reads and claims: the alert log, actions taken, its watermarks, subscriptions,
    and the day's spend (for DAILY_BUDGET_USD)."""


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
        when = changed_at(run)
        if self.at is None or when is None:
            return False
        return when < self.at or (when == self.at and run.id in self.ids)


@dataclass
class Alerter:
    """Polls Fabro and keeps channel alerts exactly once and up to date."""

    store: EngineStore
    fabro: FabroClient
    clock: Callable[[], datetime]
    delivery: Delivery  # posts what this engine claims
    default_channel: str | None = None
    presentation: Presentation = field(default_factory=Presentation)
    personal: Personal | None = None  # direct messages to the person a run waits on
    cost_alert_usd: float | None = None  # COST_ALERT_USD
    daily_budget_usd: float | None = None  # DAILY_BUDGET_USD
    # Told each change of the runs index (before, after); it must not wait (Home only marks whom it concerns).
    on_index: Callable[[IndexedRun | None, IndexedRun], None] | None = None
    _fresh: Fresh = field(default_factory=Fresh, init=False, repr=False)  # what this cycle claimed and read
    _history_before: datetime | None = field(default=None, init=False)
    # Runs at the watermark's instant, as last reconciled: an idle cycle looks at them again only if they differ.
    _at_mark: dict[str, str] = field(default_factory=dict, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _closed: bool = field(default=False, init=False)
    watching: bool = field(default=False, init=False)  # someone to tell (channels or owners), as of the last cycle
    # The runs the last cycle saw change (None: unknown, as after a first start); followed runs are synced from it.
    changed_runs: set[str] | None = field(default=None, init=False)

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
            subs.insert(0, Subscription(0, self.default_channel, DEFAULT_KINDS))
        return subs

    async def cycle(self) -> CycleReport:
        """Decide, then deliver: one whole pass. Never raises for Fabro or Slack trouble."""
        report, fresh = await self.decide()
        if report.skipped != "closed":
            await self.delivery.deliver(report, fresh)
            log_cycle(report)
        return report

    async def decide(self) -> tuple[CycleReport, Fresh]:
        """Poll, reconcile and claim once; what the outbox should post next. Never raises for Fabro trouble."""
        async with self._lock:
            report = CycleReport()
            if self._closed:
                report.skipped = "closed"
                return report, Fresh()
            self._fresh = Fresh()
            self.changed_runs = None
            subs = await self.subscriptions()
            # With personal notifications on, there is always someone to tell: runs are watched even
            # when no channel subscribed (DMs, and the index Home reads).
            self.watching = bool(subs) or self.personal is not None
            if not self.watching:
                report.skipped = "no subscriptions"
            else:
                try:
                    await self._poll(subs, report)
                    await self._catch_up(subs, report)
                except FabroError as exc:
                    report.skipped = "fabro"
                    self.changed_runs = set()  # nothing was read: nothing to sync either
                    log.warning(
                        "alert poll skipped: %s (request_id=%s); changes will be picked up when Fabro answers",
                        exc,
                        exc.request_id,
                        extra={"request_id": exc.request_id},
                    )
            await self._claim_summaries(report)
            await self._claim_budgets(subs, report)
            await self._decide_leftovers()
            return report, self._fresh

    async def _claim_budgets(self, subs: list[Subscription], report: CycleReport) -> None:
        """Once the day's spend (from the run index, in each channel's summary time zone or UTC) crosses
        DAILY_BUDGET_USD, claim that day's budget alert in each channel that asked for `cost`: once per
        day and channel, whatever restarts or replicas."""
        if self.daily_budget_usd is None:
            return
        channels = list(dict.fromkeys(s.channel for s in subs if "cost" in s.kinds))
        if not channels:
            return
        now, lease = self.clock(), self.delivery.lease
        zones = {s.channel: s.tz for s in await self.store.summaries()}
        for channel in channels:
            day, start, end = local_day(now, zone(zones.get(channel, "UTC")))
            spent, _ = await self.store.spend_between(start, end)
            if spent <= self.daily_budget_usd * 1_000_000:
                continue
            key = AlertKey(AlertKind.BUDGET, day.isoformat())
            if await self.store.claim_alert(key, channel, now, owner=lease.owner, lease_until=lease.until(now)):
                report.claimed += 1

    async def _claim_summaries(self, report: CycleReport) -> None:
        """Claim each channel's daily summary once its hour has passed: once per day and channel,
        whatever restarts or replicas; one missed while the bot was down still goes out that day."""
        now = self.clock()
        for setting in await self.store.summaries():
            day = due_day(setting.at, zone(setting.tz), now, setting.created_at)
            if day is None:
                continue
            key, lease = AlertKey(AlertKind.SUMMARY, day.isoformat()), self.delivery.lease
            if await self.store.claim_alert(key, setting.channel, now, owner=lease.owner, lease_until=lease.until(now)):
                report.claimed += 1

    async def reconcile_run(self, run_id: str) -> CycleReport:
        """Reconcile one run now (the event stream saw it change) and deliver, exactly as a cycle would."""
        report, fresh = await self.decide_run(run_id)
        if report.skipped is None:
            await self.delivery.deliver(report, fresh)
        return report

    async def decide_run(self, run_id: str) -> tuple[CycleReport, Fresh]:
        """Reconcile one run now and claim what it deserves, as `decide` would for it."""
        async with self._lock:
            report = CycleReport()
            subs = await self.subscriptions()
            # Before the first cycle has drawn the line between history and news, wait for it.
            if self._closed or not subs or await self.store.get_mark(WATERMARK) is None:
                report.skipped = "not ready"
                return report, Fresh()
            await self._load_history_mark()
            self._fresh = Fresh()
            try:
                run = await self.fabro.get_run(run_id)
                await self.reconcile(run, subs, fresh=True, report=report)
            except FabroError as exc:
                report.skipped = "fabro"
                log.info("live alert for %s deferred to the next poll: %s", run_id, exc)
                return report, Fresh()
            report.changed = 1
            if report.claimed:
                crash_point("alert.claimed")
            await self._decide_leftovers()
            return report, self._fresh

    async def _decide_leftovers(self) -> None:
        """Claims left by an earlier pass (a crash, Slack refusing, a lapsed lease) are decided again
        from what Fabro says now: still current (and how to render it), or no longer (settled by the
        outbox as not posted, once it has looked whether a crash left it in Slack after all)."""
        now, lease = self.clock(), self.delivery.lease
        questions_of: dict[str, list[Question]] = {}  # read once per run, for every channel and DM
        for alert in await self.store.deliveries_due(now):
            place = (alert.key, alert.channel)
            if (
                alert.state is not AlertState.CLAIMED
                or alert.kind.posted_by_sender
                or alert.kind in (AlertKind.SUMMARY, AlertKind.BUDGET)  # read when it is posted
                or alert.batch  # a digest names its runs only
                or place in self._fresh.claims
                or self.delivery.holds(place)
            ):
                continue
            # Only a claim this process may deliver: another replica may be posting it right now.
            if not await self.store.take_over(*place, owner=lease.owner, now=now, until=lease.hold_until(now)):
                continue
            try:
                run = self._fresh.runs.get(alert.run_id) or await self.fabro.get_run(alert.run_id)
                self._fresh.runs[run.id] = run
                questions = None
                if alert.kind is AlertKind.QUESTION:
                    if run.id not in questions_of:
                        questions_of[run.id] = await self.fabro.list_questions(run.id)
                    questions = questions_of[run.id]
            except FabroError as exc:
                self._fresh.unreadable[place] = f"fabro: {exc}"
                continue
            wanted = wanted_alerts(run, questions, cost_over_usd=self.cost_alert_usd)
            # A claim from before failures were told apart is posted under its own key.
            decided = next((replace(w, key=alert.key) for w in wanted if alert.key.stands_for(w.key)), None)
            if decided is None and alert.kind is AlertKind.COST:
                decided = Wanted(alert.key, run)  # a cost once crossed stays crossed, whatever the setting now
            self._fresh.decided[place] = decided

    async def _poll(self, subs: list[Subscription], report: CycleReport) -> None:
        mark = Watermark.load(await self.store.get_mark(WATERMARK))
        if mark is None:
            await self._first_start(subs, report)
            return
        await self._load_history_mark()
        changed, newest = await self._changed_since(mark)
        self.changed_runs = {run.id for run in changed if not mark.has_seen(run)}
        at_mark: dict[str, str] = {}
        for run in changed:
            # Runs at the mark's instant are looked at again, from what the listing says
            # (no extra request): a change within the same instant must not slip through.
            # One this process reconciled in exactly this state is left alone: an idle cycle
            # costs the same however many runs share the newest instant.
            fresh = not mark.has_seen(run)
            state = run.model_dump_json()
            if not fresh and self._at_mark.get(run.id) == state:
                at_mark[run.id] = state
                continue
            report.changed += fresh
            try:
                await self.reconcile(run, subs, fresh=fresh, report=report)
            except FabroUnreadable as exc:
                # What Fabro sent about this run cannot be read: it costs this run, not the cycle.
                log.warning(
                    "run %s left out of this alert cycle: %s (request_id=%s)",
                    run.id,
                    exc,
                    exc.request_id,
                    extra={"request_id": exc.request_id},
                )
                continue
            if changed_at(run) == newest.at:
                at_mark[run.id] = state
        if report.claimed:
            crash_point("alert.claimed")
        if newest != mark:
            await self.store.set_mark(WATERMARK, newest.dump())
        self._at_mark = at_mark

    async def _first_start(self, subs: list[Subscription], report: CycleReport) -> None:
        """Failures from before the bot existed are history; questions and approvals still need someone."""
        newest_page = await self.fabro.list_runs(_listing(limit=1))
        newest = changed_at(newest_page.data[0]) if newest_page.data else None
        waiting: list[Run] = []
        for bucket in ("blocked", "pending"):
            waiting += await self._whole_bucket(bucket)
        await self.store.set_mark(HISTORY_BEFORE, newest.isoformat() if newest else "")
        self._history_before = newest
        for run in waiting:
            # Bounded: the listing's current question stands for each run's questions (no request per
            # run); any other question is read when its run next changes (answering one changes it).
            await self.reconcile(run, subs, fresh=True, report=report, read_questions=False)
        if report.claimed:
            crash_point("alert.claimed")
        ids = frozenset(r.id for r in newest_page.data if changed_at(r) == newest)
        await self.store.set_mark(WATERMARK, Watermark(newest, ids).dump())
        log.info(
            "first alert cycle: failures before %s are history and not posted; %d runs are waiting for people",
            newest.isoformat() if newest else "now",
            len(waiting),
        )

    async def _load_history_mark(self) -> None:
        if self._history_before is None:
            value = await self.store.get_mark(HISTORY_BEFORE)
            self._history_before = datetime.fromisoformat(value) if value else None

    async def _whole_bucket(self, bucket: str, *, pages: int | None = None) -> list[Run]:
        runs: list[Run] = []
        offset, read = 0, 0
        while pages is None or read < pages:
            page = await self.fabro.list_runs(_listing(limit=PAGE, offset=offset, status=bucket))
            read += 1
            runs += page.data
            if not page.meta.has_more or not page.data:
                return runs
            offset += len(page.data) + page.unreadable
        log.info("%s: read the first %d pages only", bucket, pages)
        return runs

    async def _catch_up(self, subs: list[Subscription], report: CycleReport) -> None:
        """A new subscription is told, once, the questions and approvals already waiting that it matches.

        Its claims are made like any other (once per alert and channel), so a crash before the
        subscription is marked told repeats nothing; a storm of them goes out as one digest.
        """
        new = [s for s in subs if not s.caught_up]
        if not new:
            return
        waiting: list[Run] = []
        for bucket in ("blocked", "pending"):
            waiting += await self._whole_bucket(bucket, pages=CATCH_UP_PAGES)
        now, lease = self.clock(), self.delivery.lease
        asked: dict[str, list[Question] | None] = {}
        for sub in new:
            muted = {m.run_id for m in await self.store.mutes(now, channel=sub.channel)}
            for run in waiting:
                kinds = {k for k in (AlertKind.QUESTION, AlertKind.APPROVAL) if matches(sub, run, k)}
                if not kinds or run.id in muted:
                    continue
                if AlertKind.QUESTION in kinds and run.bucket == "blocked" and run.id not in asked:
                    try:
                        asked[run.id] = await self.fabro.list_questions(run.id)
                    except FabroNotFound:
                        asked[run.id] = None
                for w in wanted_alerts(run, asked.get(run.id)):
                    if w.kind not in kinds:
                        continue
                    if await self.store.claim_alert(
                        w.key, sub.channel, now, owner=lease.owner, lease_until=lease.until(now)
                    ):
                        self._fresh.claims[(w.key, sub.channel)] = w
                        self._fresh.runs[run.id] = run
                        report.claimed += 1
            await self.store.caught_up(sub.id)
            log.info("subscription %d in %s: told what was already waiting", sub.id, sub.channel)

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
                when = changed_at(run)
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
        self,
        run: Run,
        subs: list[Subscription] | None = None,
        *,
        fresh: bool = True,
        report: CycleReport | None = None,
        read_questions: bool = True,
    ) -> None:
        """Bring the alerts about `run` in line with its state: claim new ones, settle stale ones.

        `fresh` means the run changed since it was last looked at, so its pending questions
        are worth a request (unless not `read_questions`); otherwise its `current_question` stands for them.
        """
        report = report or CycleReport()
        subs = subs if subs is not None else await self.subscriptions()
        self._fresh.runs[run.id] = run
        if fresh:
            await self._index(run)
        now = self.clock()
        # Thread replies, reminders and announcements are not alerts about the run's state.
        existing = [a for a in await self.store.alerts_for_run(run.id) if not a.kind.posted_by_sender]
        questions: list[Question] | None = None
        if fresh and read_questions and run.bucket == "blocked":
            try:
                questions = await self.fabro.list_questions(run.id)
            except FabroNotFound:
                questions = None
        wanted = [w for w in wanted_alerts(run, questions, cost_over_usd=self.cost_alert_usd) if self._is_news(w)]
        have = {(a.key, a.channel) for a in existing}
        # A failed alert stored before failures were told apart (`failed:<run>`) stands for the failure
        # the run is in until the run is seen to move on: no second alert for it.
        told_before = {a.channel for a in existing if _tells_current_failure(a, run)}
        # A run muted in a conversation gets no new alert there until the mute lapses (a DM is its own).
        muted = {m.channel for m in await self.store.mutes(now, run_id=run.id)} if wanted else set()
        for w in wanted:
            personal = await self.personal.targets(run, w.kind) if self.personal else []
            for channel in dict.fromkeys([*channels_for(subs, run, w.kind), *personal]):
                if (
                    (w.key, channel) in have
                    or channel in muted
                    or (w.kind is AlertKind.FAILED and channel in told_before)
                ):
                    continue
                lease = self.delivery.lease
                if await self.store.claim_alert(w.key, channel, now, owner=lease.owner, lease_until=lease.until(now)):
                    self._fresh.claims[(w.key, channel)] = w
                    report.claimed += 1

        # Pending questions are only known when they were fetched: a run still blocked but
        # not re-read may have more questions than its current one.
        unsure_of_questions = run.bucket == "blocked" and questions is None
        still = {w.key for w in wanted}
        stale = [
            a
            for a in existing
            if a.state is AlertState.POSTED
            and a.outcome is None
            and not any(a.key.stands_for(key) for key in still)
            and not (a.kind is AlertKind.QUESTION and unsure_of_questions)
        ]
        if stale:
            # An action taken from Slack knows who acted (Fabro only knows the bot's token):
            # its record wins, and an action still in flight settles its alerts itself.
            actions = await self.store.actions_for_run(run.id)
            ours = {a.key.alert: a for a in actions if a.key.alert is not None}
            cancelled_by = next(
                (a.user_id for a in actions if a.key.scope is ActionScope.CANCEL and a.state is ActionState.DONE), None
            )
            stale = [a for a in stale if getattr(ours.get(a.key), "state", None) is not ActionState.PENDING]
            keys = [a.key for a in stale]
            events = await self.fabro.events_back(run.id, lambda found: events_tell(keys, found)) if stale else []
            for alert in stale:
                action = ours.get(alert.key)
                if action is not None and action.state is ActionState.DONE and action.outcome is not None:
                    outcome = action.outcome
                else:
                    outcome = outcome_of(alert.key, run, events)
                    if outcome.verb is OutcomeVerb.CANCELLED:
                        outcome = outcome.by(cancelled_by)
                await self.store.set_outcome(alert.key, alert.channel, outcome)
        if run.retried_from:
            retried = Outcome(OutcomeVerb.RETRIED, run_id=run.id, run_url=run.web_url(self.presentation.web_base))
            for alert in await self.store.alerts_for_run(run.retried_from):
                if alert.kind is AlertKind.FAILED and alert.state is AlertState.POSTED and alert.outcome is None:
                    await self.store.set_outcome(alert.key, alert.channel, retried)

    async def _index(self, run: Run) -> None:
        """Remember the run for Home, and tell Home whom the change concerns."""
        if self.personal is not None:
            for before, after in await self.personal.index(run, self.presentation.web_base):
                if self.on_index is not None:
                    self.on_index(before, after)

    def _is_news(self, wanted: Wanted) -> bool:
        """Runs that ended before the first cycle are history, not news."""
        ended = (AlertKind.FAILED, AlertKind.CANCELLED, AlertKind.SUCCEEDED, AlertKind.PR, AlertKind.COST)
        if wanted.kind not in ended or not self._history_before:
            return True
        # A pull request is opened after its run ended: its last change says when.
        failed_at = (
            wanted.run.updated_at
            if wanted.kind in (AlertKind.PR, AlertKind.COST)
            else wanted.run.timestamps.completed_at or wanted.run.updated_at
        )
        return failed_at is None or failed_at > self._history_before


def _tells_current_failure(alert: Alert, run: Run) -> bool:
    """Whether `alert`, a failed alert stored before failures were told apart, was about the failure
    `run` is in now. Unsettled, it is (it is settled once the run is seen to move on). Settled as
    resumed or moved on, the run went back to work after it, so the failure now is a later one.
    Settled otherwise (retried, archived and unarchived…), it was about this failure if this failure
    had ended when the alert was claimed (give or take the clocks): the run has not left it since."""
    if not alert.key.legacy_failure:
        return False
    if alert.outcome is None:
        return True
    if alert.outcome.verb in (OutcomeVerb.RESUMED, OutcomeVerb.MOVED_ON):
        return False
    failure, claimed = failure_of(run.timestamps.completed_at), alert.claimed_at
    if failure is None or claimed is None:
        return True  # cannot tell: a second alert about one failure is the worse mistake
    return ended_by(failure, claimed)


def log_cycle(report: CycleReport) -> None:
    if report.claimed or report.posted or report.updated or report.failed:
        log.info(
            "alert cycle: %d changed runs, %d claimed, %d posted (%d digests), %d updated, %d failed",
            report.changed,
            report.claimed,
            report.posted,
            report.digests,
            report.updated,
            report.failed,
        )


def _listing(*, limit: int, offset: int = 0, status: str | None = None) -> RunFilter:
    """Runs by last change, newest first: one bucket, or every run (archived ones included)."""
    return RunFilter(
        statuses=(status,) if status else (),
        sort="updated_at",
        direction="desc",
        limit=limit,
        offset=offset,
        include_archived=status is None,
    )
