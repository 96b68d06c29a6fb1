"""Buttons on run cards: paging through a listing, and the link buttons (ack only)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.asking.answers import Answerer
from bot.blocks.replies import STALE_PAGE, notice
from bot.blocks.routing import FOLLOW_ACTION, LINK_ACTION, PAGE_ACTION, SHOW_ACTION, decode_page
from bot.listeners.boundary import Failed, attempt
from bot.listeners.payloads import first_action, text, user_of, where_clicked
from bot.telling.following import Follower

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(app: AsyncApp, answerer: Answerer, follower: Follower | None = None) -> None:
    async def listing(body: dict[str, Any], respond: AsyncRespond, *, in_place: bool) -> None:
        query = decode_page(first_action(body).get("value"))
        if query is None:
            log.warning("undecodable paging value from user=%s", user_of(body))
            await respond(response_type="ephemeral", replace_original=False, **notice(STALE_PAGE, icon=":warning:"))
            return
        result = await attempt(answerer.listing(query), what="a page of runs", command=answerer.command)
        # A failed page leaves the list in place and says why beside it.
        failed = isinstance(result, Failed)
        message = result.message if isinstance(result, Failed) else result
        await respond(response_type="ephemeral", replace_original=in_place and not failed, **message)

    @app.action(PAGE_ACTION)
    async def page(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        await listing(body, respond, in_place=True)

    @app.action(SHOW_ACTION)
    async def show(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """A listing for the clicker alone: the message it came from (a digest) stays as it is."""
        await ack()
        await listing(body, respond, in_place=False)

    @app.action(FOLLOW_ACTION)
    async def follow(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """Follow from a card: on the clicked alert's own message, or on a live card posted in the channel."""
        await ack()
        run_id, user = text(first_action(body).get("value")) or "", user_of(body)
        channel, message_ts = where_clicked(body)
        if follower is None or channel is None or user is None or not run_id:
            await respond(response_type="ephemeral", replace_original=False, **notice(STALE_PAGE, icon=":warning:"))
            return
        result = await attempt(
            follower.follow(run_id, channel=channel, user_id=user, message_ts=message_ts),
            what="follow from a card",
            command=answerer.command,
        )
        said = (
            result.message
            if isinstance(result, Failed)
            else notice(
                f"Following run `{result.run_id}` here: its live card shows where it is, its thread what matters."
            )
        )
        await respond(response_type="ephemeral", replace_original=False, **said)

    @app.action(LINK_ACTION)
    async def link(ack: AsyncAck) -> None:
        # Slack opens the URL itself; it still expects the click to be acknowledged.
        await ack()
