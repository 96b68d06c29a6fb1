"""Work started from a conversation: a channel's set-up, and the confirmation of a request.

`/runs setup` decides where work asked for in a channel goes (only to a repository in
`REPOSITORIES`); `/runs new <goal>` and `@fabro-runs <goal>` turn into a draft the asker confirms. The
draft waits in the store under its intent, because it may be larger than a button can carry.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.asking.reply import Reply
from bot.blocks.work import setup_changed, setup_shown, work_card
from bot.core.drafts import MAX_GOAL, Draft, Said, first_line
from bot.core.errors import Refusal, Refused
from bot.core.query import Setup
from bot.core.records import ChannelSetup
from bot.fabro.manifest import as_written, workflow_names
from bot.people.bindings import WORK, Bindings
from bot.people.permissions import ActionClass, Permissions
from bot.store.base import Store

__all__ = ["DEFAULT_WORKFLOW", "WorkDesk", "plain_text"]

DEFAULT_WORKFLOW = "implement"  # the workflow shipped with the bot
_DRAFT = "draft:"  # the store's marks hold each draft under this prefix and its intent
_ASKED = "asked:"  # and each mention answered, so a resent one is answered once

_ANGLE = re.compile(r"<([^<>]*)>")


def plain_text(markup: str, names: dict[str, str] | None = None) -> str:
    """Slack's message markup as the person saw it: links, mentions and channels as text, entities unescaped."""
    names = names or {}

    def one(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + (names.get(target[1:]) or label or target[1:]).lstrip("@")
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            return label or ("@" + target[1:].split("^")[0])
        return f"{label} ({target})" if label and label != target else target

    text = _ANGLE.sub(one, markup)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@dataclass
class WorkDesk:
    store: Store
    clock: Callable[[], datetime]
    repositories: frozenset[str]
    workflows_dir: Path | None = None
    permissions: Permissions | None = None  # who may change what a channel works on: ALLOW_ROUTE
    bindings: Bindings | None = None  # a confirmation's Start and Edit… are the asker's alone, for a while
    command: str = "/runs"
    new_intent: Callable[[], str] = field(default=lambda: uuid.uuid4().hex[:20])

    # -- set-up ------------------------------------------------------------------------------

    async def setup(self, parsed: Setup, *, channel: str, user_id: str) -> Reply:
        if parsed.repository is None and not parsed.off:
            setup = await self.store.setup_of(channel)
            return Reply(setup_shown(setup, command=self.command, allowed=self.repositories))
        if self.permissions is not None:
            await self.permissions.check(ActionClass.ROUTE, user_id, what="change what this channel works on")
        if parsed.off:
            removed = await self.store.remove_setup(channel)
            if not removed:
                return Reply(setup_shown(None, command=self.command, allowed=self.repositories))
            return Reply(setup_changed(None, user_id=user_id), public=True)
        assert parsed.repository is not None
        if parsed.repository.lower() not in self.repositories:
            raise Refused(Refusal.REPO_NOT_ALLOWED, detail=parsed.repository)
        workflow = parsed.workflow or DEFAULT_WORKFLOW
        if workflow not in workflow_names(self.workflows_dir):
            known = ", ".join(f"`{n}`" for n in workflow_names(self.workflows_dir))
            raise Refused(Refusal.WORKFLOW_INVALID, detail=f"there is no workflow `{workflow}` (there are {known}).")
        setup = ChannelSetup(channel, parsed.repository, parsed.branch, workflow, user_id, self.clock())
        await self.store.set_setup(setup)
        return Reply(setup_changed(setup, user_id=user_id), public=True)

    # -- drafts --------------------------------------------------------------------------------

    async def confirm(
        self,
        request: str,
        *,
        channel: str,
        thread_ts: str | None,
        context: tuple[Said, ...] = (),
        intent: str | None = None,
        user_id: str | None = None,
    ) -> dict[str, Any] | None:
        """The confirmation of `request` (plain text) in `channel`, for `user_id` (who asked) alone;
        Refused when nothing can start here.

        With the `intent` of a Slack event, None when that event was answered already (Slack resent it)."""
        if intent is not None and await self.draft_of(intent) is not None:
            return None
        request = request.strip()[:MAX_GOAL]
        if not as_written(request):
            raise Refused(Refusal.NO_GOAL)
        setup = await self.store.setup_of(channel)
        if setup is None:
            raise Refused(Refusal.NOT_SET_UP)
        if setup.repository.lower() not in self.repositories:
            raise Refused(Refusal.REPO_NOT_ALLOWED, detail=setup.repository)
        draft = Draft(
            request=request,
            title=first_line(request),
            repository=setup.repository,
            branch=setup.branch,
            workflow=setup.workflow,
            channel=channel,
            thread_ts=thread_ts,
            context=context,
        )
        intent = intent or self.new_intent()
        if self.bindings is not None and user_id is not None:  # bound before the draft exists: never unbound
            await self.bindings.issue(user_id, WORK, nonce=intent)
        await self.save(intent, draft)
        return work_card(draft, intent=intent)

    async def first_time(self, intent: str) -> bool:
        """Whether the Slack event `intent` is new (Slack resends an event it thinks was lost)."""
        return await self.store.add_mark(_ASKED + intent, "1")

    async def save(self, intent: str, draft: Draft) -> None:
        await self.store.set_mark(_DRAFT + intent, draft.dump())

    async def draft_of(self, intent: str) -> Draft | None:
        return Draft.load(await self.store.get_mark(_DRAFT + intent))

    def workflows(self) -> list[str]:
        return workflow_names(self.workflows_dir)
