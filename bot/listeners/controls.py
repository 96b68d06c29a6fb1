"""Every button, menu and window Submit: read once into a `Click`, matched once, shown.

Each click is acknowledged first (Slack allows three seconds), except the two that answer in the
acknowledgement itself (a window kept open with an error, the merge window's second step). Then
`Steering` decides and acts through the boundary, and the result is shown: the card the person
acted on is redrawn in place, and anything only they need to know comes as an ephemeral note.
How a new verb is added is told in `bot.listeners.clicks`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar, assert_never

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.acting.steering import Steering, Where
from bot.asking.answers import Answerer
from bot.asking.ask import AskDesk
from bot.asking.inspect import Inspector, Look, Thread
from bot.asking.subscriptions import SubscriptionDesk
from bot.asking.work import WorkDesk
from bot.blocks.controls import UNBOUND_START, UNBOUND_WINDOW, UNBOUND_WORK, unbound_view
from bot.blocks.presentation import Presentation
from bot.blocks.replies import STALE_PAGE, notice
from bot.blocks.routing import Target
from bot.blocks.start import start_announcement
from bot.blocks.work import edit_window
from bot.core.errors import Refusal, Refused, Settled, Unreadable
from bot.core.keys import AlertKey, AlertKind, Verb
from bot.core.outcomes import OutcomeVerb
from bot.core.tasks import InFlight
from bot.listeners import clicks as c
from bot.listeners.boundary import Failed, attempt
from bot.listeners.showing import Shower
from bot.listeners.start import after_work_started, tell_started, to_person
from bot.listeners.windows import confirm_merge, open_window
from bot.metrics import Metrics
from bot.people.bindings import Bindings
from bot.slack.webapi import TRANSPORT_ERRORS
from bot.telling.delivery import Delivery
from bot.telling.following import Follower

__all__ = ["Controls", "register"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_WINDOW_VERB = {
    c.Window.ANSWER: Verb.ANSWER,
    c.Window.DENY: Verb.DENY,
    c.Window.MERGE: Verb.MERGE_PR,
    c.Window.CLOSE: Verb.CLOSE_PR,
    c.Window.STEER: Verb.STEER,
    c.Window.ASK: Verb.ASK,
}


@dataclass
class Controls:
    steering: Steering
    shower: Shower
    metrics: Metrics
    answerer: Answerer
    follower: Follower | None
    clock: Callable[[], datetime]
    presentation: Presentation
    outbox: Delivery  # announces a started run, once
    inspector: Inspector | None = None
    asker: AskDesk | None = None
    desk: SubscriptionDesk | None = None  # mutes, from an alert's menu
    work: WorkDesk | None = None
    bindings: Bindings | None = None  # windows and confirmations, each opened for one person
    in_flight: InFlight = field(default_factory=InFlight)  # pull request creations being followed

    async def act(self, label: str, work: Awaitable[T]) -> T | Failed:
        result = await attempt(work, what=f"{label} from Slack", command=self.presentation.command)
        self.metrics.actions.labels(label, result.status if isinstance(result, Failed) else "done").inc()
        return result

    async def show(self, origin: c.Origin, result: Settled | Failed, respond: AsyncRespond | None) -> None:
        match origin.surface:
            case c.Surface.MESSAGE:
                await self.shower.show(result, who=origin.who, respond=respond)
            case c.Surface.HOME:
                await self.shower.show(result, who=origin.who)
            case c.Surface.WINDOW:
                await self.shower.show(result, who=origin.who, response_url=origin.response_url)

    async def handle(  # noqa: C901 - one arm per kind of click, on purpose: the match is the table
        self, click: c.Click, *, ack: AsyncAck, respond: AsyncRespond | None, client: AsyncWebClient
    ) -> None:
        if not await self._bound(click, ack=ack, respond=respond):
            return
        if not isinstance(click, c.Unfinished | c.ChooseMerge):
            await ack()
        s = self.steering
        match click:
            case c.Answer(origin, target, choice):
                await self.show(origin, await self.act("answer", s.answer(origin.who, target, choice)), respond)
            case c.NothingPicked(origin):
                await self.show(origin, await self.act("answer", _raise(Refused(Refusal.NOTHING_PICKED))), respond)
            case c.Approve(origin, target):
                await self.show(origin, await self.act("approve", s.approve(origin.who, target)), respond)
            case c.Deny(origin, target, reason):
                await self.show(origin, await self.act("deny", s.deny(origin.who, target, reason)), respond)
            case c.Retry(origin, target):
                await self.show(origin, await self.act("retry", s.retry(origin.who, target)), respond)
            case c.ResumeRun(origin, target):
                resumed = await self.act("resume_run", s.resume(origin.who, target))
                await self.show(origin, resumed, respond)
                if isinstance(resumed, Settled) and resumed.outcome.verb is OutcomeVerb.RESUMED:
                    await self._follow_again(resumed)  # after: a live card clicked is its renderer's again
            case c.Cancel(origin, target):
                await self.show(origin, await self.act("cancel", s.cancel(origin.who, target)), respond)
            case c.CreatePullRequest(origin, target):
                await self._create_pull_request(origin, target, respond)
            case c.Merge(origin, target, method):
                work = s.merge_pull_request(origin.who, target, method)
                await self.show(origin, await self.act("merge_pr", work), respond)
            case c.ClosePullRequest(origin, target):
                await self.show(origin, await self.act("close_pr", s.close_pull_request(origin.who, target)), respond)
            case c.Control(origin, target, verb, intent):
                work = s.control(origin.who, target, verb, intent=intent)
                await self.show(origin, await self.act(str(verb), work), respond)
            case c.Steer(origin, target, words, intent, interrupt):
                work = s.steer(origin.who, target, words, intent=intent, interrupt=interrupt)
                await self.show(origin, await self.act("steer", work), respond)
            case c.Inspect(origin, target, look, thread, intent):
                await self._inspect(origin, target, look, thread, intent, respond)
            case c.Ask(origin, target, words, thread, intent):
                await self._ask(origin, target, words, thread, intent)
            case c.Start(origin, automation_id, intent):
                await self._start(origin, automation_id, intent, respond, client)
            case c.StartWork(origin, intent):
                await self._start_work(origin, intent, respond, client)
            case c.EditWork(intent, trigger_id, _):
                await self._edit_work(intent, trigger_id, respond, client)
            case c.StartEditedWork(origin, intent, request, title, branch, workflow):
                draft = await self.work.draft_of(intent) if self.work is not None else None
                if self.work is not None and draft is not None:
                    edited = draft.edited(request=request, title=title, branch=branch, workflow=workflow)
                    await self.work.save(intent, edited)
                await self._start_work(origin, intent, None, client)
            case c.DismissStart():
                if respond is not None:
                    await respond(delete_original=True)
            case c.OpenWindow():
                # A person who may not act is told at once, before a window asks them for anything.
                acting = _WINDOW_VERB.get(click.window)  # a window that acts on the run: its verb's class
                checked = s.may(Where(click.user_id), acting, click.target.run_id) if acting else _nothing()
                allowed = await attempt(checked, what=f"{acting} window")
                if isinstance(allowed, Failed):
                    self.metrics.actions.labels(str(acting), allowed.status).inc()
                    if respond is not None:
                        await respond(response_type="ephemeral", replace_original=False, **allowed.message)
                    return
                what = f"opening the {click.window.value} window"
                if self.bindings is not None:  # only this person may submit it, for this run, for a while
                    nonce = await self.bindings.issue(click.user_id, c.purpose(click.window, click.target))
                    click = replace(click, context=replace(click.context, nonce=nonce))
                opened = await attempt(open_window(client, s.fabro, click), what=what)
                if isinstance(opened, Failed) and respond is not None:
                    await respond(response_type="ephemeral", replace_original=False, **opened.message)
            case c.ChooseMerge(context):
                await ack(response_action="update", view=await confirm_merge(s.fabro, context))
            case c.ShowRuns(query, in_place, user):
                result = await attempt(
                    self.answerer.listing(query, user), what="a page of runs", command=self.presentation.command
                )
                # A failed page leaves the list in place and says why beside it.
                failed = isinstance(result, Failed)
                message = result.message if isinstance(result, Failed) else result
                if respond is not None:
                    await respond(response_type="ephemeral", replace_original=in_place and not failed, **message)
            case c.Follow(who, run_id):
                await self._follow(who, run_id, respond)
            case c.MuteRun(who, run_id, minutes):
                await self._mute(who, run_id, minutes, respond)
            case c.Unfinished(block, error):
                await ack(response_action="errors", errors={block: error})
            case c.Ignored():
                pass
            case c.Unreadable(stale, user_id):
                await self._unreadable(stale, user_id, respond)
            case _:
                assert_never(click)

    async def _bound(self, click: c.Click, *, ack: AsyncAck, respond: AsyncRespond | None) -> bool:
        """Whether a window's submission or a confirmation's click is one the bot opened for this person,
        for this thing, and not too long ago; if not, they are told, and nothing goes further."""
        bound = c.binding_of(click)
        if bound is None or self.bindings is None or await self.bindings.holds(*bound):
            return True
        self.metrics.actions.labels("unbound", "refused").inc()
        command = self.presentation.command
        if isinstance(click, c.StartWork | c.EditWork | c.StartEditedWork):
            said = UNBOUND_WORK.format(command=command)
        elif isinstance(click, c.Start):
            said = UNBOUND_START.format(command=command)
        else:
            said = UNBOUND_WINDOW
        card = isinstance(click, c.Start) and click.origin.surface is not c.Surface.WINDOW
        if not (card or isinstance(click, c.StartWork | c.EditWork)):  # a window: it becomes the sentence
            await ack(response_action="update", view=unbound_view(said))
            return False
        await ack()
        if respond is not None:
            await respond(response_type="ephemeral", replace_original=False, **notice(said, icon=":warning:"))
        return False

    async def _inspect(
        self,
        origin: c.Origin,
        target: Target,
        look: Look,
        thread: str | None,
        intent: str,
        respond: AsyncRespond | None,
    ) -> None:
        """In the card's thread when it has one; else to the clicker alone (files in their direct messages)."""
        inspector, who = self.inspector, origin.who
        if inspector is None:
            return
        work: Awaitable[dict[str, Any] | None]
        if thread is not None and who.channel is not None:
            work = inspector.reply(look, target.run_id, Thread(who.channel, thread), intent)
        elif look is Look.CHANGES:
            work = inspector.changes(target.run_id)
        elif look is Look.COST:
            work = inspector.cost(target.run_id)
        else:
            work = inspector.privately(look, target.run_id, who.user_id, intent)
        result = await attempt(work, what=f"{look.value} of a run", command=self.presentation.command)
        self.metrics.actions.labels(look.value, result.status if isinstance(result, Failed) else "done").inc()
        said = result.message if isinstance(result, Failed) else result
        if said is not None and respond is not None:
            await respond(response_type="ephemeral", replace_original=False, **said)

    async def _ask(self, origin: c.Origin, target: Target, words: str, thread: str, intent: str) -> None:
        """A question from the Ask… window: answered in the card's thread, or a note to the asker why not."""
        who = origin.who
        if self.asker is None or who.channel is None:
            return
        result = await self.act("ask", self.asker.ask(who.user_id, target.run_id, who.channel, thread, words, intent))
        if isinstance(result, Failed):
            await self.shower.show(result, who=Where(who.user_id, who.channel), thread_ts=thread)

    async def _unreadable(self, stale: c.Stale, user_id: str | None, respond: AsyncRespond | None) -> None:
        log.warning("an unreadable %s click from user=%s", stale.value, user_id)
        match stale:
            case c.Stale.CONTROL:
                failed = await self.act("unknown", _raise(Unreadable("control")))
                await self.shower.show(failed, who=Where(user_id or ""), respond=respond)
            case c.Stale.LISTING:
                if respond is not None:
                    said = notice(STALE_PAGE, icon=":warning:")
                    await respond(response_type="ephemeral", replace_original=False, **said)
            case c.Stale.START:
                if respond is not None:
                    said = notice("That button no longer works. Run `/runs start` again.")
                    await respond(replace_original=False, **said)
            case c.Stale.WINDOW:
                pass  # the window has closed: there is nowhere left to say it
            case _:
                assert_never(stale)

    async def _mute(self, who: Where, run_id: str, minutes: int | None, respond: AsyncRespond | None) -> None:
        """Mute from an alert's menu: told in the conversation (who muted what), or why not to the clicker."""
        if respond is None or who.channel is None:
            return
        if self.desk is None:
            await respond(response_type="ephemeral", replace_original=False, **notice(STALE_PAGE, icon=":warning:"))
            return
        result = await attempt(
            self.desk.mute(run_id, minutes, channel=who.channel, user_id=who.user_id, now=self.clock()),
            what="mute from an alert",
            command=self.presentation.command,
        )
        if isinstance(result, Failed):
            await respond(response_type="ephemeral", replace_original=False, **result.message)
            return
        await respond(response_type="in_channel", replace_original=False, **result.message)

    async def _follow_again(self, resumed: Settled) -> None:
        """A run resumed from Slack is followed again where it was followed when it ended."""
        if self.follower is None:
            return
        try:
            await self.follower.resumed(resumed.run)
        except Exception:  # the resume itself is done and shown; the next follow picks up from Fabro
            log.exception("following run %s again after its resume failed", resumed.run.id)

    async def _follow(self, who: Where, run_id: str, respond: AsyncRespond | None) -> None:
        """Follow from a card: on the clicked alert's own message, or on a live card posted in the channel."""
        if respond is None:
            return
        if self.follower is None or who.channel is None:
            await respond(response_type="ephemeral", replace_original=False, **notice(STALE_PAGE, icon=":warning:"))
            return
        result = await attempt(
            self.follower.follow(run_id, channel=who.channel, user_id=who.user_id, message_ts=who.message_ts),
            what="follow from a card",
            command=self.presentation.command,
        )
        said = (
            result.message
            if isinstance(result, Failed)
            else notice(
                f"Following run `{result.run_id}` here: its live card shows where it is, its thread what matters."
            )
        )
        await respond(response_type="ephemeral", replace_original=False, **said)

    async def _start(
        self,
        origin: c.Origin,
        automation_id: str,
        intent: str,
        respond: AsyncRespond | None,
        client: AsyncWebClient,
    ) -> None:
        who = origin.who
        result = await self.act("start", self.steering.start(who, automation_id, intent))
        if origin.surface is not c.Surface.WINDOW and respond is not None:
            await tell_started(respond, result)
        if isinstance(result, Settled):
            message = start_announcement(
                result.run,
                user_id=who.user_id,
                automation=result.outcome.answer or "an automation",
                now=self.clock(),
                web_base=self.presentation.web_base,
            )
            if who.channel is not None:  # for everyone there: as a channel shared outside may see it
                message = await self.outbox.fit(who.channel, message, result.run, outcome=result.outcome)
            # In the channel for everyone; where the bot cannot post there, to the person by DM.
            key = AlertKey(AlertKind.UPDATE, result.run.id, "started")
            await self.outbox.announce(key, [p for p in (who.channel, who.user_id) if p], message)
        elif origin.surface is c.Surface.WINDOW and who.channel is not None:
            await to_person(client, who.channel, who.user_id, result.message)

    async def _edit_work(
        self, intent: str, trigger_id: str, respond: AsyncRespond | None, client: AsyncWebClient
    ) -> None:
        draft = await self.work.draft_of(intent) if self.work is not None else None
        if draft is None or self.work is None:
            await self._unreadable(c.Stale.START, None, respond)
            return
        try:
            await client.views_open(
                trigger_id=trigger_id, view=edit_window(draft, intent=intent, workflows=self.work.workflows())
            )
        except TRANSPORT_ERRORS as exc:
            log.info("could not open the edit window: %s", type(exc).__name__)
            if respond is not None:
                said = notice("The window could not be opened in time. Please click again.", icon=":warning:")
                await respond(response_type="ephemeral", replace_original=False, **said)

    async def _start_work(
        self, origin: c.Origin, intent: str, respond: AsyncRespond | None, client: AsyncWebClient
    ) -> None:
        """Create and start the confirmed draft; say so where it was asked, and follow the run there."""
        draft = await self.work.draft_of(intent) if self.work is not None else None
        if draft is None:
            await self._unreadable(c.Stale.START, origin.who.user_id, respond)
            return
        who = Where(origin.who.user_id, draft.channel, draft.thread_ts)
        result = await self.act("start", self.steering.start_work(who, draft, intent))
        if respond is not None:
            await tell_started(respond, result)
        elif isinstance(result, Failed):  # from the Edit window: no card to answer beside, so to the person
            await to_person(client, draft.channel, who.user_id, result.message)
        if isinstance(result, Failed):
            return
        followed = await after_work_started(self.outbox, self.follower, result, draft, self.presentation)
        if followed is not None:
            await to_person(client, draft.channel, who.user_id, followed.message)

    async def _create_pull_request(self, origin: c.Origin, target: Target, respond: AsyncRespond | None) -> None:
        """Ask once; show "being written" at once; follow the creation in the background and show how it ended."""
        s = self.steering
        result = await self.act("create_pr", s.create_pull_request(origin.who, target))
        await self.show(origin, result if isinstance(result, Failed) else result.settled, respond)
        if isinstance(result, Failed):
            return
        creation = result

        async def finish() -> None:
            work = s.follow_creation(origin.who, target.run_id, creation.follow.location, creation.follow.wait)
            await self.show(origin, await self.act("create_pr", work), respond)

        self.in_flight.spawn(finish(), name=f"pull-request-{target.run_id}")


async def _nothing() -> None:
    return None


async def _raise(error: Exception) -> Settled:
    raise error


def register(app: AsyncApp, controls: Controls) -> None:
    """One listener for every click the bot's messages and windows can send."""

    async def on_click(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient) -> None:
        await controls.handle(c.read_click(body), ack=ack, respond=respond, client=client)

    for action_id in c.ACTION_IDS:
        app.action(action_id)(on_click)
    for callback_id in c.WINDOW_IDS:
        app.view(callback_id)(on_click)
