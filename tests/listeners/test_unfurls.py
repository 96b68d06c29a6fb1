"""Links to runs pasted in a channel unfurl into a compact card; nothing else does, and nothing fails loudly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.blocks.limits import problems
from bot.core.links import hosts_of, runs_linked
from tests.conftest import SlackUser, event_body, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack

WEB = "https://fabro.example.com"


def link_shared(urls: list[str], *, composer: bool = False) -> str:
    event: dict[str, Any] = {
        "type": "link_shared",
        "channel": "C0TEAM",
        "user": "U123ADA",
        "message_ts": "1795870000.000100",
        "links": [{"domain": url.split("/")[2], "url": url} for url in urls],
    }
    if composer:
        event |= {"unfurl_id": "C0TEAM.1795870000.000100.abc", "source": "composer", "channel": "COMPOSER"}
    return event_body(event)


def test_only_links_to_runs_on_fabros_hosts_are_picked_and_at_most_five() -> None:
    hosts = hosts_of(WEB, "http://fabro.internal:8080")
    run_id = "01KJW4MG800000000000000004"
    links = [
        {"url": f"{WEB}/runs/{run_id}"},
        {"url": f"{WEB}/runs/{run_id}"},  # the same link twice: once
        {"url": f"https://evil.example.com/runs/{run_id}"},
        {"url": f"{WEB}/workflows/implement"},
        {"url": f"http://fabro.internal:8080/runs/{run_id.lower()}/stages"},
        {"url": "javascript:alert(1)"},
        "not a link",
        {"url": None},
        *[{"url": f"{WEB}/runs/01KJW4MG80000000000000000{i}"} for i in range(5, 10)],
    ]
    found = runs_linked(links, hosts)
    assert found[:2] == [
        (f"{WEB}/runs/{run_id}", run_id),
        (f"http://fabro.internal:8080/runs/{run_id.lower()}/stages", run_id),
    ]
    assert len(found) == 5


async def test_a_pasted_run_link_unfurls_into_a_compact_card_without_controls_or_mentions(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("blocked", title="<!channel> ship it")
    run["current_question"] = {"id": "q", "text": "Deploy now, <@U999>?", "question_type": "yes_no"}
    run["pull_request"] = {
        "owner": "demo",
        "repo": "api",
        "number": 7,
        "html_url": "https://github.com/demo/api/pull/7",
    }
    fabro.add(run)
    url = f"{WEB}/runs/{run['id']}"
    status, _ = await user.post(link_shared([url]), content_type="application/json")
    assert status == 200
    await wait_for(lambda: slack.calls_to("chat.unfurl"))
    [call] = slack.calls_to("chat.unfurl")
    assert call.args["channel"] == "C0TEAM" and call.args["ts"] == "1795870000.000100"
    unfurls = call.args["unfurls"] if isinstance(call.args["unfurls"], dict) else json.loads(call.args["unfurls"])
    card = unfurls[url]
    shown = json.dumps(card)
    assert "ship it" in shown and "Deploy now" in shown and "Pull request #7" in shown
    assert "<!channel>" not in shown and "<@U999>" not in shown
    assert not [b for b in card["blocks"] if b["type"] == "actions"]  # an unfurl never acts
    assert problems({"text": "x", **card}) == []


async def test_several_links_unfurl_together_and_an_unknown_run_is_left_alone(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    runs = [make_run("running", title=f"Run {i}") for i in range(2)]
    fabro.add(*runs)
    unknown = f"{WEB}/runs/01KZZZZZZZZZZZZZZZZZZZZZZZ"
    urls = [f"{WEB}/runs/{r['id']}" for r in runs] + [unknown]
    await user.post(link_shared(urls), content_type="application/json")
    await wait_for(lambda: slack.calls_to("chat.unfurl"))
    [call] = slack.calls_to("chat.unfurl")
    unfurls = call.args["unfurls"] if isinstance(call.args["unfurls"], dict) else json.loads(call.args["unfurls"])
    assert set(unfurls) == set(urls[:2])


@pytest.mark.parametrize("composer", [False, True])
async def test_fabro_down_leaves_links_as_they_are_and_says_nothing_in_the_channel(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack, composer: bool
) -> None:
    run = make_run("running")
    fabro.add(run)
    fabro.fail_next(503, count=10)
    status, _ = await user.post(
        link_shared([f"{WEB}/runs/{run['id']}"], composer=composer), content_type="application/json"
    )
    assert status == 200
    await wait_for(lambda: len(fabro.requests) >= 3)
    assert slack.calls_to("chat.unfurl") == [] and slack.posts() == [] and slack.calls_to("chat.postEphemeral") == []


async def test_a_link_typed_in_the_composer_is_unfurled_by_its_unfurl_id(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("running")
    fabro.add(run)
    await user.post(link_shared([f"{WEB}/runs/{run['id']}"], composer=True), content_type="application/json")
    await wait_for(lambda: slack.calls_to("chat.unfurl"))
    [call] = slack.calls_to("chat.unfurl")
    assert call.args["source"] == "composer" and call.args["unfurl_id"].startswith("C0TEAM.") and "ts" not in call.args
