"""Starting runs from Slack: the picker window, its search, and telling how a start went.

The confirmation card's buttons and the picker's Submit are clicks like any other
(`bot.listeners.clicks`, `bot.listeners.controls`); what they need to show is here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.acting.steering import Steering
from bot.blocks.presentation import Presentation
from bot.blocks.replies import notice
from bot.blocks.routing import START_PICK, encode_picker
from bot.blocks.start import picker_options, start_picker
from bot.blocks.work import started_note
from bot.core.drafts import Draft
from bot.core.errors import Settled
from bot.core.keys import AlertKey, AlertKind
from bot.fabro.errors import FabroError
from bot.fabro.models import AutomationPreset
from bot.listeners.boundary import Failed, attempt
from bot.listeners.payloads import obj, text
from bot.people.bindings import PICKER, Bindings
from bot.slack.webapi import TRANSPORT_ERRORS
from bot.telling.delivery import Delivery
from bot.telling.following import Follower

__all__ = ["after_work_started", "open_picker", "register", "tell_started", "to_person"]

log = logging.getLogger(__name__)

_LOOKUP_SECONDS = 10.0  # the window is already open: Fabro may take its time


async def open_picker(
    client: AsyncWebClient,
    steering: Steering,
    *,
    trigger_id: str,
    channel: str | None,
    user_id: str | None = None,
    bindings: Bindings | None = None,
) -> None:
    """Open the window at once (the trigger expires in 3 s), then fill it when Fabro answers.
    With `bindings`, only `user_id` may submit it, for a while."""
    nonce = await bindings.issue(user_id, PICKER) if bindings is not None and user_id else None
    metadata = encode_picker(channel, nonce)
    try:
        opened = await client.views_open(trigger_id=trigger_id, view=start_picker(None, metadata=metadata))
    except TRANSPORT_ERRORS as exc:
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
    except TRANSPORT_ERRORS as exc:  # the person closed the window meanwhile
        log.info("could not fill the start window: %s", type(exc).__name__)


def register(app: AsyncApp, steering: Steering) -> None:
    @app.options(START_PICK)
    async def on_search(ack: AsyncAck, payload: dict[str, Any]) -> None:
        """The picker past a hundred automations: search them by what is typed."""
        try:
            presets = await steering.fabro.automations()
        except FabroError:
            await ack(options=[])
            return
        await ack(options=picker_options(presets, text(payload.get("value")) or ""))


async def tell_started(respond: AsyncRespond, result: Settled | Failed) -> None:
    """The confirmation card becomes "Started run …", or says why not beside it."""
    try:
        if isinstance(result, Failed):
            await respond(replace_original=False, response_type="ephemeral", **result.message)
        else:
            await respond(replace_original=True, **notice(f"Started run `{result.run.id}`.", icon=":rocket:"))
    except TRANSPORT_ERRORS as exc:
        log.info("could not answer a start click: %s", type(exc).__name__)


async def to_person(client: AsyncWebClient, channel: str, user: str, message: dict[str, Any]) -> None:
    try:
        await client.chat_postEphemeral(channel=channel, user=user, **message)
    except TRANSPORT_ERRORS as exc:
        log.info("could not tell user=%s about a start: %s", user, type(exc).__name__)


async def after_work_started(
    outbox: Delivery, follower: Follower | None, settled: Settled, draft: Draft, presentation: Presentation
) -> Failed | None:
    """Who started which run, said once where it was asked; then the run is followed in that thread."""
    user = settled.outcome.slack_user or ""
    note = started_note(settled.run, user_id=user, web_base=presentation.web_base)
    key = AlertKey(AlertKind.UPDATE, settled.run.id, "started")
    await outbox.announce(key, [draft.channel], note, thread_ts=draft.thread_ts)
    if follower is None:
        return None
    followed = await attempt(
        follower.follow(settled.run.id, channel=draft.channel, user_id=user, thread_ts=draft.thread_ts),
        what="following a run started from Slack",
        command=presentation.command,
    )
    return followed if isinstance(followed, Failed) else None
