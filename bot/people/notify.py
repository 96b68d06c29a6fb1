"""Personal notifications: the person a run waits on hears of it in a direct message.

A run's owner is, in order: the Slack user who retried or started it through the bot (Fabro records
the bot's token as its creator, so the bot's own record decides); by who created it in Fabro, the
Slack user linked to a `user` principal's login, or for a `worker` (a child run an agent started)
the owner of its parent run. A `system` run (an automation's schedule) belongs to nobody.

A notification is an alert whose channel is the owner's DM with the bot: it is claimed, posted,
found again by its metadata after a crash, paced and edited in place by the same delivery as
channel alerts, so it gets the same guarantees.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.keys import SAME_INSTANT, ActionScope, ActionState, AlertKind, Verb
from bot.core.records import IndexedRun
from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroError
from bot.fabro.models import ACTIVE_BUCKETS, Run
from bot.people.identity import Linker
from bot.slack.webapi import slack_error
from bot.store.base import Actions, People

__all__ = ["DEFAULT_NOTIFY", "PERSONAL_KINDS", "Change", "Personal", "indexed"]

log = logging.getLogger(__name__)

WORD_OF = {
    AlertKind.QUESTION: "questions",
    AlertKind.APPROVAL: "approvals",
    AlertKind.FAILED: "failed",
    AlertKind.SUCCEEDED: "succeeded",
    AlertKind.COST: "cost",
}
PERSONAL_KINDS = frozenset(WORD_OF)
_MAX_ANCESTORS = 5  # child runs of child runs: far enough up to find a person, never in a loop
DEFAULT_NOTIFY = frozenset({"questions", "approvals", "failed"})  # succeeded is asked for; `/runs notify` sets them
MAX_WAITING_RETRIES = 1_000  # retries whose source run the index has not learned yet, kept in memory

Change = tuple[IndexedRun | None, IndexedRun]  # an index entry as it was (None: new) and as it is now


class PersonalStore(People, Actions, Protocol):
    """What personal notifications read: people and their runs, and who started a run from Slack."""


@dataclass
class Personal:
    linker: Linker
    store: PersonalStore
    fabro: FabroClient
    slack: AsyncWebClient
    kinds: frozenset[AlertKind] = PERSONAL_KINDS
    _dms: dict[str, str] = field(default_factory=dict, init=False, repr=False)  # user → D… channel
    # Retries learned before the run they retried (run id → its newest retry), bounded.
    _retries: OrderedDict[str, str] = field(default_factory=OrderedDict, init=False, repr=False)

    async def owner_of(self, run: Run, *, depth: int = 0) -> str | None:
        recorded = await self._recorded_owner(run)
        if recorded is not None:
            return recorded
        principal = run.created_by
        if principal is None:
            return None
        if principal.kind == "user":
            return await self.linker.user_of(principal.login)
        if principal.kind == "worker" and principal.run_id and depth < _MAX_ANCESTORS:
            try:
                parent = await self.fabro.get_run(principal.run_id)
            except FabroError as exc:  # costs this run's owner only, for now
                log.warning("owner of run %s unknown for now (its parent: %s)", run.id, exc)
                return None
            return await self.owner_of(parent, depth=depth + 1)
        return None  # system (a schedule), or a kind no run carries today

    async def _recorded_owner(self, run: Run, known: IndexedRun | bool | None = True) -> str | None:
        """The owner known without links: who retried or started it from Slack through the bot.

        `known` is the run's index entry when the caller read it already (True: read it here).
        """
        if run.retried_from:
            # A run resumed in place may have failed, and been retried, more than once: the retry
            # that made this run names it; an older record that does not is still the best guess.
            retries = [
                a
                for a in await self.store.actions_for_run(run.retried_from)
                if a.key.scope is ActionScope.RETRY and a.verb is not Verb.RESUME_RUN and a.state is ActionState.DONE
            ]
            made = [a for a in retries if a.outcome is not None and a.outcome.run_id == run.id]
            if made or retries:
                return (made or retries)[0].user_id
        if known is True:
            known = await self.store.indexed_run(run.id)  # started from Slack: the bot wrote down who
        return known.owner if isinstance(known, IndexedRun) else None

    async def index(self, run: Run, web_base: str | None) -> list[Change]:
        """Remember the run for Home: whose it is and where it stands (Fabro cannot list runs by creator).
        A retry is also noted on the run it was retried from, which Home then offers no Retry for.

        Returns each entry that changed: what the index held before, and what it holds now.
        """
        before = await self.store.indexed_run(run.id)
        after = indexed(run, await self._recorded_owner(run, before), web_base)
        # Its retry may have been learned first (runs are read newest first): it waited here.
        retries = [r for r in (self._retries.pop(run.id, None), before.retried_as if before else None) if r]
        # A run seen at work again was resumed in place: a retry was of an earlier failure, and the
        # failure it may come to next is offered Retry again.
        after = replace(after, retried_as=None if run.bucket in ACTIVE_BUCKETS else max(retries, default=None))
        await self.store.index_run(after)
        changes: list[Change] = [(before, after)]
        if run.retried_from:
            source = await self._retried(run.retried_from, run, first_seen=before is None)
            if source is not None:
                changes.append(source)
        return changes

    async def _retried(self, source_id: str, retry: Run, *, first_seen: bool) -> Change | None:
        """Note on `source_id`'s entry that `retry` retried it; the change to tell Home, if any.

        A retry made from Slack marked it already: the retry's first sighting still tells Home, whose
        owner may be someone other than the person who retried it. A run resumed in place since it
        was retried is past the failure its retry was of: the retry's later changes, seen while the
        run is at work or after it failed again, do not mark it retried again."""
        retry_id = retry.id
        source = await self.store.indexed_run(source_id)
        if source is None:  # not learned yet: noted when it is
            self._retries[source_id] = max(retry_id, self._retries.get(source_id, retry_id))
            self._retries.move_to_end(source_id)
            while len(self._retries) > MAX_WAITING_RETRIES:
                self._retries.popitem(last=False)
            return None
        created = retry.timestamps.created_at
        of_this_failure = source.status not in ACTIVE_BUCKETS and (
            first_seen or (created is not None and created >= source.updated_at - SAME_INSTANT)
        )
        if of_this_failure and await self.store.mark_retried(source_id, retry_id):
            return source, replace(source, retried_as=retry_id)
        return (source, source) if first_seen else None

    async def targets(self, run: Run, kind: AlertKind) -> list[str]:
        """The DM channels this alert goes to (none, or the owner's). Never raises: it costs this one item."""
        if kind not in self.kinds:
            return []
        try:
            owner = await self.owner_of(run)
            if owner is None and kind is AlertKind.APPROVAL and run.parent_id:
                owner = await self.owner_of(await self.fabro.get_run(run.parent_id))
        except FabroError as exc:
            log.warning("owner of run %s unknown for now: %s", run.id, exc)
            return []
        if owner is None:
            return []
        chosen = await self.store.notify_of(owner)
        if WORD_OF[kind] not in (DEFAULT_NOTIFY if chosen is None else chosen):
            return []
        dm = await self.dm(owner)
        return [dm] if dm else []

    async def dm(self, user_id: str) -> str | None:
        if user_id in self._dms:
            return self._dms[user_id]
        try:
            response = await self.slack.conversations_open(users=user_id)
        except SlackApiError as exc:
            log.warning("cannot open a DM with %s: %s (needs the im:write scope)", user_id, slack_error(exc))
            return None
        channel = (response.get("channel") or {}).get("id")
        if not isinstance(channel, str) or not channel:
            return None
        self._dms[user_id] = channel
        return channel


def indexed(run: Run, owner: str | None, web_base: str | None) -> IndexedRun:
    """The index entry for `run`: its owner as the bot knows it, the login that started it, where it stands."""
    principal = run.created_by
    login = (principal.login or "").lower() or None if principal and principal.kind == "user" else None
    return IndexedRun(
        run_id=run.id,
        owner=owner,
        login=login,
        status=run.bucket,
        title=(run.title or run.goal or "Untitled run")[:200],
        web_url=run.web_url(web_base),
        updated_at=run.updated_at or datetime.now(UTC),
        cost_micros=run.billing.total_usd_micros if run.billing is not None else None,
    )
