"""The Home view and the reminder messages, rendered in blocks/: any input renders, within Slack's limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block

from bot.blocks.home import WAITING_ON_ANYONE, home_view
from bot.blocks.limits import problems
from bot.blocks.reminders import reminder_message
from bot.core.keys import AlertKey, AlertKind
from bot.core.records import IndexedRun
from bot.fabro.models import Run
from tests.fakes.runs import make_run

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
titles = st.text(max_size=400)
statuses = st.sampled_from(["succeeded", "failed", "running", "blocked", "archived", "something-new"])


def waiting_run(title: str, i: int) -> Run:
    data = make_run("running", title=title, run_id=f"01KJW4MG8000000000000000{i:02d}")
    data["pending_approval"] = True
    return Run.model_validate(data)


@settings(max_examples=40, deadline=None)
@given(
    mine=st.lists(titles, max_size=4),
    others=st.lists(titles, max_size=12),
    yours=st.none() | st.lists(st.tuples(titles, statuses), max_size=10),
    notice=st.none() | st.text(max_size=1500),
    unavailable=st.booleans(),
)
def test_any_home_renders_within_slacks_limits(
    mine: list[str], others: list[str], yours: list[tuple[str, str]] | None, notice: str | None, unavailable: bool
) -> None:
    view = home_view(
        notice=notice,
        linked=yours is not None,
        mine=[waiting_run(t, i) for i, t in enumerate(mine)],
        others=[waiting_run(t, 20 + i) for i, t in enumerate(others)],
        unavailable=unavailable,
        yours=[
            IndexedRun(f"01KJW4MG9000000000000000{i:02d}", "U1", None, status, title, None, NOW, retried_as=retry)
            for i, (title, status) in enumerate(yours or [])
            for retry in [f"01KJW4MGA000000000000000{i:02d}" if i % 2 else None]
        ],
        now=NOW,
        web_base="https://fabro.example.com",
        command="/runs",
    )
    assert view["type"] == "home" and len(view["blocks"]) <= 100
    for block in view["blocks"]:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.to_dict()  # slack_sdk's validators: lengths, ids, elements
    said = str(view["blocks"])
    if len(others) > WAITING_ON_ANYONE:
        assert f"and {len(others) - WAITING_ON_ANYONE} more" in said


def yours_view(entries: list[IndexedRun], web_base: str | None = "https://fabro.example.com") -> str:
    view = home_view(
        notice=None,
        linked=True,
        mine=[],
        others=[],
        unavailable=False,
        yours=entries,
        now=NOW,
        web_base=web_base,
        command="/runs",
    )
    return str(view["blocks"])


def test_your_runs_offer_retry_only_on_a_failed_run_nobody_retried_and_else_say_where_the_retry_is() -> None:
    failed = IndexedRun("01KJW4MG900000000000000001", "U1", None, "failed", "Broke", None, NOW)
    retried = IndexedRun("01KJW4MG900000000000000002", "U1", None, "failed", "Broke too", None, NOW, None, "01KJW4MGA0")
    said = yours_view([failed, retried])
    assert said.count("steer:retry") == 1 and "retry:01KJW4MG900000000000000001" in said
    assert "Retried as run <https://fabro.example.com/runs/01KJW4MGA0|01KJW4MGA0>" in said
    assert "Retried as run 01KJW4MGA0" in yours_view([retried], web_base=None)  # no web UI: the id alone


@given(
    kind=st.sampled_from([AlertKind.QUESTION, AlertKind.APPROVAL]),
    step=st.sampled_from(["remind", "escalate"]),
    minutes=st.integers(0, 60 * 24 * 400),
    mention=st.none() | st.from_regex(r"<@U[A-Z0-9]{2,10}>( <!subteam\^S[A-Z0-9]{2,10}>){0,20}", fullmatch=True),
    name_the_run=st.booleans(),
)
def test_any_reminder_renders_within_slacks_limits(
    kind: AlertKind, step: str, minutes: int, mention: str | None, name_the_run: bool
) -> None:
    key = AlertKey(kind, "01KJW4MG800000000000000001", "q-1" if kind is AlertKind.QUESTION else None)
    message = reminder_message(step, key, timedelta(minutes=minutes), mention=mention, name_the_run=name_the_run)
    assert problems(message) == []
    assert ("waiting on you" in message["text"]) == (step == "remind" and mention is not None)
