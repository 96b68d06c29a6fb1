"""Every kind of message the bot can post, drawn from the sample runs: the place to review the design.  [pure]

`fabro-slack-bot preview --gallery` shows them in the terminal; a test holds each one to
Slack's limits.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.asking.answers import NOT_LINKED, NOTHING_OF_YOURS
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
from bot.blocks.exposure import for_exposure, kept_inside
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
from bot.blocks.presentation import Presentation
from bot.blocks.replies import error_message, help_message, internal_error_message, notice, usage_error_message
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
from bot.core.exposure import Exposure
from bot.core.keys import AlertKind, Verb
from bot.core.outcomes import Outcome, OutcomeVerb
from bot.core.query import Narrow, RunQuery, UsageError, parse
from bot.core.records import ChannelSetup, ChannelSummary, IndexedRun, Mute, Subscription
from bot.core.stats import Window, bounds, picture
from bot.fabro.demo import demo_data
from bot.fabro.errors import FabroUnavailable
from bot.fabro.models import (
    AutomationPreset,
    Diff,
    Failure,
    ListMeta,
    PullRequestOpened,
    Question,
    Run,
    RunEvent,
    RunList,
    Stage,
)
from bot.fabro.outputs import RunBilling, RunCommits, RunFiles
from bot.people.permissions import ActionClass, Permissions, effective_rules

__all__ = ["gallery"]

Message = dict[str, Any]
WEB = "https://fabro.example.com"
COMMAND = "/runs"

# Each example question is asked by a run of its own, whose title says what it is about.
_ASKING_RUNS = (
    "Release API v2.4 to production",
    "Add an index to the orders table",
    "Refactor the payment service",
    "Roll out the new cache as a canary",
    "Tighten the checks that block a merge",
    "Write the 2.4.0 release notes",
)
_FAILING_RUNS = (
    "Bump the Node toolchain to 22",
    "Split the monolith's test suite",
    "Regenerate the OpenAPI client",
    "Add retries to the webhook sender",
    "Port the billing jobs to the new queue",
)
_SUCCEEDING_RUNS = (
    "Cache the dashboard's slowest query",
    "Drop the unused feature flags",
    "Add request ids to the API's logs",
    "Speed up the billing export",
)
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

_EPOCH = datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC"))


def _variant(run: Run, n: int, title: str, **update: Any) -> Run:
    """Another sample run like `run`: its own id and title, so no two examples share a run."""
    return run.model_copy(update={"id": f"01KK2V{n:02d}{run.id[8:]}", "title": title, "goal": title, **update})


def _created(run: Run, at: datetime) -> Run:
    stamps = run.timestamps.model_copy(update={"created_at": at, "started_at": None, "last_event_at": None})
    return run.model_copy(update={"timestamps": stamps})


def gallery(now: datetime) -> list[tuple[str, Message]]:
    """(title, message) for every kind of message, in the order a person meets them. Every example
    is drawn from the demo's sample runs (or a variant with its own id and title), so each one's
    run, times, question and outcome agree with one another and with `preview --demo`."""
    runs, events = demo_data(now)
    by_id = {r.id: r for r in runs}
    failed = by_id["01KJT9DBQ00000000000000005"]  # Add dark mode toggle: failed in verify
    blocked = by_id["01KK1QW3C00000000000000009"]  # Migrate billing tables: asks which approach
    pending = by_id["01KK1T2B300000000000000008"]  # a child run waiting for approval
    running = by_id["01KK1RWAJ00000000000000001"]  # Add rate limiting: the followed run
    shipped = by_id["01KJJ8S2R00000000000000006"]  # succeeded, with a pull request
    failure = _failure_of(failed, events)
    active = parse("active")
    assert isinstance(active, RunQuery)
    listed = [r for r in runs if r.bucket in ("pending", "runnable", "initializing", "running", "blocked")]
    listing = RunList(data=listed, meta=ListMeta(has_more=False, total=len(listed)))
    # The bot's own filter over every sample run, newest first, as the listing reads them.
    newest = sorted(runs, key=lambda r: r.timestamps.created_at or now, reverse=True)
    kept = [
        (i, r)
        for i, r in enumerate(newest)
        if r.created_by and r.created_by.login == "grace" and r.repository.name != "demo/billing"
    ]
    by_grace, ends = [r for _, r in kept], tuple(i + 1 for i, _ in kept)
    items: list[tuple[str, Message]] = [
        ("/runs active (a list)", run_list_message(active, listing, now=now, web_base=WEB)),
        (
            "/runs by:grace -repo:demo/billing (a list the bot filtered)",
            run_list_message(
                RunQuery(limit=3, narrow=Narrow(by=("grace",), not_repos=("demo/billing",))),
                RunList(data=by_grace),
                now=now,
                web_base=WEB,
                scanned=Scanned(read=len(runs), ends=ends, next_offset=None),
            ),
        ),
        (
            "/runs mine (your runs, from the bot's index)",
            run_list_message(
                RunQuery(narrow=Narrow(mine=True)),
                RunList(data=by_grace, meta=ListMeta(has_more=False, total=len(by_grace))),
                now=now,
                web_base=WEB,
            ),
        ),
        (
            "/runs mine, before linking a login",
            notice(f"{NOTHING_OF_YOURS}\n{NOT_LINKED}".format(command=COMMAND)),
        ),
        ("/runs <id> (a detail card)", run_detail_message(blocked, now=now, web_base=WEB)),
        (
            "/runs <id> of a failed run",
            run_detail_message(failed, now=now, failure=failure, web_base=WEB),
        ),
        ("Alert: a run failed", failed_alert(failed, now=now, failure=failure, web_base=WEB)),
        (
            "Alert: a run failed, in a channel shared with another organisation",
            for_exposure(
                failed_alert(failed, now=now, failure=failure, web_base=WEB),
                failed,
                Exposure.MINIMAL,
                Presentation(web_base=WEB, command=COMMAND),
            ),
        ),
        (
            "In a shared channel's thread: Logs, refused",
            kept_inside("logs", run_id=failed.id, command=COMMAND),
        ),
    ]
    for n, (raw, title) in enumerate(zip(_QUESTIONS, _ASKING_RUNS, strict=True)):
        question = Question.model_validate(raw)
        asking = _variant(blocked, n, title, current_question=question)
        alert = question_alert(asking, question, now=now, asked_at=now - timedelta(minutes=12), web_base=WEB)
        items.append((f"Alert: a {question.question_type} question", alert))
    asked = blocked.current_question
    assert asked is not None and asked.options
    answered = Outcome(OutcomeVerb.ANSWERED, slack_user="U0ADA", question=asked.text, answer=asked.options[0].label)
    cancelled = _cancelled(_variant(failed, 10, "Try a larger model on the flaky suite"))
    failures = [failed, by_id["01KK1M8ZD0000000000000000A"]]
    failures += [_variant(failed, 20 + n, title) for n, title in enumerate(_FAILING_RUNS)]
    bumps = _variant(by_id["01KK1S5FH00000000000000007"], 30, "Bump dependencies to their latest versions")
    started = _created(bumps, now)
    wins = [r for r in runs if r.status.kind == "succeeded"]
    wins += [_variant(shipped, 40 + n, title, pull_request=None) for n, title in enumerate(_SUCCEEDING_RUNS)]
    items += [
        ("Alert: an approval waiting", approval_alert(pending, now=now, web_base=WEB)),
        ("Alert: a run succeeded (subscribe succeeded)", succeeded_alert(shipped, now=now, web_base=WEB)),
        (
            "Alert: a pull request opened (subscribe pr)",
            pr_alert(shipped, now=now, opened=_opened(shipped), state=None, web_base=WEB),
        ),
        (
            "Alert: a digest of successes and pull requests",
            digest_message(
                [(AlertKind.SUCCEEDED, r) for r in wins] + [(AlertKind.PR, r) for r in wins if r.pull_request],
                command=COMMAND,
                web_base=WEB,
                key="digest:gallery-wins",
            ),
        ),
        (
            "Alert: a run cancelled (asked for by name)",
            failed_alert(cancelled, now=now, failure=None, web_base=WEB),
        ),
        (
            "Alert resolved: answered",
            resolved_alert(blocked, outcome=outcome_text(answered), now=now, web_base=WEB),
        ),
        (
            "Alert resolved: denied",
            resolved_alert(pending, outcome=outcome_text(_denied()), now=now, web_base=WEB),
        ),
        (
            "Alert: a digest of many",
            digest_message(
                [(AlertKind.FAILED, r) for r in failures], command=COMMAND, web_base=WEB, key="digest:gallery"
            ),
        ),
        ("/runs stats", stats_message(_picture(runs, now), now=now, web_base=WEB)),
        ("A pasted run link, unfurled", {"text": "unfurl", **unfurl_card(blocked, now=now, web_base=WEB)}),
        ("/runs start <automation-id>", start_card(_automation(), intent="0a1b2c3d4e5f", channel="C0TEAM")),
        ("/runs start: the window", {"text": "picker", **start_picker([_automation()], metadata="{}")}),
        ("@fabro-runs <goal>: the confirmation", work_card(_draft(), intent="0a1b2c3d4e5f")),
        ("/runs setup repo:acme/api", setup_changed(_setup(now), user_id="U0ADA")),
        ("/runs setup", setup_shown(_setup(now), command=COMMAND, allowed=frozenset({"acme/api"}))),
        (
            "A run started from Slack",
            start_announcement(started, user_id="U0ADA", automation="Nightly dependency bumps", now=now, web_base=WEB),
        ),
        ("A succeeded run, ready to ship", run_detail_message(shipped, now=now, web_base=WEB)),
        ("A followed run's live card", live_card(running, _stages(), now=now, web_base=WEB)),
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
                running,
                now,
            ),
        ),
        ("/runs help", help_message(COMMAND)),
        ("A usage error (/runs blokced)", usage_error_message(_usage("blokced"), COMMAND)),
        ("A usage error (/runs limit:500)", usage_error_message(_usage("limit:500"), COMMAND)),
        ("Fabro did not answer", error_message(FabroUnavailable("x", request_id="req_123", timed_out_after=10))),
        # The refusal a person gets under the default permissions: the class, and who may.
        ("Not allowed", error_message(Permissions(effective_rules({})).refusal(ActionClass.OPERATE, Verb.RETRY))),
        ("Something broke on our side", internal_error_message("4f2a9c1e7b3d")),
    ]
    # Looking into a run: one failed run whose changes, cost, log, graph and answers all agree.
    limiting = _variant(
        failed,
        50,
        "Add rate limiting to auth endpoints",
        repository=running.repository,
        diff=Diff(files_changed=5, additions=149, deletions=13),
    )
    if limiting.billing is not None:
        limiting = limiting.model_copy(
            update={"billing": limiting.billing.model_copy(update={"total_usd_micros": 2_720_000})}
        )
    items += _inspections(limiting, now)
    # What runs cost: the same rate-limiting run crossing COST_ALERT_USD, and a day of the sample runs.
    costed = sorted((r for r in runs if _cost(r)), key=_cost, reverse=True)
    spent = sum(_cost(r) for r in costed)
    items += [
        (
            "Alert: a run over COST_ALERT_USD (subscribe cost)",
            cost_alert(limiting, _bill(), over_usd=2.5, now=now, web_base=WEB),
        ),
        (
            "Alert: the day's spend passed DAILY_BUDGET_USD (subscribe cost)",
            budget_alert(
                now.date(),
                spent,
                max(1.0, float(spent // 2_000_000)),  # a budget the sample day passed
                [_spent(r) for r in costed[:5]],
                tz="Europe/Berlin",
                command=COMMAND,
            ),
        ),
        (
            "Alert: the day's spend passed DAILY_BUDGET_USD, in a channel shared with another organisation",
            budget_alert(now.date(), spent, 3.0, [], tz="Europe/Berlin", command=COMMAND, minimal=True),
        ),
    ]
    sub = Subscription(3, "C0TEAM", frozenset({"failed", "questions"}), repo="demo/api-server", created_by="U0ADA")
    items += [
        (
            "/runs subscribe failed questions repo:demo/api-server",
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


def _failure_of(run: Run, events: dict[str, list[RunEvent]]) -> Failure | None:
    failed = [e for e in events.get(run.id, []) if e.event == "run.failed"]
    return Failure.from_event(failed[-1]) if failed else None


def _opened(run: Run) -> PullRequestOpened:
    """The `pull_request.created` event of the run's own pull request."""
    pr = run.pull_request
    assert pr is not None
    return PullRequestOpened(
        number=pr.number,
        html_url=pr.html_url,
        owner=pr.owner,
        repo=pr.repo,
        title=run.title,
        base_branch="main",
        head_branch="fabro/webhook-retries",
        draft=False,
    )


def _inspections(run: Run, now: datetime) -> list[tuple[str, Message]]:
    """Looking into a run from its thread: one example of each, all about the same run."""
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
    log = log_comment(run, size=7_340_032, kept=5_242_880, stage="verify", tail=tail)
    url = "https://3000-sbx-4f2a.preview.example/?tkn=0123456789abcdef"
    return [
        ("In a run's thread: Changes", changes_message(run, files, commits)),
        ("In a run's thread: Cost", cost_message(run, bill)),
        ("In a run's thread: the log, uploaded (its message)", {"text": log, "blocks": [kit.section(log)]}),
        ("/runs preview <id> 3000 (to the asker alone)", preview_message(run, 3000, url, now)),
        (
            "In a run's thread: the graph, uploaded (its message)",
            _said(graph_comment(run, "verify", marked=True, as_image=True)),
        ),
        ("Ask Fabro: the answer as it is written", answer_message(escape(answer[:60]), run_id=run.id, writing=True)),
        ("Ask Fabro: the answer", answer_message(escape(answer), run_id=run.id)),
        ("Ask Fabro: a failed turn", answer_message(escape(ask_failure_text("sandbox_unavailable")), run_id=run.id)),
    ]


def _bill() -> RunBilling:
    """What Fabro says the rate-limiting run cost, stage by stage and model by model."""
    bill = RunBilling.model_validate(
        {
            "stages": [
                _billed("plan", "claude-sonnet-4-5", 310_000, 18_400),
                _billed("implement", "claude-opus-4", 2_140_000, 96_200),
                _billed("verify", "claude-sonnet-4-5", 270_000, 15_900),
            ],
            "totals": {"input_tokens": 98_000, "output_tokens": 32_500, "total_tokens": 130_500},
            "by_model": [
                {
                    "model": {"model_id": "claude-opus-4"},
                    "stages": 1,
                    "billing": {"total_usd_micros": 2_140_000, "total_tokens": 96_200},
                },
                {
                    "model": {"model_id": "claude-sonnet-4-5"},
                    "stages": 2,
                    "billing": {"total_usd_micros": 580_000, "total_tokens": 34_300},
                },
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


def _cost(run: Run) -> int:
    return (run.billing.total_usd_micros or 0) if run.billing is not None else 0


def _spent(run: Run) -> IndexedRun:
    """A sample run as the run index keeps it, with what it cost."""
    title = run.title or run.goal or run.id
    return IndexedRun(run.id, None, None, run.bucket, title, run.web_url(WEB), run.updated_at or _EPOCH, _cost(run))


def _muted(run: Run, now: datetime, *, hours: int | None) -> Mute:
    return Mute("C0TEAM", run.id, now + timedelta(hours=hours) if hours else None, "U0ADA", now)


def _stages() -> list[Stage]:
    return [
        Stage.model_validate({"id": f"{n}@1", "name": n, "status": s, "node_id": n, "wall_time_ms": ms})
        for n, s, ms in (
            ("plan", "succeeded", 40_000),
            ("implement", "succeeded", 300_000),
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
            "target": {"repository": "demo/api-server", "ref": "main", "workflow": "implement"},
            "triggers": [{"id": "t1", "type": "api", "enabled": True}],
        }
    )


def _usage(text: str) -> UsageError:
    parsed = parse(text)
    assert isinstance(parsed, UsageError)
    return parsed


def _cancelled(run: Run) -> Run:
    status = run.lifecycle.status.model_copy(update={"reason": "cancelled"})
    return run.model_copy(update={"lifecycle": run.lifecycle.model_copy(update={"status": status})})


def _denied() -> Outcome:
    return Outcome(OutcomeVerb.DENIED, slack_user="U0ADA", reason="not during the freeze")


def _picture(runs: list[Run], now: datetime) -> Any:
    tz = ZoneInfo("Europe/Berlin")
    start, end = bounds(Window.WEEK, now, tz)
    waiting = [r for r in runs if r.bucket == "blocked" or r.awaits_approval]
    return picture(runs, waiting, window=Window.WEEK, start=start, end=end, tz=str(tz))
