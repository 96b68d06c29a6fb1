"""Durable state behind alerts and subscriptions. SQL lives only in this package."""

from bot.store.base import Alert, AlertState, Store, Subscription
from bot.store.sqlite import SQLiteStore

__all__ = ["Alert", "AlertState", "SQLiteStore", "Store", "Subscription", "open_store"]


def open_store(database_url: str) -> Store:
    """The store for `DATABASE_URL`: `sqlite:///path` (the default)."""
    if database_url.startswith("sqlite:///"):
        return SQLiteStore(database_url.removeprefix("sqlite:///"))
    raise ValueError(f"unsupported DATABASE_URL scheme: {database_url.split(':', 1)[0]}")
