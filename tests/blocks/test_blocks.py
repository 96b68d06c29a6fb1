"""Run cards: every real shape renders, within Slack's limits, with untrusted text inert."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block

from bot.blocks.limits import problems
from bot.blocks.replies import error_message, help_message, usage_error_message
from bot.blocks.routing import decode_page
from bot.blocks.runs import Scanned, run_detail_message, run_list_message, run_summary
from bot.core.query import Narrow, RunQuery, UsageError, parse
from bot.fabro.errors import FabroUnavailable
from bot.fabro.models import Failure, Run, RunList
from tests.fakes.runs import make_run, run_examples

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
HOSTILE = "<!channel> <@U123> <https://evil.example|x> & *bold*"


def run_query(text: str) -> RunQuery:
    query = parse(text)
    assert isinstance(query, RunQuery), query
    return query


def usage_error(text: str) -> UsageError:
    error = parse(text)
    assert isinstance(error, UsageError), error
    return error


def page(runs: list[dict[str, Any]], total: int | None = None, has_more: bool = False) -> RunList:
    meta: dict[str, Any] = {"has_more": has_more}
    if total is not None:
        meta["total"] = total
    return RunList.model_validate({"data": runs, "meta": meta})


def assert_sendable(message: dict[str, Any]) -> None:
    assert problems(message) == []
    for block in message["blocks"]:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.to_dict()  # slack_sdk's validators raise on what they know


def all_text(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)


def mrkdwn_texts(value: object) -> list[str]:
    """Every string Slack parses for mentions and links: mrkdwn objects and the fallback text."""
    found: list[str] = []
    if isinstance(value, dict):
        if value.get("type") == "mrkdwn":
            found.append(value["text"])
        for key, item in value.items():
            if key == "text" and isinstance(item, str) and "type" not in value:
                found.append(item)  # the message's fallback text
            else:
                found += mrkdwn_texts(item)
    elif isinstance(value, list):
        for item in value:
            found += mrkdwn_texts(item)
    return found


@pytest.mark.parametrize("example", run_examples(), ids=lambda r: r["id"])
def test_every_real_example_renders_as_list_and_detail(example: dict[str, Any]) -> None:
    run = Run.model_validate(example)
    assert_sendable(run_list_message(RunQuery(), page([example], total=1), now=NOW))
    assert_sendable(run_detail_message(run, now=NOW, failure=Failure(reason="workflow_error", message="boom")))


def test_a_hostile_title_renders_literally_and_notifies_no_one() -> None:
    run = make_run("blocked", title=HOSTILE)
    run["current_question"] = {
        "id": "q",
        "text": HOSTILE,
        "stage": "s",
        "question_type": "yes_no",
        "options": [],
        "allow_freeform": False,
    }
    for message in (
        run_list_message(RunQuery(), page([run], 1), now=NOW),
        run_detail_message(Run.model_validate(run), now=NOW, failure=Failure(message=HOSTILE)),
    ):
        parsed = "\n".join(mrkdwn_texts(message))
        for live in ("<!channel>", "<@U123>", "<https://evil.example|x>"):
            assert live not in parsed
        assert "&lt;!channel&gt; &lt;@U123&gt; &lt;https://evil.example|x&gt; &amp;" in parsed
        assert_sendable(message)


def test_a_run_with_only_an_id_still_renders() -> None:
    message = run_list_message(RunQuery(), page([{"id": "01KJW4MG800000000000000004"}], 1), now=NOW)
    assert_sendable(message)
    assert_sendable(run_detail_message(Run.model_validate({"id": "01KJW4MG800000000000000004"}), now=NOW))


def test_an_unknown_status_kind_and_extra_fields_are_shown_as_is() -> None:
    run = make_run("running")
    run["lifecycle"]["status"] = {"kind": "hibernating", "reason": "moon_phase"}
    run["brand_new_field"] = {"nested": [1, 2]}
    text = run_summary(Run.model_validate(run), NOW)
    assert "*hibernating* · moon phase" in text


def test_the_list_card_shows_what_a_team_needs() -> None:
    run = make_run("failed", title="Add dark mode", created=datetime(2026, 11, 28, 9, 0, tzinfo=UTC))
    run["diff"] = {"files_changed": 3, "additions": 12, "deletions": 4}
    run["billing"] = {"total_usd_micros": 3_140_000}
    run["pull_request"] = {
        "owner": "demo",
        "repo": "api",
        "number": 482,
        "html_url": "https://github.com/demo/api/pull/482",
    }
    message = run_list_message(
        run_query("failed"), page([run], total=57, has_more=True), now=NOW, web_base="https://fabro.example.com"
    )
    text = all_text(message)
    for expected in (
        ":x: *failed* · workflow error",
        "Add dark mode",
        "Implement",
        "demo/api-server",
        "by ada",
        "created 3h ago",
        "ran 7m",
        "$3.14",
        "+12 −4 in 3 files",
        "57 match",
        "showing 1–1",
    ):
        assert expected in text
    buttons = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [b["text"]["text"] for b in buttons] == ["Pull request #482", "Open in Fabro", "Next"]
    assert buttons[1]["url"] == f"https://fabro.example.com/runs/{run['id']}"


def test_links_web_wins_over_the_configured_url_and_no_url_means_no_button() -> None:
    run = make_run("running")
    run["links"] = {"web": "https://fabro.internal/runs/abc"}
    with_link = all_text(run_list_message(RunQuery(), page([run], 1), now=NOW, web_base="https://other"))
    assert "https://fabro.internal/runs/abc" in with_link and "https://other" not in with_link
    bare = make_run("running")
    message = run_list_message(RunQuery(), page([bare], 1), now=NOW, web_base=None)
    assert "Open in Fabro" not in all_text(message)


def test_an_unsafe_pull_request_url_gets_no_button() -> None:
    run = make_run("succeeded")
    run["pull_request"] = {"number": 1, "html_url": "javascript:alert(1)"}
    assert "Pull request" not in all_text(run_list_message(RunQuery(), page([run], 1), now=NOW))


def test_a_hundred_long_runs_are_cut_to_fit_and_next_continues_where_it_stopped() -> None:
    runs = [make_run("blocked", title="T" * 400) for _ in range(100)]
    for run in runs:
        run["current_question"] = {"id": "q", "text": "Q" * 2000, "question_type": "freeform"}
        run["pull_request"] = {"number": 7, "html_url": "https://github.com/a/b/pull/7"}
    query = run_query("blocked limit:100")
    message = run_list_message(query, page(runs, total=250, has_more=True), now=NOW, web_base="https://f")
    assert_sendable(message)
    shown = sum(1 for b in message["blocks"] if b.get("block_id", "").startswith("run:"))
    assert 5 < shown < 100
    assert "did not fit in one Slack message" in all_text(message)
    next_value = next(
        e["value"]
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "runs_page:next"
    )
    decoded = decode_page(next_value)
    assert decoded is not None and decoded.offset == shown


def test_previous_appears_after_the_first_page() -> None:
    message = run_list_message(run_query("failed page:2"), page([make_run("failed")], total=11), now=NOW)
    actions = [e["action_id"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert "runs_page:prev" in actions and "runs_page:next" not in actions


def test_no_matches_says_so_and_suggests_something() -> None:
    message = run_list_message(run_query("blocked"), page([], total=0), now=NOW)
    assert message["text"] == "No blocked runs match."
    assert_sendable(message)


def test_the_detail_card_shows_goal_labels_models_family_and_failure() -> None:
    run = make_run("failed", title="T", parent_id="01KK1RWAJ00000000000000001", children_count=2)
    run["goal"] = "Make the login page accessible"
    run["models"] = [{"provider": "anthropic", "name": "claude-opus"}]
    message = run_detail_message(
        Run.model_validate(run),
        now=NOW,
        failure=Failure(reason="workflow_error", message="verify failed", causes=["assert 1 == 2"]),
    )
    text = all_text(message)
    for expected in (
        "Make the login page accessible",
        "`team=platform`",
        "claude-opus",
        "parent `01KK1RWAJ00000000000000001`",
        "2 child runs",
        "*Failure* (workflow error)",
        "verify failed",
        "assert 1 == 2",
        "<!date^",
    ):
        assert expected in text
    assert_sendable(message)


def test_the_detail_card_of_a_pending_approval_says_who_waits() -> None:
    run = Run.model_validate(run_examples()[-1])
    text = all_text(run_detail_message(run, now=NOW))
    assert "waiting for approval" in text


def test_help_and_usage_errors_fit_and_escape_the_offending_word() -> None:
    assert_sendable(help_message("/runs"))
    message = usage_error_message(usage_error("<!channel>"), "/runs")
    assert "<!channel>" not in "\n".join(mrkdwn_texts(message))
    assert_sendable(message)


def test_an_error_message_carries_the_request_id() -> None:
    message = error_message(FabroUnavailable("x", request_id="req-42", timed_out_after=10))
    assert message["text"] == "Fabro did not answer in 10 s — request id req-42. Try again in a moment."
    assert_sendable(message)


def test_the_detail_card_keeps_within_the_whole_message_budget() -> None:
    from datetime import UTC, datetime

    from bot.blocks.limits import TOTAL_BLOCK_TEXT, problems
    from bot.blocks.runs import run_detail_message
    from bot.fabro.models import Failure, Run
    from tests.fakes.runs import make_run

    raw = make_run("blocked", title="T" * 300)
    raw["goal"] = "g" * 6000
    raw["labels"] = {f"label-{i}-" + "k" * 40: "v" * 150 for i in range(40)}
    raw["current_question"] = {
        "id": "q",
        "text": "q" * 6000,
        "question_type": "freeform",
        "context_display": "c" * 6000,
    }
    failure = Failure(message="m" * 6000, causes=["c" * 400] * 5)
    message = run_detail_message(Run.model_validate(raw), now=datetime.now(UTC), failure=failure)
    assert problems(message) == []
    size = sum(len((b.get("text") or {}).get("text", "")) for b in message["blocks"])
    assert size < TOTAL_BLOCK_TEXT


def test_a_run_without_a_repository_or_with_an_agent_creator_shows_what_fabro_sends() -> None:
    from datetime import UTC, datetime

    from bot.blocks.alerts import failed_alert
    from bot.blocks.limits import problems
    from bot.blocks.runs import run_detail_message, run_summary
    from bot.fabro.models import Run
    from tests.fakes.runs import make_run

    raw = make_run("failed", title="No repo")
    raw["repository"] = None
    raw["created_by"] = {"kind": "agent", "session_id": "ses_1", "model": "claude-opus-<4>"}
    raw["sandbox"] = {"kind": "failed", "plan": None, "instance": None, "failure": {"message": "x"}}
    run = Run.model_validate(raw)
    now = datetime.now(UTC)
    summary = run_summary(run, now)
    assert "by an agent (claude-opus-&lt;4&gt;)" in summary and "None" not in summary
    detail = run_detail_message(run, now=now)
    assert "*Repository*" not in str(detail["blocks"]) and "*Sandbox*\\nfailed" in str(detail["blocks"])
    for message in (detail, failed_alert(run, now=now, failure=None, web_base=None)):
        assert problems(message) == []


_LOGINS = st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True)
_HOSTILE_TEXT = st.text(max_size=600) | st.just(HOSTILE * 20)


@settings(max_examples=60, deadline=None)
@given(
    titles=st.lists(_HOSTILE_TEXT, max_size=100),
    by=st.lists(_LOGINS, max_size=4),
    read=st.integers(0, 300),
    offset=st.integers(0, 1_000_000),
    note=st.none() | _HOSTILE_TEXT,
)
def test_a_list_the_bot_filtered_holds_every_slack_limit(
    titles: list[str], by: list[str], read: int, offset: int, note: str | None
) -> None:
    runs = [make_run("failed", title=t) for t in titles]
    query = RunQuery(limit=100, offset=offset, narrow=Narrow(by=tuple(by), not_repos=("acme/sandbox",)))
    ends = tuple(offset + i + 1 for i in range(len(runs)))
    scanned = Scanned(read=max(read, len(runs)), ends=ends, next_offset=offset + len(runs) if read else None)
    message = run_list_message(query, page(runs), now=NOW, scanned=scanned, note=note)
    assert_sendable(message)
    for b in message["blocks"]:
        for e in b.get("elements", []):
            if e.get("action_id", "").startswith("runs_page:"):
                assert len(e["value"]) <= 2000 and decode_page(e["value"]) is not None
