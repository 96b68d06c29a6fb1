"""`@fabro-runs <what to do>` outside a run's thread: read the request and its thread, answer with the
confirmation (seen by the asker alone), or one sentence saying why nothing can start."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.asking.work import WorkDesk, plain_text
from bot.core.drafts import Said
from bot.listeners.boundary import Failed, attempt
from bot.listeners.clicks import intent_of
from bot.listeners.payloads import text
from bot.slack.webapi import TRANSPORT_ERRORS, slack_error

__all__ = ["MAX_THREAD", "ask_for_work"]

log = logging.getLogger(__name__)

MAX_THREAD = 50  # earlier messages of a thread read as context, at most
_MENTIONED = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^<>]*)?>")


def _bot_user(body: dict[str, Any]) -> str | None:
    authorizations = body.get("authorizations")
    if isinstance(authorizations, list) and authorizations and isinstance(authorizations[0], dict):
        return text(authorizations[0].get("user_id"))
    return None


async def _names(client: AsyncWebClient, users: set[str]) -> dict[str, str]:
    """Display names of the people mentioned or speaking, from their profiles; the id when unknown."""
    names: dict[str, str] = {}
    for user in sorted(users)[:20]:
        try:
            answer = await client.users_info(user=user)
        except (SlackApiError, *TRANSPORT_ERRORS) as exc:
            log.info("no name for user=%s (%s)", user, type(exc).__name__)
            continue
        found = answer.get("user") or {}
        profile = found.get("profile") or {}
        name = profile.get("display_name") or profile.get("real_name") or found.get("name")
        if isinstance(name, str) and name.strip():
            names[user] = name.strip()
    return names


async def _thread(client: AsyncWebClient, channel: str, thread: str, before: str) -> list[dict[str, Any]]:
    """The people's messages of the thread before the mention, oldest first (none when unreadable)."""
    try:
        answer = await client.conversations_replies(channel=channel, ts=thread, limit=MAX_THREAD + 1)
    except SlackApiError as exc:
        log.info("could not read the thread %s in %s: %s", thread, channel, slack_error(exc))
        return []
    except TRANSPORT_ERRORS as exc:
        log.info("could not read the thread %s in %s: %s", thread, channel, type(exc).__name__)
        return []
    messages = answer.get("messages") or []
    return [
        m
        for m in messages
        if isinstance(m, dict)
        and isinstance(m.get("text"), str)
        and isinstance(m.get("user"), str)
        and not m.get("bot_id")
        and str(m.get("ts") or "") < before
    ][-MAX_THREAD:]


async def ask_for_work(
    desk: WorkDesk,
    client: AsyncWebClient,
    event: dict[str, Any],
    body: dict[str, Any],
    *,
    command: str,
    shared_outside: Callable[[str], Awaitable[bool]] | None = None,
) -> None:
    channel, user, ts = text(event.get("channel")), text(event.get("user")), text(event.get("ts"))
    if not channel or not user or not ts:
        return
    thread = text(event.get("thread_ts"))
    intent = intent_of(text(body.get("event_id")) or ts)
    if not await desk.first_time(intent):
        return  # Slack resent an event already answered
    bot = _bot_user(body)
    words = text(event.get("text")) or ""
    words = re.sub(rf"<@{re.escape(bot)}(?:\|[^<>]*)?>", " ", words) if bot else _MENTIONED.sub(" ", words, count=1)
    # In a channel shared with another organisation (as the event or Slack says), only the mention itself is used.
    outside = bool(body.get("is_ext_shared_channel")) or (shared_outside is not None and await shared_outside(channel))
    earlier = [] if outside or not thread else await _thread(client, channel, thread, ts)
    people = set(_MENTIONED.findall(words)) | {str(m["user"]) for m in earlier}
    for m in earlier:
        people |= set(_MENTIONED.findall(str(m["text"])))
    names = await _names(client, people - ({bot} if bot else set()))
    context = tuple(Said(names.get(str(m["user"]), str(m["user"])), plain_text(str(m["text"]), names)) for m in earlier)
    work = desk.confirm(
        plain_text(words, names), channel=channel, thread_ts=thread or ts, context=context, intent=intent, user_id=user
    )
    result = await attempt(work, what="work asked for in a mention", command=command)
    if result is None:
        return  # this event was answered already
    message = result.message if isinstance(result, Failed) else result
    try:
        await client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread, **message)
    except (SlackApiError, *TRANSPORT_ERRORS) as exc:
        log.info("could not answer user=%s in %s: %s", user, channel, type(exc).__name__)
