"""Fabro (or a proxy in front of it) answering what the API does not document: each bad answer
is a Fabro error with its request id, and one unreadable item costs that item only."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import Bot
from bot.blocks.alerts import approval_alert, failed_alert, question_alert
from bot.blocks.limits import problems
from bot.blocks.runs import run_detail_message
from bot.fabro.models import Question, Run
from tests.conftest import SlackUser, StartBot, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run, question_examples, run_examples
from tests.fakes.slack import FakeSlack

CHANNEL = "C0BAD"

BAD_ANSWERS = [
    pytest.param(302, b"<html>login</html>", {"Location": "/login", "Content-Type": "text/html"}, id="redirect"),
    pytest.param(204, b"", {}, id="204"),
    pytest.param(200, b"{}", {"Content-Type": "application/json"}, id="empty object"),
    pytest.param(200, b"null", {"Content-Type": "application/json"}, id="null"),
    pytest.param(200, b"[]", {"Content-Type": "application/json"}, id="a list"),
    pytest.param(200, b'{"data":{}}', {"Content-Type": "application/json"}, id="data not a list"),
    pytest.param(200, b"<html>proxy</html>", {"Content-Type": "text/html"}, id="html"),
]


@pytest.mark.parametrize(("status", "raw", "headers"), BAD_ANSWERS)
async def test_an_undocumented_listing_is_a_fabro_error_never_no_runs(
    user: SlackUser, fabro: FakeFabro, status: int, raw: bytes, headers: dict[str, str]
) -> None:
    fabro.add(make_run("failed"))
    fabro.answer_next(status, raw, headers)
    _, _, url = await user.command("failed")
    reply = await user.reply(url)
    assert "match" not in reply["text"]
    assert reply["text"].startswith(("Fabro could not be reached", "Fabro refused"))
    assert "request id" in reply["text"] and "Traceback" not in json.dumps(reply)


@pytest.mark.parametrize(("status", "raw", "headers"), BAD_ANSWERS)
async def test_an_undocumented_listing_skips_the_alert_cycle(
    start_bot: StartBot, fabro: FakeFabro, status: int, raw: bytes, headers: dict[str, str]
) -> None:
    bot: Bot = await start_bot(alert_channel=CHANNEL, alert_pace=0.0)
    await bot.alerter.cycle()
    fabro.answer_next(status, raw, headers)
    report = await bot.alerter.cycle()
    assert report.skipped == "fabro"
    assert not bot.fabro.reachable or status == 302  # five recent calls: the last one failed


async def test_a_response_over_the_cap_is_a_fabro_error(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    bot = await start_bot(fabro_max_response_bytes=4096)
    fabro.add(*[make_run("failed", title="x" * 500) for _ in range(20)])
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        reply = await user.reply((await user.command("failed"))[2])
    assert "FABRO_MAX_RESPONSE_BYTES" in reply["text"]


async def test_an_event_line_over_the_cap_is_a_fabro_error_and_the_stream_reconnects(
    start_bot: StartBot, fabro: FakeFabro, tmp_path: Path
) -> None:
    bot = await start_bot(
        schedule_alerts=True,
        alert_channel=CHANNEL,
        fabro_max_event_bytes=2048,
        database_url=f"sqlite:///{tmp_path}/s.db",
    )
    await wait_for(lambda: bot.live is not None and bot.live.connected, timeout=10)
    fabro.answer_next(
        200, b"data: " + b"x" * 10_000 + b"\n\n", {"Content-Type": "text/event-stream"}, path_prefix="/api/v1/attach"
    )
    live = bot.live
    assert live is not None
    connections = fabro.stream_connections
    fabro.drop_streams()
    await wait_for(lambda: fabro.stream_connections > connections and live.connected, timeout=15)


def poisoned(run: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    run[field] = value
    return run


async def test_poison_data_costs_its_own_card_and_every_other_alert_still_goes_out(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    bot: Bot = await start_bot(alert_channel=CHANNEL, alert_pace=0.0, alert_digest_threshold=20)
    await bot.alerter.cycle()
    fabro.breaks_contract = True  # on purpose, from here on: what Fabro must never send
    # A blocked run whose question text is null, and an event whose name is null.
    odd = make_run("running", title="Odd question")
    fabro.add(odd)
    fabro.ask(odd["id"], {"id": "q-null", "text": None, "question_type": "yes_no", "options": None})
    fabro.events[odd["id"]].append({"seq": 99, "event": None, "properties": None, "run_id": odd["id"]})
    # Runs whose fields arrive null or in a shape nobody documented.
    broken = [
        poisoned(make_run("running", title="Bad billing"), "billing", "lots"),
        poisoned(make_run("running", title="Bad labels"), "labels", ["a", "b"]),
        poisoned(make_run("running", title="Bad timestamps"), "timestamps", {"created_at": "yesterday"}),
        poisoned(make_run("running", title="Bad workflow"), "workflow", 7),
    ]
    fabro.add(*broken)
    for run in broken:
        fabro.fail(run["id"], "boom")
    unreadable = make_run("running", title="No id")
    fabro.add(unreadable)
    fabro.fail(unreadable["id"])
    unreadable["id"] = None  # listed, but without an id: it cannot be read at all
    fine = make_run("running", title="Plain failure")
    fabro.add(fine)
    fabro.fail(fine["id"], "plain")
    with caplog.at_level(logging.WARNING):
        await bot.alerter.cycle()
        await bot.alerter.cycle()
    keys = set(slack.alert_keys(CHANNEL))
    assert fabro.failed_key(fine["id"]) in keys
    assert {fabro.failed_key(r["id"]) for r in broken} <= keys  # drawn with what could be read
    assert f"question:{odd['id']}:q-null" in keys
    assert "ignored unreadable billing" in caplog.text and "Run " + broken[0]["id"] in caplog.text
    assert not [a for r in broken for a in await bot.store.alerts_for_run(r["id"]) if a.state.value == "claimed"]


_text = st.text(max_size=300) | st.sampled_from(
    ["<!channel>", "<@U123>", "*bold*", "a|b", "> quote", "&amp;", "\n" * 5]
)
_junk: st.SearchStrategy[Any] = (
    st.none() | st.integers() | st.booleans() | _text | st.lists(st.integers(), max_size=3) | st.just({})
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(run_examples()),
    field=st.sampled_from(sorted(make_run("running"))),
    junk=_junk,
    title=_text,
    question=st.sampled_from(question_examples()),
    qtext=_text,
)
def test_any_run_fabro_could_send_renders_within_slacks_limits_without_a_mention(
    base: dict[str, Any], field: str, junk: Any, title: str, question: dict[str, Any], qtext: str
) -> None:
    raw = dict(base, title=title)
    raw[field] = junk
    try:
        run = Run.model_validate(raw)
    except Exception:  # an unreadable id: the client skips it (tested above)
        return
    q = Question.model_validate({**question, "text": qtext})
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    for message in (
        run_detail_message(run, now=now),
        failed_alert(run, now=now, failure=None, web_base=None),
        question_alert(run, q, now=now, asked_at=None, web_base=None),
        approval_alert(run, now=now, web_base=None),
    ):
        assert problems(message) == []
        for text in [message["text"], *mrkdwn_texts(message["blocks"])]:  # plain_text cannot ping
            assert "<!channel>" not in text and "<@U123>" not in text


def mrkdwn_texts(value: Any) -> list[str]:
    """Every mrkdwn text object's text, anywhere in blocks."""
    found: list[str] = []
    if isinstance(value, dict):
        if value.get("type") == "mrkdwn" and isinstance(value.get("text"), str):
            found.append(value["text"])
        for item in value.values():
            if isinstance(item, dict | list):
                found += mrkdwn_texts(item)
    elif isinstance(value, list):
        for item in value:
            found += mrkdwn_texts(item)
    return found
