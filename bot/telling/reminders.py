"""Reminders and escalation: a question or approval still waiting gets a nudge, then a louder one.

`REMIND_AFTER` after the bot first posted it, one reply in the thread of each alert about it
(channel alerts and the owner's direct message), mentioning the owner when known. `ESCALATE_AFTER`
after, one more reply mentioning `ESCALATE_TO`; when no channel alert exists for it, a direct
message to each of those people instead. Each step happens once per question or approval and
channel (claimed in the store like any alert, found again in Slack after a crash), and never after
it was answered or decided: only alerts still waiting are looked at.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError

from bot.blocks.reminders import reminder_message
from bot.core.keys import AlertKey, AlertKind
from bot.core.records import Alert, AlertState
from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroError
from bot.people.notify import Personal
from bot.people.permissions import Allowlist
from bot.slack.webapi import slack_error
from bot.store.base import AlertLog, Subscriptions
from bot.telling.delivery import Delivery

__all__ = ["Reminders"]

log = logging.getLogger(__name__)


class ReminderStore(AlertLog, Subscriptions, Protocol):
    """What reminders read: the alerts still waiting, and the runs muted where they would go."""


@dataclass
class Reminders:
    store: ReminderStore
    fabro: FabroClient
    outbox: Delivery  # posts each reminder once, in its alert's thread
    clock: Callable[[], datetime]
    remind_after: timedelta | None
    escalate_after: timedelta | None = None
    escalate_to: Allowlist | None = None
    personal: Personal | None = None

    @property
    def active(self) -> bool:
        return self.remind_after is not None or (self.escalate_after is not None and bool(self.escalate_to))

    async def sweep(self) -> int:
        """Send every reminder and escalation now due; returns how many messages were posted."""
        if not self.active:
            return 0
        by_key: dict[AlertKey, list[Alert]] = defaultdict(list)
        muted_somewhere: set[AlertKey] = set()
        mutes = {(m.channel, m.run_id) for m in await self.store.mutes(self.clock())}
        for alert in await self.store.waiting_alerts():
            if (alert.channel, alert.run_id) in mutes:
                # Muted there: no reminder in that thread, and no escalation elsewhere in its place.
                muted_somewhere.add(alert.key)
            elif alert.ts:
                by_key[alert.key].append(alert)
        posted = 0
        for key, alerts in by_key.items():
            try:
                posted += await self._nudge(key, alerts, muted=key in muted_somewhere)
            except (FabroError, SlackApiError) as exc:
                # One waiting item that cannot be nudged now costs that item, not the sweep.
                reason = slack_error(exc) if isinstance(exc, SlackApiError) else str(exc)
                log.warning("reminder for %s not sent now: %s", key, reason)
        return posted

    async def _nudge(self, key: AlertKey, alerts: list[Alert], *, muted: bool = False) -> int:
        since = min((a.claimed_at for a in alerts if a.claimed_at), default=None)
        if since is None:
            return 0
        age = self.clock() - since
        steps = [
            (step, after)
            for step, after in (("remind", self.remind_after), ("escalate", self.escalate_after))
            if after is not None and age >= after and (step == "remind" or self.escalate_to)
        ]
        if not steps:
            return 0
        # A claim left unposted (Slack refused, or a crash) is not done: the outbox settles it.
        done = {
            (a.key, a.channel) for a in await self.store.alerts_for_run(key.run_id) if a.state is not AlertState.CLAIMED
        }
        posted = 0
        for step, _ in steps:
            step_key = AlertKey(AlertKind.UPDATE, key.run_id, f"{step}-{key.question_id or 'approval'}")
            channel_alerts = [a for a in alerts if not a.channel.startswith("D")]
            # A reminder goes to every alert's thread, the owner's DM included; an escalation only
            # where the people it names can see it.
            to_thread = [
                a for a in (alerts if step == "remind" else channel_alerts) if (step_key, a.channel) not in done
            ]
            if step == "escalate" and not channel_alerts and self.escalate_to is not None and not muted:
                for person in await self.escalate_to.people():
                    dm = await self.personal.dm(person) if self.personal else None
                    if dm is None or (step_key, dm) in done:
                        continue
                    message = reminder_message(step, key, age, mention=f"<@{person}>", name_the_run=True)
                    posted += await self._post(step_key, dm, message)
                continue
            if not to_thread:
                continue
            if step == "remind":
                owner = await self._owner(key.run_id)  # only when a reminder is still to send
                mention = f"<@{owner}>" if owner else None
            else:
                mention = " ".join(_mention(e) for e in sorted(self.escalate_to.entries)) if self.escalate_to else None
            for alert in to_thread:
                message = reminder_message(step, key, age, mention=mention)
                posted += await self._post(step_key, alert.channel, message, thread_ts=alert.ts)
        return posted

    async def _post(self, key: AlertKey, channel: str, message: dict[str, Any], *, thread_ts: str | None = None) -> int:
        try:
            return int(await self.outbox.post_once(key, channel, message, thread_ts=thread_ts))
        except SlackApiError as exc:
            # This one message waits for the next sweep; the others go now.
            log.warning("%s to %s not sent now: %s", key, channel, slack_error(exc))
            return 0

    async def _owner(self, run_id: str) -> str | None:
        if self.personal is None:
            return None
        run = await self.fabro.get_run(run_id)
        return await self.personal.owner_of(run)


def _mention(entry: str) -> str:
    return f"<!subteam^{entry}>" if entry.startswith("S") else f"<@{entry}>"
