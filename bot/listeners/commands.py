"""The `/runs` slash command."""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.answers import Answerer
from bot.blocks.replies import help_message, usage_error_message
from bot.query import Help, RunLookup, RunQuery, UsageError, parse

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(app: AsyncApp, answerer: Answerer) -> None:
    command = answerer.command

    @app.command(command)
    async def runs_command(ack: AsyncAck, body: dict, respond: AsyncRespond) -> None:
        parsed = parse(body.get("text"))
        log.info(
            "command %s %r from user=%s channel=%s",
            command, body.get("text", ""), body.get("user_id"), body.get("channel_id"),
        )
        if isinstance(parsed, Help):
            await ack(response_type="ephemeral", **help_message(command))
            return
        if isinstance(parsed, UsageError):
            await ack(response_type="ephemeral", **usage_error_message(parsed, command))
            return
        await ack()
        if isinstance(parsed, RunLookup):
            answer = await answerer.lookup(parsed)
        else:
            assert isinstance(parsed, RunQuery)
            answer = await answerer.query(parsed)
        await respond(response_type="ephemeral", **answer.message)
