"""Slack's Web API as the bot meets it: its failures, whatever shape their answer has, and its limits."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

__all__ = [
    "CHANNEL_ERRORS",
    "TRANSPORT_ERRORS",
    "AppSelf",
    "EditBudget",
    "app_self",
    "failure_sentence",
    "retry_after",
    "slack_error",
]

# Slack errors that mean "this channel cannot take our posts until a person fixes it".
CHANNEL_ERRORS = frozenset(
    {
        "not_in_channel",
        "channel_not_found",
        "is_archived",
        "restricted_action",
        "restricted_action_read_only_channel",
        "team_access_not_granted",
        "ekm_access_denied",
    }
)


# What a call to Slack may raise: Slack said no, the connection failed, or it took too long.
TRANSPORT_ERRORS = (SlackApiError, aiohttp.ClientError, TimeoutError)


def slack_error(exc: SlackApiError) -> str:
    """Slack's error code (`not_in_channel`…), or `http_<status>` when the answer was not Slack's JSON
    (an HTML page from a proxy, a 405): an ordinary failure, counted and retried like any other."""
    data = getattr(exc.response, "data", None)
    if isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"]:
        return str(data["error"])
    return f"http_{getattr(exc.response, 'status_code', 'unknown')}"


_SLACK_ERRORS = {
    "invalid_auth": "refuses the bot token (invalid_auth): copy the app's current Bot User OAuth Token",
    "not_authed": "got no bot token (not_authed)",
    "account_inactive": "refuses the bot token: the app was uninstalled or its user deactivated (account_inactive)",
    "token_revoked": "refuses the bot token: it was revoked (token_revoked); reinstall the app",
    "ratelimited": "is rate-limiting this app right now (ratelimited); try again in a minute",
}


def failure_sentence(exc: BaseException) -> str:
    """Why a Slack call failed, as a sentence that follows "Slack …": never a library's class name."""
    if isinstance(exc, SlackApiError):
        code = slack_error(exc)
        if code.startswith("http_"):
            status = code.removeprefix("http_")
            answered = f"answered HTTP {status}, not" if status.isdigit() else "answered something other than"
            return f"{answered} Slack's API (check SLACK_API_URL and any proxy)"
        return _SLACK_ERRORS.get(code, f"refused the call ({code})")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "could not be reached: its host name cannot be found (DNS; check SLACK_API_URL and the network)"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "could not be reached securely: the TLS certificate was not accepted (a proxy?)"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "could not be reached: the connection was refused or dropped (check SLACK_API_URL and the network)"
    if isinstance(exc, TimeoutError):
        return "did not answer in time (check the network and any proxy)"
    if isinstance(exc, aiohttp.ClientError):
        return "could not be reached: the connection failed (check SLACK_API_URL and the network)"
    # Only `check` asks for this sentence, and it prints no log lines: nothing to point at but the setup.
    return "could not be asked: something unexpected failed on the way (check SLACK_API_URL, the network and any proxy)"


def retry_after(exc: SlackApiError, default: int = 30) -> int:
    """Seconds Slack asked to wait before trying again (at least one)."""
    headers = getattr(exc.response, "headers", None) or {}
    value = str(headers.get("Retry-After") or headers.get("retry-after") or "")
    return max(1, int(value)) if value.isascii() and value.isdigit() and len(value) < 6 else default


@dataclass
class EditBudget:
    """How many chat.update calls the workspace may make: Tier 3, about 50 a minute, for every writer.

    Not aiolimiter: its leaky bucket lets a full burst through and then drains continuously, so
    any sixty seconds after a burst may see nearly twice `per_minute` calls, while Slack counts
    per minute; and the live card needs to ask *how long* until the next edit (`wait`) to coalesce
    states on a timer instead of blocking, which aiolimiter's `acquire` does not tell. A sliding
    window of the last minute's calls answers both, with a clock the tests can drive.
    """

    per_minute: int = 50
    clock: Callable[[], float] = time.monotonic
    _spent: deque[float] = field(default_factory=deque, init=False)

    def wait(self) -> float:
        """Seconds until one more edit may be made (0: now)."""
        now = self.clock()
        while self._spent and now - self._spent[0] >= 60:
            self._spent.popleft()
        return 0.0 if len(self._spent) < self.per_minute else 60 - (now - self._spent[0])

    def spend(self) -> None:
        self._spent.append(self.clock())


@dataclass(frozen=True)
class AppSelf:
    """Who the bot is in Slack: its workspace, its app, its bot and its bot user (from `auth.test`,
    and `bots.info` for the app id), so requests and messages can be told apart from others'."""

    team_id: str | None
    app_id: str | None
    bot_id: str | None
    user_id: str | None


_SELVES: dict[str, AppSelf] = {}  # token -> who it is: it never changes while the token lives


async def app_self(client: AsyncWebClient) -> AppSelf | None:
    """The bot's own ids, asked of Slack once per token; None while Slack cannot say."""
    token = client.token or ""
    if token in _SELVES:
        return _SELVES[token]
    try:
        auth = await client.auth_test()
        bot_id = auth.get("bot_id")
        app_id = None
        if isinstance(bot_id, str) and bot_id:
            info = await client.bots_info(bot=bot_id)
            app_id = (info.get("bot") or {}).get("app_id")
    except (SlackApiError, OSError, TimeoutError):
        return None
    except Exception:  # noqa: BLE001 - aiohttp's errors and the like: unknown for now, asked again later
        return None

    def text(value: object) -> str | None:
        return value if isinstance(value, str) and value else None

    found = AppSelf(text(auth.get("team_id")), text(app_id), text(bot_id), text(auth.get("user_id")))
    _SELVES[token] = found
    return found
