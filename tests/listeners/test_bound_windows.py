"""Windows and confirmations are bound on the server: a submission or a confirm click is acted on
only when the bot opened that window (or showed that confirmation) for the same person, for the same
run or automation, less than an hour ago. Everything here goes through signed requests to the bot's
HTTP endpoint; Fabro must receive nothing from a refused one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from bot.app import Bot
from bot.blocks.routing import STEER_MODAL, ModalContext, Target, encode_modal
from tests.conftest import SlackUser, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack

ADA, BOB = "U123ADA", "U456BOB"
NOT_YOURS = "not opened for you"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def bot(start_bot: Callable[..., Any], clock: Clock, tmp_path: Any) -> Bot:
    started: Bot = await start_bot(clock=clock, database_url=f"sqlite:///{tmp_path}/bound.db")
    return started


@pytest.fixture
async def user(bot: Bot, slack: FakeSlack) -> AsyncIterator[SlackUser]:
    async with aiohttp.ClientSession() as session:
        yield SlackUser.of(bot, slack, session)


def steer_state(words: str) -> dict[str, Any]:
    return {"steer_instruction": {"steer_instruction": {"type": "plain_text_input", "value": words}}}


def posts(fabro: FakeFabro) -> list[str]:
    return [r.path for r in fabro.calls(method="POST")]


async def open_from_card(user: SlackUser, slack: FakeSlack, run_id: str, action_id: str) -> dict[str, Any]:
    """`/runs <id>`, then the card's button that opens a window; returns the window the bot opened."""
    _, _, url = await user.command(run_id)
    card = await user.reply(url)
    block, element = next(
        (b, e) for b in card["blocks"] if b["type"] == "actions" for e in b["elements"] if e["action_id"] == action_id
    )
    opened = len(slack.views)
    await user.click({"action_id": action_id, "value": element.get("value")}, block_id=block["block_id"])
    await wait_for(lambda: len(slack.views) > opened)
    return slack.views[-1]


def refused(ack: str) -> bool:
    """The window was turned into the sentence saying nothing was done."""
    answer = json.loads(ack) if ack else {}
    return answer.get("response_action") == "update" and NOT_YOURS in json.dumps(answer.get("view"))


async def test_a_forged_steer_submission_without_a_window_reaches_nothing(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("running", title="Refactor billing")
    fabro.add(run)
    # The right shape, the right callback id and a well-formed context: but the bot never opened it.
    forged = {
        "type": "modal",
        "callback_id": STEER_MODAL,
        "private_metadata": encode_modal(ModalContext(Target(run["id"]))),
    }
    status, ack = await user.submit_view(forged, {}, state=steer_state("rm -rf /"))
    assert status == 200 and refused(ack)
    # A nonce made up in the right format is no better.
    made_up = ModalContext(Target(run["id"]), nonce="ab" * 16)
    _, ack = await user.submit_view({**forged, "private_metadata": encode_modal(made_up)}, {}, state=steer_state("x"))
    assert refused(ack)
    assert posts(fabro) == []


async def test_a_window_opened_for_one_person_cannot_be_submitted_by_another(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("succeeded", title="Add rate limiting")
    fabro.add(run)
    fabro.open_pull_request(run["id"])
    how = await open_from_card(user, slack, run["id"], "steer:merge")  # Ada opens Merge…
    state = {"merge_method": {"merge_method": {"type": "radio_buttons", "selected_option": {"value": "squash"}}}}
    _, ack = await user.submit_view(how, {}, state=state, user=BOB)  # Bob submits her window
    assert refused(ack)
    _, ack = await user.submit_view(how, {}, state=state)  # Ada's own goes on to the second step…
    confirm = json.loads(ack)["view"]
    assert confirm["callback_id"] == "steer_merge_confirm"
    _, ack = await user.submit_view(confirm, {}, user=BOB)  # …which Bob cannot submit either
    assert refused(ack)
    assert posts(fabro) == []
    await user.submit_view(confirm, {})  # Ada can
    await wait_for(lambda: posts(fabro) == [f"/api/v1/runs/{run['id']}/pull_request/merge"])


async def test_a_window_for_one_run_cannot_act_on_another(user: SlackUser, fabro: FakeFabro, slack: FakeSlack) -> None:
    mine, other = make_run("running", title="Mine"), make_run("running", title="Other")
    fabro.add(mine, other)
    window = await open_from_card(user, slack, mine["id"], "steer:steer_text")
    context = json.loads(window["private_metadata"])
    moved = {**window, "private_metadata": json.dumps({**context, "r": other["id"]})}
    _, ack = await user.submit_view(moved, {}, state=steer_state("stop"))
    assert refused(ack) and posts(fabro) == []


async def test_a_window_left_open_past_its_hour_is_refused(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack, clock: Clock
) -> None:
    run = make_run("running", title="Refactor billing")
    fabro.add(run)
    window = await open_from_card(user, slack, run["id"], "steer:steer_text")
    clock.now += timedelta(hours=1, minutes=1)
    _, ack = await user.submit_view(window, {}, state=steer_state("use the staging db"))
    assert refused(ack) and posts(fabro) == []


async def test_a_window_submitted_in_time_by_its_person_acts(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack, clock: Clock
) -> None:
    run = make_run("running", title="Refactor billing")
    fabro.add(run)
    window = await open_from_card(user, slack, run["id"], "steer:steer_text")
    clock.now += timedelta(minutes=59)
    _, ack = await user.submit_view(window, {}, state=steer_state("use the staging db"))
    assert not refused(ack)
    await wait_for(lambda: posts(fabro) == [f"/api/v1/runs/{run['id']}/steer"])


async def test_a_start_confirmation_is_for_the_person_who_asked(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack, clock: Clock
) -> None:
    fabro.add_automation("nightly-deps", "Nightly dependency bumps")
    _, _, url = await user.command("start nightly-deps")
    card = await user.reply(url)
    [go] = [e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"] if e["action_id"] == "start:go"]
    action = {"action_id": "start:go", "value": go["value"]}
    _, _, bobs = await user.click(action, block_id="start", user=BOB)  # Bob replays Ada's Start
    told = await user.reply(bobs)
    assert "nothing was started" in told["text"] and posts(fabro) == []
    # A Start value made up with another automation is refused the same way.
    forged = {**json.loads(go["value"]), "a": "other-automation"}
    _, _, again = await user.click({"action_id": "start:go", "value": json.dumps(forged)}, block_id="start")
    assert "nothing was started" in (await user.reply(again))["text"] and posts(fabro) == []
    clock.now += timedelta(hours=2)  # and Ada's own, pressed hours later
    _, _, late = await user.click(action, block_id="start")
    assert "nothing was started" in (await user.reply(late))["text"] and posts(fabro) == []


async def test_closing_a_pull_request_asks_in_a_window_only_its_opener_can_submit(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("succeeded", title="Add rate limiting")
    fabro.add(run)
    fabro.open_pull_request(run["id"])
    window = await open_from_card(user, slack, run["id"], "steer:close_pr")
    _, ack = await user.submit_view(window, {}, user=BOB)
    assert refused(ack) and posts(fabro) == []
    forged = {**window, "private_metadata": encode_modal(ModalContext(Target(run["id"])))}
    _, ack = await user.submit_view(forged, {})
    assert refused(ack) and posts(fabro) == []
    await user.submit_view(window, {})
    await wait_for(lambda: posts(fabro) == [f"/api/v1/runs/{run['id']}/pull_request/close"])


async def test_a_confirmation_of_work_asked_for_in_a_conversation_is_for_the_person_who_asked(
    start_bot: Callable[..., Any], clock: Clock, fabro: FakeFabro, slack: FakeSlack, tmp_path: Any
) -> None:
    """`@bot <goal>` shows Ada a Start and an Edit…: Bob pressing them (or submitting her Edit window)
    is told kindly that nothing was started and Fabro hears nothing; so is Ada, hours later."""
    from tests.acting.test_work import confirmations, mention_event

    bot: Bot = await start_bot(clock=clock, repositories="acme/api", database_url=f"sqlite:///{tmp_path}/work.db")
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        await user.command("setup repo:acme/api")
        await user.post(mention_event("make the login test deterministic"), content_type="application/json")
        await wait_for(lambda: confirmations(slack))
        [card] = confirmations(slack)
        assert card["user"] == ADA
        shown = {e["action_id"]: e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]}

        async def press(action_id: str, who: str) -> dict[str, Any]:
            action = {"action_id": action_id, "value": shown[action_id]["value"]}
            _, _, url = await user.click(action, block_id="work:buttons", user=who)
            return await user.reply(url)

        for action_id in ("work:go", "work:edit"):  # Bob replays Ada's buttons
            told = await press(action_id, BOB)
            assert told["response_type"] == "ephemeral" and not told.get("replace_original")
            assert "This was not shown to you, or it was open too long: nothing was started." in told["text"]
        assert slack.views == []  # Bob's Edit… opened no window
        opened = len(slack.views)
        await user.click({"action_id": "work:edit", "value": shown["work:edit"]["value"]}, block_id="work:buttons")
        await wait_for(lambda: len(slack.views) > opened)  # Ada's does
        typed = {
            "work_goal": {"work_goal": {"type": "plain_text_input", "value": "drop the users table"}},
            "work_workflow": {"work_workflow": {"type": "static_select", "selected_option": {"value": "implement"}}},
        }
        _, ack = await user.submit_view(slack.views[-1], {}, state=typed, user=BOB)  # Bob submits her window
        answer = json.loads(ack)
        assert answer["response_action"] == "update" and "nothing was started" in json.dumps(answer["view"])
        clock.now += timedelta(hours=1, minutes=1)  # Ada's own Start, pressed after its hour
        assert "nothing was started" in (await press("work:go", ADA))["text"]
        assert posts(fabro) == []
