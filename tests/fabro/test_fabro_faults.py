"""When Fabro is down, slow, or refuses the token, people get a clear message, never silence."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest

from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroConflict, FabroNotFound, FabroRejected, FabroUnauthorized, FabroUnavailable
from bot.fabro.filters import RunFilter
from tests.conftest import SlackUser, StartBot
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack


async def test_a_503_is_retried_and_the_user_never_notices(user: SlackUser, fabro: FakeFabro) -> None:
    fabro.add(make_run("blocked", title="Still here"))
    fabro.fail_next(503, count=2)
    _, _, response_url = await user.command("blocked")
    reply = await user.reply(response_url)
    assert "Still here" in json.dumps(reply["blocks"])
    assert len(fabro.calls("/api/v1/runs")) == 3


async def test_fabro_down_for_good_yields_a_message_with_fabros_own_request_id(
    user: SlackUser, fabro: FakeFabro
) -> None:
    """Fabro ignores the id the bot sends and issues its own: that is the one people can look up."""
    fabro.fail_next(503, count=10)
    _, _, response_url = await user.command("blocked")
    reply = await user.reply(response_url)
    last = fabro.calls("/api/v1/runs")[-1]
    assert "could not be reached" in reply["text"]
    assert f"request id {last.request_id}" in reply["text"]
    assert last.headers["x-request-id"] not in reply["text"] and "bot request id" not in reply["text"]
    assert "Traceback" not in json.dumps(reply)


async def test_fabro_hanging_past_the_timeout_yields_did_not_answer(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    bot = await start_bot(fabro_timeout_seconds=0.5)
    fabro.hang_next(3.0)
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        status, ack, response_url = await user.command("failed")
        assert status == 200 and ack == ""
        reply = await user.reply(response_url, timeout=5)
    # No answer came back, so the only id is the bot's own: it says so, and where to find it.
    own = fabro.calls("/api/v1/runs")[0].headers["x-request-id"]
    assert (
        reply["text"]
        == f"Fabro did not answer in 0.5 s — bot request id {own}, in the bot's logs. Try again in a moment."
    )


async def test_a_refused_token_says_so_without_showing_it(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    bot = await start_bot(fabro_api_token="fabro_dev_" + "cd" * 32)
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        _, _, response_url = await user.command("failed")
        reply = await user.reply(response_url)
    assert "refused this bot's API token" in reply["text"]
    assert "cd" * 32 not in json.dumps(reply)
    assert fabro.token not in json.dumps(reply)


# -- the client on its own, against the same fake ---------------------------------------


@pytest.fixture
async def client(fabro: FakeFabro) -> AsyncIterator[FabroClient]:
    async with FabroClient(fabro.url, fabro.token, timeout=2.0) as c:
        yield c


async def test_missing_and_wrong_tokens_are_unauthorized_with_fabros_code(fabro: FakeFabro) -> None:
    async with FabroClient(fabro.url, "", timeout=2) as anonymous:
        with pytest.raises(FabroUnauthorized) as missing:
            await anonymous.list_runs(RunFilter())
    assert missing.value.code is None and missing.value.detail == "Authentication required."
    async with FabroClient(fabro.url, "wrong", timeout=2) as wrong:
        with pytest.raises(FabroUnauthorized) as invalid:
            await wrong.list_runs(RunFilter())
    assert invalid.value.code == "access_token_invalid"
    assert invalid.value.request_id


async def test_a_plain_text_400_becomes_rejected_with_fabros_words(client: FabroClient) -> None:
    with pytest.raises(FabroRejected) as error:
        await client.list_runs(RunFilter(statuses=("sleeping",)))
    assert "unknown variant `sleeping`" in error.value.detail
    assert error.value.status == 400


async def test_an_unknown_run_is_not_found(client: FabroClient) -> None:
    with pytest.raises(FabroNotFound):
        await client.get_run("01ZZZZZZZZZZZZZZZZZZZZZZZZ")


async def test_an_ambiguous_prefix_is_rejected(client: FabroClient, fabro: FakeFabro) -> None:
    fabro.add(make_run(run_id="01KAAAAAAAAAAAAAAAAAAAAAA1"), make_run(run_id="01KAAAAAAAAAAAAAAAAAAAAAA2"))
    with pytest.raises(FabroRejected) as error:
        await client.find_run("01KAAA")
    assert "ambiguous" in error.value.detail


async def test_a_json_409_is_a_conflict(client: FabroClient, fabro: FakeFabro) -> None:
    fabro.fail_next(409)
    with pytest.raises(FabroConflict) as error:
        await client.list_runs(RunFilter())
    assert error.value.status == 409 and error.value.request_id


async def test_connection_refused_is_unavailable_after_retries() -> None:
    async with FabroClient("http://127.0.0.1:9", "t", timeout=2, retries=2) as dead:
        with pytest.raises(FabroUnavailable) as error:
            await dead.list_runs(RunFilter())
    assert error.value.timed_out_after is None
    assert error.value.request_id


async def test_the_whole_call_is_bounded_even_when_every_attempt_is_slow(fabro: FakeFabro) -> None:
    fabro.hang_next(5, count=5)
    async with FabroClient(fabro.url, fabro.token, timeout=0.4) as slow:
        with pytest.raises(FabroUnavailable) as error:
            await slow.list_runs(RunFilter())
    assert error.value.timed_out_after == 0.4


async def test_writes_are_not_retried(fabro: FakeFabro) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, text="restarting")

    async with FabroClient("http://fabro.test", "t", transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(FabroUnavailable):
            await c._json("POST", "/runs/x/retry", body={})
    assert len(calls) == 1


async def test_one_malformed_run_in_a_list_costs_one_card() -> None:
    good = make_run("running", title="Fine")
    body = {"data": [good, {"title": "no id, not a run"}, "junk"], "meta": {"has_more": False, "total": 3}}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=body))
    async with FabroClient("http://fabro.test", "t", transport=transport) as c:
        page = await c.list_runs(RunFilter())
    assert [r.title for r in page.data] == ["Fine"]
    assert page.unreadable == 2


async def test_an_error_page_that_echoes_the_request_never_shows_the_token(user: SlackUser, fabro: FakeFabro) -> None:
    echo = f"400 Bad Request: Authorization: Bearer {fabro.token} (sent to /api/v1/runs) xoxb-123456789-abcdef"
    fabro.fail_next(400, text=echo)
    _, _, url = await user.command("failed")
    reply = await user.reply(url)
    assert "Fabro refused that request" in reply["text"]
    assert fabro.token not in json.dumps(reply) and "xoxb-123456789" not in json.dumps(reply)
    assert "[redacted]" in reply["text"]
