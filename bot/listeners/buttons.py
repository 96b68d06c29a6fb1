"""Buttons on run cards: paging through a listing, and the link buttons (ack only)."""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.actions import LINK_ACTION, PAGE_ACTION, SHOW_ACTION, decode_page
from bot.answers import Answerer
from bot.blocks import kit

__all__ = ["STALE_PAGE", "register"]

log = logging.getLogger(__name__)

STALE_PAGE = "That button no longer works. Run the command again to get a fresh list."


def register(app: AsyncApp, answerer: Answerer) -> None:
    @app.action(PAGE_ACTION)
    async def page(ack: AsyncAck, body: dict, respond: AsyncRespond) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        query = decode_page(action.get("value"))
        if query is None:
            log.warning("undecodable paging value from user=%s", (body.get("user") or {}).get("id"))
            await respond(
                response_type="ephemeral",
                replace_original=False,
                text=STALE_PAGE,
                blocks=[kit.section(f":warning: {STALE_PAGE}")],
            )
            return
        answer = await answerer.query(query)
        # A failed page leaves the list in place and says why beside it.
        await respond(response_type="ephemeral", replace_original=not answer.failed, **answer.message)

    @app.action(SHOW_ACTION)
    async def show(ack: AsyncAck, body: dict, respond: AsyncRespond) -> None:
        """A listing for the clicker alone: the message it came from (a digest) stays as it is."""
        await ack()
        query = decode_page(((body.get("actions") or [{}])[0]).get("value"))
        if query is None:
            await respond(response_type="ephemeral", replace_original=False, text=STALE_PAGE,
                          blocks=[kit.section(f":warning: {STALE_PAGE}")])
            return
        answer = await answerer.query(query)
        await respond(response_type="ephemeral", replace_original=False, **answer.message)

    @app.action(LINK_ACTION)
    async def link(ack: AsyncAck) -> None:
        # Slack opens the URL itself; it still expects the click to be acknowledged.
        await ack()
