"""Who is who: Slack users linked to the Fabro logins (GitHub's) that start runs.

Fabro has no user directory, so the bot keeps the links. An operator may pin some with
`USER_LINKS` (a pinned login cannot be claimed by anyone else). `USER_LINKING` says how else a
link is made: `github` (the default when `GITHUB_CLIENT_ID` is set): `/runs link` runs GitHub's
OAuth device flow and links the login GitHub names, the token discarded at once; `pinned` (the
default otherwise): only `USER_LINKS`; `self`: people type their login, trusted as said. A login
belongs to one person; a person may hold several. The login of the bot's own Fabro token starts
every run made through the bot, so it is never linkable: it would make one person the owner of
them all.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import httpx

from bot.core.records import UserLink
from bot.store.base import People

__all__ = [
    "DeviceCode",
    "DeviceFlowFailed",
    "GitHubDeviceFlow",
    "LinkMode",
    "LinkOutcome",
    "LinkResult",
    "Linker",
    "parse_user_links",
]

log = logging.getLogger(__name__)

UNLINKABLE = frozenset({"dev"})
_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_PAIR = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38})=([UW][A-Z0-9]{2,})$")


class LinkMode(StrEnum):
    GITHUB = "github"  # people prove their login with GitHub's device flow, besides the pinned links
    SELF = "self"  # people type their login, trusted as said, besides the pinned links
    PINNED = "pinned"  # only the operator's `USER_LINKS`


@dataclass(frozen=True)
class DeviceCode:
    """What GitHub's device flow gives a person to type at `verification_uri`, and how to poll for it."""

    device_code: str  # the bot's secret half: never shown, never logged
    user_code: str
    verification_uri: str
    expires_in: float
    interval: float


class DeviceFlowFailed(Exception):
    """GitHub did not name a login: refused, expired, or unreachable (the reason is safe to show)."""


@dataclass
class GitHubDeviceFlow:
    """GitHub's OAuth device flow (`/login/device/code`, `/login/oauth/access_token`, `GET /user`).

    The access token lives in one local variable for one request and is never stored or logged:
    the bot only wants to know which login the person proved they hold."""

    client_id: str
    github_url: str = "https://github.com"
    api_url: str = "https://api.github.com"
    transport: httpx.AsyncBaseTransport | None = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    timeout: float = 10.0

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            headers={"Accept": "application/json", "User-Agent": "fabro-slack-bot"},
            transport=self.transport,
            timeout=self.timeout,
            follow_redirects=False,
        )

    async def start(self) -> DeviceCode:
        async with self._client() as http:
            try:
                response = await http.post(
                    self.github_url.rstrip("/") + "/login/device/code", data={"client_id": self.client_id}
                )
                body = response.json() if response.status_code == 200 else {}
            except (httpx.HTTPError, ValueError) as exc:
                raise DeviceFlowFailed(f"GitHub could not be reached ({type(exc).__name__})") from None
        try:
            return DeviceCode(
                device_code=str(body["device_code"]),
                user_code=str(body["user_code"]),
                verification_uri=str(body["verification_uri"]),
                expires_in=float(body.get("expires_in") or 900),
                interval=float(body.get("interval") or 5),
            )
        except (KeyError, TypeError, ValueError):
            raise DeviceFlowFailed(f"GitHub did not start the sign-in (HTTP {response.status_code})") from None

    async def login(self, code: DeviceCode, *, clock: Callable[[], float] | None = None) -> str:
        """Wait for the person to authorise (polling no faster than GitHub allows), then the login
        GitHub names. Raises DeviceFlowFailed when they refuse, when the code expires, or on trouble."""
        loop = asyncio.get_running_loop()
        now = clock or loop.time
        give_up = now() + code.expires_in
        interval = max(code.interval, 1.0)
        async with self._client() as http:
            while True:
                await self.sleep(interval)
                if now() > give_up:
                    raise DeviceFlowFailed("the code expired before it was entered")
                try:
                    response = await http.post(
                        self.github_url.rstrip("/") + "/login/oauth/access_token",
                        data={
                            "client_id": self.client_id,
                            "device_code": code.device_code,
                            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                        },
                    )
                    body = response.json()
                except (httpx.HTTPError, ValueError):
                    continue  # a blip: the code is still valid, ask again after the interval
                if not isinstance(body, dict):
                    continue
                token = body.get("access_token")
                if isinstance(token, str) and token:
                    return await self._login_of(http, token)
                error = body.get("error")
                if error == "authorization_pending":
                    continue
                if error == "slow_down":
                    interval = float(body.get("interval") or interval + 5)
                    continue
                if error == "access_denied":
                    raise DeviceFlowFailed("the sign-in was declined on GitHub")
                if error == "expired_token":
                    raise DeviceFlowFailed("the code expired before it was entered")
                raise DeviceFlowFailed("GitHub refused the sign-in")

    async def _login_of(self, http: httpx.AsyncClient, token: str) -> str:
        try:
            response = await http.get(self.api_url.rstrip("/") + "/user", headers={"Authorization": f"Bearer {token}"})
            body = response.json() if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            body = {}
        del token  # not kept a moment longer than the one request that needed it
        login = body.get("login") if isinstance(body, dict) else None
        if not isinstance(login, str) or not _LOGIN.match(login):
            raise DeviceFlowFailed("GitHub did not say who signed in")
        return login.lower()


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
    VERIFY = "verify"  # USER_LINKING=github: a typed login is not taken; `/runs link` proves one


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
    reserved: set[str] = field(default_factory=lambda: set(UNLINKABLE))
    github: GitHubDeviceFlow | None = None  # USER_LINKING=github
    # Asks Fabro which login the token acts as (`GET /api/v1/auth/me`), once, before the first answer.
    token_login: Callable[[], Awaitable[str | None]] | None = None
    _asked: bool = field(default=False, init=False)
    _asking: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    def _answered(self) -> bool:
        return self._asked

    async def _learn(self) -> None:
        if self._asked or self.token_login is None:
            return
        async with self._asking:
            if self._answered():  # another caller asked while this one waited
                return
            try:
                self.reserve(await self.token_login())
            except Exception as exc:  # noqa: BLE001 - Fabro may be down: learned from a created run instead
                log.info("could not ask Fabro which login its token acts as (%s)", type(exc).__name__)
            self._asked = True

    def reserve(self, login: str | None) -> None:
        """The bot's own Fabro login, once known (from Fabro, or from a run the bot created): never linkable."""
        if login and login.lower() not in self.reserved:
            self.reserved.add(login.lower())
            log.info("the Fabro token acts as %s: that login is never linked to a person", login.lower())

    async def link(self, login: str, user_id: str, *, verified: bool = False) -> LinkResult:
        """Link `login` to `user_id`: as typed only in `self` mode; `verified` when GitHub named it."""
        login = login.lower()
        await self._learn()
        if login in self.reserved:
            return LinkResult(LinkOutcome.RESERVED, login)
        pinned = self.pins.get(login)
        if pinned is not None:
            return LinkResult(LinkOutcome.ALREADY if pinned == user_id else LinkOutcome.PINNED, login, pinned)
        if self.mode is LinkMode.PINNED:
            return LinkResult(LinkOutcome.CLOSED, login)
        if self.mode is LinkMode.GITHUB and not verified:
            return LinkResult(LinkOutcome.VERIFY, login)
        existing = await self.store.links(login=login)
        if existing and verified and existing[0].proof is None and existing[0].user_id != user_id:
            # A login someone once typed gives way to the person GitHub says holds it.
            await self.store.remove_links(existing[0].user_id, login)
            existing = await self.store.links(login=login)
        if existing:
            holder = existing[0].user_id
            return LinkResult(LinkOutcome.ALREADY if holder == user_id else LinkOutcome.TAKEN, login, holder)
        holder = await self.store.add_link(UserLink(login, user_id, self.clock(), "github" if verified else None))
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
        linked = [
            link.login
            for link in await self.store.links(user_id=user_id)
            if link.login not in self.pins and self._counts(link)
        ]
        return pinned, linked

    def _counts(self, link: UserLink) -> bool:
        """Whether a stored link decides anything in this mode: a typed one only where typing is trusted."""
        if self.mode is LinkMode.PINNED:
            return False
        return self.mode is LinkMode.SELF or link.proof == "github"

    async def user_of(self, login: str | None) -> str | None:
        """The Slack user a Fabro login belongs to, if anyone (the token's own login is learned when a
        link is first made, so that reading owners costs Fabro nothing more)."""
        if not login or login.lower() in self.reserved:
            return None
        login = login.lower()
        if login in self.pins:
            return self.pins[login]
        found = [link for link in await self.store.links(login=login) if self._counts(link)]
        return found[0].user_id if found else None
