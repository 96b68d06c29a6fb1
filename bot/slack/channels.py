"""Which conversations are shared with another organisation (Slack Connect), and so what the bot shows there."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.exposure import Exposure, ExternalChannels
from bot.slack.webapi import TRANSPORT_ERRORS, slack_error

__all__ = ["Exposures", "shared_outside"]

log = logging.getLogger(__name__)

_CONVERSATION = re.compile(r"^[CGD][A-Z0-9]+$")
_UNSURE_FOR = 60.0  # seconds a channel Slack could not describe stays external before it is asked again


def shared_outside(channel: dict[str, Any]) -> bool:
    """Whether `conversations.info`'s channel is shared with another organisation.

    `is_ext_shared`: a Slack Connect channel; `is_pending_ext_shared`: one being shared (its guests may
    join at any moment); `is_shared` without `is_org_shared`: shared with a workspace outside this
    Enterprise organisation. `is_org_shared` alone stays inside the organisation."""
    if channel.get("is_im"):
        return False
    if channel.get("is_ext_shared") or channel.get("is_pending_ext_shared"):
        return True
    return bool(channel.get("is_shared")) and not channel.get("is_org_shared")


class Exposures:
    """The `Exposure` of each conversation, decided in this one place.

    A direct message (`D…`) is never external. A channel is external when Slack says so: an event's
    `is_ext_shared_channel`, else `conversations.info` (scopes `channels:read`, `groups:read`), kept
    for `ttl` seconds since a channel can be shared at any time. When Slack cannot say, the channel
    is treated as external (nothing is shown that should not be) and that is logged once."""

    def __init__(
        self,
        client: AsyncWebClient | None,
        mode: ExternalChannels = ExternalChannels.MINIMAL,
        *,
        ttl: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.mode = mode
        self._ttl = ttl
        self._clock = clock
        self._known: dict[str, tuple[bool, float]] = {}  # channel -> (external, until)
        self._unsure: set[str] = set()  # channels Slack could not describe, logged once each

    async def of(self, channel: str | None) -> Exposure:
        """What a message posted in `channel` for everyone there may show. A conversation not named
        (a link unfurled while it is typed: Slack says `COMPOSER`) could be any: the least is shown."""
        if self.mode is ExternalChannels.FULL:
            return Exposure.FULL
        if not channel or channel == "COMPOSER" or not _CONVERSATION.match(channel):
            return Exposure.MINIMAL
        return Exposure.MINIMAL if await self.external(channel) else Exposure.FULL

    async def minimal(self, channel: str) -> bool:
        """True where a run's details stay out of the conversation."""
        return (await self.of(channel)).minimal

    def heard(self, channel: str | None, ext_shared: object) -> None:
        """What an event's `is_ext_shared_channel` said about its channel."""
        if channel and isinstance(ext_shared, bool) and not channel.startswith("D"):
            self._known[channel] = (ext_shared, self._clock() + self._ttl)

    async def external(self, channel: str) -> bool:
        """Whether `channel` is shared with another organisation (True when Slack cannot say)."""
        if channel.startswith("D"):
            return False
        now = self._clock()
        known = self._known.get(channel)
        if known is not None and known[1] > now:
            return known[0]
        if self._client is None:
            return self._unknown(channel, "no Slack client", now)
        try:
            answer = await self._client.conversations_info(channel=channel)
        except TRANSPORT_ERRORS as exc:
            reason = slack_error(exc) if isinstance(exc, SlackApiError) else type(exc).__name__
            return self._unknown(channel, reason, now)
        described = answer.get("channel")
        if not isinstance(described, dict):
            return self._unknown(channel, "no channel in the answer", now)
        self._unsure.discard(channel)
        external = shared_outside(described)
        self._known[channel] = (external, now + self._ttl)
        return external

    def _unknown(self, channel: str, reason: str, now: float) -> bool:
        if channel not in self._unsure:
            self._unsure.add(channel)
            hint = " (add the channels:read and groups:read scopes)" if reason == "missing_scope" else ""
            log.warning(
                "cannot tell whether %s is shared with another organisation: %s%s; showing only status,"
                " title and link there until Slack says",
                channel,
                reason,
                hint,
            )
        self._known[channel] = (True, now + min(self._ttl, _UNSURE_FOR))
        return True
