"""`/runs` through the real HTTP endpoint: signed requests in, response_url posts out."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest

from tests.conftest import SlackUser, sign
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import failed_event, make_run
from tests.fakes.slack import FakeSlack


async def test_a_listing_is_acknowledged_at_once_and_answered_by_response_url(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    fabro.add(make_run("blocked", title="Needs an answer"), make_run("running", title="Busy"))
    status, ack, response_url = await user.command("blocked")
    assert status == 200
    assert ack == ""
    reply = await user.reply(response_url)
    assert reply["response_type"] == "ephemeral"
    text = json.dumps(reply["blocks"], ensure_ascii=False)
    assert "Needs an answer" in text and "Busy" not in text
    assert ("status", "blocked") in fabro.calls("/api/v1/runs")[0].query
    assert slack.violations == []


async def test_the_query_sent_to_fabro_carries_sort_direction_and_paging(user: SlackUser, fabro: FakeFabro) -> None:
    fabro.add(make_run("failed"))
    _, _, response_url = await user.command("failed sort:elapsed asc limit:5 page:3")
    await user.reply(response_url)
    query = fabro.calls("/api/v1/runs")[0].query
    assert query == [
        ("status", "failed"),
        ("sort", "elapsed"),
        ("direction", "asc"),
        ("page[limit]", "5"),
        ("page[offset]", "10"),
    ]


async def test_a_typo_is_answered_in_the_ack_and_never_reaches_fabro(user: SlackUser, fabro: FakeFabro) -> None:
    status, ack, _ = await user.command("blokced")
    assert status == 200
    body = json.loads(ack)
    assert body["response_type"] == "ephemeral"
    assert "Did you mean `blocked`?" in json.dumps(body, ensure_ascii=False)
    assert fabro.requests == []


async def test_an_empty_command_shows_help(user: SlackUser, fabro: FakeFabro) -> None:
    _, ack, _ = await user.command("")
    assert "Examples" in ack
    assert fabro.requests == []


async def test_a_run_id_gets_a_detail_card_with_the_failure_message(user: SlackUser, fabro: FakeFabro) -> None:
    run = make_run("failed", title="Add dark mode")
    fabro.add(run)
    fabro.events[run["id"]] = [failed_event(run["id"], "Stage 'verify' failed after 4 attempts")]
    _, ack, response_url = await user.command(run["id"].lower())
    assert ack == ""
    reply = await user.reply(response_url)
    text = json.dumps(reply["blocks"], ensure_ascii=False)
    assert "Stage 'verify' failed after 4 attempts" in text
    assert fabro.calls(f"/api/v1/runs/{run['id']}")
    assert fabro.calls(f"/api/v1/runs/{run['id']}/events")[0].query == [("order", "desc"), ("limit", "100")]


async def test_a_prefix_is_resolved(user: SlackUser, fabro: FakeFabro) -> None:
    run = make_run("running", title="Prefix me")
    fabro.add(run)
    _, _, response_url = await user.command(run["id"][:12])
    reply = await user.reply(response_url)
    assert "Prefix me" in json.dumps(reply["blocks"], ensure_ascii=False)
    assert fabro.calls("/api/v1/runs/resolve")[0].query == [("selector", run["id"][:12])]


async def test_an_unknown_prefix_says_no_run_matches(user: SlackUser, fabro: FakeFabro) -> None:
    _, _, response_url = await user.command("01ZZZZZZ")
    reply = await user.reply(response_url)
    assert "No run matches `01ZZZZZZ`" in reply["text"] or "No run matches" in json.dumps(
        reply["blocks"], ensure_ascii=False
    )


async def test_next_replaces_the_message_with_the_following_page(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    fabro.add(*[make_run("failed", title=f"Run {i:02d}") for i in range(25)])
    _, _, response_url = await user.command("failed limit:10")
    first = await user.reply(response_url)
    paging = next(b for b in first["blocks"] if b.get("block_id") == "runs:paging")
    next_button = next(e for e in paging["elements"] if e["action_id"] == "runs_page:next")
    status, _ack, click_url = await user.click({"action_id": next_button["action_id"], "value": next_button["value"]})
    assert status == 200
    second = await user.reply(click_url)
    assert second["replace_original"] is True
    assert "showing 11–20" in json.dumps(second["blocks"], ensure_ascii=False)
    assert fabro.calls("/api/v1/runs")[1].query[-1] == ("page[offset]", "10")
    assert slack.violations == []


async def test_a_forged_paging_value_is_refused_kindly(user: SlackUser, fabro: FakeFabro) -> None:
    status, _, click_url = await user.click({"action_id": "runs_page:next", "value": '{"v":1,"s":["nope"]}'})
    assert status == 200
    reply = await user.reply(click_url)
    assert "no longer works" in reply["text"]
    assert fabro.requests == []


async def test_link_buttons_are_acknowledged(user: SlackUser) -> None:
    status, _, _ = await user.click({"action_id": "runs_link:web", "url": "https://fabro.example.com/runs/x"})
    assert status == 200


async def test_a_bad_signature_gets_401(user: SlackUser, fabro: FakeFabro) -> None:
    body, _ = user.command_body("blocked")
    headers = sign(body)
    headers["X-Slack-Signature"] = "v0=" + "0" * 64
    status, _ = await user.post(body, headers)
    assert status == 401
    assert fabro.requests == []


async def test_a_timestamp_older_than_five_minutes_gets_401(user: SlackUser, fabro: FakeFabro) -> None:
    body, _ = user.command_body("blocked")
    status, _ = await user.post(body, sign(body, timestamp=int(time.time()) - 301))
    assert status == 401
    assert fabro.requests == []


async def test_ssl_check_is_answered(user: SlackUser) -> None:
    status, _ = await user.post(urlencode({"ssl_check": "1", "token": "x"}), {"X-Slack-Signature": "v0=bad"})
    assert status == 200


async def test_healthz_answers(user: SlackUser) -> None:
    async with user.session.get(user.url.replace("/slack/events", "/healthz")) as response:
        assert response.status == 200
        assert (await response.json())["ok"] is True


async def test_a_response_url_off_slacks_hosts_is_never_posted_to_and_the_bot_keeps_serving(
    user: SlackUser, fabro: FakeFabro, caplog: pytest.LogCaptureFixture
) -> None:
    fabro.add(make_run("failed", title="Second try"))
    body, _ = user.command_body("failed")
    body = body.replace("response_url=http", "response_url=http%3A%2F%2F127.0.0.1%3A9%2Fgone&x=http")
    status, _ = await user.post(body)
    assert status != 500
    assert "dropped a request: its response_url is not Slack's" in caplog.text
    assert not fabro.calls("/api/v1/runs")  # nothing was done for it
    _, _, response_url = await user.command("failed")
    assert "Second try" in json.dumps((await user.reply(response_url))["blocks"])


async def test_parent_takes_a_prefix_and_sends_fabro_the_full_id(user: SlackUser, fabro: FakeFabro) -> None:
    parent = make_run("running", title="Parent", run_id="01KPARENT" + "0" * 16 + "Z")
    children = [make_run("running", title=f"Child {i}", parent_id=parent["id"]) for i in range(2)]
    fabro.add(parent, *children, make_run("running", title="Stranger"))
    _, _, url = await user.command("parent:01kpar")
    reply = await user.reply(url)
    assert "Child 0" in json.dumps(reply) and "Child 1" in json.dumps(reply) and "Stranger" not in json.dumps(reply)
    [listing] = [c for c in fabro.calls("/api/v1/runs") if any(k == "parent_id" for k, _ in c.query)]
    assert ("parent_id", parent["id"]) in listing.query  # never a prefix: Fabro answers a plain-text 400


async def test_an_unknown_or_ambiguous_parent_prefix_is_told_like_a_run_lookup(
    user: SlackUser, fabro: FakeFabro
) -> None:
    fabro.add(make_run("running"), make_run("running"))
    _, _, url = await user.command("parent:0ZZZZ")
    assert "No run matches 0ZZZZ." in (await user.reply(url))["text"]
    common = next(iter(fabro.runs))[:6]
    _, _, url = await user.command(f"parent:{common}")
    assert f"{common} is the start of 2 runs" in (await user.reply(url))["text"]
    assert not [c for c in fabro.calls("/api/v1/runs") if any(k == "parent_id" for k, _ in c.query)]


async def test_an_ambiguous_prefix_names_the_runs_it_could_be(user: SlackUser, fabro: FakeFabro) -> None:
    first = make_run("running", title="Add rate limiting", run_id="01KAMBIG" + "1" * 17 + "A")
    second = make_run("failed", title="Add dark mode", run_id="01KAMBIG" + "2" * 17 + "B")
    fabro.add(first, second, make_run("running", title="Unrelated"))
    _, _, url = await user.command("01kambig")
    text = (await user.reply(url))["text"]
    assert "01kambig is the start of 2 runs" in text and "Use more of the id" in text
    assert "01KAMBIG1111 Add rate limiting" in text and "01KAMBIG2222 Add dark mode" in text
    assert "Unrelated" not in text and "No run matches" not in text


async def test_a_prefix_fabro_resolves_by_workflow_name_is_not_taken_for_a_run(
    user: SlackUser, fabro: FakeFabro
) -> None:
    """GET /runs/resolve falls back to a workflow name: the run it answers must start with the prefix."""
    run = make_run("running", title="Named")
    run["workflow"]["slug"] = "9lives"
    fabro.add(run)
    _, _, url = await user.command("9lives")
    assert "No run matches 9lives." in (await user.reply(url))["text"]
