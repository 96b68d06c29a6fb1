"""One dispatch from a parsed `/runs` command to its reply, for the slash command and `preview`."""

from __future__ import annotations

import difflib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import assert_never
from zoneinfo import ZoneInfo

from bot.asking.answers import Answerer
from bot.asking.inspect import Inspector, Look
from bot.asking.reply import Reply
from bot.asking.subscriptions import SubscriptionDesk
from bot.asking.work import WorkDesk, plain_text
from bot.blocks.personal import (
    NEEDS_A_CHANNEL,
    follow_needs_slack,
    followed,
    inspect_needs_slack,
    link_needs_slack,
    link_refused,
    linked,
    mute_needs_slack,
    needs_a_channel,
    notifications,
    start_needs_slack,
    unfollowed,
    unlinked,
    whoami,
    work_needs_slack,
)
from bot.blocks.replies import help_message, notice, usage_error_message
from bot.blocks.start import start_card, unknown_automation
from bot.blocks.stats import stats_message
from bot.core.query import (
    FollowRun,
    Help,
    Inspect,
    Link,
    Muted,
    MuteRun,
    NewWork,
    Notify,
    Parsed,
    RunLookup,
    RunQuery,
    Setup,
    Start,
    Stats,
    Subscribe,
    Subscriptions,
    Summary,
    Unmute,
    Unsubscribe,
    UsageError,
    WhoAmI,
)
from bot.core.stats import Window
from bot.core.tasks import InFlight
from bot.fabro.client import ULID_LENGTH
from bot.people.bindings import Bindings, start_purpose
from bot.people.identity import DeviceFlowFailed, Linker, LinkMode, LinkOutcome, LinkResult
from bot.people.notify import DEFAULT_NOTIFY
from bot.telling.daily import Daily
from bot.telling.following import Follower

__all__ = ["NEEDS_A_CHANNEL", "Caller", "Commands", "Reply"]


@dataclass(frozen=True)
class Caller:
    """Who asked, and where: a Slack user in a channel, or nobody (the CLI's preview)."""

    user_id: str | None = None
    channel: str | None = None


async def _utc(_: str | None) -> ZoneInfo:
    return ZoneInfo("UTC")


@dataclass
class Commands:
    answerer: Answerer
    desk: SubscriptionDesk | None = None  # None where there is no channel (the CLI)
    daily: Daily | None = None
    zone_of: Callable[[str | None], Awaitable[ZoneInfo]] = _utc  # a person's time zone (Slack's profile)
    follower: Follower | None = None  # None where there is no channel to follow in (the CLI)
    new_intent: Callable[[], str] = lambda: uuid.uuid4().hex[:20]
    linker: Linker | None = None  # None where there is no Slack account (the CLI)
    inspector: Inspector | None = None  # None where there is no Slack to post files to (the CLI)
    work: WorkDesk | None = None  # None where there is no channel to work from (the CLI)
    tell: Callable[[str, str], Awaitable[None]] | None = None  # a sentence to a person, later (a DM)
    bindings: Bindings | None = None  # a start confirmation is for the person who asked, for a while
    in_flight: InFlight = field(default_factory=InFlight)  # sign-ins still waiting: stopping waits, then cancels

    @property
    def command(self) -> str:
        return self.answerer.presentation.command

    @staticmethod
    def instant(parsed: Parsed) -> bool:
        """Answered without Fabro or the store: fast enough for the acknowledgement itself."""
        return isinstance(parsed, Help | UsageError)

    @staticmethod
    def selector_of(parsed: Parsed) -> str | None:
        """The run id or prefix a failure should be told about (a prefix matching no run, or several)."""
        if isinstance(parsed, RunLookup | FollowRun | Inspect | MuteRun | Unmute):
            return parsed.selector
        if isinstance(parsed, RunQuery) and parsed.parent_id:
            return parsed.parent_id
        return None

    async def reply(self, parsed: Parsed, caller: Caller) -> Reply:
        """The reply to a parsed command; typed errors propagate to the caller's error boundary."""
        match parsed:
            case Help():
                return Reply(help_message(self.command), status="help")
            case UsageError():
                return Reply(usage_error_message(parsed, self.command), status="usage_error")
            case RunQuery():
                return Reply(await self.answerer.listing(parsed, caller.user_id))
            case RunLookup():
                return Reply(await self.answerer.detail(parsed))
            case Subscribe() | Subscriptions() | Unsubscribe() | Summary():
                return await self._subscriptions(parsed, caller)
            case Start():
                return await self._start(parsed, caller)
            case Setup() | NewWork():
                return await self._work(parsed, caller)
            case FollowRun():
                return await self._follow(parsed, caller)
            case Link() | WhoAmI() | Notify():
                return await self._link(parsed, caller)
            case Inspect():
                return await self._inspect(parsed, caller)
            case MuteRun() | Unmute() | Muted():
                return await self._mute(parsed, caller)
            case Stats():
                daily = self.daily or Daily(self.answerer.fabro, self.answerer.clock)
                tz = await self.zone_of(caller.user_id)
                picture = await daily.picture(Window(parsed.window), tz)
                now = self.answerer.clock()
                return Reply(
                    stats_message(picture, now=now, web_base=self.answerer.presentation.web_base, command=self.command)
                )
            case _:
                assert_never(parsed)

    async def _inspect(self, parsed: Inspect, caller: Caller) -> Reply:
        """Changes and cost answer the asker; a log goes to their direct messages; a preview link
        (a secret) is shown to them alone."""
        if self.inspector is None:
            return Reply(inspect_needs_slack(self.command, parsed.what))
        if parsed.what == "changes":
            return Reply(await self.inspector.changes(parsed.selector))
        if parsed.what == "cost":
            return Reply(await self.inspector.cost(parsed.selector))
        if parsed.what == "preview":
            assert parsed.port is not None
            return Reply(await self.inspector.preview(parsed.selector, parsed.port, caller.user_id))
        if caller.user_id is None:
            return Reply(inspect_needs_slack(self.command, parsed.what))
        return Reply(await self.inspector.privately(Look.LOGS, parsed.selector, caller.user_id, self.new_intent()))

    async def _mute(self, parsed: MuteRun | Unmute | Muted, caller: Caller) -> Reply:
        if self.desk is None or caller.channel is None or caller.user_id is None:
            words = {MuteRun: "mute <run-id>", Unmute: "unmute <run-id>", Muted: "muted"}[type(parsed)]
            return Reply(mute_needs_slack(self.command, words))
        now = self.answerer.clock()
        if isinstance(parsed, Muted):
            reply = await self.desk.muted(channel=caller.channel, now=now)
        else:
            # A prefix is resolved, so the mute names the run the alerts are keyed by; a full id is
            # unmuted as it is (the run may be gone from Fabro by now).
            full = len(parsed.selector) == ULID_LENGTH
            run_id = parsed.selector if full else (await self.answerer.fabro.find_run(parsed.selector)).id
            if isinstance(parsed, Unmute):
                reply = await self.desk.unmute(run_id, channel=caller.channel, user_id=caller.user_id)
            else:
                run_id = (await self.answerer.fabro.find_run(parsed.selector)).id if full else run_id
                reply = await self.desk.mute(
                    run_id, parsed.minutes, channel=caller.channel, user_id=caller.user_id, now=now
                )
        return Reply(reply.message, public=reply.public)

    async def _follow(self, parsed: FollowRun, caller: Caller) -> Reply:
        if self.follower is None or caller.channel is None or caller.user_id is None:
            return Reply(follow_needs_slack(self.command))
        if parsed.stop:
            run = await self.follower.unfollow(parsed.selector, channel=caller.channel, user_id=caller.user_id)
            return Reply(unfollowed(parsed.selector, was_followed=run is not None))
        follow = await self.follower.follow(parsed.selector, channel=caller.channel, user_id=caller.user_id)
        return Reply(followed(follow.run_id))

    async def _notifications(self, user: str) -> str:
        assert self.linker is not None
        chosen = await self.linker.store.notify_of(user)
        kinds = DEFAULT_NOTIFY if chosen is None else chosen
        return notifications(kinds, chosen=chosen is not None, command=self.command)

    async def _link(self, parsed: Link | WhoAmI | Notify, caller: Caller) -> Reply:
        cmd = self.command
        if self.linker is None or caller.user_id is None:
            words = (
                "whoami"
                if isinstance(parsed, WhoAmI)
                else "notify"
                if isinstance(parsed, Notify)
                else "unlink"
                if parsed.unlink
                else "link <login>"
            )
            return Reply(link_needs_slack(cmd, words))
        user = caller.user_id
        if isinstance(parsed, Notify):
            if parsed.kinds is not None:
                await self.linker.store.set_notify(user, parsed.kinds, self.answerer.clock())
            return Reply(notice(await self._notifications(user)))
        if isinstance(parsed, WhoAmI):
            pinned, linked_logins = await self.linker.logins_of(user)
            settings = await self._notifications(user)
            return Reply(whoami(pinned, linked_logins, settings=settings, command=cmd))
        if parsed.unlink:
            removed, kept = await self.linker.unlink(user, parsed.login)
            return Reply(unlinked(removed, kept, parsed.login))
        if parsed.login is None:
            return await self._sign_in(user)
        return self._linked(await self.linker.link(parsed.login, user))

    def _linked(self, result: LinkResult) -> Reply:
        cmd = self.command
        login, holder = result.login, result.holder
        match result.outcome:
            case LinkOutcome.LINKED:
                return Reply(linked(login, already=False, command=cmd))
            case LinkOutcome.ALREADY:
                return Reply(linked(login, already=True, command=cmd))
            case LinkOutcome.TAKEN:
                return Reply(link_refused("taken", login, holder, command=cmd), status="not_allowed")
            case LinkOutcome.PINNED:
                return Reply(link_refused("pinned", login, holder, command=cmd), status="not_allowed")
            case LinkOutcome.RESERVED:
                return Reply(link_refused("reserved", login, holder, command=cmd), status="usage_error")
            case LinkOutcome.CLOSED:
                return Reply(link_refused("closed", login, holder, command=cmd), status="not_allowed")
            case LinkOutcome.VERIFY:
                return Reply(link_refused("verify", login, holder, command=cmd), status="not_allowed")
            case _:
                assert_never(result.outcome)

    async def _sign_in(self, user: str) -> Reply:
        """`/runs link` alone: GitHub's device flow, the code to the person now, the link once they authorise."""
        cmd = self.command
        assert self.linker is not None
        github = self.linker.github
        if self.linker.mode is not LinkMode.GITHUB or github is None:
            how = (
                "ask an admin to add yours to `USER_LINKS`"
                if self.linker.mode is LinkMode.PINNED
                else f"name your login: `{cmd} link <login>`"
            )
            return Reply(notice(f"Signing in with GitHub is not set up here; {how}."), status="usage_error")
        try:
            code = await github.start()
        except DeviceFlowFailed as exc:
            return Reply(
                notice(f"Could not start signing in with GitHub: {exc}. Try again in a while."), status="error"
            )

        async def finish() -> None:
            try:
                login = await github.login(code)
            except DeviceFlowFailed as exc:
                await self._tell(user, f"Not linked: {exc}. Run `{cmd} link` to try again.")
                return
            result = await self.linker.link(login, user, verified=True) if self.linker else None
            if result is None:
                return
            said = {
                LinkOutcome.LINKED: f"Linked: GitHub says you are `{login}`, so runs it starts in Fabro are yours.",
                LinkOutcome.ALREADY: f"`{login}` was linked to you already.",
                LinkOutcome.TAKEN: f"GitHub says you are `{login}`, but it is linked to <@{result.holder}>;"
                f" ask them to run `{cmd} unlink {login}`.",
                LinkOutcome.PINNED: f"An admin pinned `{login}` to <@{result.holder}> (`USER_LINKS`).",
                LinkOutcome.RESERVED: f"`{login}` is the login of this bot's Fabro token: it cannot be linked.",
            }.get(result.outcome, "Not linked.")
            await self._tell(user, said)

        self.in_flight.spawn(finish(), name=f"github-sign-in-{user}")
        said = (
            f"To link your GitHub login, open {code.verification_uri} and enter the code *{code.user_code}*"
            f" within {int(code.expires_in // 60)} minutes. Once you authorise, the login GitHub names is"
            " linked to you and I tell you here; the bot keeps no GitHub token."
        )
        return Reply(notice(said))

    async def _tell(self, user: str, said: str) -> None:
        if self.tell is not None:
            await self.tell(user, said)

    async def _start(self, parsed: Start, caller: Caller) -> Reply:
        """`/runs start <id>`: a confirmation to the asker alone (the window for a bare `start` is Slack's)."""
        if parsed.automation_id is None:
            return Reply(start_needs_slack(self.command))
        presets = [p for p in await self.answerer.fabro.automations() if p.startable]
        preset = next((p for p in presets if p.id == parsed.automation_id), None)
        if preset is None:
            close = difflib.get_close_matches(parsed.automation_id, [p.id for p in presets], n=3, cutoff=0.5)
            return Reply(unknown_automation(parsed.automation_id, close, self.command), status="usage_error")
        intent = self.new_intent()
        if self.bindings is not None and caller.user_id is not None:  # its Start is theirs alone
            await self.bindings.issue(caller.user_id, start_purpose(preset.id), nonce=intent)
        return Reply(start_card(preset, intent=intent, channel=caller.channel))

    async def _work(self, parsed: Setup | NewWork, caller: Caller) -> Reply:
        if self.work is None or caller.channel is None or caller.user_id is None:
            words = "setup" if isinstance(parsed, Setup) else "new <what to do>"
            return Reply(work_needs_slack(self.command, words))
        if isinstance(parsed, Setup):
            reply = await self.work.setup(parsed, channel=caller.channel, user_id=caller.user_id)
            return Reply(reply.message, public=reply.public)
        card = await self.work.confirm(
            plain_text(parsed.goal), channel=caller.channel, thread_ts=None, user_id=caller.user_id
        )
        assert card is not None  # a command is never a resent event
        return Reply(card)

    async def _subscriptions(self, parsed: Subscribe | Subscriptions | Unsubscribe | Summary, caller: Caller) -> Reply:
        if self.desk is None or caller.channel is None or caller.user_id is None:
            what, words = {
                Subscribe: ("Subscriptions", "subscribe"),
                Subscriptions: ("Subscriptions", "subscriptions"),
                Unsubscribe: ("Subscriptions", "unsubscribe"),
                Summary: ("Daily summaries", "summary"),
            }[type(parsed)]
            return Reply(needs_a_channel(self.command, words, what=what))
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
        return reply
