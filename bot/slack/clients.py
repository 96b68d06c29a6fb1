"""Slack's Web API as the bot meets it: a client that counts its calls, and people's time zones."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.core.stats import zone
from bot.metrics import Metrics
from bot.slack.webapi import TRANSPORT_ERRORS, slack_error

__all__ = ["CountingWebClient", "DisplayNames", "TimeZones", "response_url_check", "slack_client"]

log = logging.getLogger(__name__)


class CountingWebClient(AsyncWebClient):
    """slack_sdk's client, counting every Web API call by method and result for /metrics."""

    metrics: Metrics | None = None

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        try:
            response = await super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            error = slack_error(exc)
            if self.metrics is not None:
                self.metrics.slack(api_method, error)
            # Slack's own request id lets Slack support find the call.
            slack_request_id = (exc.response.headers or {}).get("x-slack-req-id", "none")
            log.info(
                "slack %s answered %s slack_request_id=%s",
                api_method,
                error,
                slack_request_id,
                extra={"slack_request_id": slack_request_id},
            )
            raise
        except Exception as exc:
            if self.metrics is not None:
                self.metrics.slack(api_method, type(exc).__name__)
            raise
        if self.metrics is not None:
            self.metrics.slack(api_method, "ok")
        return response


def slack_client(
    token: str | None, base_url: str, metrics: Metrics | None = None, *, resend_on_disconnect: bool = True
) -> AsyncWebClient:
    """The Web API client. A 429 is always waited out and retried (Slack did nothing).

    A dropped connection is retried only when `resend_on_disconnect`: Slack may have
    acted before the connection dropped, so alert posts must not be resent blindly;
    the alert engine instead looks for the message before posting again.
    """
    handlers: list[Any] = [AsyncRateLimitErrorRetryHandler(max_retry_count=3)]
    if resend_on_disconnect:
        handlers.insert(0, AsyncConnectionErrorRetryHandler(max_retry_count=2))
    client = CountingWebClient(token=token, base_url=base_url, timeout=10, retry_handlers=handlers)
    client.metrics = metrics
    return client


class TimeZones:
    """A person's time zone from their Slack profile (`users.info`, `users:read`), cached; UTC when unknown."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._known: dict[str, ZoneInfo] = {}

    async def of(self, user_id: str | None) -> ZoneInfo:
        if not user_id:
            return ZoneInfo("UTC")
        if user_id not in self._known:
            try:
                profile = await self._client.users_info(user=user_id)
                name = (profile.get("user") or {}).get("tz")
                self._known[user_id] = zone(name) if isinstance(name, str) else ZoneInfo("UTC")
            except TRANSPORT_ERRORS as exc:
                log.info("no time zone for user=%s (%s); using UTC", user_id, type(exc).__name__)
                return ZoneInfo("UTC")
        return self._known[user_id]


class DisplayNames:
    """People's names as Slack shows them (`users.info`: display name, else real name), cached;
    None when Slack cannot say, so the caller falls back to the id."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._known: dict[str, str] = {}

    async def of(self, user_ids: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for user_id in user_ids[:20]:  # a message naming more people is not worth more calls
            if user_id not in self._known:
                try:
                    response = await self._client.users_info(user=user_id)
                except TRANSPORT_ERRORS as exc:
                    log.info("no display name for user=%s (%s)", user_id, type(exc).__name__)
                    continue
                person = response.get("user") or {}
                profile = person.get("profile") or {}
                name = next(
                    (n for n in (profile.get("display_name"), profile.get("real_name"), person.get("name")) if n),
                    None,
                )
                if not isinstance(name, str):
                    continue
                self._known[user_id] = name
            found[user_id] = self._known[user_id]
        return found


def response_url_check(slack_api_url: str) -> Callable[[str], bool]:
    """Whether a response URL is Slack's own: the bot never posts anywhere else, whatever a payload says."""
    api_host = urlsplit(slack_api_url).netloc

    def allowed(url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.netloc == "hooks.slack.com":
            return True
        return bool(api_host) and parts.netloc == api_host and parts.scheme in ("http", "https")

    return allowed
