"""Who may act on runs from Slack: `ACTION_ALLOWLIST` of user ids (U…/W…) and user groups (S…).

Group membership comes from `usergroups.users.list` and is cached for a few minutes, so
a click costs no Slack call most of the time. When Slack cannot say whether someone is
in a group, the answer is no: acting is refused rather than allowed by accident.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.webapi import slack_error

__all__ = ["Allowlist", "parse_allowlist"]

log = logging.getLogger(__name__)

GROUP_CACHE_SECONDS = 300.0


def parse_allowlist(value: str | None) -> frozenset[str]:
    """`U123, S456` → {"U123", "S456"}; blanks ignored."""
    return frozenset(part.strip() for part in (value or "").split(",") if part.strip())


@dataclass
class Allowlist:
    entries: frozenset[str]
    slack: AsyncWebClient | None = None
    clock: Callable[[], float] = time.monotonic  # seconds, for how long group members are cached
    _groups: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    @property
    def open(self) -> bool:
        """No allowlist: everyone who can see a card may act on it."""
        return not self.entries

    def describe(self) -> str:
        if self.open:
            return "everyone in a channel with a card may act on it (ACTION_ALLOWLIST is not set)"
        users = sorted(e for e in self.entries if not e.startswith("S"))
        groups = sorted(e for e in self.entries if e.startswith("S"))
        return f"only {len(users)} user(s) and the members of {len(groups)} user group(s) in ACTION_ALLOWLIST may act"

    async def allows(self, user_id: str) -> bool:
        if self.open or user_id in self.entries:
            return True
        for group in sorted(e for e in self.entries if e.startswith("S")):
            if user_id in await self._members(group):
                return True
        return False

    async def people(self) -> list[str]:
        """Everyone named: the users, then the members of the groups (each once)."""
        found = [e for e in sorted(self.entries) if not e.startswith("S")]
        for group in sorted(e for e in self.entries if e.startswith("S")):
            found += sorted(await self._members(group))
        return list(dict.fromkeys(found))

    async def _members(self, group: str) -> frozenset[str]:
        async with self._lock:
            cached = self._groups.get(group)
            if cached and self.clock() - cached[0] < GROUP_CACHE_SECONDS:
                return cached[1]
            members: frozenset[str] = frozenset()
            if self.slack is not None:
                try:
                    response = await self.slack.usergroups_users_list(usergroup=group)
                    members = frozenset(response.get("users") or [])
                except SlackApiError as exc:
                    log.warning("could not list members of user group %s: %s", group, slack_error(exc))
                    return cached[1] if cached else frozenset()
            self._groups[group] = (self.clock(), members)
            return members
