"""Starting runs from Slack: the picker window, the confirmation card's buttons, and the announcement."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.acting.steering import Steering, Where
from bot.blocks.replies import notice
from bot.blocks.routing import START_BUTTONS, START_MODAL, START_PICK, decode_picker, decode_start, encode_picker
from bot.blocks.start import picker_options, start_announcement, start_picker
from bot.core.errors import Settled
from bot.fabro.errors import FabroError
from bot.fabro.models import AutomationPreset
from bot.listeners.boundary import Failed, attempt
from bot.listeners.payloads import first_action, obj, text, user_of
from bot.metrics import Metrics
from bot.slack.webapi import CHANNEL_ERRORS, slack_error

__all__ = ["open_picker", "register"]

log = logging.getLogger(__name__)

_LOOKUP_SECONDS = 10.0  # the window is already open: Fabro may take its time
_SLACK_TRANSPORT_ERRORS = (SlackApiError, aiohttp.ClientError, TimeoutError)


async def open_picker(client: AsyncWebClient, steering: Steering, *, trigger_id: str, channel: str | None) -> None:
    """Open the window at once (the trigger expires in 3 s), then fill it when Fabro answers."""
    metadata = encode_picker(channel)
    try:
        opened = await client.views_open(trigger_id=trigger_id, view=start_picker(None, metadata=metadata))
    except _SLACK_TRANSPORT_ERRORS as exc:
        log.info("could not open the start window: %s", type(exc).__name__)
        return
    view = obj(opened.get("view"))
    try:
        async with asyncio.timeout(_LOOKUP_SECONDS):
            presets: list[AutomationPreset] | None = await steering.fabro.automations()
        filled = start_picker(presets, metadata=metadata)
    except (FabroError, TimeoutError) as exc:
        request_id = exc.request_id if isinstance(exc, FabroError) else None
        problem = f"Fabro did not list its automations (request id {request_id}). Try again in a moment."
        filled = start_picker(None, metadata=metadata, problem=problem)
    try:
        await client.views_update(view_id=text(view.get("id")) or "", hash=text(view.get("hash")), view=filled)
    except _SLACK_TRANSPORT_ERRORS as exc:  # the person closed the window meanwhile
        log.info("could not fill the start window: %s", type(exc).__name__)


def register(
    app: AsyncApp,
    steering: Steering,
    metrics: Metrics,
    *,
    command: str,
    clock: Callable[[], datetime],
    web_base: str | None,
) -> None:
    async def start(who: Where, automation_id: str, intent: str) -> Settled | Failed:
        result = await attempt(steering.start(who, automation_id, intent), what="start from Slack", command=command)
        metrics.actions.labels("start", result.status if isinstance(result, Failed) else "done").inc()
        return result

    async def announce(client: AsyncWebClient, settled: Settled, user: str, channel: str | None) -> None:
        message = start_announcement(
            settled.run,
            user_id=user,
            automation=settled.outcome.answer or "an automation",
            now=clock(),
            web_base=web_base,
        )
        await _announce(client, message, settled.run.id, [c for c in (channel, user) if c])

    @app.action(START_BUTTONS)
    async def on_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient) -> None:
        await ack()
        action = first_action(body)
        decoded = decode_start(text(action.get("value")))
        user = user_of(body)
        if decoded is None or user is None:
            await respond(replace_original=False, **notice("That button no longer works. Run `/runs start` again."))
            return
        if text(action.get("action_id")) == "start:cancel":
            await respond(delete_original=True)
            return
        automation_id, intent, channel = decoded
        result = await start(Where(user, channel), automation_id, intent)
        await _tell(respond, result)
        if isinstance(result, Settled):
            await announce(client, result, user, channel)

    @app.options(START_PICK)
    async def on_search(ack: AsyncAck, payload: dict[str, Any]) -> None:
        """The picker past a hundred automations: search them by what is typed."""
        try:
            presets = await steering.fabro.automations()
        except FabroError:
            await ack(options=[])
            return
        await ack(options=picker_options(presets, text(payload.get("value")) or ""))

    @app.view(START_MODAL)
    async def on_pick(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient) -> None:
        picked = obj(obj(obj(obj(obj(view).get("state")).get("values")).get(START_PICK)).get(START_PICK))
        automation_id = text(obj(picked.get("selected_option")).get("value"))
        if not automation_id:
            await ack(response_action="errors", errors={START_PICK: "Choose an automation to start."})
            return
        await ack()
        user, channel = user_of(body), decode_picker(text(obj(view).get("private_metadata")))
        intent = (text(obj(view).get("id")) or "").lower()  # one window, one start: a resubmission starts nothing
        if user is None or not intent.isalnum():
            log.warning("undecodable start window from user=%s", user)
            return
        result = await start(Where(user, channel), automation_id, _hex(intent))
        if isinstance(result, Settled):
            await announce(client, result, user, channel)
        elif channel is not None:
            await _ephemeral(client, channel, user, result.message)


async def _announce(client: AsyncWebClient, message: dict[str, Any], run_id: str, places: list[str]) -> None:
    """In the channel for everyone; where the bot cannot post there, to the person by DM."""
    for where in places:
        try:
            await client.chat_postMessage(channel=where, text=message["text"], blocks=message["blocks"])
            return
        except SlackApiError as exc:
            if slack_error(exc) not in CHANNEL_ERRORS:
                log.warning("could not announce the started run %s: %s", run_id, slack_error(exc))
                return
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not announce the started run %s: %s", run_id, type(exc).__name__)
            return


def _hex(view_id: str) -> str:
    """A view id as an intent key (hex, as the codec takes)."""
    return view_id.encode().hex()[:40]


async def _tell(respond: AsyncRespond, result: Settled | Failed) -> None:
    try:
        if isinstance(result, Failed):
            await respond(replace_original=False, response_type="ephemeral", **result.message)
        else:
            await respond(replace_original=True, **notice(f"Started run `{result.run.id}`.", icon=":rocket:"))
    except _SLACK_TRANSPORT_ERRORS as exc:
        log.info("could not answer a start click: %s", type(exc).__name__)


async def _ephemeral(client: AsyncWebClient, channel: str, user: str, message: dict[str, Any]) -> None:
    try:
        await client.chat_postEphemeral(channel=channel, user=user, **message)
    except _SLACK_TRANSPORT_ERRORS as exc:
        log.info("could not tell user=%s about a start: %s", user, type(exc).__name__)
