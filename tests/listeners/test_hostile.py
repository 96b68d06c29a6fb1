"""Hostile requests through the real HTTP endpoint: unsigned, forged, oversized, malformed.

Nothing from an unverified request is used: no outbound call, no body in the logs.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web

from bot.config import configure_logging
from tests.conftest import SlackUser, sign
from tests.fakes.fabro import FakeFabro
from tests.fakes.loopback import serve


@pytest.fixture
async def trap() -> AsyncIterator[list[str]]:
    """A server that records every request made to it: the bot must never call it."""
    hits: list[str] = []

    async def record(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner, port = await serve(app)
    hits.append(f"http://127.0.0.1:{port}/hook")  # [0] is the trap's own URL
    yield hits
    await runner.cleanup()


def command_body(response_url: str, text: str = "failed") -> str:
    return urlencode(
        {"command": "/runs", "text": text, "user_id": "U1", "channel_id": "C1", "response_url": response_url}
    )


@pytest.mark.parametrize("timestamp", ["abc", "", "1.5", "9" * 400, "-5", "１２３"])
async def test_an_unsigned_request_with_a_strange_timestamp_is_401_and_calls_nobody(
    user: SlackUser, trap: list[str], fabro: FakeFabro, timestamp: str
) -> None:
    body = command_body(trap[0])
    headers = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": "v0=" + "0" * 64}
    started = time.perf_counter()
    status, _ = await user.post(body, headers)
    assert status == 401
    assert time.perf_counter() - started < 1  # nothing was waited for
    assert trap[1:] == [] and fabro.requests == []


async def test_a_forged_signature_is_401_and_a_payload_response_url_is_never_called(
    user: SlackUser, trap: list[str], fabro: FakeFabro
) -> None:
    payload = {"type": "block_actions", "response_url": trap[0], "actions": [{"action_id": "runs_page:next"}]}
    body = urlencode({"payload": json.dumps(payload)})
    forged = sign(body, secret="not-the-signing-secret")
    status, _ = await user.post(body, forged)
    assert status == 401 and trap[1:] == [] and fabro.requests == []
    stale = sign(body, timestamp=int(time.time()) - 3600)
    status, _ = await user.post(body, stale)
    assert status == 401 and trap[1:] == []


async def test_unsigned_bodies_are_never_logged(user: SlackUser, caplog: pytest.LogCaptureFixture) -> None:
    forged_line = "x\n2026-11-28 12:00:00 ERROR bot.telling.engine FORGED: everything is on fire\n"
    big = forged_line * 20_000  # over a megabyte
    with caplog.at_level(logging.DEBUG):
        for body in (forged_line, big):
            async with user.session.post(
                user.url, data=body.encode(), headers={"X-Slack-Request-Timestamp": "1", "X-Slack-Signature": "v0=x"}
            ) as response:
                assert response.status in (401, 413)
    assert "FORGED" not in caplog.text
    rejected = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rejected POST /slack/events")]
    assert len(rejected) == 2 and all(len(line) < 120 for line in rejected)


def test_a_newline_from_outside_cannot_start_a_log_line_in_either_format() -> None:
    for fmt in ("text", "json"):
        stream = io.StringIO()
        configure_logging("INFO", ["xoxb-secret-value"], fmt)
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.stream = stream
        logging.getLogger("bot.test").info("user said %r then %s", "a", "b\n2026 ERROR bot FORGED xoxb-secret-value")
        lines = stream.getvalue().splitlines()
        assert len(lines) == 1, lines
        assert "xoxb-secret-value" not in lines[0]
    logging.getLogger().handlers.clear()


@pytest.mark.parametrize(
    "payload",
    [
        "not-json",
        "[]",
        "null",
        "5",
        json.dumps({"type": "block_actions", "actions": "steer:retry"}),
        json.dumps({"type": "block_actions", "actions": [{"action_id": "steer:choose", "selected_option": ["a"]}]}),
        json.dumps({"type": "view_submission", "view": "modal"}),
        json.dumps({"type": "block_actions", "user": "U1", "actions": []}),
        json.dumps({"type": ["block_actions"]}),
    ],
)
async def test_a_signed_but_malformed_payload_is_400_with_one_warning_and_no_traceback(
    user: SlackUser, caplog: pytest.LogCaptureFixture, payload: str
) -> None:
    with caplog.at_level(logging.INFO):
        status, _ = await user.post(urlencode({"payload": payload}))
    assert status == 400
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "unreadable payload" in warnings[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)
    assert "Traceback" not in caplog.text


async def test_a_malformed_event_body_is_400_too(user: SlackUser, caplog: pytest.LogCaptureFixture) -> None:
    for body in ("{not json", json.dumps({"type": "event_callback", "event": {"type": "app_mention", "user": 5}})):
        status, _ = await user.post(body, content_type="application/json")
        assert status == 400
    assert "Traceback" not in caplog.text


async def test_after_all_that_the_bot_still_answers(user: SlackUser, fabro: FakeFabro) -> None:
    for payload in ("not-json", "null"):
        await user.post(urlencode({"payload": payload}))
    async with aiohttp.ClientSession() as session:
        await session.post(user.url, data=b"garbage")
    status, ack, _ = await user.command("help")
    assert status == 200 and "lists and shows Fabro runs" in ack


@pytest.mark.parametrize(
    ("field", "value"),
    [("team_id", "T0OTHER"), ("api_app_id", "A0OTHER")],
)
async def test_signed_requests_for_another_workspace_or_app_are_dropped(
    user: SlackUser, fabro: FakeFabro, field: str, value: str
) -> None:
    """Signed with this app's secret, but naming another team or app: nothing of it is used."""
    from tests.fakes.runs import make_run

    run = make_run("failed")
    fabro.add(run)
    fabro.requests.clear()
    body, response_url = user.command_body(run["id"])
    forged = body.replace(f"{field}=T111", f"{field}={value}").replace(f"{field}=A111", f"{field}={value}")
    assert forged != body
    status, ack = await user.post(forged)
    assert status == 200 and ack == ""
    payload, url = user.action_payload({"action_id": "runs:next", "value": "x"})
    if field == "team_id":
        payload["team"] = {"id": value, "domain": "elsewhere"}
    else:
        payload["api_app_id"] = value
    status, _ = await user.post(urlencode({"payload": json.dumps(payload)}))
    assert status == 200
    event = json.loads(user.mention_body("steer drop the table", channel="C0ALERTS", thread_ts="1.000001"))
    event[field] = value
    status, _ = await user.post(json.dumps(event), content_type="application/json")
    assert status == 200
    await asyncio.sleep(0.3)  # anything the bot would have done, it would have begun by now
    assert user.slack.responses_to(response_url) == [] and user.slack.responses_to(url) == []
    assert fabro.requests == []  # the command never reached its handler
