"""Keys name what happens once: built and taken apart in one place, round-tripping, never raising."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.keys import ActionKey, ActionScope, AlertKey, AlertKind, Verb, failure_of, names_a_failure

_ids = st.from_regex(r"[0-9A-Za-z_-]{1,64}", fullmatch=True)
_subjects = st.from_regex(r"[^\s]{1,150}", fullmatch=True)
_times = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 31), timezones=st.just(UTC))
_failures = st.none() | _times.map(failure_of)
_NAMED = (AlertKind.QUESTION, AlertKind.UPDATE, AlertKind.PR, AlertKind.REPLY)


@given(kind=st.sampled_from(AlertKind), run_id=_ids, subject=_subjects, failure=_failures)
def test_every_alert_key_round_trips_through_its_text(
    kind: AlertKind, run_id: str, subject: str, failure: str | None
) -> None:
    key = AlertKey(
        kind, run_id, subject if kind in _NAMED else None, failure=failure if kind is AlertKind.FAILED else None
    )
    assert AlertKey.parse(key.encode()) == key
    assert AlertKey.parse(str(key)) == key


@given(verb=st.sampled_from(Verb), run_id=_ids, subject=_subjects, failure=_failures)
def test_every_action_key_round_trips_through_its_text(
    verb: Verb, run_id: str, subject: str, failure: str | None
) -> None:
    key = ActionKey.of(verb, run_id, subject, failure=failure)
    assert ActionKey.parse(key.encode()) == key


@given(st.text(max_size=300) | st.from_regex(r"(failed|retry|question|answer):[0-9A-Za-z_-]{1,8}(:\S{0,30})?"))
def test_parse_never_raises_and_what_it_reads_writes_back_the_same(text: str) -> None:
    for kind in (AlertKey, ActionKey):
        parsed = kind.parse(text)
        assert parsed is None or parsed.encode() == text


@given(st.text(max_size=60))
def test_only_what_failure_of_writes_names_a_failure(text: str) -> None:
    assert names_a_failure(text) == (
        AlertKey.parse(f"failed:R1:{text}") is not None
        and text != ""
        and ActionKey.parse(f"retry:R1:{text}") is not None
    )


def test_keys_stored_before_failures_were_told_apart_still_parse_as_the_first_failure() -> None:
    alert, action = AlertKey.parse("failed:R1"), ActionKey.parse("retry:R1")
    assert alert == AlertKey(AlertKind.FAILED, "R1") and alert.failure is None and alert.legacy_failure
    assert action == ActionKey(ActionScope.RETRY, "R1") and action.failure is None
    assert action.alert == alert


def test_a_failure_is_named_by_when_it_ended_in_utc_to_the_millisecond() -> None:
    ended = datetime(2026, 12, 1, 11, 29, 33, 123999, tzinfo=timezone(timedelta(hours=1)))
    assert failure_of(ended) == "20261201T102933.123Z"
    assert failure_of(None) is None
    first, second = AlertKey.failed("R1", ended), AlertKey.failed("R1", ended + timedelta(minutes=5))
    assert first != second and str(first) == "failed:R1:20261201T102933.123Z"
    assert first == AlertKey.parse(str(first))


@given(st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))])))
def test_any_end_time_fabro_can_send_names_a_failure_or_none_and_never_raises(ended: datetime) -> None:
    """An end time at the edges of the calendar (a year before 1000, a time zone past year one) is a
    name `failure_of` writes whole, or none: a key for it is made, never a crash of the alert cycle."""
    name = failure_of(ended)
    assert name is None or names_a_failure(name)
    assert AlertKey.failed("R1", ended).failure == name


def test_retry_and_resume_take_up_one_failure_and_settle_that_failures_alert() -> None:
    failure = "20261201T102933.123Z"
    retry, resume = (
        ActionKey.of(Verb.RETRY, "R1", failure=failure),
        ActionKey.of(Verb.RESUME_RUN, "R1", failure=failure),
    )
    assert retry == resume and str(retry) == f"retry:R1:{failure}"
    assert retry.alert == AlertKey(AlertKind.FAILED, "R1", failure=failure)
    assert ActionKey.of(Verb.RETRY, "R1", failure="20261201T110000.000Z") != retry  # the next failure's own
    assert ActionKey.of(Verb.CANCEL, "R1", failure=failure) == ActionKey(ActionScope.CANCEL, "R1")  # others ignore it


def test_an_old_failed_alert_stands_for_any_failure_of_its_run_and_a_new_one_only_for_itself() -> None:
    old, first = AlertKey(AlertKind.FAILED, "R1"), AlertKey(AlertKind.FAILED, "R1", failure="20261201T102933.123Z")
    second = AlertKey(AlertKind.FAILED, "R1", failure="20261201T110000.000Z")
    assert old.stands_for(first) and old.stands_for(second) and old.stands_for(old)
    assert not first.stands_for(second) and first.stands_for(first) and not first.stands_for(old)
    assert not old.stands_for(AlertKey(AlertKind.FAILED, "R2", failure="20261201T110000.000Z"))
    assert not old.stands_for(AlertKey(AlertKind.CANCELLED, "R1"))


@pytest.mark.parametrize(
    "text",
    [
        "failed:R1:q-1",  # a failure is named only as `failure_of` writes it
        "failed:R1:20261201T102933Z",
        "retry:R1:2026-12-01",
        "cancelled:R1:20261201T102933.123Z",  # only failures, and their retries, name one
        "decide:R1:20261201T102933.123Z",
        "failed:R1\n",
        "failed:R1:20261201T102933.123Z\n",
        "failed:R1:\u0662\u0660\u0662\u0666\u0661\u0662\u0660\u0661T102933.123Z",  # digits, but not ASCII ones
        "retry:R1:20261201T\uff11\uff10\uff12\uff19\uff13\uff13.123Z",
    ],
)
def test_keys_naming_a_failure_where_none_belongs_or_in_another_shape_do_not_parse(text: str) -> None:
    assert AlertKey.parse(text) is None and ActionKey.parse(text) is None
