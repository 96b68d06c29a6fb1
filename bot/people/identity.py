"""Who is who: Slack users linked to the Fabro logins (GitHub's) that start runs.

Fabro has no user directory, so the bot keeps the links. An operator may pin some with
`USER_LINKS` (a pinned login cannot be claimed by anyone else); people link themselves with
`/runs link <login>` unless `USER_LINKING=pinned`. A login belongs to one person; a person may
hold several. The login of the bot's own Fabro token (`dev` for a development token) starts every
run made through the bot, so it is never linkable: it would make one person the owner of them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.core.records import UserLink
from bot.store.base import People

__all__ = ["LinkMode", "LinkOutcome", "LinkResult", "Linker", "parse_user_links"]

UNLINKABLE = frozenset({"dev"})
_PAIR = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38})=([UW][A-Z0-9]{2,})$")


class LinkMode(StrEnum):
    SELF = "self"  # people link themselves, besides the pinned links
    PINNED = "pinned"  # only the operator's `USER_LINKS`


def parse_user_links(value: str | None) -> dict[str, str]:
    """`login=U…` pairs, comma-separated → {login (lower case): user id}. Raises ValueError, naming the bad ones."""
    pins: dict[str, str] = {}
    wrong: list[str] = []
    for part in (value or "").split(","):
        entry = part.strip()
        if not entry:
            continue
        match = _PAIR.match(entry)
        if match is None:
            wrong.append(entry)
            continue
        login, user = match.group(1).lower(), match.group(2)
        if login in UNLINKABLE:
            raise ValueError(
                f"{login} is the login of development tokens, which start runs for everyone: not a person's"
            )
        if pins.get(login, user) != user:
            raise ValueError(f"the login {login} is pinned to two people ({pins[login]} and {user})")
        pins[login] = user
    if wrong:
        raise ValueError(
            f"must be login=U… pairs (a GitHub login and a Slack user id), comma-separated; not {', '.join(wrong[:3])}"
        )
    return pins


class LinkOutcome(StrEnum):
    LINKED = "linked"
    ALREADY = "already"  # it was the caller's already
    TAKEN = "taken"  # someone else's
    PINNED = "pinned"  # the operator pinned it to someone else
    RESERVED = "reserved"  # the bot's own login
    CLOSED = "closed"  # USER_LINKING=pinned


@dataclass(frozen=True)
class LinkResult:
    outcome: LinkOutcome
    login: str
    holder: str | None = None  # who holds it, when not the caller


@dataclass
class Linker:
    store: People
    clock: Callable[[], datetime]
    pins: Mapping[str, str]
    mode: LinkMode = LinkMode.SELF
    reserved: frozenset[str] = UNLINKABLE

    async def link(self, login: str, user_id: str) -> LinkResult:
        login = login.lower()
        if login in self.reserved:
            return LinkResult(LinkOutcome.RESERVED, login)
        pinned = self.pins.get(login)
        if pinned is not None:
            return LinkResult(LinkOutcome.ALREADY if pinned == user_id else LinkOutcome.PINNED, login, pinned)
        if self.mode is LinkMode.PINNED:
            return LinkResult(LinkOutcome.CLOSED, login)
        existing = await self.store.links(login=login)
        if existing:
            holder = existing[0].user_id
            return LinkResult(LinkOutcome.ALREADY if holder == user_id else LinkOutcome.TAKEN, login, holder)
        holder = await self.store.add_link(UserLink(login, user_id, self.clock()))
        # Two people racing for one login: the database's primary key decides, once.
        return LinkResult(LinkOutcome.LINKED if holder == user_id else LinkOutcome.TAKEN, login, holder)

    async def unlink(self, user_id: str, login: str | None = None) -> tuple[int, list[str]]:
        """Remove the caller's own links (one, or all); returns how many, and the pinned ones that stay."""
        removed = await self.store.remove_links(user_id, login.lower() if login else None)
        kept = [k for k, v in self.pins.items() if v == user_id and (login is None or k == login.lower())]
        return removed, sorted(kept)

    async def logins_of(self, user_id: str) -> tuple[list[str], list[str]]:
        """(pinned, self-linked) logins of a Slack user."""
        pinned = sorted(k for k, v in self.pins.items() if v == user_id)
        linked = [link.login for link in await self.store.links(user_id=user_id) if link.login not in self.pins]
        return pinned, linked

    async def user_of(self, login: str | None) -> str | None:
        """The Slack user a Fabro login belongs to, if anyone."""
        if not login or login.lower() in self.reserved:
            return None
        login = login.lower()
        if login in self.pins:
            return self.pins[login]
        if self.mode is LinkMode.PINNED:
            return None
        found = await self.store.links(login=login)
        return found[0].user_id if found else None
