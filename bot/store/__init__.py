"""Durable state behind alerts, subscriptions and actions. SQL lives only in this package."""

from bot.core.records import Action, Alert, AlertState, ChannelSummary, Follow, Subscription
from bot.store.base import Store
from bot.store.sqlite import SQLiteStore

__all__ = [
    "Action",
    "Alert",
    "AlertState",
    "ChannelSummary",
    "Follow",
    "SQLiteStore",
    "Store",
    "Subscription",
    "open_store",
]


def open_store(database_url: str, *, open_timeout: float = 10.0) -> Store:
    """The store for `DATABASE_URL`: `sqlite:///path` (the default) or `postgresql://…`."""
    if database_url.startswith("sqlite:///"):
        return SQLiteStore(database_url.removeprefix("sqlite:///"))
    if database_url.startswith(("postgresql://", "postgres://")):
        from bot.store.postgres import PostgresStore  # psycopg is only needed by those who use it

        return PostgresStore(database_url, open_timeout=open_timeout)
    raise ValueError(f"unsupported DATABASE_URL scheme: {database_url.split(':', 1)[0]}")
