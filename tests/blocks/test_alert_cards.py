"""Alert cards render every question shape and any number of runs within Slack's limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.blocks.alerts import (
    ALERT_EVENT_TYPE,
    approval_alert,
    budget_alert,
    cost_alert,
    digest_message,
    failed_alert,
    metadata_key,
    mute_menu,
    pr_alert,
    question_alert,
    resolved_alert,
    succeeded_alert,
)
from bot.blocks.limits import problems
from bot.blocks.routing import MUTE_CHOICES, decode_mute, decode_page
from bot.blocks.subscriptions import (
    muted_list_message,
    muted_message,
    subscribed_message,
    subscriptions_message,
    unmuted_message,
)
from bot.core.keys import AlertKey, AlertKind
from bot.core.query import SUBSCRIPTION_WORDS
from bot.core.records import IndexedRun, Mute, Subscription
from bot.fabro.models import Failure, PullRequest, PullRequestOpened, Question, Run
from bot.fabro.outputs import RunBilling
from tests.blocks.test_blocks import HOSTILE, assert_sendable, mrkdwn_texts
from tests.fakes.runs import make_run, question_examples, run_examples

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_a_failed_alert_carries_the_failure_message_and_its_key() -> None:
    run = Run.model_validate(make_run("failed", title="Add dark mode"))
    message = failed_alert(
        run,
        now=NOW,
        failure=Failure(reason="workflow_error", message="verify failed"),
        web_base="https://f",
        key=AlertKey(AlertKind.FAILED, "X"),
    )
    assert_sendable(message)
    assert "verify failed" in str(message["blocks"])
    assert message["metadata"] == {
        "event_type": ALERT_EVENT_TYPE,
        "event_payload": {"key": "failed:X", "run_id": run.id},
    }
    assert message["text"] == "Run failed (workflow_error): Add dark mode"


@pytest.mark.parametrize("question", question_examples(), ids=lambda q: f"{q['question_type']}-{q['id']}")
def test_every_question_shape_renders_fully(question: dict[str, Any]) -> None:
    run = Run.model_validate(make_run("blocked"))
    q = Question.model_validate(question)
    message = question_alert(run, q, now=NOW, asked_at=NOW - timedelta(minutes=12), web_base=None)
    assert_sendable(message)
    text = "\n".join(mrkdwn_texts(message))
    assert q.text in text and "waiting 12m" in text
    for option in q.options:
        assert (option.label or option.key) in text
        if option.description:
            assert option.description in text


def test_a_long_hostile_context_is_escaped_and_shortened_with_a_note() -> None:
    run = Run.model_validate(make_run("blocked"))
    q = Question(id="q", text=HOSTILE, question_type="freeform", context_display=(HOSTILE + "\n") * 200)
    message = question_alert(run, q, now=NOW, asked_at=None, web_base=None)
    assert_sendable(message)
    text = "\n".join(mrkdwn_texts(message))
    assert "<!channel>" not in text and "Context shortened" in text


def test_an_approval_alert_names_the_parent() -> None:
    child = Run.model_validate(run_examples()[-1])
    message = approval_alert(child, now=NOW, web_base=None, key=AlertKey(AlertKind.APPROVAL, child.id))
    assert_sendable(message)
    assert f"Child of run `{child.parent_id}`" in str(message["blocks"])


def test_a_resolved_alert_says_what_happened_and_offers_no_action() -> None:
    run = Run.model_validate(make_run("succeeded"))
    message = resolved_alert(run, outcome="Answered by @ada", now=NOW, web_base="https://f")
    assert_sendable(message)
    assert "Answered by @ada" in str(message["blocks"])
    actions = [e["action_id"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert all(a.startswith("runs_link:") for a in actions)


def test_a_digest_of_thirty_names_every_run_and_a_thousand_overflow_kindly() -> None:
    runs = [Run.model_validate(make_run("failed", title=f"Failure {i:02d}")) for i in range(30)]
    message = digest_message(
        [(AlertKind.FAILED, r) for r in runs], command="/runs", web_base="https://f", key="digest:1"
    )
    assert_sendable(message)
    for i in range(30):
        assert f"Failure {i:02d}" in message["blocks"][1]["text"]["text"]
    assert message["blocks"][0]["text"]["text"] == "*30 failed runs*"
    assert message["metadata"]["event_payload"]["key"] == "digest:1"
    many = [Run.model_validate(make_run("failed", title="T" * 300)) for _ in range(1000)]
    big = digest_message([(AlertKind.FAILED, r) for r in many], command="/runs", web_base="https://f")
    assert problems(big) == []
    assert "more: `/runs failed`" in str(big["blocks"][-2])
    [show] = big["blocks"][-1]["elements"]
    shown = decode_page(show["value"])
    assert show["action_id"] == "runs_show" and shown is not None and shown.statuses == ("failed",)


def test_a_digest_links_only_safe_urls_and_never_lets_a_title_forge_one() -> None:
    spoof = make_run("failed", title=HOSTILE)
    spoof["links"] = {"web": "https://fabro.example.com/runs/x|https://trusted.example"}
    unsafe = make_run("failed", title="Unsafe link")
    unsafe["links"] = {"web": "javascript:alert(1)"}
    message = digest_message(
        [(AlertKind.FAILED, Run.model_validate(spoof)), (AlertKind.FAILED, Run.model_validate(unsafe))],
        command="/runs",
        web_base=None,
    )
    text = message["blocks"][1]["text"]["text"]
    assert "<https://fabro.example.com/runs/x%7Chttps://trusted.example|" in text
    assert "javascript:" not in text and "• `" in text and "Unsafe link" in text
    assert "<!channel>" not in "\n".join(mrkdwn_texts(message))


def test_a_mixed_digest_counts_each_kind_and_points_at_their_buckets() -> None:
    items = [(AlertKind.FAILED, Run.model_validate(make_run("failed", title="T" * 90))) for _ in range(200)]
    items += [
        (AlertKind.QUESTION, Run.model_validate(make_run("blocked"))),
        (AlertKind.APPROVAL, Run.model_validate(make_run("pending"))),
    ]
    message = digest_message(items, command="/runs", web_base=None)
    assert_sendable(message)
    assert (
        message["blocks"][0]["text"]["text"]
        == "*202 new alerts* · 200 failed runs, 1 question waiting, 1 approval waiting"
    )
    assert "more: `/runs failed blocked pending`" in str(message["blocks"][-2])
    shown = decode_page(message["blocks"][-1]["elements"][0]["value"])
    assert shown is not None and shown.statuses == ("failed", "blocked", "pending")
    assert ":x: `" in message["blocks"][1]["text"]["text"]


def test_a_digest_names_every_run_while_the_message_has_room() -> None:
    runs = [
        Run.model_validate(make_run("failed", title=f"Nightly failure with a long descriptive title {i:02d}"))
        for i in range(28)
    ]
    message = digest_message([(AlertKind.FAILED, r) for r in runs], command="/runs", web_base="https://f", key="d:1")
    assert_sendable(message)
    for i in range(28):
        assert f"title {i:02d}" in str(message["blocks"])
    assert "more" not in str(message["blocks"])


def test_a_huge_digest_overflows_into_and_n_more_within_every_limit() -> None:
    runs = [Run.model_validate(make_run("failed", title="t" * 200)) for _ in range(400)]
    message = digest_message([(AlertKind.FAILED, r) for r in runs], command="/runs", web_base="https://f", key="d:2")
    assert_sendable(message)
    named = str(message["blocks"]).count("• ")
    assert 28 < named < 400 and f"…and {400 - named} more" in str(message["blocks"])


@settings(max_examples=60, deadline=None)
@given(
    title=st.text(max_size=600) | st.just("<!channel> *x* & <@U1>" * 40),
    branch=st.none() | st.text(max_size=300),
    number=st.none() | st.integers(0, 10**9),
    draft=st.none() | st.booleans(),
    linked=st.booleans(),
)
def test_a_pull_request_alert_holds_every_slack_limit_and_mentions_nobody(
    title: str, branch: str | None, number: int | None, draft: bool | None, linked: bool
) -> None:
    run = Run.model_validate(make_run("succeeded", title=title))
    if number is not None:
        run = run.model_copy(
            update={"pull_request": PullRequest(number=number, html_url=f"https://github.com/a/b/pull/{number}")}
        )
    opened = PullRequestOpened(
        number=number, title=title, head_branch=branch, base_branch=branch, draft=draft, linked=linked
    )
    key = AlertKey(AlertKind.PR, run.id, str(number or 0))
    message = pr_alert(run, now=NOW, opened=opened, state=None, web_base="https://fabro.example.com", key=key)
    assert problems(message) == []
    assert "<!channel>" not in json.dumps(message)
    assert metadata_key(message) == key.encode()


_RUN_IDS = st.from_regex(r"[0-9A-Za-z_-]{1,64}", fullmatch=True)
_USERS = st.from_regex(r"[UW][A-Z0-9]{2,20}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(
    run_ids=st.lists(_RUN_IDS, max_size=120),
    hours=st.none() | st.integers(1, 24 * 30),
    user=_USERS,
    command=st.sampled_from(["/runs", "/fabro-runs"]),
)
def test_mute_messages_hold_every_slack_limit(run_ids: list[str], hours: int | None, user: str, command: str) -> None:
    until = NOW + timedelta(hours=hours) if hours else None
    mutes = [Mute("C1", run_id, until, user, NOW) for run_id in run_ids]
    for message in (
        muted_list_message(mutes, command=command),
        *(muted_message(m, user_id=user, command=command) for m in mutes[:3]),
        unmuted_message(run_ids[0] if run_ids else "R1", user_id=user, removed=bool(run_ids)),
    ):
        assert problems(message) == []


@given(run_id=_RUN_IDS, choice=st.sampled_from(["1h", "1d", "end"]))
def test_an_alerts_mute_menu_round_trips_and_fits(run_id: str, choice: str) -> None:
    menu = mute_menu(run_id)
    assert all(len(o["value"]) <= 150 and len(o["text"]["text"]) <= 75 for o in menu["options"])
    value = next(o["value"] for o in menu["options"] if o["value"].startswith(choice + ":"))
    assert decode_mute(value) == (MUTE_CHOICES[choice], run_id)
    assert decode_mute(value.replace(":", "x", 1)) is None


@settings(max_examples=40, deadline=None)
@given(
    title=st.text(max_size=600) | st.just("<!channel> *x* & <@U1>" * 40),
    micros=st.none() | st.integers(0, 10**13),
    stages=st.lists(st.tuples(st.text(min_size=1, max_size=200), st.none() | st.integers(0, 10**12)), max_size=80),
    over=st.floats(0.01, 1e6),
)
def test_a_cost_alert_holds_every_slack_limit_and_mentions_nobody(
    title: str, micros: int | None, stages: list[tuple[str, int | None]], over: float
) -> None:
    raw = make_run("running", title=title)
    raw["billing"] = {"total_usd_micros": micros}
    run = Run.model_validate(raw)
    zero = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    bill = RunBilling.model_validate(
        {
            "stages": [
                {"stage": {"id": n, "name": n}, "billing": {**zero, "total_usd_micros": usd}} for n, usd in stages
            ],
            "totals": {**zero, "total_usd_micros": micros},
            "by_model": [],
        }
    )
    key = AlertKey(AlertKind.COST, run.id)
    for message in (
        cost_alert(run, bill, over_usd=over, now=NOW, web_base="https://f", key=key),
        cost_alert(run, None, over_usd=over, now=NOW, web_base=None, key=key),
    ):
        assert problems(message) == []
        assert "<!channel>" not in json.dumps(message)
        assert metadata_key(message) == key.encode()


@settings(max_examples=40, deadline=None)
@given(
    titles=st.lists(st.text(max_size=400) | st.just("<!channel> *x* & <@U1>" * 20), max_size=8),
    spent=st.integers(0, 10**13),
    budget=st.floats(0.01, 1e7),
    tz=st.sampled_from(["UTC", "Europe/Berlin", "<!here>"]),
    minimal=st.booleans(),
)
def test_a_budget_alert_holds_every_slack_limit_and_mentions_nobody(
    titles: list[str], spent: int, budget: float, tz: str, minimal: bool
) -> None:
    top = [
        IndexedRun(f"R{i}", None, None, "running", t, "https://f/runs/x" if i % 2 else None, NOW, i * 10**6)
        for i, t in enumerate(titles)
    ]
    key = AlertKey(AlertKind.BUDGET, NOW.date().isoformat())
    message = budget_alert(NOW.date(), spent, budget, top, tz=tz, command="/runs", key=key, minimal=minimal)
    assert problems(message) == []
    assert "<!channel>" not in json.dumps(message) and "<!here>" not in json.dumps(message)
    assert metadata_key(message) == key.encode()
    if minimal:  # a channel shared with another organisation sees no amounts and no runs
        assert "$" not in json.dumps(message) and not any(f"R{i}" in json.dumps(message) for i in range(len(top)))


_HOSTILE_TITLES = st.text(max_size=600) | st.just("<!channel> *x* & <@U1>" * 40)
_LOGINS = st.from_regex(r"[a-z0-9][a-z0-9-]{0,38}", fullmatch=True)


@settings(max_examples=40, deadline=None)
@given(title=_HOSTILE_TITLES, micros=st.none() | st.integers(0, 10**13), with_pr=st.booleans())
def test_a_succeeded_alert_holds_every_slack_limit_and_mentions_nobody(
    title: str, micros: int | None, with_pr: bool
) -> None:
    raw = make_run("succeeded", title=title)
    raw["billing"] = {"total_usd_micros": micros}
    run = Run.model_validate(raw)
    if with_pr:
        run = run.model_copy(update={"pull_request": PullRequest(number=7, html_url="https://github.com/a/b/pull/7")})
    key = AlertKey(AlertKind.SUCCEEDED, run.id)
    message = succeeded_alert(run, now=NOW, web_base="https://fabro.example.com", key=key)
    assert problems(message) == []
    assert "<!channel>" not in json.dumps(message)
    assert metadata_key(message) == key.encode()


@settings(max_examples=40, deadline=None)
@given(
    items=st.lists(
        st.tuples(
            st.sampled_from([AlertKind.SUCCEEDED, AlertKind.PR, AlertKind.COST, AlertKind.FAILED, AlertKind.QUESTION]),
            _HOSTILE_TITLES,
        ),
        min_size=1,
        max_size=300,
    )
)
def test_a_digest_of_successes_pull_requests_and_costs_holds_every_slack_limit(
    items: list[tuple[AlertKind, str]],
) -> None:
    pairs = [(kind, Run.model_validate(make_run("succeeded", title=title))) for kind, title in items]
    message = digest_message(pairs, command="/runs", web_base="https://fabro.example.com", key="digest:x")
    assert problems(message) == []
    assert "<!channel>" not in json.dumps(message)


@settings(max_examples=40, deadline=None)
@given(
    kinds=st.sets(st.sampled_from(SUBSCRIPTION_WORDS), min_size=1),
    by=st.lists(_LOGINS, max_size=20),
    not_by=st.lists(_LOGINS, max_size=20),
    not_repos=st.lists(st.from_regex(r"[\w.-]{1,40}/[\w.-]{1,40}", fullmatch=True), max_size=20),
    not_workflows=st.lists(st.text(min_size=1, max_size=60), max_size=20),
    existing=st.booleans(),
)
def test_subscription_messages_of_any_kinds_and_exclusions_hold_every_slack_limit(
    kinds: set[str],
    by: list[str],
    not_by: list[str],
    not_repos: list[str],
    not_workflows: list[str],
    existing: bool,
) -> None:
    subs = [
        Subscription(
            n,
            "C1",
            frozenset(kinds),
            created_by="U1",
            by=tuple(by),
            not_by=tuple(not_by),
            not_repos=tuple(not_repos),
            not_workflows=tuple(not_workflows),
        )
        for n in range(1, 40)
    ]
    for message in (
        subscribed_message(subs[0], user_id="U1", command="/runs", existing=existing),
        subscriptions_message(subs, channel="C1", default_channel="C1", broken=None, command="/runs"),
    ):
        assert problems(message) == []
        assert "<!channel>" not in json.dumps(message)
