"""The gallery tells the truth: drawn from the demo's sample runs, each example's run, times,
question and outcome agree with one another and with `preview --demo`."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from bot.fabro.demo import demo_data
from bot.preview.gallery import gallery

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _items() -> dict[str, str]:
    return {title: json.dumps(message, ensure_ascii=False) for title, message in gallery(NOW)}


def _ages(text: str) -> list[timedelta]:
    """Every "… ago" in a message, as a duration."""
    found = []
    for match in re.finditer(r"((?:\d+[dhms] ?)+) ago", text):
        parts = dict((unit, int(n)) for n, unit in re.findall(r"(\d+)([dhms])", match.group(1)))
        found.append(timedelta(days=parts.get("d", 0), hours=parts.get("h", 0), minutes=parts.get("m", 0)))
    return found


def test_nothing_happened_before_the_oldest_sample_run_was_created() -> None:
    runs, _ = demo_data(NOW)
    oldest = NOW - min(r.timestamps.created_at for r in runs if r.timestamps.created_at)
    for title, text in _items().items():
        for age in _ages(text):
            assert age <= oldest + timedelta(minutes=1), f"{title}: {age} ago, before any sample run existed"


def test_an_approval_is_asked_after_its_run_was_created() -> None:
    runs, _ = demo_data(NOW)
    for run in runs:
        approval = run.lifecycle.approval
        if approval is not None and approval.requested_at is not None:
            assert run.timestamps.created_at is not None and approval.requested_at >= run.timestamps.created_at
    text = _items()["Alert: an approval waiting"]
    assert "created 4m ago" in text and "asked 4m ago" in text


def test_a_digest_of_failed_runs_lists_only_failed_runs_each_once() -> None:
    text = _items()["Alert: a digest of many"]
    counted = re.search(r"(\d+) failed runs", text)
    assert counted is not None
    count = int(counted.group(1))
    ids = re.findall(r"runs/([0-9A-Z]{26})", text)
    assert len(ids) == count == len(set(ids))
    assert len({run_id[:10] for run_id in ids}) == count  # the short ids people read differ too
    runs, _ = demo_data(NOW)
    statuses = {r.id: r.status.kind for r in runs}
    assert all(statuses.get(run_id, "failed") == "failed" for run_id in ids)


def test_an_answered_outcome_names_the_question_its_run_asked() -> None:
    runs, _ = demo_data(NOW)
    text = _items()["Alert resolved: answered"]
    run = next(r for r in runs if r.id in text)
    assert run.current_question is not None
    assert f"Answered *{run.current_question.text}*" in text
    assert any(option.label is not None and option.label in text for option in run.current_question.options)


def test_each_question_is_asked_by_a_run_of_its_own() -> None:
    items = _items()
    questions = {t: text for t, text in items.items() if t.startswith("Alert: a ") and t.endswith(" question")}
    assert len(questions) >= 5
    ids = set()
    for text in questions.values():
        found = re.search(r"([0-9A-Z]{26})", text)
        assert found is not None, text
        ids.add(found.group(1))
    assert len(ids) == len(questions)


def test_a_failure_shown_is_the_one_its_run_reported() -> None:
    runs, events = demo_data(NOW)
    failed = next(r for r in runs if r.id in _items()["Alert: a run failed"] and r.status.kind == "failed")
    message = events[failed.id][-1].properties["failure"]["detail"]["message"]
    assert message in _items()["Alert: a run failed"]


def test_the_sample_data_has_no_test_fixture_names_and_no_finished_times_on_live_runs() -> None:
    runs, _ = demo_data(NOW)
    everything = " ".join(_items().values())
    assert "API title" not in everything and "by test" not in everything
    for run in runs:
        if run.status.kind in ("pending", "runnable", "running", "blocked"):
            assert run.timestamps.completed_at is None, run.id
        assert run.created_by is None or run.created_by.login not in ("test", "test-user"), run.id


def test_the_refusal_shown_is_the_one_the_default_permissions_give() -> None:
    refusal = _items()["Not allowed"]
    assert "ALLOW_OPERATE" in refusal and "owner and workspace admins" in refusal
    everything = " ".join(_items().values())
    assert "ACTION_ALLOWLIST" not in everything and "SUBSCRIPTION_ALLOWLIST" not in everything  # deprecated
