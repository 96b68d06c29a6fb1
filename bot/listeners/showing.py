"""Showing what became of something a person did: the card redrawn, a note to them, Home republished."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from slack_bolt.async_app import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.acting.steering import Where
from bot.blocks.alerts import resolved_alert
from bot.blocks.exposure import for_exposure, minimal_outcome
from bot.blocks.outcomes import outcome_text
from bot.blocks.presentation import Presentation
from bot.core.errors import AlreadyActed, Settled
from bot.core.exposure import ExternalChannels
from bot.listeners.boundary import Failed
from bot.slack.channels import Exposures
from bot.slack.webapi import TRANSPORT_ERRORS
from bot.telling.home import Home

__all__ = ["Shower", "retried_twice"]

log = logging.getLogger(__name__)


def retried_twice(retried: bool, result: Settled | Failed) -> bool:
    """Slack re-sent a request it thought lost, and the first one already acted: say nothing twice."""
    return retried and isinstance(result, Failed) and result.status == AlreadyActed.status


@dataclass
class Shower:
    """Shows what became of an action: the clicked card redrawn, and a note to the person."""

    client: AsyncWebClient
    clock: Callable[[], datetime]
    presentation: Presentation
    response_url_allowed: Callable[[str], bool]
    home: Home | None = None  # acted on from the Home tab: it is republished, with the note on top
    # What each channel may see of a run (EXTERNAL_CHANNELS): a redrawn channel card, a steer's echo.
    exposures: Exposures = field(default_factory=lambda: Exposures(None, ExternalChannels.FULL))

    async def show(
        self,
        result: Settled | Failed,
        *,
        who: Where,
        respond: AsyncRespond | None = None,
        response_url: str | None = None,
        thread_ts: str | None = None,
        quiet: bool = False,
    ) -> None:
        settled = result if isinstance(result, Settled) else result.settled
        note = result.message if isinstance(result, Failed) and not quiet else None
        try:
            if settled is not None:
                card = resolved_alert(
                    settled.run,
                    outcome=outcome_text(settled.outcome),
                    now=self.clock(),
                    web_base=self.presentation.web_base,
                )
                if who.channel and who.message_ts:
                    # A message for the whole channel; an ephemeral one (below) is the clicker's alone.
                    exposure = await self.exposures.of(who.channel)
                    card = for_exposure(card, settled.run, exposure, self.presentation, outcome=settled.outcome)
                    await self.client.chat_update(
                        channel=who.channel, ts=who.message_ts, text=card["text"], blocks=card["blocks"]
                    )
                elif respond is not None:
                    await respond(replace_original=True, **card)
                elif response_url and self.response_url_allowed(response_url):
                    await AsyncWebhookClient(response_url).send_dict({"replace_original": True, **card})
            if note is not None:
                if respond is not None:
                    await respond(response_type="ephemeral", replace_original=False, **note)
                elif who.channel:
                    await self.client.chat_postEphemeral(
                        channel=who.channel, user=who.user_id, thread_ts=thread_ts, **note
                    )
            if self.home is not None and who.user_id and not who.channel and respond is None and not response_url:
                # Clicked in the Home tab: Home itself shows what happened.
                said = note["text"] if note else outcome_text(settled.outcome) if settled else None
                await self.home.publish(self.client, who.user_id, notice=said)
        except TRANSPORT_ERRORS as exc:
            # The action itself is recorded; only showing it failed.
            log.warning("could not show the result of an action to user=%s: %s", who.user_id, type(exc).__name__)

    async def said_to_agent(
        self, result: Settled | Failed, *, who: Where, message_ts: str | None, quiet: bool = False
    ) -> None:
        """A steer from a thread: a reaction on the person's message and a reply the thread can read,
        or, when it was not sent, a note to that person alone. The alert itself is left as it is."""
        if quiet or not who.channel:
            return
        try:
            if isinstance(result, Failed):
                await self.client.chat_postEphemeral(
                    channel=who.channel, user=who.user_id, thread_ts=who.message_ts, **result.message
                )
                return
            if message_ts:
                await self.client.reactions_add(channel=who.channel, timestamp=message_ts, name="arrow_right_hook")
            minimal = (await self.exposures.of(who.channel)).minimal
            said = outcome_text(minimal_outcome(result.outcome) if minimal else result.outcome)
            await self.client.chat_postMessage(
                channel=who.channel, thread_ts=who.message_ts, text=said.replace("*", ""), unfurl_links=False
            )
        except TRANSPORT_ERRORS as exc:
            log.warning("could not confirm a steer to user=%s: %s", who.user_id, type(exc).__name__)
