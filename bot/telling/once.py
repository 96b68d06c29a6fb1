"""A message posted exactly once, across crashes: claimed in the store, posted with its key in
its metadata, confirmed. A claim left unconfirmed by a crash is settled by finding the message in
Slack (a thread's replies, or the conversation's recent history) before posting it again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.alerts import alert_metadata, metadata_key
from bot.core.keys import AlertKey
from bot.core.records import AlertState
from bot.failpoints import crash_point
from bot.slack.webapi import app_self
from bot.store.base import Store

__all__ = ["post_once", "reply_once", "upload_once"]


async def post_once(
    store: Store,
    slack: AsyncWebClient,
    clock: Callable[[], datetime],
    key: AlertKey,
    channel: str,
    message: dict[str, Any],
    *,
    thread_ts: str | None = None,
    crash_prefix: str = "once",
) -> bool:
    """Post `message` under `key` in `channel` (in the thread `thread_ts`) unless it was; True if posted now."""
    _ts, posted = await reply_once(
        store, slack, clock, key, channel, message, thread_ts=thread_ts, crash_prefix=crash_prefix
    )
    return posted


async def reply_once(
    store: Store,
    slack: AsyncWebClient,
    clock: Callable[[], datetime],
    key: AlertKey,
    channel: str,
    message: dict[str, Any],
    *,
    thread_ts: str | None = None,
    crash_prefix: str = "once",
) -> tuple[str | None, bool]:
    """`post_once`, also telling the message's ts (None when it was posted before and is not known)."""
    now = clock()
    if not await store.claim_alert(key, channel, now):
        earlier = next(
            (a for a in await store.alerts_for_run(key.run_id) if a.key == key and a.channel == channel), None
        )
        if earlier is None or earlier.state is not AlertState.CLAIMED:
            return (earlier.ts if earlier else None), False  # posted before
        found = await _find(slack, key, channel, thread_ts)
        if found is not None:
            await store.confirm_posted(key, channel, found, now)
            return found, False
    crash_point(f"{crash_prefix}.claimed")
    posted = await slack.chat_postMessage(
        channel=channel,
        thread_ts=thread_ts,
        text=message["text"],
        blocks=message.get("blocks"),
        metadata=alert_metadata(key),
        unfurl_links=False,
        unfurl_media=False,
    )
    crash_point(f"{crash_prefix}.posted")
    await store.confirm_posted(key, channel, str(posted["ts"]), clock())
    return str(posted["ts"]), True


async def upload_once(
    store: Store,
    slack: AsyncWebClient,
    clock: Callable[[], datetime],
    key: AlertKey,
    channel: str,
    *,
    filename: str,
    content: bytes,
    title: str,
    comment: str,
    thread_ts: str | None = None,
    crash_prefix: str = "upload",
) -> bool:
    """Upload a file under `key` into `channel` (the thread `thread_ts`) unless it was; True if uploaded now.

    Slack keeps no metadata on a file, so `filename` must name the intent: a claim left by a crash
    is settled by finding a file of that name in the thread (or the channel's recent history)."""
    now = clock()
    if not await store.claim_alert(key, channel, now):
        earlier = next(
            (a for a in await store.alerts_for_run(key.run_id) if a.key == key and a.channel == channel), None
        )
        if earlier is None or earlier.state is not AlertState.CLAIMED:
            return False
        found = await _find_file(slack, filename, channel, thread_ts)
        if found is not None:
            await store.confirm_posted(key, channel, found, now)
            return False
    crash_point(f"{crash_prefix}.claimed")
    # Slack's current upload: files.getUploadURLExternal, the bytes to that URL, files.completeUploadExternal.
    done = await slack.files_upload_v2(
        channel=channel,
        thread_ts=thread_ts,
        filename=filename,
        content=content,
        title=title,
        initial_comment=comment,
    )
    crash_point(f"{crash_prefix}.posted")
    shared = done.get("file") or {}
    await store.confirm_posted(key, channel, str(shared.get("id") or filename), clock())
    return True


async def _find_file(slack: AsyncWebClient, filename: str, channel: str, thread_ts: str | None) -> str | None:
    if thread_ts:
        answer = await slack.conversations_replies(channel=channel, ts=thread_ts, limit=200)
    else:
        answer = await slack.conversations_history(channel=channel, limit=200)
    for message in answer.get("messages") or []:
        for shared in message.get("files") or []:
            if isinstance(shared, dict) and shared.get("name") == filename:
                return str(shared.get("id") or filename)
    return None


async def _find(slack: AsyncWebClient, key: AlertKey, channel: str, thread_ts: str | None) -> str | None:
    """The ts of a message already posted with this key (a post whose answer was lost)."""
    if thread_ts:
        answer = await slack.conversations_replies(channel=channel, ts=thread_ts, include_all_metadata=True, limit=200)
    else:
        answer = await slack.conversations_history(channel=channel, include_all_metadata=True, limit=200)
    wanted = key.encode()
    me = await app_self(slack)
    bot_id = me.bot_id if me is not None else None
    return next((str(m["ts"]) for m in answer.get("messages") or [] if metadata_key(m, bot_id) == wanted), None)
