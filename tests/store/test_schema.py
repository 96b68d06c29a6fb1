"""One list of migrations for both databases: each dialect's steps are exactly the ones it shipped, and a
SQLite file left at any shipped version migrates to the latest with its data."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.core.keys import ActionKey, AlertKey, AlertKind, Verb
from bot.core.records import Action, AlertState
from bot.store.schema import SCHEMA, Dialect, migrations
from bot.store.sqlite import SQLiteStore
from tests.store.conftest import database_at

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)

# The first 12 hex digits of the SHA-256 of each step as shipped. Databases out there have applied
# these texts: a step never changes; a new one is added at the end of both lists.
SHIPPED = {
    Dialect.SQLITE: [
        "ca5ef67718f9",
        "94131fef1320",
        "a4fc0377ba1e",
        "3209ad30b6fd",
        "00b483533077",
        "e6ff24599514",
        "88292ac157cb",
        "0142cd100f69",
        "b8fef8234d9f",
        "d924d3c5d5cd",
        "c7582266de59",
        "ebfda17afd61",
        "8cb49c8647b2",
        "3dbe3b562a2e",
    ],
    Dialect.POSTGRES: [
        "e1fb05f49714",
        "a4fc0377ba1e",
        "3209ad30b6fd",
        "f22e976356cc",
        "e6ff24599514",
        "88292ac157cb",
        "0142cd100f69",
        "b8fef8234d9f",
        "d924d3c5d5cd",
        "c7582266de59",
        "ebfda17afd61",
        "8cb49c8647b2",
        "3dbe3b562a2e",
    ],
}


@pytest.mark.parametrize("dialect", list(Dialect))
def test_each_dialect_applies_the_steps_it_shipped_unchanged_and_in_order(dialect: Dialect) -> None:
    steps = migrations(dialect)
    digests = [hashlib.sha256(step.encode()).hexdigest()[:12] for step in steps]
    assert digests[: len(SHIPPED[dialect])] == SHIPPED[dialect]


def test_the_steps_the_dialects_share_are_written_once() -> None:
    shared = [step for step in SCHEMA if step.sqlite is not None and step.sqlite == step.postgres]
    assert len(shared) >= len(SCHEMA) - 3  # only the first steps and the JSON data migration differ
    assert all(step.sqlite is not None for step in SCHEMA)  # SQLite has every step


def _file_at(path: Path, version: int) -> None:
    """A SQLite file as the bot left it at `version`, with an alert and a subscription in it."""
    rows = [
        "INSERT INTO subscriptions (channel, kinds, labels) VALUES ('C1', 'failed', '{}')",
        "INSERT INTO alerts (key, channel, run_id, kind, state, claimed_at)"
        " VALUES ('failed:R1', 'C1', 'R1', 'failed', 'posted', '2026-11-28T12:00:00+00:00')",
    ]
    database_at("sqlite", version, rows, path=path)


@pytest.mark.parametrize("version", range(1, len(SHIPPED[Dialect.SQLITE]) + 1))
async def test_a_sqlite_file_at_any_shipped_version_migrates_to_the_latest_and_keeps_its_data(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / f"v{version}.db"
    _file_at(path, version)
    store = SQLiteStore(str(path))
    await store.open()
    try:
        [alert] = await store.alerts_for_run("R1")
        assert alert.state is AlertState.POSTED and alert.channel == "C1"
        [sub] = await store.subscriptions("C1")
        assert sub.channel == "C1"
        # Everything the latest schema holds can be written.
        assert await store.claim_alert(AlertKey(AlertKind.FAILED, "R2"), "C1", NOW, owner="me", lease_until=NOW)
        key = ActionKey.of(Verb.RETRY, "R1")
        assert await store.begin_action(Action(key, Verb.RETRY, "U1", NOW), stale_before=NOW) is None
        await store.set_mark("alerts.watermark", "{}")
    finally:
        await store.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT version FROM schema_version").fetchone()[0] == len(migrations(Dialect.SQLITE))
    finally:
        db.close()
