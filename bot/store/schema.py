"""The one schema, as the list of migrations both databases apply, with the dialect differences named.

A step is written once when it reads the same in SQLite and PostgreSQL (`both`); where the dialects
differ, `Migration` names each one's text, and a step one dialect never had is `None` for it (its
databases do not count it: version numbers are each dialect's own, as shipped). Shipped steps never
change, since databases out there have applied them: a new shape is a new step at the end.

The differences, all in the first steps and one data migration:

- PostgreSQL began with the whole first year of the schema in one step (`BIGSERIAL` ids, the
  delivery columns, `channels`, `actions`); SQLite began smaller (`AUTOINCREMENT` ids, a `broken`
  column on subscriptions) and grew into the same shape in its second step.
- Outcomes became JSON data: `json_object(…)` in SQLite, `json_build_object(…)::text` in PostgreSQL.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["SCHEMA", "Dialect", "Migration", "both", "migrations"]


class Dialect(enum.Enum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"


@dataclass(frozen=True)
class Migration:
    """One step of the schema: its SQL in each dialect (None: that dialect has no such step)."""

    sqlite: str | None
    postgres: str | None

    def sql(self, dialect: Dialect) -> str | None:
        return self.sqlite if dialect is Dialect.SQLITE else self.postgres


def both(sql: str) -> Migration:
    """A step that reads the same in both dialects."""
    return Migration(sql, sql)


ACTIONS_TABLE = """
    CREATE TABLE actions (
        key TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        action TEXT NOT NULL,
        user_id TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        state TEXT NOT NULL,
        detail TEXT,
        result TEXT
    );
    CREATE INDEX actions_by_run ON actions (run_id);
"""
DELIVERY_LEASE = """
    ALTER TABLE alerts ADD COLUMN owner TEXT;
    ALTER TABLE alerts ADD COLUMN lease_until TEXT;
"""
MESSAGE_INDEX = """
    CREATE INDEX alerts_by_message ON alerts (channel, ts);
"""
# Outcomes became data (JSON); rows written before keep their rendered text as a legacy outcome.
ACTION_OUTCOME = """
    ALTER TABLE actions ADD COLUMN outcome TEXT;
"""


FOLLOWS_TABLE = """
    CREATE TABLE follows (
        run_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        ts TEXT NOT NULL,
        last_seq INTEGER NOT NULL DEFAULT 0,
        created_by TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (run_id, channel)
    );
    CREATE INDEX follows_by_message ON follows (channel, ts);
"""
SUMMARIES_TABLE = """
    CREATE TABLE summaries (
        channel TEXT PRIMARY KEY,
        at TEXT NOT NULL,
        tz TEXT NOT NULL,
        created_by TEXT,
        created_at TEXT NOT NULL
    );
"""

# A Fabro login (lower case) belongs to one Slack user; a user may hold several logins.
LINKS_TABLE = """
    CREATE TABLE links (
        login TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX links_by_user ON links (user_id);
"""

# What each person wants to hear of in direct messages; no row: the defaults.
NOTIFY_TABLE = """
    CREATE TABLE notify (
        user_id TEXT PRIMARY KEY,
        kinds TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
"""

# Fabro cannot list runs by who started them: the bot keeps its own index of the runs it has seen.
RUNS_INDEX = """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        owner TEXT,
        login TEXT,
        status TEXT NOT NULL,
        title TEXT NOT NULL,
        web_url TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX runs_by_owner ON runs (owner, updated_at);
    CREATE INDEX runs_by_login ON runs (login, updated_at);
"""


def outcomes_as_json(json_object: str) -> str:
    """The data half of that migration, given the dialect's way to build a JSON object as text."""
    return f"""
    UPDATE actions SET outcome = {json_object.format(text="result")}, result = NULL
        WHERE state = 'done' AND result IS NOT NULL;
    UPDATE alerts SET outcome = {json_object.format(text="outcome")}
        WHERE outcome IS NOT NULL AND substr(outcome, 1, 1) <> '{{';
    """


# What every cycle reads stays constant as history grows: the deliveries due and the alerts still
# waiting are read through partial indexes that hold only those rows (the queries repeat these
# predicates word for word, which is how SQLite matches a partial index); retention walks the
# rest by age. The plain index on state served neither once settled alerts piled up.
SCALE_INDEXES = """
    CREATE INDEX alerts_due ON alerts (claimed_at)
        WHERE state = 'claimed' OR (state = 'posted' AND outcome IS NOT NULL);
    CREATE INDEX alerts_waiting ON alerts (kind, claimed_at) WHERE state = 'posted' AND outcome IS NULL;
    CREATE INDEX alerts_by_age ON alerts (claimed_at);
    DROP INDEX alerts_by_state;
    CREATE INDEX actions_by_age ON actions (requested_at);
    CREATE INDEX runs_by_age ON runs (updated_at);
"""

# Who started a run and what to leave out (`by:`, `-by:`, `-repo:`, `-workflow:`), as JSON.
SUBSCRIPTION_NARROW = """
    ALTER TABLE subscriptions ADD COLUMN narrow TEXT;
"""

# Runs muted in a conversation (`until` NULL: for the rest of the run).
MUTES_TABLE = """
    CREATE TABLE mutes (
        channel TEXT NOT NULL,
        run_id TEXT NOT NULL,
        until TEXT,
        created_by TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (channel, run_id)
    );
    CREATE INDEX mutes_by_run ON mutes (run_id);
"""

# How a link was made: `github` when GitHub named the login (the device flow), NULL when typed.
LINK_PROOF = """
    ALTER TABLE links ADD COLUMN proof TEXT;
"""

# What each channel works on when work is started from it (`/runs setup`).
SETUPS_TABLE = """
    CREATE TABLE setups (
        channel TEXT PRIMARY KEY,
        repository TEXT NOT NULL,
        branch TEXT,
        workflow TEXT NOT NULL,
        set_by TEXT NOT NULL,
        set_at TEXT NOT NULL
    );
"""

# A run started from a thread is followed in it; a mention there finds the run by the thread.
FOLLOW_THREADS = """
    ALTER TABLE follows ADD COLUMN thread_ts TEXT;
    CREATE INDEX follows_by_thread ON follows (channel, thread_ts);
"""

# A new subscription posts, once, the questions and approvals already waiting that it matches:
# those made before this step count as told.
SUBSCRIPTION_CATCH_UP = """
    ALTER TABLE subscriptions ADD COLUMN caught_up INTEGER NOT NULL DEFAULT 1;
"""

# What each indexed run has cost so far (micro-dollars), for the day's spend against DAILY_BUDGET_USD.
RUNS_COST = """
    ALTER TABLE runs ADD COLUMN cost_micros BIGINT;
"""

# Windows and confirmations the bot opened: a submission without a live one of its own is refused.
BINDINGS_TABLE = """
    CREATE TABLE bindings (
        nonce TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        what TEXT NOT NULL,
        until TEXT NOT NULL
    );
    CREATE INDEX bindings_by_age ON bindings (until);
"""

# The newest run retried from an indexed run: Home offers Retry only on a run nobody retried yet.
RUNS_RETRIED = """
    ALTER TABLE runs ADD COLUMN retried_as TEXT;
"""

# A follow whose run ended is kept, ended, so that resuming the run from Slack follows it again in
# the same thread from the same seq; retention forgets it once it has been ended long enough.
FOLLOWS_ENDED = """
    ALTER TABLE follows ADD COLUMN ended_at TEXT;
"""

_SQLITE_FIRST = """
    CREATE TABLE alerts (
        key TEXT NOT NULL,
        channel TEXT NOT NULL,
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        ts TEXT,
        claimed_at TEXT NOT NULL,
        posted_at TEXT,
        resolved_at TEXT,
        outcome TEXT,
        PRIMARY KEY (key, channel)
    );
    CREATE INDEX alerts_by_run ON alerts (run_id);
    CREATE INDEX alerts_by_state ON alerts (state);
    CREATE TABLE subscriptions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL,
        kinds TEXT NOT NULL,
        repo TEXT,
        workflow TEXT,
        labels TEXT NOT NULL DEFAULT '{}',
        created_by TEXT,
        broken TEXT
    );
    CREATE TABLE marks (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """
_SQLITE_GROWN = """
    ALTER TABLE alerts ADD COLUMN batch TEXT;
    ALTER TABLE alerts ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE alerts ADD COLUMN next_attempt_at TEXT;
    ALTER TABLE alerts ADD COLUMN last_error TEXT;
    ALTER TABLE alerts ADD COLUMN unposted INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE channels (channel TEXT PRIMARY KEY, broken TEXT NOT NULL);
    INSERT INTO channels (channel, broken)
        SELECT channel, MAX(broken) FROM subscriptions WHERE broken IS NOT NULL GROUP BY channel;
    ALTER TABLE subscriptions DROP COLUMN broken;
    """
_POSTGRES_FIRST = """
    CREATE TABLE alerts (
        key TEXT NOT NULL,
        channel TEXT NOT NULL,
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        ts TEXT,
        claimed_at TEXT NOT NULL,
        posted_at TEXT,
        resolved_at TEXT,
        outcome TEXT,
        batch TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_error TEXT,
        unposted INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (key, channel)
    );
    CREATE INDEX alerts_by_run ON alerts (run_id);
    CREATE INDEX alerts_by_state ON alerts (state);
    CREATE TABLE subscriptions (
        id BIGSERIAL PRIMARY KEY,
        channel TEXT NOT NULL,
        kinds TEXT NOT NULL,
        repo TEXT,
        workflow TEXT,
        labels TEXT NOT NULL DEFAULT '{}',
        created_by TEXT
    );
    CREATE TABLE channels (channel TEXT PRIMARY KEY, broken TEXT NOT NULL);
    CREATE TABLE marks (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """

SCHEMA: tuple[Migration, ...] = (
    Migration(sqlite=_SQLITE_FIRST, postgres=_POSTGRES_FIRST + ACTIONS_TABLE),
    Migration(sqlite=_SQLITE_GROWN + ACTIONS_TABLE, postgres=None),  # PostgreSQL's first step had all of it
    both(DELIVERY_LEASE),
    both(MESSAGE_INDEX),  # replies in an alert's thread find it by (channel, ts)
    Migration(
        sqlite=ACTION_OUTCOME + outcomes_as_json("json_object('v', 1, 'verb', 'legacy', 'text', {text})"),
        postgres=ACTION_OUTCOME + outcomes_as_json("json_build_object('v', 1, 'verb', 'legacy', 'text', {text})::text"),
    ),
    both(SUMMARIES_TABLE),
    both(FOLLOWS_TABLE),
    both(LINKS_TABLE),
    both(NOTIFY_TABLE),
    both(RUNS_INDEX),
    both(SCALE_INDEXES),
    both(SUBSCRIPTION_NARROW),
    both(MUTES_TABLE),
    both(SETUPS_TABLE),
    both(FOLLOW_THREADS),
    both(LINK_PROOF),
    both(SUBSCRIPTION_CATCH_UP),
    both(RUNS_COST),
    both(BINDINGS_TABLE),
    both(RUNS_RETRIED),
    both(FOLLOWS_ENDED),
)


def migrations(dialect: Dialect) -> list[str]:
    """The steps `dialect` applies, in order; a database at version n has applied the first n."""
    return [sql for step in SCHEMA if (sql := step.sql(dialect)) is not None]
