"""Link unfurls: a run's link pasted in a channel shows a compact card of that run."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.exposure import for_exposure
from bot.blocks.presentation import Presentation
from bot.blocks.runs import unfurl_card
from bot.core.exposure import Exposure
from bot.core.links import runs_linked
from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroError
from bot.listeners.payloads import text
from bot.slack.channels import Exposures
from bot.slack.webapi import TRANSPORT_ERRORS, slack_error

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(
    app: AsyncApp,
    fabro: FabroClient,
    *,
    hosts: frozenset[str],
    clock: Callable[[], datetime],
    presentation: Presentation,
    exposures: Exposures,
) -> None:
    @app.event("link_shared")
    async def on_link_shared(event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient) -> None:
        links = event.get("links")
        linked = runs_linked(links if isinstance(links, list) else [], hosts)
        if not linked:
            return
        channel = text(event.get("channel"))
        exposures.heard(channel, body.get("is_ext_shared_channel"))
        exposure = await exposures.of(channel)  # everyone in the channel sees an unfurl
        found = await asyncio.gather(*(_card(fabro, run_id, clock, presentation, exposure) for _, run_id in linked))
        unfurls = {url: card for (url, _), card in zip(linked, found, strict=True) if card is not None}
        if not unfurls:
            return  # an unknown run or an unreachable Fabro leaves the links as they are
        where: dict[str, Any] = {"channel": channel, "ts": text(event.get("message_ts"))}
        if event.get("source") == "composer" and text(event.get("unfurl_id")):
            where = {"unfurl_id": text(event.get("unfurl_id")), "source": "composer"}
        try:
            await client.chat_unfurl(unfurls=unfurls, **where)
        except TRANSPORT_ERRORS as exc:
            reason = slack_error(exc) if isinstance(exc, SlackApiError) else type(exc).__name__
            log.info("could not unfurl %d run link(s): %s", len(unfurls), reason)


async def _card(
    fabro: FabroClient, run_id: str, clock: Callable[[], datetime], presentation: Presentation, exposure: Exposure
) -> dict[str, Any] | None:
    try:
        run = await fabro.get_run(run_id)
    except FabroError as exc:
        log.info("no unfurl for run %s: %r", run_id, exc)
        return None
    card = unfurl_card(run, now=clock(), web_base=presentation.web_base)
    # The link itself leads to the run: an unfurl has no buttons, not even the minimal card's.
    return {"blocks": [b for b in for_exposure(card, run, exposure, presentation)["blocks"] if b["type"] != "actions"]}
