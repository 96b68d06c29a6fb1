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
from bot.store.base import Store

__all__ = ["post_once"]


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
    now = clock()
    if not await store.claim_alert(key, channel, now):
        earlier = next(
            (a for a in await store.alerts_for_run(key.run_id) if a.key == key and a.channel == channel), None
        )
        if earlier is None or earlier.state is not AlertState.CLAIMED:
            return False  # posted before
        found = await _find(slack, key, channel, thread_ts)
        if found is not None:
            await store.confirm_posted(key, channel, found, now)
            return False
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
    return True


async def _find(slack: AsyncWebClient, key: AlertKey, channel: str, thread_ts: str | None) -> str | None:
    """The ts of a message already posted with this key (a post whose answer was lost)."""
    if thread_ts:
        answer = await slack.conversations_replies(channel=channel, ts=thread_ts, include_all_metadata=True, limit=200)
    else:
        answer = await slack.conversations_history(channel=channel, include_all_metadata=True, limit=200)
    wanted = key.encode()
    return next((str(m["ts"]) for m in answer.get("messages") or [] if metadata_key(m) == wanted), None)
