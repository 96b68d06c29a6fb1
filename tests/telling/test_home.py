"""The Home tab end to end: `app_home_opened` as Slack sends it, the view published with
`views.publish`, its sections for a linked and an unlinked person, and republishing when what it
shows changed (at most once every 10 s per person)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.app import Bot
from bot.core.records import IndexedRun
from tests.acting.test_steering import question
from tests.conftest import SlackUser, StartBot, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run, user_principal
from tests.fakes.slack import FakeSlack

ADA, BOB = "U123ADA", "U456BOB"
NOW = datetime.now(UTC)


def by(login: str, **run: Any) -> dict[str, Any]:
    created_by = user_principal(login)
    return make_run("running", created_by=created_by, **run)


@pytest.fixture
async def bot(start_bot: StartBot, tmp_path: Path) -> Bot:
    started = await start_bot(alert_pace=0.0, user_links="octocat=U123ADA", database_url=f"sqlite:///{tmp_path}/h.db")
    await started.alerter.cycle()
    return started


@pytest.fixture
async def user(bot: Bot, slack: FakeSlack) -> AsyncIterator[SlackUser]:
    async with aiohttp.ClientSession() as session:
        yield SlackUser.of(bot, slack, session)


def sections(view: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in view["blocks"] if b["type"] == "header"]


def text(view: dict[str, Any]) -> str:
    return json.dumps(view["blocks"], ensure_ascii=False)


async def settled(bot: Bot) -> None:
    """Every open's publish has returned to the bot (Slack has the view before the bot hears back)."""
    await wait_for(lambda: all(v.published_at != float("-inf") for v in bot.home._viewers.values()))


async def opened(user: SlackUser, slack: FakeSlack, who: str) -> dict[str, Any]:
    slack.homes.pop(who, None)
    status, _ = await user.open_home(who)
    assert status == 200
    await wait_for(lambda: who in slack.homes)
    return slack.homes[who]


async def test_a_linked_person_sees_what_waits_on_them_and_their_runs(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    mine, theirs = by("octocat", title="Mine asks"), by("grace", title="Theirs asks")
    done = by("octocat", title="Mine failed")
    fabro.add(mine, theirs, done)
    fabro.ask(mine["id"], question("yes_no"))
    fabro.ask(theirs["id"], question("yes_no", qid="q-2"))
    fabro.fail(done["id"], "boom")
    await bot.alerter.cycle()  # the index learns the runs
    view = await opened(user, slack, ADA)
    assert sections(view) == ["Fabro runs", "Waiting on you", "Waiting on anyone", "Your runs"]
    said = text(view)
    on_you = said.index("Waiting on you")
    on_anyone = said.index("Waiting on anyone")
    yours = said.index("Your runs")
    assert on_you < said.index("Mine asks") < on_anyone < said.index("Theirs asks") < yours
    assert "Mine failed" in said[yours:] and "Theirs asks" not in said[yours:]
    assert "Open in Fabro" in said and slack.violations == []


async def test_an_unlinked_person_is_told_how_to_link_and_sees_what_waits_on_anyone(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    waiting = by("octocat", title="Someone's approval")
    fabro.add(waiting)
    fabro.request_approval(waiting["id"])
    view = await opened(user, slack, BOB)
    assert sections(view) == ["Fabro runs", "Waiting on anyone"]
    assert "/runs link" in text(view) and "Someone's approval" in text(view)


async def test_waiting_on_anyone_is_capped_oldest_first(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    start = datetime.now(UTC) - timedelta(hours=2)
    runs = [by("grace", title=f"Waiting {i:02d}", created=start + timedelta(minutes=i)) for i in range(20)]
    runs.reverse()  # Fabro's order, not the order they were made, decides
    fabro.add(*runs)
    for run in runs:
        fabro.request_approval(run["id"])
    said = text(await opened(user, slack, BOB))
    assert "and 12 more" in said
    assert "Waiting 00" in said and "Waiting 07" in said and "Waiting 08" not in said  # the oldest first
    assert slack.violations == []


async def test_home_is_republished_when_what_it_shows_changed_at_most_every_10_s(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    ticks = [1000.0]
    bot.home.monotonic = lambda: ticks[0]
    bot.home.recheck = 0.05
    run = by("octocat", title="Mine asks")
    fabro.add(run)
    fabro.ask(run["id"], question("yes_no"))
    await bot.alerter.cycle()
    assert "Mine asks" in text(await opened(user, slack, ADA))
    await settled(bot)
    fabro.answer(run["id"], "q-1", {"kind": "yes"})
    await bot.alerter.cycle()
    publishes = len(slack.calls_to("views.publish"))
    await asyncio.sleep(0.3)
    assert len(slack.calls_to("views.publish")) == publishes  # within 10 s of the last publish
    ticks[0] += 11
    await wait_for(lambda: "Nothing is waiting on you" in text(slack.homes[ADA]))
    ticks[0] += 11
    await bot.alerter.cycle()
    await asyncio.sleep(0.3)
    assert len(slack.calls_to("views.publish")) == publishes + 1  # nothing changed: nothing sent


async def test_when_fabro_is_down_home_still_opens_and_says_so(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    fabro.fail_next(503, 5, path_prefix="/api/v1/runs")
    view = await opened(user, slack, ADA)
    assert "did not answer" in text(view) and "Your runs" in sections(view)


async def click_in_home(user: SlackUser, view: dict[str, Any], action_id: str, who: str = ADA) -> int:
    """A block_actions payload as Slack sends it from a Home tab: a view container, no channel, no response_url."""
    [(block, element)] = [
        (b, e) for b in view["blocks"] if b["type"] == "actions" for e in b["elements"] if e["action_id"] == action_id
    ]
    payload = {
        "type": "block_actions",
        "user": {"id": who, "username": "ada", "name": "ada", "team_id": "T111"},
        "api_app_id": "A111",
        "token": "deprecated",
        "container": {"type": "view", "view_id": f"VH{who}"},
        "trigger_id": "123.456.abc",
        "team": {"id": "T111", "domain": "test"},
        "view": {"id": f"VH{who}", "type": "home", **view},
        "actions": [
            {
                "action_id": element["action_id"],
                "block_id": block["block_id"],
                "value": element.get("value"),
                "type": "button",
                "action_ts": "1700000001.000001",
            }
        ],
    }
    status, _ = await user.post(urlencode({"payload": json.dumps(payload)}))
    return status


async def test_answering_and_approving_from_home_work_and_home_updates(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    asks, approval = by("octocat", title="Mine asks"), by("octocat", title="Mine needs approval")
    fabro.add(asks, approval)
    fabro.ask(asks["id"], question("yes_no"))
    fabro.request_approval(approval["id"])
    await bot.alerter.cycle()
    view = await opened(user, slack, ADA)
    published = len(slack.calls_to("views.publish"))
    assert await click_in_home(user, view, "steer:answer:0") == 200
    await wait_for(lambda: len(slack.calls_to("views.publish")) > published)
    assert [r.body for r in fabro.calls(method="POST") if r.path.endswith("/answer")] == [{"kind": "yes"}]
    view = slack.homes[ADA]
    assert "Answered" in text(view) and "Mine asks" not in text(view).split("Waiting on anyone")[0]
    [(_, approve)] = [
        (b, e) for b in view["blocks"] if b["type"] == "actions" for e in b["elements"] if "approve" in e["action_id"]
    ]
    published = len(slack.calls_to("views.publish"))
    assert await click_in_home(user, view, approve["action_id"]) == 200
    await wait_for(lambda: len(slack.calls_to("views.publish")) > published)
    assert [r.path for r in fabro.calls(method="POST") if r.path.endswith("/approve")]
    assert "Nothing is waiting on you" in text(slack.homes[ADA]) and slack.violations == []


async def test_retrying_your_failed_run_from_home(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    failed = by("octocat", title="Mine failed")
    fabro.add(failed)
    fabro.fail(failed["id"], "boom")
    await bot.alerter.cycle()
    view = await opened(user, slack, ADA)
    published = len(slack.calls_to("views.publish"))
    assert await click_in_home(user, view, "steer:retry") == 200
    await wait_for(lambda: len(slack.calls_to("views.publish")) > published)
    assert [r.path for r in fabro.calls(method="POST") if r.path.endswith("/retry")] == [
        f"/api/v1/runs/{failed['id']}/retry"
    ]
    [retry] = [r for r in fabro.runs.values() if r.get("retried_from") == failed["id"]]
    # At once, before any alert cycle: the bot knows the run it made.
    assert f"Retried as run <https://fabro.example.com/runs/{retry['id']}|{retry['id']}>" in text(slack.homes[ADA])
    assert retry_buttons(slack.homes[ADA]) == []


def retry_buttons(view: dict[str, Any]) -> list[str]:
    """The block ids of Home's Retry controls (one per run offered)."""
    return [
        b["block_id"]
        for b in view["blocks"]
        if b["type"] == "actions" and any(e["action_id"] == "steer:retry" for e in b["elements"])
    ]


async def test_a_run_retried_in_fabro_shows_where_its_retry_is_instead_of_retry_on_home(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    """The alert poll learns the retry (made by someone else, in Fabro): the Home of the failed run's
    owner is republished with a link to it and no Retry, with no request to Fabro of its own."""
    ticks = [1000.0]
    bot.home.monotonic = lambda: ticks[0]
    failed = by("octocat", title="Mine failed")
    fabro.add(failed)
    fabro.fail(failed["id"], "boom")
    await bot.alerter.cycle()
    view = await opened(user, slack, ADA)
    assert len(retry_buttons(view)) == 1 and "Retried as" not in text(view)
    await settled(bot)
    ticks[0] += 11
    retry = fabro.retry(failed["id"], by("grace", title="Mine failed", created=datetime.now(UTC)))
    fabro.requests.clear()
    await bot.alerter.cycle()
    await wait_for(lambda: "Retried as" in text(slack.homes[ADA]))
    view = slack.homes[ADA]
    assert f"Retried as run <https://fabro.example.com/runs/{retry['id']}|{retry['id']}>" in text(view)
    assert retry_buttons(view) == [] and slack.violations == []
    # No look for the run's successors (a listing by creation, newest first) for Home: the poll told it.
    assert [
        r for r in fabro.calls("/api/v1/runs") if ("direction", "desc") in r.query and ("sort", "created_at") in r.query
    ] == []


async def test_a_retry_click_on_a_home_the_poll_had_not_caught_up_with_is_refused_and_home_shows_the_retry(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    """Retried in Fabro since the last poll: the click sends nothing, and the index learns the retry."""
    failed = by("octocat", title="Mine failed")
    fabro.add(failed)
    fabro.fail(failed["id"], "boom")
    await bot.alerter.cycle()
    view = await opened(user, slack, ADA)
    retry = fabro.retry(failed["id"], by("grace", title="Mine failed", created=datetime.now(UTC)))
    published = len(slack.calls_to("views.publish"))
    assert await click_in_home(user, view, "steer:retry") == 200
    await wait_for(lambda: len(slack.calls_to("views.publish")) > published)
    assert [r for r in fabro.calls(method="POST") if r.path.endswith("/retry")] == []
    said = text(slack.homes[ADA])
    assert "already retried" in said and f"runs/{retry['id']}|" in said
    assert retry_buttons(slack.homes[ADA]) == []


async def test_a_retry_learned_in_the_same_cycle_as_the_run_it_retried_still_marks_it(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    """Runs are read newest first: the retry is seen before the failed run the index does not hold yet."""
    failed = by("octocat", title="Failed and retried at once")
    fabro.add(failed)
    fabro.fail(failed["id"], "boom")
    retry = fabro.retry(failed["id"], by("octocat", title="Failed and retried at once", created=datetime.now(UTC)))
    await bot.alerter.cycle()
    entry = await bot.store.indexed_run(failed["id"])
    assert entry is not None and entry.retried_as == retry["id"]
    view = await opened(user, slack, ADA)
    assert retry_buttons(view) == [] and f"runs/{retry['id']}|" in text(view)


async def test_a_run_resumed_after_its_retry_that_fails_again_is_offered_retry_on_home_again(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    """The retry was of the first failure: resumed in place and failed again, the run is a new failure."""
    failed = by("octocat", title="Mine failed")
    fabro.add(failed)
    fabro.fail(failed["id"], "boom")
    retry = fabro.retry(failed["id"], by("grace", title="Mine failed", created=datetime.now(UTC)))
    await bot.alerter.cycle()
    entry = await bot.store.indexed_run(failed["id"])
    assert entry is not None and entry.retried_as == retry["id"]
    fabro.resume(failed["id"])
    await bot.alerter.cycle()
    await asyncio.sleep(0.005)
    fabro.fail(failed["id"], "boom again")
    await bot.alerter.cycle()
    entry = await bot.store.indexed_run(failed["id"])
    assert entry is not None and entry.status == "failed" and entry.retried_as is None
    view = await opened(user, slack, ADA)
    assert len(retry_buttons(view)) == 1 and "Retried as" not in text(view)


async def test_a_retry_of_an_earlier_failure_that_moves_on_later_does_not_mark_the_run_retried_again(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    """The retry goes on working after the run it retried was resumed: its later changes are of a failure
    the run has left, whether the run is at work or has failed again."""
    failed = by("octocat", title="Mine failed")
    fabro.add(failed)
    fabro.fail(failed["id"], "boom")
    # Made well before the run fails again (a resume and a failure take longer than a retry's creation).
    earlier = datetime.now(UTC) - timedelta(hours=1)
    retry = fabro.retry(failed["id"], by("grace", title="Mine failed", created=earlier))
    await bot.alerter.cycle()
    fabro.resume(failed["id"])
    await bot.alerter.cycle()
    fabro.emit(retry["id"], "run.title.updated", {"title": "Mine failed, again"})  # the retry moves on
    await bot.alerter.cycle()
    entry = await bot.store.indexed_run(failed["id"])
    assert entry is not None and entry.status != "failed" and entry.retried_as is None
    await asyncio.sleep(0.005)
    fabro.fail(failed["id"], "boom again")
    await bot.alerter.cycle()
    fabro.finish(retry["id"])  # and ends after the run failed again
    await bot.alerter.cycle()
    entry = await bot.store.indexed_run(failed["id"])
    assert entry is not None and entry.status == "failed" and entry.retried_as is None
    view = await opened(user, slack, ADA)
    assert len(retry_buttons(view)) == 1 and "Retried as" not in text(view)


async def test_a_question_on_a_paused_run_still_waits_on_home(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    paused = by("grace", title="Paused asks")
    fabro.add(paused, by("grace", title="Just busy"))
    fabro.ask(paused["id"], question("yes_no"))
    fabro._set_status(paused["id"], "paused", prior_block="human_input_required")  # in the running bucket now
    said = text(await opened(user, slack, BOB))
    assert "Paused asks" in said and "Just busy" not in said


async def test_a_refresh_asks_fabro_once_for_everyone_and_not_at_all_when_nothing_changed(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    ticks = [1000.0]
    bot.home.monotonic = lambda: ticks[0]
    await opened(user, slack, ADA)
    await opened(user, slack, BOB)
    await settled(bot)  # both published at tick 1000, before the clock moves
    fabro.requests.clear()
    assert await bot.home.refresh(bot.bolt.client) == 0
    assert fabro.calls("/api/v1/runs") == []  # nothing marked: Fabro is not asked
    waiting = by("grace", title="New approval")
    fabro.add(waiting)
    fabro.request_approval(waiting["id"])
    ticks[0] += 11
    await bot.alerter.cycle()  # the cycle only marks; Home's own task republishes
    await wait_for(lambda: "New approval" in text(slack.homes[ADA]) and "New approval" in text(slack.homes[BOB]))
    listings = [r for r in fabro.calls("/api/v1/runs") if ("status", "blocked") in r.query]
    assert len(listings) == 1  # one read of the waiting runs serves both Homes


async def test_an_idle_cycle_costs_nothing_for_homes_however_many_people_opened_theirs(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    for i in range(40):
        await opened(user, slack, f"U{i:04d}VIEW")
    await bot.alerter.cycle()
    fabro.requests.clear()
    publishes, statements = len(slack.calls_to("views.publish")), bot.store.statements
    await bot.scheduled_cycle()
    await asyncio.sleep(0.2)
    assert len(fabro.requests) == 1  # the alert poll alone
    assert bot.store.statements - statements <= 20
    assert len(slack.calls_to("views.publish")) == publishes


async def test_a_change_to_one_persons_run_republishes_only_their_home(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    ticks = [1000.0]
    bot.home.monotonic = lambda: ticks[0]  # not the machine's clock: its origin is the boot
    run = by("octocat", title="Mine runs")
    fabro.add(run)
    await bot.alerter.cycle()
    await opened(user, slack, ADA)
    await opened(user, slack, BOB)
    await settled(bot)  # both published at tick 1000, before the clock moves
    ticks[0] += 11  # everyone is due
    fabro.finish(run["id"])
    fabro.requests.clear()
    await bot.alerter.cycle()
    await wait_for(lambda: "succeeded" in text(slack.homes[ADA]))
    await asyncio.sleep(0.2)
    homes = [c.args.get("user_id") for c in slack.calls_to("views.publish")][-1:]
    assert homes == [ADA]
    assert len([r for r in fabro.calls("/api/v1/runs") if ("status", "blocked") in r.query]) <= 1


async def test_a_slow_views_publish_never_delays_an_alert(
    start_bot: StartBot, tmp_path: Path, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    bot = await start_bot(alert_pace=0.0, alert_channel="C0ALERTS", database_url=f"sqlite:///{tmp_path}/s.db")
    await bot.alerter.cycle()
    async with aiohttp.ClientSession() as session:
        viewer = SlackUser.of(bot, slack, session)
        for i in range(30):
            await opened(viewer, slack, f"U{i:04d}VIEW")
    bot.home.monotonic = lambda: time.monotonic() + 100  # every Home may be republished
    slack.latency["views.publish"] = 1.0  # every Home republish now takes a second
    waiting = by("grace", title="Now waiting")
    fabro.add(waiting)
    fabro.request_approval(waiting["id"])
    await bot.alerter.cycle()  # every Home is now marked, and their refresh is under way
    await wait_for(lambda: bot.home._refreshing.locked())
    broken = by("grace", title="Breaks now")
    fabro.add(broken)
    fabro.fail(broken["id"], "boom")
    started = asyncio.get_running_loop().time()
    await bot.scheduled_cycle()
    took = asyncio.get_running_loop().time() - started
    assert any(broken["id"] in key for key in slack.alert_keys("C0ALERTS"))
    assert took < 1.0, took
    assert bot.home._refreshing.locked()  # the Homes were still being republished meanwhile


async def test_opens_at_once_share_one_read_of_what_waits(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    fabro.latency = 0.05
    fabro.requests.clear()
    await asyncio.gather(*(user.open_home(f"U{i:04d}OPEN") for i in range(20)))
    await wait_for(lambda: len([u for u in slack.homes if u.endswith("OPEN")]) == 20)
    assert len(fabro.calls("/api/v1/runs")) == 1


async def test_home_remembers_a_bounded_number_of_viewers_the_longest_unseen_forgotten_first(
    bot: Bot, user: SlackUser, slack: FakeSlack
) -> None:
    bot.home.max_viewers = 2
    for who in (ADA, BOB, "U789CAROL"):
        await opened(user, slack, who)
    assert list(bot.home._viewers) == [BOB, "U789CAROL"]


async def test_when_fabro_is_down_a_refresh_asks_once_and_keeps_the_homes_for_later(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    for who in (ADA, BOB, "U789CAROL"):
        await opened(user, slack, who)
    await settled(bot)  # each open's publish returned before the clock moves, or it reads as just published
    bot.home.monotonic = lambda: time.monotonic() + 100  # every Home may be republished
    waiting = by("grace", title="Appears later")
    fabro.add(waiting)
    fabro.request_approval(waiting["id"])
    await bot.home.stop()  # this test drives the refreshes itself
    bot.home.changed(None, IndexedRun(waiting["id"], None, "grace", "pending", "Appears later", None, NOW))
    publishes = len(slack.calls_to("views.publish"))
    fabro.requests.clear()
    fabro.fail_next(503, 20, path_prefix="/api/v1/runs")
    assert await bot.home.refresh(bot.bolt.client) == 0
    assert len(fabro.calls("/api/v1/runs")) <= 3  # one read (with the client's own retries), not one per Home
    assert len(slack.calls_to("views.publish")) == publishes
    fabro.faults.clear()
    assert await bot.home.refresh(bot.bolt.client) == 3
    assert all("Appears later" in text(slack.homes[who]) for who in (ADA, BOB, "U789CAROL"))


async def test_when_slack_cannot_be_reached_a_refresh_costs_those_homes_and_does_not_fail(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    for who in (ADA, BOB):
        await opened(user, slack, who)
    bot.home.monotonic = lambda: time.monotonic() + 100
    await bot.home.stop()  # this test drives the refresh itself
    waiting = by("grace", title="Nobody hears of it")
    fabro.add(waiting)
    fabro.request_approval(waiting["id"])
    bot.home.changed(None, IndexedRun(waiting["id"], None, "grace", "pending", "Nobody hears of it", None, NOW))
    await slack.stop()  # Slack unreachable: the connection is refused
    assert await bot.home.refresh(bot.bolt.client) == 0
