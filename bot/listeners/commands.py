"""The `/runs` slash command: ack → parse → dispatch → respond."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.asking.dispatch import Caller, Commands
from bot.core.query import Start, parse
from bot.listeners.boundary import answer_command
from bot.metrics import Metrics

__all__ = ["register"]

log = logging.getLogger(__name__)


StartPicker = Callable[[AsyncWebClient, str, str | None, str | None], Awaitable[None]]  # client, trigger, channel, user


def register(app: AsyncApp, commands: Commands, metrics: Metrics, *, open_start: StartPicker | None = None) -> None:
    @app.command(commands.command)
    async def runs_command(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient) -> None:
        started = time.perf_counter()
        text = body.get("text") if isinstance(body.get("text"), str) else ""
        caller = Caller(
            user_id=str(body.get("user_id") or "") or None, channel=str(body.get("channel_id") or "") or None
        )
        log.info("command %s %r from user=%s channel=%s", commands.command, text, caller.user_id, caller.channel)
        parsed = parse(text)
        trigger = body.get("trigger_id")
        if open_start is not None and isinstance(parsed, Start) and parsed.automation_id is None and trigger:
            await ack()  # the window opens at once; Fabro's answer fills it
            await open_start(client, str(trigger), caller.channel, caller.user_id)
            metrics.commands.labels("ok").inc()
            return
        if Commands.instant(parsed):
            reply = await answer_command(commands, parsed, caller)
            await ack(response_type="ephemeral", **reply.message)
        else:
            await ack()
            reply = await answer_command(commands, parsed, caller)
            await respond(response_type="in_channel" if reply.public else "ephemeral", **reply.message)
        metrics.commands.labels(reply.status).inc()
        metrics.command_seconds.observe(time.perf_counter() - started)
