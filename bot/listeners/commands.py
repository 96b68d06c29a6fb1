"""The `/runs` slash command."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.answers import Answerer
from bot.blocks.replies import help_message, internal_error_message, usage_error_message
from bot.metrics import Metrics
from bot.query import Help, RunLookup, RunQuery, Subscribe, Subscriptions, Unsubscribe, UsageError, parse
from bot.subscriptions import Reply, SubscriptionDesk

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(app: AsyncApp, answerer: Answerer, desk: SubscriptionDesk, metrics: Metrics) -> None:
    command = answerer.command

    @app.command(command)
    async def runs_command(ack: AsyncAck, body: dict, respond: AsyncRespond) -> None:
        started = time.perf_counter()
        outcome = await _answer(ack, body, respond)
        metrics.commands.labels(outcome).inc()
        metrics.command_seconds.observe(time.perf_counter() - started)

    async def _answer(ack: AsyncAck, body: dict, respond: AsyncRespond) -> str:
        """Answer one command; returns its outcome for the metrics."""
        parsed = parse(body.get("text"))
        channel, user = body.get("channel_id", ""), body.get("user_id", "")
        log.info("command %s %r from user=%s channel=%s", command, body.get("text", ""), user, channel)
        if isinstance(parsed, Help):
            await ack(response_type="ephemeral", **help_message(command))
            return "help"
        if isinstance(parsed, UsageError):
            await ack(response_type="ephemeral", **usage_error_message(parsed, command))
            return "usage_error"
        await ack()
        if isinstance(parsed, Subscribe | Subscriptions | Unsubscribe):
            if isinstance(parsed, Subscribe):
                reply = await _guarded(desk.subscribe(parsed, channel=channel, user_id=user))
            elif isinstance(parsed, Unsubscribe):
                reply = await _guarded(desk.unsubscribe(parsed, channel=channel, user_id=user))
            else:
                reply = await _guarded(desk.list(channel=channel))
            await respond(response_type="in_channel" if reply.public else "ephemeral", **reply.message)
            return "ok"
        if isinstance(parsed, RunLookup):
            answer = await answerer.lookup(parsed)
        else:
            assert isinstance(parsed, RunQuery)
            answer = await answerer.query(parsed)
        await respond(response_type="ephemeral", **answer.message)
        return "failed" if answer.failed else "ok"


async def _guarded(work: Awaitable[Reply]) -> Reply:
    try:
        return await work
    except Exception:
        reference = uuid.uuid4().hex[:12]
        log.exception("subscription command failed, reference %s", reference)
        return Reply(internal_error_message(reference))
