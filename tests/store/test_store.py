"""The store keeps alerts, subscriptions, watermarks and actions durably, and claims each alert
once. Every test runs against SQLite and against PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.keys import ActionKey, ActionState, AlertKey, AlertKind, Verb
from bot.core.outcomes import Outcome, OutcomeVerb
from bot.core.records import Action, AlertState, Follow, IndexedRun, Subscription
from bot.store import Alert, SQLiteStore, Store, open_store
from tests.conftest import wait_for
from tests.store.conftest import database_at, step_adding

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(hours=1)
APPROVED = Outcome(OutcomeVerb.APPROVED, slack_user="U1")
ARCHIVED = Outcome(OutcomeVerb.ARCHIVED)


def failed(run_id: str) -> AlertKey:
    return AlertKey(AlertKind.FAILED, run_id)


async def alert_of(store: Store, key: AlertKey, channel: str) -> Alert | None:
    return next((a for a in await store.alerts_for_run(key.run_id) if a.key == key and a.channel == channel), None)


async def test_an_alert_is_claimed_once_per_channel(store: Store) -> None:
    assert await store.claim_alert(failed("R1"), "C1", NOW) is True
    assert await store.claim_alert(failed("R1"), "C1", NOW) is False
    assert await store.claim_alert(failed("R1"), "C2", NOW) is True


async def test_concurrent_claims_have_exactly_one_winner(store: Store) -> None:
    results = await asyncio.gather(*[store.claim_alert(failed("R2"), "C1", NOW) for _ in range(20)])
    assert results.count(True) == 1


async def test_a_claim_moves_to_posted_then_resolved(store: Store) -> None:
    key = AlertKey(AlertKind.APPROVAL, "R1")
    await store.claim_alert(key, "C1", NOW)
    [alert] = await store.alerts_for_run("R1")
    assert (alert.key, alert.kind, alert.run_id, alert.state) == (key, AlertKind.APPROVAL, "R1", AlertState.CLAIMED)
    await store.confirm_posted(key, "C1", "1700000000.000100", NOW)
    [alert] = await store.alerts_for_run("R1")
    assert alert.state is AlertState.POSTED and alert.ts == "1700000000.000100"
    assert await store.alerts_at("C1", "1700000000.000100") == [alert]
    await store.resolve_alert(key, "C1", APPROVED, NOW)
    [alert] = await store.alerts_for_run("R1")
    assert alert.state is AlertState.RESOLVED and alert.outcome == APPROVED
    assert await store.deliveries_due(NOW) == []


async def test_state_survives_reopening(database_url: str) -> None:
    first = open_store(database_url)
    await first.open()
    await first.claim_alert(failed("R1"), "C1", NOW)
    sub = await first.add_subscription(Subscription(0, "C9", frozenset({"failed"}), repo="demo/api"))
    await first.set_mark("poll:failed", "2026-11-28T12:00:00Z")
    await first.close()

    second = open_store(database_url)
    await second.open()
    assert await second.claim_alert(failed("R1"), "C1", NOW) is False
    assert [s.id for s in await second.subscriptions("C9")] == [sub.id]
    assert await second.get_mark("poll:failed") == "2026-11-28T12:00:00Z"
    await second.close()


async def test_subscriptions_are_listed_removed_and_marked_broken_per_channel(store: Store) -> None:
    a = await store.add_subscription(Subscription(0, "C1", frozenset({"failed", "questions"}), labels={"team": "core"}))
    b = await store.add_subscription(Subscription(0, "C1", frozenset({"approvals"}), workflow="Implement"))
    await store.add_subscription(Subscription(0, "C2", frozenset({"failed"})))
    [first, second] = await store.subscriptions("C1")
    assert first.kinds == {"failed", "questions"} and first.labels == {"team": "core"}
    assert second.workflow == "Implement"
    assert await store.mark_broken("C1", "not_in_channel") is True
    assert await store.mark_broken("C1", "not_in_channel") is False  # unchanged: nothing to log again
    assert all(s.broken == "not_in_channel" for s in await store.subscriptions("C1"))
    assert (await store.subscriptions("C2"))[0].broken is None
    assert await store.remove_subscriptions("C1", [a.id]) == 1
    assert await store.remove_subscriptions("C2", [b.id]) == 0  # another channel's id is untouched
    assert await store.remove_subscriptions("C1", None) == 1
    assert await store.subscriptions("C1") == []


async def test_an_unknown_database_scheme_is_refused() -> None:
    with pytest.raises(ValueError):
        open_store("mysql://localhost/db")


async def test_a_failed_delivery_is_counted_and_scheduled(store: Store) -> None:
    await store.claim_alert(failed("R1"), "C1", NOW)
    later = NOW + timedelta(seconds=30)
    await store.delivery_failed(failed("R1"), "C1", error="ratelimited", unposted=True, retry_at=later)
    await store.delivery_failed(failed("R1"), "C1", error="timeout", unposted=False, retry_at=later)
    alert = await alert_of(store, failed("R1"), "C1")
    assert alert is not None and alert.attempts == 2 and alert.last_error == "timeout"
    assert alert.unposted is False and alert.next_attempt_at == later and alert.state is AlertState.CLAIMED
    await store.confirm_posted(failed("R1"), "C1", "1.5", NOW)
    alert = await alert_of(store, failed("R1"), "C1")
    assert alert is not None
    assert alert.state is AlertState.POSTED and alert.next_attempt_at is None and alert.last_error is None


async def test_a_batch_and_a_pending_outcome_are_kept(store: Store) -> None:
    for run_id in ("A", "B"):
        await store.claim_alert(failed(run_id), "C1", NOW)
    await store.assign_batch([failed("A"), failed("B")], "C1", "digest:1")
    assert {a.batch for a in await store.deliveries_due(NOW)} == {"digest:1"}
    await store.confirm_posted(failed("A"), "C1", "1.1", NOW)
    await store.set_outcome(failed("A"), "C1", ARCHIVED)
    alert = await alert_of(store, failed("A"), "C1")
    assert alert is not None
    assert alert.update_pending and alert.outcome == ARCHIVED
    await store.resolve_alert(failed("A"), "C1", ARCHIVED, NOW)
    again = await alert_of(store, failed("A"), "C1")
    assert again is not None and not again.update_pending


async def test_broken_channels_are_set_and_cleared(store: Store) -> None:
    await store.mark_broken("C1", "not_in_channel")
    await store.mark_broken("C2", "is_archived")
    assert await store.broken_channels() == {"C1": "not_in_channel", "C2": "is_archived"}
    assert await store.mark_broken("C1", None) is True
    assert await store.mark_broken("C1", None) is False
    assert await store.broken_channels() == {"C2": "is_archived"}


RETRY = ActionKey.of(Verb.RETRY, "R1")


def retry_by(user: str, at: datetime = NOW) -> Action:
    return Action(RETRY, Verb.RETRY, user, at)


async def test_an_action_is_taken_once_unless_it_failed(store: Store) -> None:
    assert await store.begin_action(retry_by("U1"), stale_before=EARLIER) is None
    earlier = await store.begin_action(retry_by("U2"), stale_before=EARLIER)
    assert earlier is not None and earlier.user_id == "U1" and earlier.state is ActionState.PENDING
    await store.finish_action(RETRY, state=ActionState.FAILED, note="503")
    assert await store.begin_action(retry_by("U2"), stale_before=EARLIER) is None
    new_run = Outcome(OutcomeVerb.RETRIED, slack_user="U2", run_id="R2")
    await store.finish_action(RETRY, state=ActionState.DONE, outcome=new_run)
    [action] = await store.actions_for_run("R1")
    assert (action.key, action.verb, action.user_id, action.state) == (RETRY, Verb.RETRY, "U2", ActionState.DONE)
    assert action.outcome == new_run
    done = await store.begin_action(retry_by("U3", NOW + timedelta(days=1)), stale_before=NOW + timedelta(hours=1))
    assert done is not None and done.state is ActionState.DONE  # a done action is never taken over


async def test_a_pending_action_left_by_a_dead_process_is_taken_over_after_its_lease(store: Store) -> None:
    assert await store.begin_action(retry_by("U1", EARLIER), stale_before=EARLIER) is None
    assert await store.begin_action(retry_by("U2"), stale_before=EARLIER) is not None  # still leased
    assert await store.begin_action(retry_by("U2"), stale_before=NOW) is None  # lease over: taken over
    [action] = await store.actions_for_run("R1")
    assert action.user_id == "U2" and action.state is ActionState.PENDING


async def test_unsettled_actions_are_those_of_one_verb_still_pending_since_before_a_time(store: Store) -> None:
    ask = ActionKey.of(Verb.ASK, "i1")
    await store.begin_action(Action(ask, Verb.ASK, "U1", EARLIER, detail='{"run": "R1"}'), stale_before=EARLIER)
    await store.begin_action(Action(ActionKey.of(Verb.ASK, "i2"), Verb.ASK, "U1", NOW), stale_before=EARLIER)
    await store.begin_action(retry_by("U1", EARLIER), stale_before=EARLIER)
    [left] = await store.unsettled(Verb.ASK, before=NOW)
    assert left.key == ask and left.detail == '{"run": "R1"}'
    await store.finish_action(ask, state=ActionState.DONE)
    assert await store.unsettled(Verb.ASK, before=NOW) == []


async def test_concurrent_actions_have_exactly_one_winner(store: Store) -> None:
    cancel = ActionKey.of(Verb.CANCEL, "R9")
    results = await asyncio.gather(
        *[store.begin_action(Action(cancel, Verb.CANCEL, f"U{i}", NOW), stale_before=EARLIER) for i in range(10)]
    )
    assert sum(r is None for r in results) == 1


async def test_a_version_1_sqlite_file_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    import sqlite3

    from bot.store.sqlite import MIGRATIONS

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (1)")
    db.execute(
        "INSERT INTO subscriptions (channel, kinds, labels, broken) VALUES ('C1', 'failed', '{}', 'not_in_channel')"
    )
    db.execute(
        "INSERT INTO alerts (key, channel, run_id, kind, state, claimed_at)"
        " VALUES ('failed:R', 'C1', 'R', 'failed', 'posted', '2026-11-28T12:00:00+00:00')"
    )
    db.commit()
    db.close()
    store = SQLiteStore(str(path))
    await store.open()
    try:
        [sub] = await store.subscriptions("C1")
        assert sub.broken == "not_in_channel"
        alert = await alert_of(store, failed("R"), "C1")
        assert alert is not None and alert.attempts == 0 and alert.state is AlertState.POSTED
    finally:
        await store.close()


async def test_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    stores = [open_store(postgres_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        assert await stores[0].claim_alert(failed("R"), "C", NOW) is True
        assert await stores[1].claim_alert(failed("R"), "C", NOW) is False
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_a_delivery_lease_keeps_a_second_scheduler_off_until_it_expires(store: Store) -> None:
    def minutes(n: int) -> datetime:
        return NOW + timedelta(minutes=n)

    key = failed("R")
    await store.claim_alert(key, "C", NOW, owner="A", lease_until=minutes(2))
    assert await store.take_over(key, "C", owner="B", now=minutes(1), until=minutes(3)) is False
    assert await store.take_over(key, "C", owner="A", now=minutes(1), until=minutes(3)) is True  # renewed
    assert await store.take_over(key, "C", owner="B", now=minutes(2), until=minutes(4)) is False
    assert await store.take_over(key, "C", owner="B", now=minutes(5), until=minutes(7)) is True  # A died
    await store.confirm_posted(key, "C", "1.1", minutes(5))
    await store.resolve_alert(key, "C", ARCHIVED, minutes(6))
    assert await store.take_over(key, "C", owner="B", now=minutes(6), until=minutes(8)) is False  # settled


async def test_only_deliveries_that_are_due_are_read(store: Store) -> None:
    for run_id in "ABCD":
        await store.claim_alert(failed(run_id), "C1", NOW)
    await store.confirm_posted(failed("B"), "C1", "1.1", NOW)  # posted, nothing to edit
    await store.confirm_posted(failed("C"), "C1", "1.2", NOW)
    await store.set_outcome(failed("C"), "C1", ARCHIVED)  # posted, edit due
    await store.delivery_failed(
        failed("D"), "C1", error="ratelimited", unposted=True, retry_at=NOW + timedelta(seconds=30)
    )
    assert [str(a.key) for a in await store.deliveries_due(NOW)] == ["failed:A", "failed:C"]
    assert [str(a.key) for a in await store.deliveries_due(NOW + timedelta(seconds=31))] == [
        "failed:A",
        "failed:C",
        "failed:D",
    ]


async def test_cancelling_a_caller_mid_statement_never_closes_the_connection_under_it(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "cancel.db"))
    await store.open()
    slow = asyncio.create_task(
        store._fetch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000000)"
            " SELECT count(*) AS c FROM n"
        )
    )
    await wait_for(store._lock.locked)
    slow.cancel()
    await asyncio.sleep(0)  # let the cancellation reach the caller
    # The statement still runs in its thread, so nothing else may touch the connection yet:
    # a second statement in another thread, or close(), would race it (and can crash the process).
    assert store._lock.locked() and not slow.done()
    await store.close()
    with pytest.raises(asyncio.CancelledError):
        await slow


async def test_a_caller_cancelled_just_as_its_statement_finishes_is_still_cancelled(tmp_path: Path) -> None:
    """A cancellation that meets a statement already done is delivered, not swallowed: a task that
    swallowed it would carry on (a stopping bot waited for such a task forever)."""
    store = SQLiteStore(str(tmp_path / "late.db"))
    await store.open()
    release = threading.Event()
    caller = asyncio.create_task(store._run(lambda: release.wait(10)))
    await wait_for(store._lock.locked)
    release.set()
    assert store._thread is not None
    # Blocking the loop on purpose: once the connection's one thread has run this, the statement
    # has finished and its result is on its way to the loop, and only then is the caller cancelled.
    store._thread.submit(lambda: None).result(timeout=10)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await store.close()


async def test_a_caller_cancelled_while_its_statement_fails_ends_cancelled_not_with_the_error(
    tmp_path: Path,
) -> None:
    """Were the statement's error raised instead, a caller's `except Exception` would take it and
    the task carry on as if never cancelled (a stopping bot waiting for it)."""
    import sqlite3

    store = SQLiteStore(str(tmp_path / "failing.db"))
    await store.open()
    release = threading.Event()

    def fails_once_released() -> None:
        release.wait(10)
        raise sqlite3.OperationalError("database is locked")

    caller = asyncio.create_task(store._run(fails_once_released))
    await wait_for(store._lock.locked)
    caller.cancel()
    await asyncio.sleep(0)  # the cancellation reaches the caller while the statement still runs
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await store.close()


async def test_an_open_cut_short_by_a_stop_leaves_a_connection_that_close_closes(tmp_path: Path) -> None:
    """A stop during startup cancels `open()` while it waits on the file's lock; the connection it
    then makes is kept, and `close()` closes it instead of leaving it (and its thread) behind."""
    import sqlite3

    path = tmp_path / "busy.db"
    first = SQLiteStore(str(path))
    await first.open()  # the file exists, in WAL mode, as a restarted bot finds it
    await first.close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing: the migration waits for it
    store = SQLiteStore(str(path))
    opening = asyncio.create_task(store.open())
    await wait_for(store._lock.locked)
    opening.cancel()
    await asyncio.sleep(0)
    other.execute("COMMIT")
    other.close()
    with pytest.raises(asyncio.CancelledError):
        await opening
    made = store._db
    assert made is not None  # opened after all, and kept
    await store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        made.execute("SELECT 1")  # closed
    assert store._thread is None


async def test_outcomes_stored_as_text_by_an_earlier_version_are_migrated_to_data(tmp_path: Path) -> None:
    """Schema 4 kept rendered mrkdwn in alerts.outcome and actions.result; both become legacy outcomes."""
    import sqlite3

    from bot.store.sqlite import MIGRATIONS, _migrate

    path = tmp_path / "v4.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (0)")
    db.close()
    db = sqlite3.connect(path, isolation_level=None)
    saved, MIGRATIONS[:] = MIGRATIONS[:], MIGRATIONS[:4]
    try:
        _migrate(db)
    finally:
        MIGRATIONS[:] = saved
    db.execute(
        "INSERT INTO alerts (key, channel, run_id, kind, state, claimed_at, outcome)"
        " VALUES ('failed:R', 'C1', 'R', 'failed', 'posted', '2026-11-28T12:00:00+00:00', 'Retried by <@U1>')"
    )
    db.execute(
        "INSERT INTO actions (key, run_id, action, user_id, requested_at, state, result)"
        " VALUES ('retry:R', 'R', 'retry', 'U1', '2026-11-28T12:00:00+00:00', 'done', 'Retried by <@U1>')"
    )
    db.close()
    store = SQLiteStore(str(path))
    await store.open()
    try:
        alert = await alert_of(store, failed("R"), "C1")
        assert alert is not None
        [action] = await store.actions_for_run("R")
        for outcome in (alert.outcome, action.outcome):
            assert outcome == Outcome(OutcomeVerb.LEGACY, text="Retried by <@U1>")
        assert action.note is None
    finally:
        await store.close()


async def test_postgres_migrates_rendered_outcomes_too(postgres_url: str) -> None:
    import psycopg

    from bot.store.postgres import MIGRATIONS

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (3)")
        for script in MIGRATIONS[:3]:
            for statement in filter(str.strip, script.split(";")):
                conn.execute(statement)
        conn.execute(
            "INSERT INTO alerts (key, channel, run_id, kind, state, claimed_at, outcome)"
            " VALUES ('failed:R', 'C1', 'R', 'failed', 'posted', '2026-11-28T12:00:00+00:00', 'Archived by bo')"
        )
    store = open_store(postgres_url)
    await store.open()
    try:
        alert = await alert_of(store, failed("R"), "C1")
        assert alert is not None
        assert alert.outcome == Outcome(OutcomeVerb.LEGACY, text="Archived by bo")
    finally:
        await store.close()


async def test_a_window_is_bound_to_its_person_its_subject_and_its_hour(store: Store) -> None:
    from bot.people.bindings import Bindings

    now = [NOW]
    bindings = Bindings(store, lambda: now[0])
    nonce = await bindings.issue("U1", "merge:R1")
    assert await bindings.holds(nonce, "U1", "merge:R1")
    assert not await bindings.holds(nonce, "U2", "merge:R1")  # someone else's window
    assert not await bindings.holds(nonce, "U1", "merge:R2")  # opened for another run
    assert not await bindings.holds(None, "U1", "merge:R1")  # no window at all
    assert not await bindings.holds("ab" * 16, "U1", "merge:R1")  # a made-up one
    start = await bindings.issue("U1", "start:nightly", nonce="0123456789abcdef0123")
    assert start == "0123456789abcdef0123" and await bindings.holds(start, "U1", "start:nightly")
    now[0] = NOW + timedelta(hours=1, seconds=1)
    assert not await bindings.holds(nonce, "U1", "merge:R1")  # open too long
    # Retention forgets windows long expired, and nothing else of theirs is kept.
    await store.forget(NOW + timedelta(days=1), batch=100)
    assert await store.binding(nonce) is None


async def test_an_indexed_run_remembers_its_newest_retry_whatever_is_learned_of_it_later(store: Store) -> None:
    """The retry is noted on the run it retried; the run indexed again (what Fabro says of it) keeps
    it, an older retry learned late does not replace a newer one, and a run not indexed is left alone."""
    failed = IndexedRun("01KJW4MG900000000000000001", "U1", "ada", "failed", "Broke", None, NOW)
    await store.index_run(failed)
    assert (await store.indexed_run(failed.run_id)) == failed  # retried_as: None
    assert await store.mark_retried(failed.run_id, "01KJW4MG900000000000000003")
    await store.index_run(failed)  # the alert poll sees the failed run again: it says nothing of retries
    again = await store.indexed_run(failed.run_id)
    assert again is not None and again.retried_as == "01KJW4MG900000000000000003"
    assert not await store.mark_retried(failed.run_id, "01KJW4MG900000000000000002")  # an older retry
    assert not await store.mark_retried(failed.run_id, "01KJW4MG900000000000000003")  # the same one again
    assert await store.mark_retried(failed.run_id, "01KJW4MG900000000000000004")  # retried once more
    [mine] = await store.runs_of("U1", [], 10)
    assert mine.retried_as == "01KJW4MG900000000000000004"
    assert not await store.mark_retried("01KJW4MG9000000000000000XX", "01KJW4MG900000000000000005")
    assert await store.indexed_run("01KJW4MG9000000000000000XX") is None


async def test_a_retried_run_seen_at_work_again_forgets_its_retry(store: Store) -> None:
    """Resumed in place, the run is past the failure its retry was of: a later failure is offered Retry."""
    failed = IndexedRun("01KJW4MG900000000000000001", "U1", "ada", "failed", "Broke", None, NOW)
    await store.index_run(failed)
    assert await store.mark_retried(failed.run_id, "01KJW4MG900000000000000003")
    await store.index_run(replace(failed, status="succeeded"))  # ended otherwise: the retry stays
    kept = await store.indexed_run(failed.run_id)
    assert kept is not None and kept.retried_as == "01KJW4MG900000000000000003"
    await store.index_run(replace(failed, status="running", updated_at=NOW + timedelta(minutes=1)))
    await store.index_run(replace(failed, updated_at=NOW + timedelta(minutes=9)))  # and failed again
    again = await store.indexed_run(failed.run_id)
    assert again is not None and again.status == "failed" and again.retried_as is None


async def test_indexing_a_run_with_an_older_retry_never_replaces_a_newer_one_noted_meanwhile(store: Store) -> None:
    """The alert poll reads the entry (retry …02 noted), a Retry from Slack (on this replica or
    another) notes …03, then the poll writes back what it read: the newest retry is kept."""
    failed = IndexedRun("01KJW4MG900000000000000001", "U1", "ada", "failed", "Broke", None, NOW)
    await store.index_run(failed)
    assert await store.mark_retried(failed.run_id, "01KJW4MG900000000000000002")
    read_by_the_poll = await store.indexed_run(failed.run_id)
    assert read_by_the_poll is not None and read_by_the_poll.retried_as == "01KJW4MG900000000000000002"
    assert await store.mark_retried(failed.run_id, "01KJW4MG900000000000000003")  # retried from Slack meanwhile
    await store.index_run(read_by_the_poll)
    entry = await store.indexed_run(failed.run_id)
    assert entry is not None and entry.retried_as == "01KJW4MG900000000000000003"
    # A newer retry the poll learned itself is still taken.
    await store.index_run(replace(failed, retried_as="01KJW4MG900000000000000004"))
    entry = await store.indexed_run(failed.run_id)
    assert entry is not None and entry.retried_as == "01KJW4MG900000000000000004"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_run_index_from_before_retried_as_is_migrated_with_its_entries(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A database at the step before `runs.retried_as`, with a run indexed in it, opens on the
    latest schema: the entry reads back unchanged, unretried, and takes a retry."""
    row = (
        "INSERT INTO runs (run_id, owner, login, status, title, web_url, updated_at, cost_micros)"
        " VALUES ('01KJW4MG900000000000000001', 'U1', 'ada', 'failed', 'Broke', NULL,"
        " '2026-11-28T12:00:00+00:00', 1500000)"
    )
    before = step_adding(backend, "retried_as")
    url = database_at(backend, before, [row], path=tmp_path / "before.db", request=request)
    store = open_store(url)
    await store.open()
    try:
        entry = await store.indexed_run("01KJW4MG900000000000000001")
        assert entry is not None and (entry.status, entry.cost_micros, entry.retried_as) == ("failed", 1_500_000, None)
        assert await store.mark_retried(entry.run_id, "01KJW4MG900000000000000002")
        [mine] = await store.runs_of("U1", [], 10)
        assert mine.retried_as == "01KJW4MG900000000000000002"
    finally:
        await store.close()


async def test_an_ended_follow_is_kept_apart_reopened_once_and_replaced_by_a_new_follow(store: Store) -> None:
    """An ended follow is not among the follows going on, nor found by its message; it is reopened with
    its card and seq once, and a new follow in its channel replaces it (from its own card and seq)."""
    when = NOW
    assert await store.add_follow(Follow("R1", "C1", "1.1", "U1", when, last_seq=4, thread_ts="0.9"))
    assert not await store.add_follow(Follow("R1", "C1", "2.2", "U2", when))  # followed already
    assert await store.end_follow("R1", "C1", when)
    assert not await store.end_follow("R1", "C1", when)
    assert await store.follows() == [] and await store.follows("R1") == []
    assert await store.follow_at("C1", "1.1") is None
    [ended] = await store.ended_follows("R1")
    assert (ended.ts, ended.last_seq, ended.thread_ts, ended.ended_at) == ("1.1", 4, "0.9", when)

    assert await store.reopen_follow("R1", "C1")
    assert not await store.reopen_follow("R1", "C1")  # going on already
    [again] = await store.follows("R1")
    assert (again.ts, again.last_seq, again.thread_ts, again.ended_at) == ("1.1", 4, "0.9", None)
    assert await store.ended_follows("R1") == []

    await store.end_follow("R1", "C1", when)
    assert await store.add_follow(Follow("R1", "C1", "3.3", "U2", when, last_seq=9))
    [fresh] = await store.follows("R1")
    assert (fresh.ts, fresh.created_by, fresh.last_seq, fresh.thread_ts) == ("3.3", "U2", 9, None)
    assert await store.remove_follow("R1", "C1") and await store.ended_follows("R1") == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_follows_from_before_ended_at_are_migrated_as_going_on_and_can_end(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A database at the step before `follows.ended_at`, with a run followed in it, opens on the latest
    schema: the follow goes on as it was (card, thread, seq), ends, and is reopened."""
    row = (
        "INSERT INTO follows (run_id, channel, ts, last_seq, created_by, created_at, thread_ts)"
        " VALUES ('R1', 'C1', '1.1', 7, 'U1', '2026-11-28T12:00:00.000000+00:00', '0.9')"
    )
    before = step_adding(backend, "ended_at")
    url = database_at(backend, before, [row], path=tmp_path / "before.db", request=request)
    store = open_store(url)
    await store.open()
    try:
        [going_on] = await store.follows()
        assert (going_on.ts, going_on.thread_ts, going_on.last_seq, going_on.ended_at) == ("1.1", "0.9", 7, None)
        assert await store.follow_at("C1", "0.9") == going_on
        assert await store.end_follow("R1", "C1", NOW)
        assert await store.follows() == [] and [f.ended_at for f in await store.ended_follows("R1")] == [NOW]
        assert await store.reopen_follow("R1", "C1")
        assert await store.follows("R1") == [going_on]
    finally:
        await store.close()
