"""Action ids and button values: every piece of routing data is encoded and decoded here.  [pure]

Button values come back from Slack, so they are decoded as untrusted input: anything
malformed decodes to None rather than to a query Fabro would refuse.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from bot.query import DEFAULT_LIMIT, MAX_LIMIT, SORT_LABELS, RunQuery
from bot.fabro.models import BUCKETS, Question

__all__ = [
    "ANSWER_MODAL",
    "DENY_MODAL",
    "LINK_ACTION",
    "ModalContext",
    "PAGE_ACTION",
    "SHOW_ACTION",
    "STEER_ACTION",
    "Target",
    "choice_value",
    "control_block_id",
    "decode_modal",
    "decode_page",
    "encode_modal",
    "encode_page",
    "link_action_id",
    "page_action_id",
    "parse_control_block",
    "resolve_choice",
    "steer_action_id",
    "steer_verb",
]

PAGE_ACTION = re.compile(r"^runs_page:(prev|next)$")
SHOW_ACTION = "runs_show"   # a listing shown to the clicker alone, leaving the message in place
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


def _versioned(value: str | None) -> dict[str, object] | None:
    """A version-1 JSON object we encoded, or None for anything else."""
    try:
        data = json.loads(value or "")
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("v") == 1 else None


def decode_page(value: str | None) -> RunQuery | None:
    data = _versioned(value)
    if data is None:
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


# -- acting on runs ------------------------------------------------------------------------

STEER_VERBS = ("answer", "choose", "pick", "submit", "text", "approve", "deny", "retry", "cancel")
STEER_ACTION = re.compile(r"^steer:(answer|choose|pick|submit|text|approve|deny|retry|cancel)(?::\d{1,3})?$")
ANSWER_MODAL = "steer_answer_modal"
DENY_MODAL = "steer_deny_modal"
_BLOCK = re.compile(r"^(answer|decide|retry|cancel):([0-9A-Za-z_-]{1,64})(?::([^\s]{1,150}))?$")
_QUESTION_ID = re.compile(r"^[^\s]{1,150}$")


@dataclass(frozen=True)
class Target:
    """The run (and question) a control acts on."""

    run_id: str
    question_id: str | None = None


def steer_action_id(verb: str, index: int | None = None) -> str:
    """`steer:<verb>`, numbered when one block holds several (action ids are unique per block)."""
    assert verb in STEER_VERBS
    return f"steer:{verb}" if index is None else f"steer:{verb}:{index}"


def steer_verb(action_id: str | None) -> str | None:
    match = STEER_ACTION.match(action_id or "")
    return match.group(1) if match else None


def control_block_id(kind: str, target: Target) -> str:
    """The actions block's id carries the target: `answer:<run>:<question>`, `retry:<run>`…"""
    block_id = f"{kind}:{target.run_id}"
    return block_id + (f":{target.question_id}" if target.question_id else "")


def parse_control_block(block_id: str | None) -> tuple[str, Target] | None:
    match = _BLOCK.match(block_id or "")
    if not match:
        return None
    kind, run_id, question_id = match.groups()
    if (kind == "answer") != (question_id is not None):
        return None
    return kind, Target(run_id, question_id)


def choice_value(question: Question, index: int) -> str:
    """An option's value: its key, or `#<index>` for keys too long for Slack (150 characters)."""
    key = question.options[index].key
    return key if len(key) <= 150 and not key.startswith("#") else f"#{index}"


def resolve_choice(question: Question, value: str | None) -> str | None:
    """The option key a value stands for, if `question` (as Fabro has it now) has that option."""
    if not value:
        return None
    keys = [o.key for o in question.options]
    if value.startswith("#") and value[1:].isdigit():
        index = int(value[1:])
        return keys[index] if index < len(keys) else None
    return value if value in keys else None


@dataclass(frozen=True)
class ModalContext:
    """What a modal acts on, and where the card it came from is (to update it after)."""

    target: Target
    channel: str | None = None
    message_ts: str | None = None
    response_url: str | None = None


def encode_modal(context: ModalContext) -> str:
    value = {"v": 1, "r": context.target.run_id, "q": context.target.question_id,
             "c": context.channel, "t": context.message_ts, "u": context.response_url}
    return json.dumps({k: v for k, v in value.items() if v is not None}, separators=(",", ":"))


def decode_modal(value: str | None) -> ModalContext | None:
    data = _versioned(value)
    if data is None:
        return None
    run_id, question_id = data.get("r"), data.get("q")
    channel, ts, url = data.get("c"), data.get("t"), data.get("u")
    valid = (
        isinstance(run_id, str) and _ID.match(run_id)
        and (question_id is None or (isinstance(question_id, str) and _QUESTION_ID.match(question_id)))
        and (channel is None or (isinstance(channel, str) and re.fullmatch(r"[CGD][A-Z0-9]{2,}", channel)))
        and (ts is None or (isinstance(ts, str) and re.fullmatch(r"\d{1,12}\.\d{1,9}", ts)))
        and (url is None or (isinstance(url, str) and url.startswith(("https://", "http://"))))
    )
    if not valid:
        return None
    return ModalContext(Target(run_id, question_id), channel, ts, url)
