"""Channel alerts end to end: the fake Fabro changes runs, the bot's alert cycle posts to the
fake Slack over real HTTP, and the SQLite file keeps every alert exactly once."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Bot
from bot.blocks.outcomes import outcome_text
from bot.core.records import AlertState, Subscription
from bot.telling.engine import FIRST_PAGE
from tests.conftest import SlackUser, StartBot, wait_for, wait_until
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run, question_examples
from tests.fakes.slack import FakeSlack, Message
from tests.store.test_replicas import first_cycle_done

CHANNEL = "C0ALERTS"
YES_NO = {
    "id": "q-deploy",
    "text": "Deploy to production?",
    "stage": "deploy",
    "question_type": "yes_no",
    "options": [],
    "allow_freeform": False,
}


@pytest.fixture
def start_alerts(start_bot: StartBot, tmp_path: Path) -> Callable[..., Awaitable[Bot]]:
    """Start a bot that alerts to CHANNEL; cycles are run by the test, posts are not paced."""

    async def start(**overrides: Any) -> Bot:
        settings = {"alert_channel": CHANNEL, "database_url": f"sqlite:///{tmp_path}/bot.db", **overrides}
        return await start_bot(schedule_alerts=False, alert_pace=0.0, **settings)

    return start


@pytest.fixture
async def bot(start_alerts: StartBot) -> Bot:
    """A bot past its first cycle, on a Fabro with nothing going on."""
    started = await start_alerts()
    await started.alerter.cycle()
    return started


def texts(message: Message) -> str:
    return str(message.blocks) + message.text


async def alerts_in(bot: Bot, state: AlertState, *runs: dict[str, Any]) -> list[Any]:
    """The stored alerts about `runs` that are in `state`."""
    found = []
    for run in runs:
        found += [a for a in await bot.store.alerts_for_run(run["id"]) if a.state is state]
    return found


async def test_a_failed_run_is_alerted_once_with_its_failure_message(
    bot: Bot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("running", title="Add dark mode")
    fabro.add(run)
    fabro.fail(run["id"], "verify: 3 tests failed in test_theme.py")
    report = await bot.alerter.cycle()
    assert report.posted == 1
    [post] = slack.posts(CHANNEL)
    assert "verify: 3 tests failed in test_theme.py" in texts(post) and "Add dark mode" in texts(post)
    assert post.metadata == {
        "event_type": "fabro_run_alert",
        "event_payload": {"key": fabro.failed_key(run["id"]), "run_id": run["id"]},
    }
    await bot.alerter.cycle()
    await bot.alerter.cycle()
    assert slack.alert_keys() == [fabro.failed_key(run["id"])]
    assert slack.violations == []


async def test_a_question_is_alerted_then_edited_when_answered_in_fabro(
    bot: Bot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("running", title="Ship the release")
    fabro.add(run)
    fabro.ask(run["id"], YES_NO)
    await bot.alerter.cycle()
    [post] = slack.posts(CHANNEL)
    assert "Deploy to production?" in texts(post)
    assert slack.alert_keys() == [f"question:{run['id']}:q-deploy"]

    fabro.answer(run["id"], "q-deploy", {"kind": "yes"})
    report = await bot.alerter.cycle()
    assert report.updated == 1
    assert post.edits == 1
    assert "Answered by grace: Yes" in texts(post)
    assert post.blocks[0]["block_id"] == f"resolved:{run['id']}"
    assert all(
        e["action_id"].startswith("runs_link:") for b in post.blocks if b["type"] == "actions" for e in b["elements"]
    )
    [alert] = await bot.store.alerts_for_run(run["id"])
    assert alert.state is AlertState.RESOLVED
    assert alert.outcome is not None and outcome_text(alert.outcome) == "Answered by grace: Yes"
    assert len(slack.posts(CHANNEL)) == 1


async def test_every_pending_question_of_a_run_gets_its_own_alert(bot: Bot, fabro: FakeFabro, slack: FakeSlack) -> None:
    run = make_run("running")
    fabro.add(run)
    first, second = question_examples()[:2]
    fabro.ask(run["id"], first)
    fabro.ask(run["id"], second)
    await bot.alerter.cycle()
    assert sorted(slack.alert_keys()) == sorted(
        [f"question:{run['id']}:{first['id']}", f"question:{run['id']}:{second['id']}"]
    )
    # Answering the first leaves the run blocked on the second: only the first alert is settled.
    fabro.answer(run["id"], first["id"], {"kind": "text", "text": "go ahead"})
    await bot.alerter.cycle()
    states = {str(a.key): a.state for a in await bot.store.alerts_for_run(run["id"])}
    assert states == {
        f"question:{run['id']}:{first['id']}": AlertState.RESOLVED,
        f"question:{run['id']}:{second['id']}": AlertState.POSTED,
    }


async def test_an_approval_is_alerted_then_edited_when_decided(bot: Bot, fabro: FakeFabro, slack: FakeSlack) -> None:
    parent = make_run("running", title="Parent run")
    child = make_run("submitted", title="Deploy child", parent_id=parent["id"])
    fabro.add(parent, child)
    fabro.request_approval(child["id"])
    await bot.alerter.cycle()
    [post] = slack.posts(CHANNEL)
    assert "Deploy child" in texts(post) and parent["id"] in texts(post)
    fabro.decide(child["id"], approved=False, reason="not during the freeze")
    await bot.alerter.cycle()
    assert "Denied by grace: not during the freeze" in texts(post)


async def test_a_retried_failure_is_edited_to_link_the_new_run(bot: Bot, fabro: FakeFabro, slack: FakeSlack) -> None:
    run = make_run("running", title="Flaky build")
    fabro.add(run)
    fabro.fail(run["id"], "network unreachable", reason="transient_infra")
    await bot.alerter.cycle()
    [post] = slack.posts(CHANNEL)
    retry = fabro.retry(run["id"], make_run("submitted", title="Flaky build"))
    await bot.alerter.cycle()
    assert f"Retried → new run <https://fabro.example.com/runs/{retry['id']}|{retry['id']}>" in texts(post)
    assert post.edits == 1 and len(slack.posts(CHANNEL)) == 1


async def test_an_archived_failure_is_edited_to_say_so(bot: Bot, fabro: FakeFabro, slack: FakeSlack) -> None:
    run = make_run("running")
    fabro.add(run)
    fabro.fail(run["id"])
    await bot.alerter.cycle()
    fabro.archive(run["id"])
    await bot.alerter.cycle()
    [post] = slack.posts(CHANNEL)
    assert "Archived by grace" in texts(post)


async def test_first_start_posts_what_still_waits_but_not_old_failures(
    start_alerts: StartBot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    old_failures = [make_run("failed") for _ in range(3)]
    waiting = make_run("blocked", title="Waiting for an answer")
    waiting["current_question"] = YES_NO
    fabro.questions[waiting["id"]] = [YES_NO]
    approval = make_run("pending", title="Waiting for approval")
    fabro.add(*old_failures, waiting, approval)
    bot = await start_alerts()
    await bot.alerter.cycle()
    assert sorted(slack.alert_keys()) == sorted([f"question:{waiting['id']}:q-deploy", f"approval:{approval['id']}"])
    # History stays history on later cycles, while new failures are news.
    fresh = make_run("running")
    fabro.add(fresh)
    fabro.fail(fresh["id"])
    await bot.alerter.cycle()
    assert fabro.failed_key(fresh["id"]) in slack.alert_keys()
    assert not any(fabro.failed_key(r["id"]) in slack.alert_keys() for r in old_failures)


async def test_a_restart_posts_nothing_twice(start_alerts: StartBot, fabro: FakeFabro, slack: FakeSlack) -> None:
    bot = await start_alerts()
    await bot.alerter.cycle()
    runs = [make_run("running") for _ in range(3)]
    fabro.add(*runs)
    for run in runs:
        fabro.fail(run["id"])
    await bot.alerter.cycle()
    await bot.stop()
    again = await start_alerts()
    await again.alerter.cycle()
    await again.alerter.cycle()
    assert sorted(slack.alert_keys()) == sorted(fabro.failed_key(r["id"]) for r in runs)


async def test_thirty_failures_at_once_make_one_digest_naming_all(bot: Bot, fabro: FakeFabro, slack: FakeSlack) -> None:
    runs = [make_run("running", title=f"Nightly job {i:02d}") for i in range(30)]
    fabro.add(*runs)
    for run in runs:
        fabro.fail(run["id"])
    report = await bot.alerter.cycle()
    assert report.digests == 1 and report.posted == 1
    [digest] = slack.posts(CHANNEL)
    for i in range(30):
        assert f"Nightly job {i:02d}" in texts(digest)
    assert "30 failed runs" in texts(digest)
    # No failure messages were fetched for a digest: it names runs, it does not explain them.
    assert not [r for r in fabro.requests if r.path.endswith("/events")]
    await bot.alerter.cycle()
    assert len(slack.posts(CHANNEL)) == 1
    alerts = await alerts_in(bot, AlertState.POSTED, *runs)
    assert len(alerts) == 30 and {a.ts for a in alerts} == {digest.ts}
    # A run of the digest moving on is told in the digest's thread.
    fabro.archive(runs[0]["id"])
    await bot.alerter.cycle()
    [reply] = slack.replies(digest)
    assert "Nightly job 00" in reply.text and "Archived" in reply.text


async def test_at_the_threshold_alerts_are_posted_one_by_one(
    start_alerts: StartBot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    bot = await start_alerts(alert_digest_threshold=3)
    await bot.alerter.cycle()
    runs = [make_run("running") for _ in range(3)]
    fabro.add(*runs)
    for run in runs:
        fabro.fail(run["id"])
    report = await bot.alerter.cycle()
    assert report.digests == 0 and len(slack.posts(CHANNEL)) == 3


async def test_slack_429_is_waited_out_within_a_cycle(bot: Bot, fabro: FakeFabro, slack: FakeSlack) -> None:
    run = make_run("running")
    fabro.add(run)
    fabro.fail(run["id"])
    slack.rate_limited["chat.postMessage"] = 2
    started = time.monotonic()
    await bot.alerter.cycle()
    assert time.monotonic() - started >= 2 * slack.retry_after * 0.9  # Retry-After honoured twice
    assert slack.alert_keys() == [fabro.failed_key(run["id"])]
    assert len(slack.calls_to("chat.postMessage")) == 3


async def test_slack_429_beyond_the_retries_delays_the_alert_and_never_drops_it(
    bot: Bot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("running")
    fabro.add(run)
    fabro.fail(run["id"])
    slack.retry_after = 0
    slack.rate_limited["chat.postMessage"] = 4  # the client retries 3 times, then gives up
    report = await bot.alerter.cycle()
    assert report.failed == 1 and slack.alert_keys() == []
    [alert] = await alerts_in(bot, AlertState.CLAIMED, run)
    assert alert.last_error == "ratelimited" and alert.unposted
    assert slack.alert_keys() == []  # kept, not posted, until Retry-After (at least a second) has passed

    async def delivered() -> bool:
        await bot.alerter.cycle()
        return slack.alert_keys() == [fabro.failed_key(run["id"])]

    await wait_until(delivered, timeout=5, interval=0.25)
    # Known to be unposted, so no history search was needed before posting again.
    assert slack.calls_to("conversations.history") == []


async def test_posts_to_one_channel_are_paced(start_alerts: StartBot, fabro: FakeFabro, slack: FakeSlack) -> None:
    bot = await start_alerts()
    bot.alerter.delivery.pace = 0.3
    await bot.alerter.cycle()
    runs = [make_run("running") for _ in range(3)]
    fabro.add(*runs)
    for run in runs:
        fabro.fail(run["id"])
    await bot.alerter.cycle()
    stamps = [c.at for c in slack.calls_to("chat.postMessage")]
    assert len(stamps) == 3
    assert all(later - earlier >= 0.28 for earlier, later in itertools.pairwise(stamps))


async def test_a_channel_the_bot_cannot_post_to_is_marked_broken_logged_once_and_recovers(
    bot: Bot, fabro: FakeFabro, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    slack.unreachable[CHANNEL] = "not_in_channel"
    run = make_run("running")
    fabro.add(run)
    fabro.fail(run["id"])
    with caplog.at_level(logging.ERROR, logger="bot.telling.engine"):
        await bot.alerter.cycle()
        second = make_run("running")
        fabro.add(second)
        fabro.fail(second["id"])
        await bot.alerter.cycle()
    assert [r.getMessage() for r in caplog.records].count(
        f"cannot post alerts to {CHANNEL}: not_in_channel. Invite the bot to the channel or remove its subscriptions;"
        " alerts for it are kept and retried"
    ) == 1
    assert await bot.store.broken_channels() == {CHANNEL: "not_in_channel"}
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        _, _, url = await user.command("subscriptions", channel=CHANNEL)
        reply = await user.reply(url)
    assert "not_in_channel" in str(reply["blocks"]) and "/invite" in str(reply["blocks"])

    # Someone invites the bot: once the retry is due, both alerts arrive and the mark clears.
    del slack.unreachable[CHANNEL]
    for alert in await alerts_in(bot, AlertState.CLAIMED, run, second):
        await bot.store.delivery_failed(alert.key, CHANNEL, error="x", unposted=True, retry_at=bot.clock())
    await bot.alerter.cycle()
    assert sorted(slack.alert_keys()) == sorted([fabro.failed_key(run["id"]), fabro.failed_key(second["id"])])
    assert await bot.store.broken_channels() == {}


async def test_while_fabro_is_down_cycles_are_skipped_and_nothing_is_lost(
    bot: Bot, fabro: FakeFabro, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    runs = [make_run("running") for _ in range(2)]
    fabro.add(*runs)
    fabro.fail(runs[0]["id"])
    fabro.fail_next(503, count=10)
    with caplog.at_level(logging.WARNING):
        report = await bot.alerter.cycle()
    assert report.skipped == "fabro"
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]  # one line, not one per retry
    assert line.startswith("alert poll skipped")
    fabro.faults.clear()
    fabro.fail(runs[1]["id"])
    await bot.alerter.cycle()
    assert sorted(slack.alert_keys()) == sorted(fabro.failed_key(r["id"]) for r in runs)


async def test_an_idle_cycle_costs_one_fabro_request(bot: Bot, fabro: FakeFabro, slack: FakeSlack) -> None:
    fabro.add(*[make_run("failed") for _ in range(150)])
    await bot.alerter.cycle()  # sees the new (old) runs once
    fabro.requests.clear()
    await bot.alerter.cycle()
    assert len(fabro.requests) == 1, [(r.path, r.query) for r in fabro.requests]
    [request] = fabro.requests
    assert request.path == "/api/v1/runs"
    assert ("sort", "updated_at") in request.query and ("page[limit]", str(FIRST_PAGE)) in request.query


async def test_subscriptions_route_alerts_and_a_run_matching_several_alerts_once(
    start_alerts: StartBot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    bot = await start_alerts(alert_channel=None)
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        for text in ("subscribe failed repo:demo/api-server", "subscribe label:team=platform", "subscribe questions"):
            _, _ack, url = await user.command(text, channel="C0TEAM")
            reply = await user.reply(url)
            assert reply["response_type"] == "in_channel" and "<@U123ADA> subscribed this channel" in reply[
                "text"
            ].replace("`", "")
        _, _, url = await user.command("subscribe failed", channel="C0OTHER")
        await user.reply(url)
        _, _, url = await user.command("subscribe failed repo:someone/else", channel="C0NOPE")
        await user.reply(url)
        await bot.alerter.cycle()

        run = make_run("running")
        fabro.add(run)
        fabro.fail(run["id"])
        await bot.alerter.cycle()
        assert slack.alert_keys("C0TEAM") == [fabro.failed_key(run["id"])]
        assert slack.alert_keys("C0OTHER") == [fabro.failed_key(run["id"])]
        assert slack.alert_keys("C0NOPE") == []

        _, _, url = await user.command("subscriptions", channel="C0TEAM")
        listing = await user.reply(url)
        assert listing["response_type"] == "ephemeral"
        assert "failed runs in repo `demo/api-server`" in str(listing["blocks"])
        _, _, url = await user.command("unsubscribe all", channel="C0TEAM")
        assert "removed 3 alert subscriptions" in (await user.reply(url))["text"]
        assert await bot.store.subscriptions("C0TEAM") == []


async def test_subscribe_mistakes_get_a_kind_ephemeral_answer(start_alerts: StartBot, slack: FakeSlack) -> None:
    bot = await start_alerts()
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        status, ack, _ = await user.command("subscribe faild")
        assert status == 200 and "Did you mean `failed`?" in ack
        _, ack, _ = await user.command("unsubscribe")
        assert "/runs subscriptions" in ack
    assert await bot.store.subscriptions() == []


@pytest.mark.parametrize(
    ("settings", "allowed", "named"),
    [
        ({"subscription_allowlist": "U0ROUTER"}, "U0ROUTER", "SUBSCRIPTION_ALLOWLIST"),
        ({"action_allowlist": "U0ACTOR"}, "U0ACTOR", "ACTION_ALLOWLIST"),
        ({"subscription_allowlist": "U0ROUTER", "action_allowlist": "U123ADA"}, "U0ROUTER", "SUBSCRIPTION_ALLOWLIST"),
    ],
)
async def test_only_the_allowlist_may_change_where_alerts_go(
    start_alerts: StartBot, slack: FakeSlack, settings: dict[str, str], allowed: str, named: str
) -> None:
    bot = await start_alerts(alert_channel=None, **settings)
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        _, _, url = await user.command("subscribe failed", channel="C0TEAM", user=allowed)
        assert (await user.reply(url))["response_type"] == "in_channel"
        for words in ("subscribe questions", "unsubscribe all"):
            _, _, url = await user.command(words, channel="C0TEAM", user="U123ADA")
            reply = await user.reply(url)
            assert reply["response_type"] == "ephemeral"
            assert "You may not change where alerts are posted" in reply["text"] and named in reply["text"]
        [sub] = await bot.store.subscriptions("C0TEAM")  # nothing changed
        assert sub.kinds == {"failed"}
        _, _, url = await user.command("subscriptions", channel="C0TEAM", user="U123ADA")  # listing stays open
        assert "failed runs" in str((await user.reply(url))["blocks"])


async def test_cancellations_are_alerted_only_where_asked_for(
    start_alerts: StartBot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    bot = await start_alerts(alert_channel="C0DEFAULT")
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        _, _, url = await user.command("subscribe cancelled", channel="C0CANCEL")
        await user.reply(url)
    await bot.alerter.cycle()
    run = make_run("running", title="Stopped by hand")
    fabro.add(run)
    fabro.fail(run["id"], "Cancelled", reason="cancelled")
    failure = make_run("running")
    fabro.add(failure)
    fabro.fail(failure["id"], reason="budget_exhausted")
    await bot.alerter.cycle()
    assert slack.alert_keys("C0CANCEL") == [f"cancelled:{run['id']}"]
    assert slack.alert_keys("C0DEFAULT") == [fabro.failed_key(failure["id"])]  # the default kinds: no cancellations
    assert "Run cancelled: Stopped by hand" in slack.posts("C0CANCEL")[0].text


async def test_the_scheduler_runs_cycles_by_itself(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    await start_bot(
        schedule_alerts=True,
        alert_pace=0.0,
        alert_channel=CHANNEL,
        database_url=f"sqlite:///{tmp_path}/s.db",
        poll_interval_seconds=1,
        fabro_event_stream=False,
    )
    # The first cycle, not just any listing (the run index may be filled from Fabro meanwhile): what
    # ended before it is history.
    await wait_for(lambda: first_cycle_done(fabro), timeout=5)
    run = make_run("running")
    fabro.add(run)
    fabro.fail(run["id"])
    await wait_for(lambda: slack.alert_keys(CHANNEL), timeout=5)
    assert slack.alert_keys(CHANNEL) == [fabro.failed_key(run["id"])]


async def test_a_post_whose_answer_is_lost_is_found_in_history_not_posted_twice(
    bot: Bot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    # slack_sdk annotates its client's timeout as int; aiohttp takes seconds as a float.
    bot.alerter.delivery.slack.timeout = 0.5  # type: ignore[assignment]
    slack.slow_reply["chat.postMessage"] = 2.0  # Slack posts it, but the bot never hears back
    run = make_run("running")
    fabro.add(run)
    fabro.fail(run["id"])
    report = await bot.alerter.cycle()
    assert report.failed == 1 and len(slack.posts(CHANNEL)) == 1
    [alert] = await alerts_in(bot, AlertState.CLAIMED, run)
    assert alert.unposted is False  # it may be in Slack: look before posting again
    await bot.store.delivery_failed(alert.key, CHANNEL, error="timeout", unposted=False, retry_at=bot.clock())
    report = await bot.alerter.cycle()
    assert report.deduplicated == 1 and report.posted == 0
    assert slack.alert_keys(CHANNEL) == [fabro.failed_key(run["id"])]
    [alert] = await bot.store.alerts_for_run(run["id"])
    assert alert.state is AlertState.POSTED and alert.ts == slack.posts(CHANNEL)[0].ts


async def test_a_digest_that_overflows_shows_the_rest_to_whoever_asks(
    bot: Bot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    runs = [make_run("running", title="T" * 200 + f" {i}") for i in range(150)]
    fabro.add(*runs)
    for run in runs:
        fabro.fail(run["id"])
    await bot.alerter.cycle()
    [digest] = slack.posts(CHANNEL)
    [show] = [e for b in digest.blocks if b["type"] == "actions" for e in b["elements"]]
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        _, _, url = await user.click(
            {"action_id": show["action_id"], "value": show["value"]},
            block_id="digest:show",
            channel=CHANNEL,
            message_ts=digest.ts,
            ephemeral=False,
        )
        reply = await user.reply(url)
    assert reply["replace_original"] is False and reply["response_type"] == "ephemeral"
    assert "Failed runs" in str(reply["blocks"]) and digest.edits == 0


async def test_a_proxy_error_page_from_slack_is_an_ordinary_failure_counted_and_retried(
    bot: Bot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("running")
    fabro.add(run)
    fabro.fail(run["id"])
    slack.proxy_error["chat.postMessage"] = 502  # an HTML page, not Slack's JSON
    report = await bot.alerter.cycle()  # the cycle completes: no AttributeError from the metrics
    assert report.failed == 1 and report.skipped is None
    assert b'fabro_bot_slack_calls_total{method="chat.postMessage",result="http_502"}' in bot.metrics.render()
    [alert] = await alerts_in(bot, AlertState.CLAIMED, run)
    assert alert.last_error == "http_502"
    await bot.store.delivery_failed(alert.key, CHANNEL, error="x", unposted=True, retry_at=bot.clock())
    await bot.alerter.cycle()
    assert slack.alert_keys() == [fabro.failed_key(run["id"])]


@pytest.mark.parametrize("newcomer", ["01KD" + "0" * 21 + "1", "01KB" + "0" * 21 + "1"], ids=["above", "between"])
async def test_runs_changing_in_the_same_millisecond_as_the_mark_are_never_skipped(
    bot: Bot, fabro: FakeFabro, slack: FakeSlack, newcomer: str
) -> None:
    """Fabro sorts `updated_at` by the millisecond (ties by id, descending) while its JSON carries
    nanoseconds: a newcomer in the mark's millisecond must be found in either id order."""
    await bot.alerter.cycle()
    second = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)

    def at(nanos: int) -> str:
        return second.strftime("%Y-%m-%dT%H:%M:%S.") + f"{nanos:09d}Z"

    def failed_at(run_id: str, nanos: int) -> dict[str, Any]:
        run = make_run("running", run_id=run_id, title=run_id)
        fabro.add(run)
        fabro.fail(run["id"])
        run["timestamps"]["last_event_at"] = at(nanos)
        return run

    high = failed_at("01KC" + "0" * 21 + "1", 123_100_000)
    low = failed_at("01KA" + "0" * 21 + "1", 123_700_000)
    await bot.alerter.cycle()
    assert sorted(slack.alert_keys()) == sorted([fabro.failed_key(high["id"]), fabro.failed_key(low["id"])])
    late = failed_at(newcomer, 123_900_000)  # later, but in the same millisecond
    await bot.alerter.cycle()
    assert fabro.failed_key(late["id"]) in slack.alert_keys()
    assert len(slack.alert_keys()) == 3  # and nothing twice


async def test_who_answered_is_found_even_behind_a_busy_agents_newest_events(
    bot: Bot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("running", title="Chatty agent")
    fabro.add(run)
    fabro.ask(run["id"], YES_NO)
    await bot.alerter.cycle()
    [post] = slack.posts(CHANNEL)
    fabro.answer(run["id"], "q-deploy", {"kind": "yes"})
    for i in range(250):  # the agent keeps working: the answer is now far behind the newest 100
        fabro.emit(run["id"], "agent.message", {"n": i})
    await bot.alerter.cycle()
    assert "Answered by grace: Yes" in texts(post)
    pages = [c for c in fabro.calls(f"/api/v1/runs/{run['id']}/events") if any(k == "before_seq" for k, _ in c.query)]
    assert 1 <= len(pages) <= 4  # it paged back, and stopped once the answer was found


async def test_a_failure_alerted_in_eleven_channels_reads_its_failure_text_once(
    start_alerts: StartBot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    bot = await start_alerts()
    for i in range(10):
        await bot.store.add_subscription(Subscription(0, f"C{i:04d}SUBS", frozenset({"failed"})))
    await bot.alerter.cycle()
    run = make_run("running", title="Breaks everywhere")
    fabro.add(run)
    fabro.fail(run["id"], "boom everywhere")
    fabro.requests.clear()
    await bot.alerter.cycle()
    posts = [p for p in slack.posts() if p.metadata]
    assert len(posts) == 11 and all("boom everywhere" in texts(p) for p in posts)
    assert len([r for r in fabro.requests if r.path == f"/api/v1/runs/{run['id']}/events"]) == 1


async def test_the_first_start_reads_the_waiting_buckets_not_each_waiting_run(
    start_alerts: StartBot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    runs = [make_run("running", title=f"Asks {i}") for i in range(150)]
    fabro.add(*runs)
    for i, run in enumerate(runs):
        fabro.ask(run["id"], {**YES_NO, "id": f"q-{i}"})
    fabro.add(*[make_run("succeeded", title=f"Done {i}") for i in range(500)])
    bot = await start_alerts()
    fabro.requests.clear()
    await bot.alerter.cycle()
    assert len(fabro.requests) <= 1 + 2 + 1  # the newest run, two pages of blocked runs, one of pending
    questions = [a for run in runs for a in await bot.store.alerts_for_run(run["id"])]
    assert len(questions) == 150  # every waiting question is alerted all the same


async def test_an_idle_cycle_costs_a_few_statements_however_many_runs_share_the_newest_instant(
    bot: Bot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    same = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.123Z")
    runs = [make_run("running", title=f"Busy {i}") for i in range(30)]
    for run in runs:
        run["timestamps"]["last_event_at"] = same
    fabro.add(*runs)
    await bot.alerter.cycle()
    await bot.alerter.cycle()
    before = bot.store.statements
    await bot.alerter.cycle()
    assert bot.store.statements - before <= 6
    fabro.fail(runs[25]["id"], "changed within the same instant")  # seen again: a change is never missed
    runs[25]["timestamps"]["last_event_at"] = same
    await bot.alerter.cycle()
    assert slack.alert_keys(CHANNEL) == [fabro.failed_key(runs[25]["id"])]
