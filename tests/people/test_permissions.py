"""Who may do what, through signed requests: one rule per action class, least privilege by default,
a refusal that names the class and who may, and nothing sent to Fabro for a refused person."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Bot
from bot.config import Settings
from bot.core.keys import Verb
from bot.people.permissions import CLASS_OF, DEFAULT_RULES, ActionClass, effective_rules
from tests.conftest import SlackUser, StartBot, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack

OWNER, ADMIN, STRANGER, ONCALL = "U0OWNER", "U0ADMIN", "U0STRANGER", "U0ONCALL"
# The real defaults: every ALLOW_* unset (the test harness otherwise opens every class).
DEFAULTS: dict[str, Any] = {f"allow_{cls.value}": None for cls in ActionClass}
# What the `people` fixture gives: `await people(**settings)` is a person at a started bot.
People = Callable[..., Awaitable[SlackUser]]


@pytest.fixture
async def people(start_bot: StartBot, slack: FakeSlack, tmp_path: Path) -> AsyncIterator[People]:
    """`people(**settings)`: a bot with the default rules (plus `settings`), its runs owned by OWNER
    (the login `ada` is pinned to them), ADMIN a workspace admin."""
    slack.admins.add(ADMIN)
    async with aiohttp.ClientSession() as session:

        async def start(**settings: Any) -> SlackUser:
            values = {**DEFAULTS, "user_links": f"ada={OWNER}", "database_url": f"sqlite:///{tmp_path}/p.db"}
            bot: Bot = await start_bot(**{**values, **settings})
            return SlackUser.of(bot, slack, session)

        yield start


async def card_of(user: SlackUser, run_id: str) -> dict[str, Any]:
    _, _, url = await user.command(run_id, user=OWNER)
    return await user.reply(url)


async def press(user: SlackUser, card: dict[str, Any], action_id: str, who: str) -> str:
    found = [
        (b["block_id"], e)
        for b in card["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == action_id
    ]
    assert found, f"no {action_id} on the card"
    block_id, element = found[0]
    _, _, url = await user.click({"action_id": action_id, "value": element.get("value")}, block_id=block_id, user=who)
    return url


async def told(user: SlackUser, url: str) -> str:
    return str((await user.reply(url))["text"])


def mutations(fabro: FakeFabro) -> list[str]:
    return [r.path for r in fabro.calls(method="POST")]


def test_the_defaults_are_least_privilege() -> None:
    rules = effective_rules({})
    assert {cls: ",".join(sorted(rule.entries)) for cls, rule in rules.items()} == {
        ActionClass.ANSWER: "*",
        ActionClass.APPROVE: "admins,owner",
        ActionClass.OPERATE: "admins,owner",
        ActionClass.START: "admins",
        ActionClass.SHIP: "admins,owner",
        ActionClass.ROUTE: "admins",
    }
    assert DEFAULT_RULES[ActionClass.ANSWER] == "*"


def test_a_rule_naming_something_else_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="owner, admins or \\*"):
        Settings(_env_file=None, allow_ship="owner,@grace")


async def test_with_the_defaults_a_stranger_pressing_merge_is_refused_at_once_and_nothing_opens(
    people: People, fabro: FakeFabro, slack: FakeSlack
) -> None:
    user = await people()
    run = make_run("succeeded", title="Ship it")
    fabro.add(run)
    fabro.open_pull_request(run["id"])
    card = await card_of(user, run["id"])
    url = await press(user, card, "steer:merge", STRANGER)
    said = await told(user, url)
    assert (
        "You may not merge pull requests from Slack: ALLOW_SHIP allows only the run's owner and workspace admins"
        in said
    )
    assert slack.views == [] and mutations(fabro) == []


@pytest.mark.parametrize(("who", "allowed"), [(STRANGER, False), (OWNER, True), (ADMIN, True)])
async def test_retry_is_for_the_runs_owner_and_admins(
    people: People, fabro: FakeFabro, who: str, allowed: bool
) -> None:
    user = await people()
    run = make_run("failed", title="Flaky")
    fabro.add(run)
    url = await press(user, await card_of(user, run["id"]), "steer:retry", who)
    said = await told(user, url)
    if allowed:
        assert mutations(fabro) == [f"/api/v1/runs/{run['id']}/retry"]
    else:
        assert "ALLOW_OPERATE allows only the run's owner and workspace admins" in said
        assert mutations(fabro) == []


def test_every_verb_belongs_to_one_action_class() -> None:
    assert set(CLASS_OF) == set(Verb)
    assert CLASS_OF[Verb.RESUME_RUN] is CLASS_OF[Verb.RETRY] is ActionClass.OPERATE


@pytest.mark.parametrize(("who", "allowed"), [(STRANGER, False), (OWNER, True), (ADMIN, True)])
async def test_resume_is_for_the_runs_owner_and_admins_like_retry(
    people: People, fabro: FakeFabro, who: str, allowed: bool
) -> None:
    user = await people()
    run = make_run("failed", title="Flaky")
    fabro.add(run)
    fabro.checkpoint(run["id"])
    url = await press(user, await card_of(user, run["id"]), "steer:resume_run", who)
    said = await told(user, url)
    if allowed:
        assert mutations(fabro) == [f"/api/v1/runs/{run['id']}/start"]
    else:
        assert "You may not resume failed runs from Slack: ALLOW_OPERATE allows only the run's owner" in said
        assert mutations(fabro) == []


async def test_anyone_may_answer_a_question_by_default(people: People, fabro: FakeFabro) -> None:
    user = await people()
    run = make_run("blocked", title="Asks")
    fabro.add(run)
    fabro.ask(run["id"], {"id": "q-1", "text": "Deploy?", "question_type": "yes_no"})
    await press(user, await card_of(user, run["id"]), "steer:answer:0", STRANGER)
    await wait_for(lambda: mutations(fabro))
    assert mutations(fabro) == [f"/api/v1/runs/{run['id']}/questions/q-1/answer"]


async def test_a_user_group_in_a_rule_lets_its_members_act_and_nobody_else(
    people: People, fabro: FakeFabro, slack: FakeSlack
) -> None:
    slack.usergroups["S0ONCALL"] = [ONCALL]
    user = await people(allow_approve="S0ONCALL")
    run = make_run("pending", title="Child")
    fabro.add(run)
    card = await card_of(user, run["id"])
    said = await told(user, await press(user, card, "steer:approve", OWNER))  # the owner is not named any more
    assert "ALLOW_APPROVE allows only the members of <!subteam^S0ONCALL>" in said and mutations(fabro) == []
    await press(user, card, "steer:approve", ONCALL)
    await wait_for(lambda: mutations(fabro))
    assert mutations(fabro) == [f"/api/v1/runs/{run['id']}/approve"]


async def test_starting_runs_is_for_admins_by_default(people: People, fabro: FakeFabro, slack: FakeSlack) -> None:
    user = await people()
    fabro.add_automation("triage", "Triage new issues")
    for who in (STRANGER, ADMIN):
        _, _, url = await user.command("start triage", user=who)
        card = await user.reply(url)
        [button] = [e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"] if "Start" in str(e)]
        _, _, pressed = await user.click(
            {"action_id": button["action_id"], "value": button["value"]}, block_id="start:buttons", user=who
        )

        def answered(url: str = pressed) -> list[dict[str, Any]]:
            return slack.responses_to(url)

        await wait_for(answered)
        if who == STRANGER:
            assert "ALLOW_START allows only workspace admins" in slack.responses_to(pressed)[-1]["text"]
            assert mutations(fabro) == []
    assert mutations(fabro) == ["/api/v1/automations/triage/runs"]


async def test_routing_alerts_is_for_admins_by_default(people: People) -> None:
    user = await people()
    _, _, url = await user.command("subscribe failed", channel="C0TEAM", user=STRANGER)
    assert "ALLOW_ROUTE allows only workspace admins" in await told(user, url)
    _, _, url = await user.command("subscribe failed", channel="C0TEAM", user=ADMIN)
    assert (await user.reply(url))["response_type"] == "in_channel"


async def test_the_deprecated_action_allowlist_still_decides_what_it_covered(people: People, fabro: FakeFabro) -> None:
    user = await people(action_allowlist="U0BOSS")
    run = make_run("failed", title="Flaky")
    fabro.add(run)
    said = await told(user, await press(user, await card_of(user, run["id"]), "steer:retry", OWNER))
    assert "ACTION_ALLOWLIST allows only <@U0BOSS>" in said and mutations(fabro) == []


async def test_a_person_holds_at_most_a_quarter_of_a_channels_follows(people: People, fabro: FakeFabro) -> None:
    user = await people(follow_max=4)
    runs = [make_run("running", title=f"Run {i}") for i in range(3)]
    for run in runs:
        fabro.add(run)
    _, _, url = await user.command(f"follow {runs[0]['id']}", user=STRANGER)
    assert "Following run" in await told(user, url)
    _, _, url = await user.command(f"follow {runs[1]['id']}", user=STRANGER)
    assert "a quarter of its 4 (FOLLOW_MAX)" in await told(user, url)
    _, _, url = await user.command(f"follow {runs[1]['id']}", user=OWNER)  # someone else's share is free
    assert "Following run" in await told(user, url)
    _, _, url = await user.command(f"follow {runs[2]['id']}", user=STRANGER, channel="C0OTHER")  # counts per channel
    assert "Following run" in await told(user, url)


async def test_unfollowing_someone_elses_follow_needs_allow_operate(people: People, fabro: FakeFabro) -> None:
    user = await people()
    run = make_run("running", title="Watched")
    fabro.add(run)
    _, _, url = await user.command(f"follow {run['id']}", user=OWNER)
    assert "Following run" in await told(user, url)
    _, _, url = await user.command(f"unfollow {run['id']}", user=STRANGER)
    assert "ALLOW_OPERATE allows only the run's owner and workspace admins" in await told(user, url)
    _, _, url = await user.command(f"unfollow {run['id']}", user=ADMIN)
    assert "No longer following" in await told(user, url)


async def test_muting_a_channel_is_routing_but_muting_in_ones_own_dm_needs_nothing(
    people: Callable[..., Awaitable[SlackUser]], fabro: FakeFabro
) -> None:
    user = await people()
    run = make_run("blocked", title="Chatty")
    fabro.add(run)
    for words, what in (
        (f"mute {run['id']} 1h", "mute or unmute a run in a channel"),
        (f"unmute {run['id']}", "mute or unmute a run in a channel"),
        ("subscribe cost succeeded pr", "change where alerts are posted"),
    ):
        _, _, url = await user.command(words, channel="C0TEAM", user=STRANGER)
        refused = await told(user, url)
        assert what in refused and "ALLOW_ROUTE allows only workspace admins" in refused, words
    _, _, url = await user.command(f"mute {run['id']} 1h", channel="C0TEAM", user=ADMIN)
    assert (await user.reply(url))["response_type"] == "in_channel"
    _, _, url = await user.command(f"mute {run['id']} 1d", channel="D0STRANGER", user=STRANGER)
    assert "muted" in await told(user, url)
    _, _, url = await user.command("muted", channel="C0TEAM", user=STRANGER)  # reading is open to all
    assert run["id"] in json.dumps(await user.reply(url))
    assert mutations(fabro) == []
