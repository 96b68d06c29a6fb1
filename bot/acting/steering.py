"""Acting on runs from Slack: answer a question, approve or deny, retry, cancel.

Independent of Slack's transport and of how anything looks: it returns a `Settled` (the run
and the typed outcome) or raises one of `bot.core.errors`; the listeners render both. Every
action goes the same way:

1. Permission: the verb's class (`ALLOW_ANSWER` … `ALLOW_SHIP`), checked before anything else;
   a refused person is told who may, and nothing reaches Fabro.
2. Record: the action is stored under a key that allows it once (one answer per question,
   one decision per approval, one retry, one cancel), *before* it is sent. A double click
   or a second person finds the first action and is told about it.
3. Re-read: the run (and its questions) from Fabro. Card values are not trusted: the
   question must still be pending, the option must exist, the run must allow the action.
   The check returns a `Plan` (what to send, with what it found) or a `Refused`.
4. Send the plan, once (a 503 from Fabro is retried once, except for retry, which creates runs).
5. Settle: the record gets the outcome on every path (done, refused or failed); the alerts
   about the same thing are given the outcome. Fabro records the bot's token as the actor,
   so this record is the only place the Slack user is kept.

A record left pending by a process that died after Fabro accepted the request (or failed without
an answer from Fabro) is settled from what Fabro shows before anything is sent again: a retry's
successor and an automation's new run carry the intent in the `User-Agent` Fabro keeps in their
provenance, a merge or close shows in the pull request's state, a steer in the run's events.
The person of that record is then the one who did it (and owns the run it made).
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import stamina

from bot.acting.interview import Choice, answer_body
from bot.blocks.presentation import Presentation
from bot.blocks.routing import Target
from bot.core.drafts import Draft
from bot.core.errors import ActionFailed, AlreadyActed, BotError, Refusal, Refused, Settled
from bot.core.keys import CLOCK_SKEW, SAME_INSTANT, ActionKey, ActionScope, ActionState, Verb, ended_by, failure_of
from bot.core.outcomes import Outcome, OutcomeVerb, events_tell, outcome_of, run_state, said
from bot.core.records import Action, AlertState
from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroConflict, FabroError, FabroNotFound, FabroUnavailable
from bot.fabro.manifest import BadWorkflow, build_manifest, load_workflow
from bot.fabro.models import PullRequestCreation, Question, Run, RunEvent
from bot.failpoints import crash_point
from bot.people.notify import indexed
from bot.people.permissions import CLASS_OF, Owner, Permissions
from bot.store.base import Actions, AlertLog, People

__all__ = [
    "MAX_STEER",
    "PENDING_LEASE",
    "AnswerPlan",
    "Done",
    "Plan",
    "PullRequestAsked",
    "PullRequestFollow",
    "Reading",
    "Seen",
    "Steering",
    "Where",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

# An action still pending after this long was never settled (its process died mid-way):
# another click may take it over, after Fabro is re-read.
PENDING_LEASE = timedelta(minutes=2)
# Settled from evidence in Fabro when their record was left pending (or failed without an answer).
EVIDENCED = frozenset({Verb.RETRY, Verb.START, Verb.MERGE_PR, Verb.CLOSE_PR, Verb.STEER})


def action_lease(fabro_timeout: float) -> timedelta:
    """How long an action may hold its record: every Fabro call it makes (re-reads, the send, a
    503 tried once more, the card's refresh) each within FABRO_TIMEOUT_SECONDS, with room to spare."""
    return timedelta(seconds=10 * fabro_timeout + 10)


MAX_STEER = 8192  # characters Fabro takes in one steer


class Reading(enum.Enum):
    """What is re-read from Fabro before a check: the run always, sometimes more."""

    RUN = "run"
    QUESTIONS = "questions"  # the run's questions too
    SUCCESSORS = "successors"  # the runs retried from it too
    PULL_REQUEST = "pull_request"  # the pull request's live state too (merged or closed on GitHub?)
    CHECKPOINTS = "checkpoints"  # how many checkpoints the run has (resume needs one)


class SteeringStore(Actions, AlertLog, People, Protocol):
    """What acting touches: its action records, the alerts it settles, the runs it starts."""


@dataclass(frozen=True)
class Seen:
    """What was re-read from Fabro, for a check to decide on (card values are never trusted)."""

    run: Run
    questions: tuple[Question, ...] = ()
    pr_finished: str | None = None  # "merged" or "closed" when the pull request's live state says so
    pr_draft: bool = False  # a draft, which GitHub does not merge
    checkpoints: int = 0
    successors: tuple[Run, ...] = ()  # runs retried from it, newest first


@dataclass(frozen=True)
class Plan:
    """A check's go-ahead: what the send step sends, about the run as it was re-read."""

    run: Run


@dataclass(frozen=True)
class AnswerPlan(Plan):
    question: Question
    body: dict[str, Any]  # Fabro's tagged answer body


@dataclass(frozen=True)
class PullRequestFollow:
    """Where (and after how long) a pull request being written can be asked how it went."""

    location: str
    wait: float


@dataclass(frozen=True)
class Done:
    """What a send did: its outcome, the run as it is now, and a creation to follow when there is one."""

    outcome: Outcome
    run: Run
    follow: PullRequestFollow | None = None
    made: Run | None = None  # the run it created (a retry's, a start's): its owner is who acted


P = TypeVar("P", bound=Plan)
Check = Callable[[Seen], Refused | P]  # a check refuses, or says what to send
Send = Callable[[P], Awaitable[Done]]


@dataclass(frozen=True)
class Where:
    """Who acted, and on which card (a channel message can be edited; an ephemeral one cannot)."""

    user_id: str
    channel: str | None = None
    message_ts: str | None = None


@dataclass(frozen=True)
class PullRequestAsked:
    """Fabro took the request to write a pull request: the card to show now, and where (and after
    how long) `Steering.follow_creation` finds out how it ended."""

    settled: Settled
    follow: PullRequestFollow


@dataclass
class Steering:
    store: SteeringStore
    fabro: FabroClient
    permissions: Permissions
    clock: Callable[[], datetime]
    presentation: Presentation = field(default_factory=Presentation)
    workflows_dir: Path | None = None  # WORKFLOWS_DIR: the deployer's workflows, besides the shipped ones
    repositories: frozenset[str] = frozenset()  # REPOSITORIES, lower-case owner/name: where work may start
    user_agent: str = "fabro-slack-bot"
    # Whose a run is (who retried or started it from Slack, or the person linked to its login).
    owner_of: Callable[[Run], Awaitable[str | None]] | None = None
    created: Callable[[Run], None] | None = None  # told of every run the bot creates (its token's login)
    lease: timedelta = PENDING_LEASE  # how long an action holds its record (`action_lease`)
    _send_retry_delay: float = field(default=0.5, repr=False)

    # -- the five actions -----------------------------------------------------------------

    async def answer(self, who: Where, target: Target, choice: Choice) -> Settled:
        assert target.question_id is not None
        question_id = target.question_id

        def check(seen: Seen) -> Refused | AnswerPlan:
            question = next((q for q in seen.questions if q.id == question_id), None)
            if question is None:
                return Refused(Refusal.QUESTION_GONE, run=seen.run)
            body = answer_body(question, choice)
            if isinstance(body, str):
                return Refused(Refusal.ANSWER_UNFIT, run=seen.run, detail=body)
            return AnswerPlan(seen.run, question, body)

        async def send(plan: AnswerPlan) -> Done:
            run, question = plan.run, plan.question
            await self._once_more_on_503(lambda: self.fabro.answer_question(run.id, question.id, plan.body))
            labels = {o.key: o.label or o.key for o in question.options}
            outcome = Outcome(OutcomeVerb.ANSWERED, question=question.text, answer=said(plan.body, labels))
            return Done(outcome, await self._fresh(run))

        detail = {"choice": str(choice.kind)}
        return await self._act(who, Verb.ANSWER, target, check, send, detail=detail, reading=Reading.QUESTIONS)

    async def approve(self, who: Where, target: Target) -> Settled:
        async def send(plan: Plan) -> Done:
            after = await self._once_more_on_503(lambda: self.fabro.approve(plan.run.id))
            return Done(Outcome(OutcomeVerb.APPROVED), after)

        return await self._act(who, Verb.APPROVE, target, _awaiting_approval, send)

    async def deny(self, who: Where, target: Target, reason: str | None) -> Settled:
        reason = (reason or "").strip() or None

        async def send(plan: Plan) -> Done:
            after = await self._once_more_on_503(lambda: self.fabro.deny(plan.run.id, reason))
            return Done(Outcome(OutcomeVerb.DENIED, reason=reason), after)

        return await self._act(who, Verb.DENY, target, _awaiting_approval, send, detail={"reason": reason})

    async def retry(self, who: Where, target: Target) -> Settled:
        intent = uuid.uuid4().hex  # named in the new run's provenance, to find it after a crash

        def check(seen: Seen) -> Refused | Plan:
            if seen.run.lifecycle.archived:
                return Refused(Refusal.ARCHIVED, run=seen.run)
            if not seen.run.is_terminal:
                return Refused(Refusal.NOT_FINISHED, run=seen.run)
            if seen.successors:  # retried already (here, or in Fabro): say where, send nothing
                retried = self._retried(seen.successors[0])
                detail = f"`{seen.successors[0].id}`"
                return Refused(Refusal.ALREADY_RETRIED, run=seen.run, detail=detail, settled=Settled(seen.run, retried))
            return Plan(seen.run)

        async def send(plan: Plan) -> Done:
            # Never repeated: a second call would make a second run.
            new = await self.fabro.retry(plan.run.id, user_agent=self._agent(intent))
            if self.created is not None:
                self.created(new)
            return Done(self._retried(new), plan.run, made=new)

        detail = {"intent": intent}
        try:
            done = await self._act_done(who, Verb.RETRY, target, check, send, detail=detail, reading=Reading.SUCCESSORS)
        except Refused as refused:  # a Retry left on a Home the index had not caught up with
            retry_id = refused.settled.outcome.run_id if refused.settled is not None else None
            if refused.reason is Refusal.ALREADY_RETRIED and retry_id:
                await self.store.mark_retried(target.run_id, retry_id)
            raise
        if done.made is not None:  # Home offers no Retry of it from now on, before any poll
            await self.store.mark_retried(target.run_id, done.made.id)
        return Settled(done.run, done.outcome)

    def _retried(self, new: Run) -> Outcome:
        return Outcome(OutcomeVerb.RETRIED, run_id=new.id, run_url=new.web_url(self.presentation.web_base))

    def _agent(self, intent: str) -> str:
        """The `User-Agent` of a request that creates a run: Fabro keeps it in the run's provenance."""
        return f"{self.user_agent} (slack; intent {intent})"

    async def resume(self, who: Where, target: Target) -> Settled:
        """Run a failed run again in place from its last checkpoint: the same run, no approval. One
        failure is taken up once, by Retry or by Resume (they share a record)."""

        async def send(plan: Plan) -> Done:
            try:
                after = await self.fabro.resume(plan.run.id)  # never repeated: the run is at work again
            except FabroConflict as exc:
                refusal = _resume_refusal(exc, plan.run)
                if refusal is None:
                    raise
                raise refusal from exc
            return Done(Outcome(OutcomeVerb.RESUMED), after)

        return await self._act(who, Verb.RESUME_RUN, target, _resumable, send, reading=Reading.CHECKPOINTS)

    async def cancel(self, who: Where, target: Target) -> Settled:
        def check(seen: Seen) -> Refused | Plan:
            if seen.run.is_terminal or seen.run.lifecycle.archived:
                return Refused(Refusal.ALREADY_FINISHED, run=seen.run)
            return Plan(seen.run)

        async def send(plan: Plan) -> Done:
            after, done = await self._once_more_on_503(lambda: self.fabro.cancel(plan.run.id))
            return Done(Outcome(OutcomeVerb.CANCELLED if done else OutcomeVerb.CANCEL_REQUESTED), after)

        return await self._act(who, Verb.CANCEL, target, check, send)

    # -- working with a running agent ----------------------------------------------------------

    async def steer(self, who: Where, target: Target, text: str, *, intent: str, interrupt: bool = False) -> Settled:
        """Say `text` to the run's agent, once per `intent` (the Slack event or window it came from):
        Slack resending the event or a double-submitted window delivers nothing twice."""
        text = text.strip()
        if not text:
            raise Refused(Refusal.NOTHING_SAID)
        if len(text) > MAX_STEER:
            raise Refused(Refusal.TOO_LONG, detail=f"{len(text):,}")
        key = ActionKey.of(Verb.STEER, intent)
        # A record already under this intent, left by a crash between sending and hearing back, is
        # settled first from Fabro's run.steer events (`_once`): the text is never sent twice.

        async def work() -> Done:
            run = await self._running(target.run_id)
            await self.fabro.steer(run.id, text, interrupt=interrupt)
            return Done(Outcome(OutcomeVerb.STEERED, answer=text), run)

        detail = {"run": target.run_id, "text": text, "interrupt": interrupt}
        done = await self._once(who, Verb.STEER, key, work, detail=detail, run_id=target.run_id)
        return Settled(done.run, done.outcome)

    async def control(self, who: Where, target: Target, verb: Verb, *, intent: str) -> Settled:
        """Interrupt the agent's round, or pause or resume the run (Fabro refuses a second pending request)."""

        async def work() -> Done:
            run = await self._running(target.run_id)
            if verb is Verb.INTERRUPT:
                await self.fabro.interrupt(run.id)
                return Done(Outcome(OutcomeVerb.INTERRUPTED), run)
            if verb is Verb.PAUSE:
                return Done(Outcome(OutcomeVerb.PAUSE_REQUESTED), await self.fabro.pause(run.id))
            return Done(Outcome(OutcomeVerb.RESUME_REQUESTED), await self.fabro.unpause(run.id))

        key = ActionKey.of(verb, intent)
        done = await self._once(who, verb, key, work, detail={"run": target.run_id}, run_id=target.run_id)
        return Settled(done.run, done.outcome)

    async def _running(self, run_id: str) -> Run:
        run = await self.fabro.get_run(run_id)
        if run.is_terminal or run.bucket in ("pending", "runnable", "archived", "removing"):
            raise Refused(Refusal.NOT_RUNNING, run=run)
        return run

    async def _steer_arrived(self, run_id: str, text: str, since: datetime) -> bool:
        def arrived(events: list[RunEvent]) -> bool:
            return any(
                e.event == "run.steer" and e.properties.get("text") == text and (e.ts is None or e.ts >= since)
                for e in events
            )

        def far_enough(events: list[RunEvent]) -> bool:
            return arrived(events) or any(e.ts is not None and e.ts < since for e in events)

        return arrived(await self.fabro.events_back(run_id, far_enough))

    # -- starting work -----------------------------------------------------------------------

    async def start(self, who: Where, automation_id: str, intent: str) -> Settled:
        """Start a run from an automation, once per `intent` (one confirmation, one window): a
        double click or a retried request starts one run; two `/runs start` are two intents."""

        async def work() -> Done:
            preset = next((a for a in await self.fabro.automations() if a.id == automation_id), None)
            if preset is None:
                raise Refused(Refusal.AUTOMATION_GONE)
            if not preset.startable:
                raise Refused(Refusal.NOT_STARTABLE, detail=preset.name or preset.id)
            run = await self.fabro.start_automation(preset.id, user_agent=self._agent(intent))
            if self.created is not None:
                self.created(run)
            return Done(self._started(run, preset.name or preset.id), run, made=run)

        key = ActionKey.of(Verb.START, intent)
        done = await self._once(who, Verb.START, key, work, detail={"automation": automation_id}, subject=None)
        # Fabro records the bot's token as its creator: the bot writes down whose it is.
        owner = done.outcome.slack_user or who.user_id  # found after a crash: whoever started it
        await self.store.index_run(indexed(done.run, owner, self.presentation.web_base))
        return Settled(done.run, done.outcome)

    def _started(self, run: Run, what: str) -> Outcome:
        return Outcome(OutcomeVerb.STARTED, run_id=run.id, run_url=run.web_url(self.presentation.web_base), answer=what)

    async def resume_starts(self, *, older_than: timedelta) -> list[tuple[Settled, Draft]]:
        """Finish the starts of work whose process died between recording and settling them.

        A record pending for longer than a start can take (`older_than`) was left by a dead process:
        the run it may have created is found by its intent and started, or created if it never was."""
        finished: list[tuple[Settled, Draft]] = []
        # A record younger than that is still in the hands of a live process, perhaps another replica's.
        for action in await self.store.unsettled(Verb.START, before=self.clock() - older_than):
            try:
                detail = json.loads(action.detail or "{}")
            except ValueError:
                detail = None
            draft = Draft.load(detail.get("draft")) if isinstance(detail, dict) else None
            if draft is None:
                continue  # an automation's start: Fabro started its run itself, if it made one
            who = Where(action.user_id, draft.channel, draft.thread_ts)
            try:
                settled = await self.start_work(who, draft, action.key.run_id, lease=older_than)
            except (BotError, FabroError) as exc:
                log.warning("could not finish the start %s left by a dead process: %r", action.key, exc)
                continue
            log.info("finished the start %s left by a dead process: run %s", action.key, settled.run.id)
            finished.append((settled, draft))
        return finished

    async def start_work(self, who: Where, draft: Draft, intent: str, *, lease: timedelta | None = None) -> Settled:
        """Create and start a run of `draft` for `who`, once per `intent` (one confirmation).

        Fabro cannot be told "create this only once", so the run carries the intent as a label and in
        its User-Agent: a Start that finds an earlier attempt of the same intent (its process died
        after Fabro created the run) looks for that run first, and starts it rather than make another.
        """
        key = ActionKey.of(Verb.START, intent)
        recovering = bool(await self.store.actions_for_run(key.run_id))

        async def work() -> Done:
            run = await self._find_or_create(who, draft, intent, recovering=recovering)
            if run.status.kind == "submitted":
                run = await self._start_created(run)
            outcome = Outcome(
                OutcomeVerb.STARTED,
                run_id=run.id,
                run_url=run.web_url(self.presentation.web_base),
                answer=draft.workflow,
            )
            return Done(outcome, run)

        detail = {"draft": draft.dump(), "channel": draft.channel}
        done = await self._once(who, Verb.START, key, work, detail=detail, lease=lease)
        await self.store.index_run(indexed(done.run, who.user_id, self.presentation.web_base))
        return Settled(done.run, done.outcome)

    async def _find_or_create(self, who: Where, draft: Draft, intent: str, *, recovering: bool) -> Run:
        if not draft.request.strip():
            raise Refused(Refusal.NO_GOAL)
        if draft.repository.lower() not in self.repositories:
            raise Refused(Refusal.REPO_NOT_ALLOWED, detail=draft.repository)
        if recovering:
            earlier = await self.fabro.labelled("slack_intent", intent)
            if earlier is not None:
                log.info("intent %s already made run %s: not creating another", intent, earlier.id)
                return earlier
        try:
            workflow = load_workflow(self.workflows_dir, draft.workflow)
        except BadWorkflow as exc:
            raise Refused(Refusal.WORKFLOW_INVALID, detail=str(exc)) from exc
        manifest = build_manifest(
            workflow,
            goal=draft.goal,
            title=draft.title,
            repository=draft.repository,
            branch=draft.branch,
            labels=draft.labels(who.user_id, intent),
        )
        validation = await self.fabro.validate(manifest)
        if not validation.passed:
            reasons = "; ".join(d.message for d in validation.errors[:3]) or "Fabro's validator said no"
            raise Refused(Refusal.WORKFLOW_INVALID, detail=f"`{draft.workflow}`: {reasons}.")
        run = await self.fabro.create_run(manifest, user_agent=self._agent(intent))
        crash_point("run.created")
        return run

    async def _start_created(self, run: Run) -> Run:
        """Start a created run; where Fabro will not, say so (the run stays in Fabro, `submitted`)."""
        try:
            return await self._once_more_on_503(lambda: self.fabro.start_run(run.id))
        except FabroConflict:
            after = await self._fresh(run)
            if after.status.kind != "submitted":
                return after  # started meanwhile (by an earlier attempt, or in Fabro)
            why = "Fabro would not start it"
        except FabroError as exc:
            why = f"Fabro would not start it ({exc.detail}, request id `{exc.request_id or 'none'}`)"
        said = f"Run `{run.id}` was created but not started: {why}. It waits in Fabro; press Start again to retry."
        raise Refused(Refusal.NOT_STARTED, run=run, detail=said)

    # -- shipping the result ---------------------------------------------------------------

    async def create_pull_request(self, who: Where, target: Target) -> PullRequestAsked:
        """Ask Fabro to open the run's pull request; the settled card says it is being written, and
        where (and after how long) to follow the creation with `follow_creation`."""

        def check(seen: Seen) -> Refused | Plan:
            run = seen.run
            if run.pull_request is not None and run.pull_request.html_url:
                return Refused(Refusal.PR_EXISTS, run=run)
            if run.status.kind != "succeeded":
                return Refused(Refusal.NOT_SUCCEEDED, run=run)
            return Plan(run)

        async def send(plan: Plan) -> Done:
            _, location, wait = await self.fabro.create_pull_request(plan.run.id)  # a 202: never repeated
            return Done(Outcome(OutcomeVerb.PR_REQUESTED), plan.run, PullRequestFollow(location, wait))

        done = await self._act_done(who, Verb.CREATE_PR, target, check, send)
        assert done.follow is not None
        return PullRequestAsked(Settled(done.run, done.outcome), done.follow)

    async def follow_creation(
        self, who: Where, run_id: str, location: str, wait: float, *, deadline: float = 600.0
    ) -> Settled:
        """Poll the creation (honouring Retry-After) until it succeeds or fails, then record what became of it."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + deadline
        outcome = Outcome(OutcomeVerb.PR_FAILED, reason="Fabro is still writing it; look in Fabro in a while")
        while loop.time() < give_up:
            await asyncio.sleep(wait)  # the pace Fabro asked for (Retry-After)
            try:
                creation, wait = await self._poll_creation(location, wait, give_up - loop.time())
            except (FabroUnavailable, FabroNotFound):
                break  # Fabro was still away at the deadline: "still writing it"
            except FabroError as exc:
                outcome = Outcome(OutcomeVerb.PR_FAILED, reason=exc.detail)
                break
            if creation.status == "succeeded":
                pr = creation.pull_request
                number = f"#{pr.number}" if pr and pr.number is not None else None
                # Fabro opens every pull request it is asked for as a draft.
                outcome = Outcome(
                    OutcomeVerb.PR_OPENED, run_id=number, run_url=pr.html_url if pr else None, state="draft"
                )
                break
            if creation.status == "failed":
                outcome = Outcome(OutcomeVerb.PR_FAILED, reason=creation.error)
                break
        outcome = replace(outcome, slack_user=who.user_id, at=self.clock())
        # A creation that failed may be asked for again: its record is settled as failed, not done.
        state = ActionState.FAILED if outcome.verb is OutcomeVerb.PR_FAILED else ActionState.DONE
        await self.store.finish_action(ActionKey.of(Verb.CREATE_PR, run_id), state=state, outcome=outcome)
        return Settled(await self._fresh_by_id(run_id), outcome)

    async def _poll_creation(self, location: str, wait: float, left: float) -> tuple[PullRequestCreation, float]:
        """One answer about the creation. Unavailable or not found is a restart or a deploy, and only
        Fabro saying finished or failed ends the wait: stamina asks again, backing off from Fabro's
        own pace (at least 1 s) up to 30 s with jitter, until `left` seconds have passed."""
        async for attempt in stamina.retry_context(
            on=(FabroUnavailable, FabroNotFound),
            attempts=None,
            timeout=max(left, 0.0),
            wait_initial=max(wait, 1.0),
            wait_max=30.0,
            wait_jitter=1.0,
        ):
            with attempt:
                return await self.fabro.pull_request_creation(location)
        raise AssertionError("unreachable: stamina makes at least one attempt")

    async def merge_pull_request(self, who: Where, target: Target, method: str) -> Settled:
        async def send(plan: Plan) -> Done:
            try:
                await self.fabro.merge_pull_request(plan.run.id, method)  # GitHub acted or refused: never repeated
            except FabroUnavailable as exc:
                if exc.status != 502 or exc.code is not None:
                    raise
                # GitHub refused: say why from what GitHub says of the pull request now, not by guessing.
                raise await self._merge_refusal(plan.run, exc) from exc
            return Done(Outcome(OutcomeVerb.PR_MERGED, answer=method), plan.run)

        return await self._act(
            who, Verb.MERGE_PR, target, _mergeable, send, detail={"method": method}, reading=Reading.PULL_REQUEST
        )

    async def close_pull_request(self, who: Where, target: Target) -> Settled:
        async def send(plan: Plan) -> Done:
            await self.fabro.close_pull_request(plan.run.id)
            return Done(Outcome(OutcomeVerb.PR_CLOSED), plan.run)

        return await self._ship(who, Verb.CLOSE_PR, target, send)

    async def _ship(
        self, who: Where, verb: Verb, target: Target, send: Send[Plan], *, detail: dict[str, Any] | None = None
    ) -> Settled:
        """Merge or close, after reading the pull request's live state: a finished one is refused."""
        return await self._act(who, verb, target, _shippable, send, detail=detail, reading=Reading.PULL_REQUEST)

    async def _merge_refusal(self, run: Run, refused: FabroUnavailable) -> Refused:
        """GitHub's refusal, explained by the pull request's live state (draft, state, mergeable)."""
        said = refused.detail
        try:
            live = await self.fabro.pull_request(run.id)
        except FabroError:
            return Refused(Refusal.PR_NOT_MERGEABLE, run=run, detail=f"GitHub said: {said}")
        details = live.details
        url = run.pull_request.html_url if run.pull_request else None
        if details is None:
            why = f"GitHub said: {said} (Fabro could not read the pull request's state: {live.unavailable})"
        elif details.draft:
            return Refused(Refusal.PR_DRAFT, run=run, detail=url)
        elif details.merged or details.state != "open":
            why = f"it is {'merged' if details.merged else escape_state(details.state)} on GitHub"
        elif details.mergeable is False:
            why = "GitHub says it cannot be merged as it is (a conflict with its base branch, or a failing rule)"
        elif details.mergeable is None:
            why = "GitHub has not yet worked out whether it can be merged; try again in a minute"
        else:
            why = f"GitHub said: {said} (the method may not be allowed in that repository)"
        return Refused(Refusal.PR_NOT_MERGEABLE, run=run, detail=why)

    # -- the one path every action takes ----------------------------------------------------

    async def _act(
        self,
        who: Where,
        verb: Verb,
        target: Target,
        check: Check[P],
        send: Send[P],
        *,
        detail: dict[str, Any] | None = None,
        reading: Reading = Reading.RUN,
    ) -> Settled:
        done = await self._act_done(who, verb, target, check, send, detail=detail, reading=reading)
        return Settled(done.run, done.outcome)

    async def _act_done(
        self,
        who: Where,
        verb: Verb,
        target: Target,
        check: Check[P],
        send: Send[P],
        *,
        detail: dict[str, Any] | None = None,
        reading: Reading = Reading.RUN,
    ) -> Done:
        """An action on a run: re-read it (and what `reading` names), check, send the plan."""
        key = ActionKey.of(verb, target.run_id, target.question_id, failure=target.failure)
        if key.scope is ActionScope.RETRY:
            key = await self._failure_taken_up(who, verb, key)

        async def work() -> Done:
            seen = await self._read(target.run_id, reading)
            plan = check(seen)
            if not isinstance(plan, Refused) and key.failure is not None:
                plan = _same_failure(seen, key.failure, plan)
            if isinstance(plan, Refused):
                plan.settled = plan.settled or await self._current(seen.run, key)
                raise plan
            return await send(plan)

        async def conflict_card() -> Settled | None:
            return await self._current_by_id(target.run_id, key)

        done = await self._once(who, verb, key, work, detail=detail, conflict_card=conflict_card)
        await self._settle_alerts(key, done.outcome, who)
        return done

    async def _failure_taken_up(self, who: Where, verb: Verb, key: ActionKey) -> ActionKey:
        """The record of the failure a Retry or Resume takes up: the one its button names, else the one
        Fabro shows now (a button drawn where it was not known). A retry recorded before failures were
        told apart (`retry:<run>`) took up the failure the run was in then: pressing again is refused."""
        if key.failure is None:
            await self.may(who, verb, key.run_id)  # nothing is read for a person who may not
            run = await self.fabro.get_run(key.run_id)
            key = ActionKey.of(verb, key.run_id, failure=failure_of(run.timestamps.completed_at))
        if key.failure is None:
            return key
        legacy = ActionKey(ActionScope.RETRY, key.run_id)
        earlier = next((a for a in await self.store.actions_for_run(key.run_id) if a.key == legacy), None)
        # A resume takes the run back to work, so a failure after it is a later one; a retry leaves
        # the run failed, and any failure that ended before it (give or take the clocks) is the one it took up.
        if (
            earlier is not None
            and earlier.state is ActionState.DONE
            and earlier.verb is Verb.RETRY
            and ended_by(key.failure, earlier.requested_at)
        ):
            raise AlreadyActed(earlier)
        return key

    async def _read(self, run_id: str, reading: Reading) -> Seen:
        run = await self.fabro.get_run(run_id)
        match reading:
            case Reading.RUN:
                return Seen(run)
            case Reading.QUESTIONS:
                return Seen(run, tuple(await self.fabro.list_questions(run.id)))
            case Reading.SUCCESSORS:
                return Seen(run, successors=tuple(await self._successors(run)))
            case Reading.PULL_REQUEST:
                try:
                    live = await self.fabro.pull_request(run_id)
                except FabroNotFound:
                    return Seen(run)  # no stored record: the check refuses as "no pull request"
                return Seen(run, pr_finished=live.finished, pr_draft=live.draft)
            case Reading.CHECKPOINTS:
                return Seen(run, checkpoints=await self.fabro.checkpoints(run.id) if run.status.kind == "failed" else 0)

    async def _once(
        self,
        who: Where,
        verb: Verb,
        key: ActionKey,
        work: Callable[[], Awaitable[Done]],
        *,
        detail: dict[str, Any] | None = None,
        conflict_card: Callable[[], Awaitable[Settled | None]] | None = None,
        run_id: str | None = None,
        lease: timedelta | None = None,
        subject: str | bool | None = True,
    ) -> Done:
        """The path every action takes: permission, a once-only record, the work, the record settled.

        `subject` is the run whose owner the permission may name (True: `run_id`, else the key's run)."""
        about = (run_id or key.run_id) if subject is True else subject if isinstance(subject, str) else None
        await self.permissions.check(CLASS_OF[verb], who.user_id, self.owner(about), what=verb)
        now = self.clock()
        lease = lease or self.lease
        # What an earlier attempt may have done is read from Fabro before anything is sent again.
        found = await self._recover(key, verb, stale_before=now - lease)
        if found is not None:
            return found
        action = Action(key, verb, who.user_id, now, detail=json.dumps(detail or {}))
        earlier = await self.store.begin_action(action, stale_before=now - lease)
        if earlier is not None:
            raise AlreadyActed(earlier)
        log.info("user=%s %s (%s)", who.user_id, verb, key)
        outcome: Outcome | None = None
        try:
            done = await work()
            crash_point("action.acted")
            outcome = replace(done.outcome, slack_user=who.user_id, at=self.clock())
            done = replace(done, outcome=outcome)
            await self.store.finish_action(key, state=ActionState.DONE, outcome=outcome)
        except asyncio.CancelledError:
            # Stopped mid-action (the bot is shutting down): the store may be closing, so the record
            # stays pending, and is settled from what Fabro shows once its lease runs out.
            raise
        except BaseException as exc:
            await self._settle_record(key, exc, outcome)
            if isinstance(exc, FabroError):
                conflict = isinstance(exc, FabroConflict) and conflict_card is not None
                settled = await conflict_card() if conflict and conflict_card is not None else None
                raise ActionFailed(exc, verb=verb, run_id=run_id or key.run_id, settled=settled) from exc
            raise
        return done

    # -- settling what a dead process left -------------------------------------------------

    async def _recover(self, key: ActionKey, verb: Verb, *, stale_before: datetime) -> Done | None:
        """The earlier attempt under `key`, settled from what Fabro shows, when it may have acted
        unrecorded: left pending past its lease, or failed without Fabro's answer. None: it did not."""
        if verb not in EVIDENCED:
            return None
        prior = next((a for a in await self.store.actions_for_run(key.run_id) if a.key == key), None)
        if prior is None or not _unsure(prior, stale_before):
            return None
        done = await self._evidence(prior)
        return await self._settle_found(prior, done) if done is not None else None

    async def settle_interrupted(self) -> int:
        """Settle the actions dead processes left pending past their lease, from what Fabro shows:
        done (by the person who asked, who owns any run it made), or failed when Fabro shows nothing.
        Returns how many were settled; one Fabro cannot be asked about now waits for the next pass."""
        stale_before = self.clock() - self.lease
        settled = 0
        for verb in sorted(EVIDENCED):
            for action in await self.store.unsettled(verb, before=stale_before):
                if verb is Verb.START and "automation" not in _detail(action):
                    continue  # work from a draft: `resume_starts` finishes it
                try:
                    done = await self._evidence(action)
                    if done is not None:
                        await self._settle_found(action, done)
                    else:
                        note = "interrupted before Fabro acted on it"
                        await self.store.finish_action(action.key, state=ActionState.FAILED, note=note)
                        log.info("%s left pending by a dead process: Fabro shows it was not done", action.key)
                except (BotError, FabroError) as exc:
                    log.warning("could not settle %s left pending by a dead process: %r", action.key, exc)
                    continue
                settled += 1
        return settled

    async def _evidence(self, action: Action) -> Done | None:
        """What Fabro shows `action` did, as if it had just been done; None when it shows nothing."""
        detail = _detail(action)
        since = action.requested_at - CLOCK_SKEW
        match action.verb, detail:
            case Verb.RETRY, {"intent": str(intent)}:
                run = await self.fabro.get_run(action.key.run_id)
                for new in await self._successors(run):
                    if await self._carries(new, intent):
                        return Done(self._retried(new), run, made=new)
            case Verb.START, {"automation": str(automation)}:
                return await self._started_since(automation, action.key.run_id, since)
            case ((Verb.MERGE_PR | Verb.CLOSE_PR), _):
                return await self._shipped(action, detail.get("method"))
            case Verb.STEER, {"run": str(run_id), "text": str(text)}:
                if await self._steer_arrived(run_id, text, since):
                    return Done(Outcome(OutcomeVerb.STEERED, answer=text), await self.fabro.get_run(run_id))
        return None

    async def _started_since(self, automation: str, intent: str, since: datetime) -> Done | None:
        """The run of `automation` created since `since` by a request naming `intent`."""
        made = await self.fabro.created_since(since, lambda r: bool(r.automation and r.automation.id == automation))
        for new in made:
            if await self._carries(new, intent):
                named = (new.automation.name if new.automation else None) or automation
                return Done(self._started(new, named), new, made=new)
        return None

    async def _shipped(self, action: Action, method: Any) -> Done | None:
        """A merge or close the pull request's live state shows done."""
        try:
            finished = (await self.fabro.pull_request(action.key.run_id)).finished
        except FabroNotFound:
            return None
        if finished == "merged" and action.verb is Verb.MERGE_PR:
            outcome = Outcome(OutcomeVerb.PR_MERGED, answer=method if isinstance(method, str) else None)
        elif finished == "closed" and action.verb is Verb.CLOSE_PR:
            outcome = Outcome(OutcomeVerb.PR_CLOSED)
        else:
            return None
        return Done(outcome, await self.fabro.get_run(action.key.run_id))

    async def _carries(self, run: Run, intent: str) -> bool:
        """Whether `run` was created by a request of this bot naming `intent` (its provenance says)."""
        agent = await self.fabro.creation_agent(run.id)
        return agent is not None and f"(slack; intent {intent})" in agent

    async def _successors(self, run: Run) -> list[Run]:
        """The runs retried from `run` since it last ended, newest first. A run resumed in place may
        have ended before: a retry of that earlier failure was created before this one ended (both
        times are Fabro's), and does not take up this failure."""
        found = await self.fabro.successors(run, skew=CLOCK_SKEW)
        if run.timestamps.completed_at is None:
            return found
        since = run.timestamps.completed_at - SAME_INSTANT
        return [r for r in found if r.timestamps.created_at is None or r.timestamps.created_at >= since]

    async def _settle_found(self, prior: Action, done: Done) -> Done:
        """Record what Fabro shows `prior` did: done by the person who asked, who owns what it made."""
        outcome = replace(done.outcome, slack_user=prior.user_id, at=self.clock())
        await self.store.finish_action(prior.key, state=ActionState.DONE, outcome=outcome)
        if done.made is not None:
            await self.store.index_run(indexed(done.made, prior.user_id, self.presentation.web_base))
            if done.made.retried_from:
                await self.store.mark_retried(done.made.retried_from, done.made.id)
        log.info("settled %s from what Fabro shows (user=%s): %s", prior.key, prior.user_id, outcome.verb)
        await self._settle_alerts(prior.key, outcome, Where(prior.user_id))
        return replace(done, outcome=outcome)

    def owner(self, run_id: str | None) -> Owner | None:
        """A lookup of `run_id`'s owner, made only when a rule names `owner` (a child run belongs to
        its parent's owner)."""
        owner_of = self.owner_of
        if run_id is None or owner_of is None:
            return None

        async def lookup() -> str | None:
            run = await self.fabro.get_run(run_id)
            found = await owner_of(run)
            if found is None and run.parent_id:
                found = await owner_of(await self.fabro.get_run(run.parent_id))
            return found

        return lookup

    async def may(self, who: Where, verb: Verb, run_id: str | None) -> None:
        """Raises `NotAllowed` at once when `who` may not do `verb` (before a window is even opened)."""
        await self.permissions.check(CLASS_OF[verb], who.user_id, self.owner(run_id), what=verb)

    async def _settle_record(self, key: ActionKey, exc: BaseException, outcome: Outcome | None) -> None:
        """Whatever went wrong, the record does not stay pending: done when Fabro acted, else refused or failed."""
        if outcome is not None:
            state, note = ActionState.DONE, None
        elif isinstance(exc, Refused):
            state, note = ActionState.REFUSED, str(exc.reason)
        elif isinstance(exc, FabroError):
            state, note = ActionState.FAILED, f"{exc.status or 'unavailable'}: {exc.detail}"
        else:
            state, note = ActionState.FAILED, type(exc).__name__
        try:
            await self.store.finish_action(key, state=state, note=note, outcome=outcome)
        except Exception as store_error:  # noqa: BLE001 - the pending lease lets a later click take over
            log.error(
                "could not settle the record of %s (%s); it may be taken over after %s",
                key,
                type(store_error).__name__,
                self.lease,
            )

    async def _once_more_on_503(self, call: Callable[[], Awaitable[T]]) -> T:
        """A 503 is Fabro restarting before it read the request: stamina sends it once more after
        `_send_retry_delay`. Anything else may have been acted on, and is never repeated."""

        def unavailable(exc: Exception) -> bool:
            if isinstance(exc, FabroUnavailable) and exc.status == 503:
                log.info("fabro answered 503 (request_id=%s)", exc.request_id, extra={"request_id": exc.request_id})
                return True
            return False

        async for attempt in stamina.retry_context(
            on=unavailable,
            attempts=2,
            timeout=None,
            wait_initial=self._send_retry_delay,
            wait_max=self._send_retry_delay,
            wait_jitter=0.0,
        ):
            with attempt:
                return await call()
        raise AssertionError("unreachable: stamina makes at least one attempt")

    async def _settle_alerts(self, key: ActionKey, outcome: Outcome, who: Where) -> None:
        """Every posted alert about what was just done gets its outcome: the clicked one is
        recorded as resolved now (the listener edits it), the others (other channels) are
        edited by the alert cycle's next pass."""
        alert_key = key.alert
        if alert_key is None:
            return
        for alert in await self.store.alerts_for_run(key.run_id):
            # A failed alert from before failures were told apart, still unsettled, is about this failure.
            if not alert.key.stands_for(alert_key) or alert.state is not AlertState.POSTED or alert.outcome is not None:
                continue
            if (alert.channel, alert.ts) == (who.channel, who.message_ts):
                await self.store.resolve_alert(alert.key, alert.channel, outcome, self.clock())
            else:
                await self.store.set_outcome(alert.key, alert.channel, outcome)

    async def _fresh(self, run: Run) -> Run:
        try:
            return await self.fabro.get_run(run.id)
        except FabroError:
            return run

    async def _fresh_by_id(self, run_id: str) -> Run:
        try:
            return await self.fabro.get_run(run_id)
        except FabroError:
            return Run(id=run_id)

    async def _current_by_id(self, run_id: str, key: ActionKey) -> Settled | None:
        try:
            return await self._current(await self.fabro.get_run(run_id), key)
        except FabroError:
            return None

    async def _current(self, run: Run, key: ActionKey) -> Settled:
        """The clicked card, brought up to date with what actually happened to its subject."""
        if key.alert is None:
            return Settled(run, Outcome(OutcomeVerb.MOVED_ON, state=run_state(run)))
        try:
            alert = key.alert
            events = await self.fabro.events_back(run.id, lambda found: events_tell([alert], found))
        except FabroError:
            events = []
        return Settled(run, outcome_of(key.alert, run, events))


def _detail(action: Action) -> dict[str, Any]:
    try:
        detail = json.loads(action.detail or "{}")
    except ValueError:
        return {}
    return detail if isinstance(detail, dict) else {}


def _unsure(action: Action, stale_before: datetime) -> bool:
    """Whether Fabro may have acted on `action` without the record saying so: its process died
    (pending past its lease), or it failed without Fabro's answer (a timeout, a 5xx, a lost connection)."""
    if action.state is ActionState.PENDING:
        return action.requested_at < stale_before
    if action.state is ActionState.FAILED:
        return not (action.note or "").startswith("4")
    return False


def _awaiting_approval(seen: Seen) -> Refused | Plan:
    return Plan(seen.run) if seen.run.awaits_approval else Refused(Refusal.NOT_AWAITING_APPROVAL, run=seen.run)


def _shippable(seen: Seen) -> Refused | Plan:
    run = seen.run
    if run.pull_request is None or not run.pull_request.html_url:
        return Refused(Refusal.PR_NONE, run=run)
    if seen.pr_finished == "merged":
        return Refused(Refusal.PR_MERGED, run=run)
    if seen.pr_finished == "closed":
        return Refused(Refusal.PR_CLOSED, run=run)
    return Plan(run)


def _mergeable(seen: Seen) -> Refused | Plan:
    """Merge: as `_shippable`, and never a draft (GitHub merges only ready pull requests)."""
    refused = _shippable(seen)
    if isinstance(refused, Plan) and seen.pr_draft and seen.run.pull_request is not None:
        return Refused(Refusal.PR_DRAFT, run=seen.run, detail=seen.run.pull_request.html_url)
    return refused


def _same_failure(seen: Seen, failure: str, plan: P) -> Refused | P:
    """A Retry or Resume acts on the failure its card was drawn for: a run resumed since (and failed
    again) is acted on from its newest alert, not from an earlier one."""
    if failure_of(seen.run.timestamps.completed_at) != failure:
        return Refused(Refusal.EARLIER_FAILURE, run=seen.run)
    return plan


def _resumable(seen: Seen) -> Refused | Plan:
    run = seen.run
    if run.lifecycle.archived:
        return Refused(Refusal.ARCHIVED, run=run)
    if run.status.kind != "failed":
        return Refused(Refusal.NOT_RESUMABLE, run=run)
    if not seen.checkpoints:
        return Refused(Refusal.NO_CHECKPOINT, run=run)
    return Plan(run)


def escape_state(state: str) -> str:
    return state if state.isidentifier() else "not open"


def _resume_refusal(conflict: FabroConflict, run: Run) -> Refused | None:
    """Fabro's 409s to a resume, as the refusals they are."""
    detail = conflict.detail.lower()
    if "no checkpoint" in detail:
        return Refused(Refusal.NO_CHECKPOINT, run=run)
    if "engine process is still running" in detail:
        return Refused(Refusal.ENGINE_RUNNING, run=run)
    if "archived" in detail:
        return Refused(Refusal.ARCHIVED, run=run)
    return None
