"""Action ids and button values: every piece of routing data is encoded and decoded here.  [pure]

Button values come back from Slack, so they are decoded as untrusted input: anything
malformed decodes to None rather than to a query Fabro would refuse.
"""

from __future__ import annotations

import json
import re

from bot.query import DEFAULT_LIMIT, MAX_LIMIT, SORT_LABELS, RunQuery
from bot.fabro.models import BUCKETS

__all__ = [
    "LINK_ACTION",
    "PAGE_ACTION",
    "decode_page",
    "encode_page",
    "link_action_id",
    "page_action_id",
]

PAGE_ACTION = re.compile(r"^runs_page:(prev|next)$")
LINK_ACTION = re.compile(r"^runs_link:")

_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


def page_action_id(direction: str) -> str:
    return f"runs_page:{direction}"


def link_action_id(kind: str) -> str:
    """Link buttons still send a block_actions payload, which must be acknowledged."""
    return f"runs_link:{kind}"


def encode_page(query: RunQuery) -> str:
    """A compact, versioned value that re-asks `query` (its offset included)."""
    value: dict[str, object] = {"v": 1, "o": query.offset, "l": query.limit}
    if query.statuses:
        value["s"] = list(query.statuses)
    if query.sort:
        value["k"] = query.sort
    if query.direction:
        value["d"] = query.direction
    if query.parent_id:
        value["p"] = query.parent_id
    if query.include_archived:
        value["a"] = 1
    return json.dumps(value, separators=(",", ":"))


def decode_page(value: str | None) -> RunQuery | None:
    try:
        data = json.loads(value or "")
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("v") != 1:
        return None
    statuses = data.get("s", [])
    sort = data.get("k")
    direction = data.get("d")
    parent = data.get("p")
    offset = data.get("o", 0)
    limit = data.get("l", DEFAULT_LIMIT)
    valid = (
        isinstance(statuses, list)
        and all(s in BUCKETS for s in statuses)
        and (sort is None or sort in SORT_LABELS)
        and direction in (None, "asc", "desc")
        and (parent is None or (isinstance(parent, str) and _ID.match(parent)))
        and isinstance(offset, int)
        and offset >= 0
        and isinstance(limit, int)
        and 1 <= limit <= MAX_LIMIT
    )
    if not valid:
        return None
    return RunQuery(
        statuses=tuple(statuses),
        sort=sort,
        direction=direction,
        limit=limit,
        offset=offset,
        parent_id=parent,
        include_archived=bool(data.get("a")),
    )
