"""Reminders and escalation, end to end on the fakes with a clock the test moves: one reminder in
each alert's thread (the owner's DM included) after REMIND_AFTER, one escalation after
ESCALATE_AFTER naming ESCALATE_TO, each once, never after an answer, and DMs to the escalation
people when no channel alert exists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.app import Bot
from bot.core.durations import parse_duration, waited
from tests.acting.test_steering import question
from tests.conftest import StartBot
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack, Message, dm_of

CHANNEL = "C0ALERTS"
ADA = "U123ADA"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def by_octocat(**run: Any) -> dict[str, Any]:
    created_by = {"kind": "user", "identity": {"issuer": "github", "subject": "1"}, "login": "octocat"}
    return make_run("running", created_by=created_by, **run)


def replies(slack: FakeSlack, parent: Message) -> list[Message]:
    return [m for m in slack.messages if m.thread_ts == parent.ts and m.channel == parent.channel]


async def start(start_bot: StartBot, tmp_path: Path, clock: Clock, **settings: Any) -> Bot:
    values = {
        "alert_channel": CHANNEL,
        "user_links": "octocat=U123ADA",
        "database_url": f"sqlite:///{tmp_path}/remind.db",
        **settings,
    }
    bot = await start_bot(alert_pace=0.0, clock=clock, **{k: v for k, v in values.items() if v is not None})
    await bot.alerter.cycle()
    return bot


async def asked(bot: Bot, fabro: FakeFabro, slack: FakeSlack) -> tuple[dict[str, Any], Message, Message]:
    run = by_octocat(title="Needs a decision")
    fabro.add(run)
    fabro.ask(run["id"], question("yes_no"))
    await bot.alerter.cycle()
    [alert] = slack.posts(CHANNEL)
    [dm] = slack.posts(dm_of(ADA))
    return run, alert, dm


async def test_one_reminder_in_each_thread_after_remind_after(
    start_bot: StartBot, tmp_path: Path, fabro: FakeFabro, slack: FakeSlack
) -> None:
    clock = Clock()
    bot = await start(start_bot, tmp_path, clock)
    _, alert, dm = await asked(bot, fabro, slack)
    clock.advance(minutes=29)
    assert await bot.reminders.sweep() == 0
    clock.advance(minutes=3)
    await bot.scheduled_cycle()  # the scheduler's cycle sweeps too
    [reminder] = replies(slack, alert)
    assert f"<@{ADA}>" in reminder.text and "32 min" in reminder.text
    assert len(replies(slack, dm)) == 1
    clock.advance(hours=5)
    assert await bot.reminders.sweep() == 0  # once per question, however long it waits
    assert len(replies(slack, alert)) == 1 and slack.violations == []


async def test_nothing_is_sent_after_the_question_was_answered(
    start_bot: StartBot, tmp_path: Path, fabro: FakeFabro, slack: FakeSlack
) -> None:
    clock = Clock()
    bot = await start(start_bot, tmp_path, clock, escalate_after="1h", escalate_to="U999ESC")
    run, alert, dm = await asked(bot, fabro, slack)
    clock.advance(minutes=10)
    fabro.answer(run["id"], "q-1", {"kind": "yes"})
    await bot.alerter.cycle()
    clock.advance(hours=3)
    assert await bot.reminders.sweep() == 0
    assert replies(slack, alert) == [] and replies(slack, dm) == []


async def test_escalation_names_escalate_to_in_channel_threads_once(
    start_bot: StartBot, tmp_path: Path, fabro: FakeFabro, slack: FakeSlack
) -> None:
    clock = Clock()
    bot = await start(start_bot, tmp_path, clock, escalate_after="2h", escalate_to="U999ESC,S0ONCALL")
    _, alert, dm = await asked(bot, fabro, slack)
    clock.advance(minutes=45)
    assert await bot.reminders.sweep() == 2  # the reminder: channel thread and DM thread
    clock.advance(hours=2)
    assert await bot.reminders.sweep() == 1  # the escalation: the channel thread only
    escalation = replies(slack, alert)[-1]
    assert "<@U999ESC>" in escalation.text and "<!subteam^S0ONCALL>" in escalation.text
    assert "2 h 45 min" in escalation.text
    assert len(replies(slack, dm)) == 1
    clock.advance(days=2)
    assert await bot.reminders.sweep() == 0


async def test_without_a_channel_alert_the_escalation_is_a_dm_to_each_person(
    start_bot: StartBot, tmp_path: Path, fabro: FakeFabro, slack: FakeSlack
) -> None:
    slack.usergroups["S0ONCALL"] = ["U777ONE", "U999ESC"]
    clock = Clock()
    bot = await start(
        start_bot,
        tmp_path,
        clock,
        alert_channel=None,
        remind_after="off",
        escalate_after="1h",
        escalate_to="U999ESC,S0ONCALL",
    )
    run = by_octocat()
    fabro.add(run)
    fabro.request_approval(run["id"])
    await bot.alerter.cycle()
    [dm] = slack.posts(dm_of(ADA))
    clock.advance(minutes=61)
    assert await bot.reminders.sweep() == 2
    assert replies(slack, dm) == []  # off: no reminder
    for person in ("U777ONE", "U999ESC"):
        [escalation] = slack.posts(dm_of(person))
        assert "approval" in escalation.text and run["id"] in escalation.text and "1 h 1 min" in escalation.text
    assert await bot.reminders.sweep() == 0


async def test_a_reminder_slack_refuses_costs_that_item_and_is_sent_next_time(
    start_bot: StartBot, tmp_path: Path, fabro: FakeFabro, slack: FakeSlack
) -> None:
    clock = Clock()
    bot = await start(start_bot, tmp_path, clock)
    _, alert, _ = await asked(bot, fabro, slack)
    clock.advance(minutes=31)
    slack.unreachable[CHANNEL] = "channel_not_found"
    assert await bot.reminders.sweep() == 1  # the DM's still goes
    del slack.unreachable[CHANNEL]
    assert await bot.reminders.sweep() == 1
    assert len(replies(slack, alert)) == 1


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("off", None), (" 2H ", 7200)]
)
def test_durations(text: str, seconds: int | None) -> None:
    parsed = parse_duration(text)
    assert (parsed.total_seconds() if parsed else None) == seconds


def test_bad_durations_are_settings_errors() -> None:
    from bot.config import ConfigError, load_settings

    for bad in ("30", "m", "-5m", "1w", "٣m"):
        with pytest.raises(ValueError, match="like 90s"):
            parse_duration(bad)
    with pytest.raises(ConfigError, match="REMIND_AFTER"):
        load_settings("preview", env_file=None, fabro_api_url="http://f", fabro_api_token="t", remind_after="soon")
    with pytest.raises(ConfigError, match="ESCALATE_TO"):
        load_settings("preview", env_file=None, fabro_api_url="http://f", fabro_api_token="t", escalate_to="@oncall")


@given(st.text(max_size=20))
def test_any_duration_text_parses_or_says_what_would_work(text: str) -> None:
    try:
        parsed = parse_duration(text)
    except ValueError as exc:
        assert "like 90s" in str(exc)
    else:
        assert parsed is None or parsed.total_seconds() > 0


@given(st.integers(min_value=-(10**6), max_value=10**9))
def test_waited_reads_well_for_any_age(seconds: int) -> None:
    said = waited(timedelta(seconds=seconds))
    assert said and len(said) <= 16 and said.split()[0].isdigit()
