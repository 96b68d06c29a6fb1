"""A person's runs by the owner rule, from the bot's index: `/runs mine` and Home's "Your runs" read this.

The owner rule: a run is a person's when the bot recorded them as its owner (they started or retried
it from Slack, or Fabro's `slack` principal names them), or, when the bot recorded no owner, when it
was created by one of their linked logins. Fabro cannot list runs by creator, so this is the bot's
own index of the runs it has seen.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.records import IndexedRun
from bot.store.base import People

__all__ = ["HIDDEN", "MyRuns", "my_runs"]

HIDDEN = ("archived", "removing")  # as in Fabro's own listing, shown only when asked for


@dataclass(frozen=True)
class MyRuns:
    entries: list[IndexedRun]
    total: int  # every run of theirs the query matches, not only this page


async def my_runs(
    store: People,
    user_id: str,
    logins: list[str],
    *,
    limit: int,
    offset: int = 0,
    statuses: tuple[str, ...] = (),
    include_archived: bool = False,
    order: str = "updated_at",
    ascending: bool = False,
) -> MyRuns:
    """The page of a person's runs, newest first unless asked otherwise, and how many there are."""
    chosen = statuses or None
    hidden = () if statuses or include_archived else HIDDEN
    entries = await store.runs_of(
        user_id, logins, limit, offset=offset, statuses=chosen, hidden=hidden, order=order, ascending=ascending
    )
    total = await store.count_runs_of(user_id, logins, statuses=chosen, hidden=hidden)
    return MyRuns(entries, total)
