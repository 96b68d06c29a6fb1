"""Every kind of message the bot can post, drawn from the sample runs: the place to review the design.  [pure]

`fabro-slack-bot preview --gallery` shows them in the terminal; a test holds each one to
Slack's limits.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from bot.blocks import kit
from bot.blocks.alerts import (
    approval_alert,
    budget_alert,
    cost_alert,
    digest_message,
    failed_alert,
    pr_alert,
    question_alert,
    resolved_alert,
    succeeded_alert,
)
from bot.blocks.inspect import (
    answer_message,
    ask_failure_text,
    changes_message,
    cost_message,
    graph_comment,
    log_comment,
    preview_message,
)
from bot.blocks.live import live_card, update_reply
from bot.blocks.outcomes import outcome_text
from bot.blocks.replies import error_message, help_message, internal_error_message, usage_error_message
from bot.blocks.runs import Scanned, run_detail_message, run_list_message, unfurl_card
from bot.blocks.start import start_announcement, start_card, start_picker
from bot.blocks.stats import stats_message
from bot.blocks.subscriptions import (
    muted_list_message,
    muted_message,
    subscribed_message,
    subscriptions_message,
    summary_message,
    unmuted_message,
    unsubscribed_message,
)
from bot.blocks.text import escape
from bot.blocks.work import setup_changed, setup_shown, work_card
from bot.core.drafts import Draft, Said, first_line
from bot.core.errors import NotAllowed
from bot.core.keys import AlertKind, Verb
from bot.core.outcomes import Outcome, OutcomeVerb
from bot.core.query import Narrow, RunQuery, UsageError, parse
from bot.core.records import ChannelSetup, ChannelSummary, IndexedRun, Mute, Subscription
from bot.core.stats import Window, bounds, picture
from bot.fabro.errors import FabroUnavailable
from bot.fabro.models import (
    AutomationPreset,
    Billing,
    Failure,
    ListMeta,
    PullRequest,
    PullRequestOpened,
    Question,
    Run,
    RunEvent,
    RunList,
    Stage,
)
from bot.fabro.outputs import RunBilling, RunCommits, RunFiles

__all__ = ["gallery"]

Message = dict[str, Any]
WEB = "https://fabro.example.com"
COMMAND = "/runs"

_QUESTIONS: list[dict[str, Any]] = [
    {"id": "q-yes", "text": "Deploy to production now?", "question_type": "yes_no", "stage": "deploy"},
    {"id": "q-confirm", "text": "Apply the database migration?", "question_type": "confirmation", "stage": "migrate"},
    {
        "id": "q-choice",
        "text": "Which approach should the refactor take?",
        "question_type": "multiple_choice",
        "options": [
            {"key": "a", "label": "Extract a service", "description": "Smaller modules, one more hop"},
            {"key": "b", "label": "Keep it inline", "description": "Fewer files, a longer function"},
            {"key": "c", "label": "Split by feature"},
        ],
    },
    {
        "id": "q-many",
        "text": "Which region should the canary run in?",
        "question_type": "multiple_choice",
        "options": [{"key": f"r{i}", "label": f"region-{i}"} for i in range(8)],
    },
    {
        "id": "q-multi",
        "text": "Which checks should block the merge?",
        "question_type": "multi_select",
        "options": [{"key": k, "label": k} for k in ("lint", "types", "unit tests", "e2e")],
    },
    {
        "id": "q-free",
        "text": "What should the release notes say?",
        "question_type": "freeform",
        "context_display": "diff --git a/CHANGELOG.md b/CHANGELOG.md\n+## 2.4.0\n+- Rate limiting on auth endpoints",
    },
]


def _runs(now: datetime) -> list[Run]:
    raw = json.loads(resources.files("bot.fabro").joinpath("demo_runs.json").read_text("utf-8"))
    runs = [Run.model_validate(r) for r in raw["runs"]]
    newest = max((r.timestamps.created_at for r in runs if r.timestamps.created_at), default=now)
    shift = now - timedelta(minutes=4) - newest
    return [_shifted(r, shift) for r in runs]


def _shifted(run: Run, shift: timedelta) -> Run:
    stamps = run.timestamps.model_copy(
        update={k: v + shift for k, v in run.timestamps.model_dump().items() if v is not None}
    )
    return run.model_copy(update={"timestamps": stamps})


def gallery(now: datetime) -> list[tuple[str, Message]]:
    """(title, message) for every kind of message, in the order a person meets them."""
    runs = _runs(now)
    by_kind = {r.status.kind: r for r in runs}
    failed, blocked, pending = by_kind["failed"], by_kind["blocked"], by_kind["pending"]
    listing = RunList(data=runs[:6], meta=ListMeta(has_more=True, total=len(runs)))
    items: list[tuple[str, Message]] = [
        ("/runs active (a list)", run_list_message(RunQuery(limit=6), listing, now=now, web_base=WEB)),
        (
            "/runs by:octocat -repo:acme/sandbox (a list the bot filtered)",
            run_list_message(
                RunQuery(limit=3, narrow=Narrow(by=("octocat",), not_repos=("acme/sandbox",))),
                RunList(data=runs[:3]),
                now=now,
                web_base=WEB,
                scanned=Scanned(read=50, ends=(4, 17, 31), next_offset=31),
            ),
        ),
        ("/runs <id> (a detail card)", run_detail_message(blocked, now=now, web_base=WEB)),
        (
            "/runs <id> of a failed run",
            run_detail_message(failed, now=now, failure=_failure(), web_base=WEB),
        ),
        ("Alert: a run failed", failed_alert(failed, now=now, failure=_failure(), web_base=WEB)),
    ]
    for raw in _QUESTIONS:
        question = Question.model_validate(raw)
        alert = question_alert(blocked, question, now=now, asked_at=now - timedelta(minutes=12), web_base=WEB)
        items.append((f"Alert: a {question.question_type} question", alert))
    items += [
        ("Alert: an approval waiting", approval_alert(pending, now=now, web_base=WEB)),
        ("Alert: a run succeeded (subscribe succeeded)", succeeded_alert(by_kind["succeeded"], now=now, web_base=WEB)),
        (
            "Alert: a pull request opened (subscribe pr)",
            pr_alert(
                _with_pr(by_kind["succeeded"]),
                now=now,
                opened=_opened(),
                state=None,
                web_base=WEB,
            ),
        ),
        (
            "Alert: a run over COST_ALERT_USD (subscribe cost)",
            cost_alert(_costing(by_kind["running"], 12_720_000), _bill(), over_usd=10.0, now=now, web_base=WEB),
        ),
        (
            "Alert: the day's spend passed DAILY_BUDGET_USD (subscribe cost)",
            budget_alert(
                now.date(),
                48_300_000,
                40.0,
                [_spent(r, 9_000_000 - i * 1_000_000) for i, r in enumerate(runs[:5])],
                tz="Europe/Berlin",
                command=COMMAND,
            ),
        ),
        (
            "Alert: a digest of successes and pull requests",
            digest_message(
                [(AlertKind.SUCCEEDED, r) for r in runs] + [(AlertKind.PR, r) for r in runs],
                command=COMMAND,
                web_base=WEB,
                key="digest:gallery-wins",
            ),
        ),
        (
            "Alert: a run cancelled (asked for by name)",
            failed_alert(_cancelled(failed), now=now, failure=None, web_base=WEB),
        ),
        (
            "Alert resolved: answered",
            resolved_alert(blocked, outcome=outcome_text(_answered()), now=now, web_base=WEB),
        ),
        (
            "Alert resolved: denied",
            resolved_alert(pending, outcome=outcome_text(_denied()), now=now, web_base=WEB),
        ),
        (
            "Alert: a digest of many",
            digest_message(
                [(AlertKind.FAILED, r) for r in runs] * 4, command=COMMAND, web_base=WEB, key="digest:gallery"
            ),
        ),
        ("/runs stats", stats_message(_picture(runs, now), now=now, web_base=WEB)),
        ("A pasted run link, unfurled", {"text": "unfurl", **unfurl_card(blocked, now=now, web_base=WEB)}),
        ("/runs start <automation-id>", start_card(_automation(), intent="0a1b2c3d4e5f", channel="C0TEAM")),
        ("/runs start: the window", {"text": "picker", **start_picker([_automation()], metadata="{}")}),
        ("@Fabro <goal>: the confirmation", work_card(_draft(), intent="0a1b2c3d4e5f")),
        ("/runs setup repo:acme/api", setup_changed(_setup(now), user_id="U0ADA")),
        ("/runs setup", setup_shown(_setup(now), command=COMMAND, allowed=frozenset({"acme/api"}))),
        (
            "A run started from Slack",
            start_announcement(pending, user_id="U0ADA", automation="Nightly dependency bumps", now=now, web_base=WEB),
        ),
        ("A succeeded run, ready to ship", run_detail_message(by_kind["succeeded"], now=now, web_base=WEB)),
        ("A followed run's live card", live_card(blocked, _stages(), now=now, web_base=WEB)),
        (
            "In the live card's thread: a stage failed",
            _reply(
                RunEvent.model_validate(
                    {
                        "seq": 9,
                        "event": "stage.failed",
                        "node_label": "verify",
                        "properties": {"will_retry": True, "failure": {"message": "3 tests failed"}},
                    }
                ),
                blocked,
                now,
            ),
        ),
        ("/runs help", help_message(COMMAND)),
        ("A usage error (/runs blokced)", usage_error_message(_usage("blokced"), COMMAND)),
        ("A usage error (/runs limit:500)", usage_error_message(_usage("limit:500"), COMMAND)),
        ("Fabro did not answer", error_message(FabroUnavailable("x", request_id="req_123", timed_out_after=10))),
        ("Not allowed", error_message(NotAllowed(Verb.RETRY))),
        ("Something broke on our side", internal_error_message("4f2a9c1e7b3d")),
    ]
    items += _inspections(failed, by_kind["succeeded"], now)
    sub = Subscription(3, "C0TEAM", frozenset({"failed", "questions"}), repo="acme/api", created_by="U0ADA")
    items += [
        (
            "/runs subscribe failed questions repo:acme/api",
            subscribed_message(sub, user_id="U0ADA", command=COMMAND, existing=False),
        ),
        (
            "/runs subscriptions",
            subscriptions_message([sub], channel="C0TEAM", default_channel=None, broken=None, command=COMMAND),
        ),
        ("/runs unsubscribe 3", unsubscribed_message(1, ids=(3,), user_id="U0ADA", command=COMMAND)),
        (
            "/runs summary daily 09:00",
            summary_message(
                ChannelSummary("C0TEAM", "09:00", "Europe/Berlin", "U0ADA", now), command=COMMAND, changed_by="U0ADA"
            ),
        ),
        (
            "Mute this run for 1 hour (an alert's menu, or /runs mute <id> 1h)",
            muted_message(_muted(runs[0], now, hours=1), user_id="U0ADA", command=COMMAND),
        ),
        (
            "/runs muted",
            muted_list_message([_muted(runs[0], now, hours=1), _muted(runs[1], now, hours=None)], command=COMMAND),
        ),
        ("/runs unmute <id>", unmuted_message(runs[0].id, user_id="U0ADA", removed=True)),
    ]
    return items


def _inspections(failed: Run, succeeded: Run, now: datetime) -> list[tuple[str, Message]]:
    """Looking into a run from its thread: one example of each."""
    files = RunFiles.model_validate(
        {
            "data": [
                _changed("src/auth/limiter.py", 84, 3, "added"),
                _changed("src/auth/routes.py", 21, 9),
                _changed("tests/test_auth.py", 40, 0, "added"),
                {"old_file": {"name": "assets/lock.png"}, "new_file": {"name": "assets/lock.png"}, "binary": True},
                _changed("README.md", 4, 1),
            ],
            "meta": {"source": "sandbox", "stats": {"additions": 149, "deletions": 13}, "total_changed": 5},
        }
    )
    commits = RunCommits.model_validate(
        {
            "data": [
                {"sha": "3f2a9c1e7b3d" + "0" * 28, "short_sha": "3f2a9c1", "subject": "Add a token bucket limiter"},
                {"sha": "9b1c44d0aa1e" + "0" * 28, "short_sha": "9b1c44d", "subject": "Limit the login routes"},
            ]
        }
    )
    bill = _bill()
    answer = (
        "The run failed in *verify*: `test_burst_is_refused` expects a 429 after 5 logins, but the limiter"
        " allows 6 because the window starts at the first request, not before it."
    )
    tail = "E   assert 200 == 429\nFAILED tests/test_auth.py::test_burst_is_refused\n1 failed, 41 passed in 3.2s"
    log = log_comment(failed, size=7_340_032, kept=5_242_880, stage="verify", tail=tail)
    url = "https://3000-sbx-4f2a.preview.example/?tkn=0123456789abcdef"
    return [
        ("In a run's thread: Changes", changes_message(succeeded, files, commits)),
        ("In a run's thread: Cost", cost_message(succeeded, bill)),
        ("In a run's thread: the log, uploaded (its message)", {"text": log, "blocks": [kit.section(log)]}),
        ("/runs preview <id> 3000 (to the asker alone)", preview_message(succeeded, 3000, url, now)),
        (
            "In a run's thread: the graph, uploaded (its message)",
            _said(graph_comment(failed, "verify", marked=True, as_image=True)),
        ),
        ("Ask Fabro: the answer as it is written", answer_message(escape(answer[:60]), run_id=failed.id, writing=True)),
        ("Ask Fabro: the answer", answer_message(escape(answer), run_id=failed.id)),
        ("Ask Fabro: a failed turn", answer_message(escape(ask_failure_text("sandbox_unavailable")), run_id=failed.id)),
    ]


def _bill() -> RunBilling:
    bill = RunBilling.model_validate(
        {
            "stages": [
                _billed("plan", "claude-sonnet-4-5", 310_000, 18_400),
                _billed("implement", "claude-opus-4", 2_140_000, 96_200),
                _billed("verify", "claude-sonnet-4-5", 270_000, 15_900),
            ],
            "totals": {"input_tokens": 98_000, "output_tokens": 32_500, "total_tokens": 130_500},
            "by_model": [
                {"model": {"model_id": "claude-opus-4"}, "stages": 1, "billing": {"total_usd_micros": 2_140_000}},
                {"model": {"model_id": "claude-sonnet-4-5"}, "stages": 3, "billing": {"total_usd_micros": 580_000}},
            ],
        }
    )
    bill.totals.total_usd_micros = 2_720_000
    return bill


def _said(text: str) -> Message:
    return {"text": text, "blocks": [kit.section(text)]}


def _changed(path: str, added: int, removed: int, kind: str = "modified") -> dict[str, Any]:
    patch = "\n".join([f"--- a/{path}", f"+++ b/{path}", *["-old"] * removed, *["+new"] * added])
    return {"old_file": {"name": path}, "new_file": {"name": path}, "change_kind": kind, "unified_patch": patch}


def _billed(stage: str, model: str, micros: int, tokens: int) -> dict[str, Any]:
    return {
        "stage": {"id": stage, "name": stage},
        "model": {"provider": "anthropic", "model_id": model},
        "billing": {"total_usd_micros": micros, "total_tokens": tokens},
    }


def _muted(run: Run, now: datetime, *, hours: int | None) -> Mute:
    return Mute("C0TEAM", run.id, now + timedelta(hours=hours) if hours else None, "U0ADA", now)


def _stages() -> list[Stage]:
    return [
        Stage.model_validate({"id": f"{n}@1", "name": n, "status": s, "node_id": n, "wall_time_ms": ms})
        for n, s, ms in (
            ("plan", "succeeded", 40_000),
            ("implement", "succeeded", 540_000),
            ("verify", "retrying", None),
        )
    ]


def _reply(event: RunEvent, run: Run, now: datetime) -> Message:
    reply = update_reply(event, run, now=now, web_base=WEB)
    assert reply is not None
    return reply


def _draft() -> Draft:
    context = (
        Said("grace", "test_login_redirect fails about 1 in 5 runs on CI since Tuesday"),
        Said("ada", "looks like a race with the session cookie, see #412"),
    )
    request = "make the login test deterministic; keep the retry out of it"
    title = first_line(request)
    return Draft(request, title, "acme/web-app", "main", "implement", "C0TEAM", "1724332000.1234", context)


def _setup(now: datetime) -> ChannelSetup:
    return ChannelSetup("C0TEAM", "acme/api", "main", "implement", "U0ADA", now)


def _automation() -> AutomationPreset:
    return AutomationPreset.model_validate(
        {
            "id": "nightly-deps",
            "name": "Nightly dependency bumps",
            "description": "Bump dependencies and open a pull request",
            "target": {"repository": "acme/api", "ref": "main", "workflow": "implement"},
            "triggers": [{"id": "t1", "type": "api", "enabled": True}],
        }
    )


def _usage(text: str) -> UsageError:
    parsed = parse(text)
    assert isinstance(parsed, UsageError)
    return parsed


def _spent(run: Run, micros: int) -> IndexedRun:
    return IndexedRun(
        run.id,
        None,
        None,
        run.bucket,
        run.title or run.id,
        run.web_url(WEB),
        run.updated_at or datetime.now(UTC),
        micros,
    )


def _costing(run: Run, micros: int) -> Run:
    return run.model_copy(update={"billing": Billing(total_usd_micros=micros)})


def _with_pr(run: Run) -> Run:
    pr = PullRequest(owner="acme", repo="api", number=42, html_url="https://github.com/acme/api/pull/42")
    return run.model_copy(update={"pull_request": pr})


def _opened() -> PullRequestOpened:
    return PullRequestOpened(
        number=42,
        html_url="https://github.com/acme/api/pull/42",
        owner="acme",
        repo="api",
        title="Rate limiting for the auth endpoints",
        base_branch="main",
        head_branch="fabro/rate-limit",
        draft=True,
    )


def _failure() -> Failure:
    return Failure(
        reason="workflow_error",
        message="Stage `test` exited with status 1: 3 tests failed in tests/test_auth.py",
        category="workflow",
        causes=["test_rate_limit_resets_after_window", "test_burst_is_refused"],
    )


def _cancelled(run: Run) -> Run:
    status = run.lifecycle.status.model_copy(update={"reason": "cancelled"})
    return run.model_copy(update={"lifecycle": run.lifecycle.model_copy(update={"status": status})})


def _answered() -> Outcome:
    return Outcome(OutcomeVerb.ANSWERED, slack_user="U0ADA", question="Deploy to production now?", answer="yes")


def _denied() -> Outcome:
    return Outcome(OutcomeVerb.DENIED, slack_user="U0ADA", reason="not during the freeze")


def _picture(runs: list[Run], now: datetime) -> Any:
    tz = ZoneInfo("Europe/Berlin")
    start, end = bounds(Window.WEEK, now, tz)
    waiting = [r for r in runs if r.bucket == "blocked" or r.awaits_approval]
    return picture(runs, waiting, window=Window.WEEK, start=start, end=end, tz=str(tz))
