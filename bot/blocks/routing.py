"""Action ids and button values: every piece of routing data is encoded and decoded here.  [pure]

Button values come back from Slack, so they are decoded as untrusted input: anything
malformed decodes to None rather than to a query Fabro would refuse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from bot.core.keys import names_a_failure
from bot.core.query import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_NARROW,
    MAX_NARROW_VALUE,
    MAX_OFFSET,
    SORT_LABELS,
    Narrow,
    RunQuery,
    valid_login,
    valid_repo,
    valid_workflow,
)
from bot.fabro.models import BUCKETS, Question

__all__ = [
    "ANSWER_MODAL",
    "ASK_MODAL",
    "CLOSE_MODAL",
    "DENY_MODAL",
    "FOLLOW_ACTION",
    "LINK_ACTION",
    "MERGE_CONFIRM",
    "MERGE_METHODS",
    "MERGE_MODAL",
    "MUTE_ACTION",
    "MUTE_CHOICES",
    "PAGE_ACTION",
    "SHOW_ACTION",
    "START_ACTION",
    "START_BUTTONS",
    "START_MODAL",
    "START_PICK",
    "STEER_ACTION",
    "STEER_MODAL",
    "STEER_VERBS",
    "WORK_BUTTONS",
    "WORK_MODAL",
    "ModalContext",
    "Target",
    "choice_value",
    "control_block_id",
    "decode_modal",
    "decode_mute",
    "decode_page",
    "decode_picker",
    "decode_start",
    "decode_work",
    "encode_modal",
    "encode_mute",
    "encode_page",
    "encode_picker",
    "encode_start",
    "encode_work",
    "link_action_id",
    "page_action_id",
    "parse_control_block",
    "picker_nonce",
    "resolve_choice",
    "show_action_id",
    "steer_action_id",
    "steer_verb",
]

PAGE_ACTION = re.compile(r"^runs_page:(prev|next)$")
FOLLOW_ACTION = "runs_follow"  # its value is the run id
SHOW_ACTION = re.compile(r"^runs_show(?::[a-z_]{1,32})?$")  # a listing for the clicker alone, message left in place
LINK_ACTION = re.compile(r"^runs_link:")
MUTE_ACTION = "runs_mute"  # an alert's overflow menu; each option's value is `<choice>:<run id>`
# What the menu offers: minutes, or None for the rest of the run.
MUTE_CHOICES: dict[str, int | None] = {"1h": 60, "1d": 24 * 60, "end": None}


def encode_mute(choice: str, run_id: str) -> str:
    return f"{choice}:{run_id}"


def decode_mute(value: str | None) -> tuple[int | None, str] | None:
    """(minutes or None for the rest of the run, run id) from an option we made; None for anything else."""
    choice, colon, run_id = (value or "").partition(":")
    if not colon or choice not in MUTE_CHOICES or not _ID.match(run_id):
        return None
    return MUTE_CHOICES[choice], run_id


_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


def show_action_id(name: str | None = None) -> str:
    """`runs_show`, or `runs_show:<name>` where one block holds several (action ids are unique per block)."""
    return f"runs_show:{name}" if name else "runs_show"


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
    narrow = query.narrow
    if narrow.active:
        value["n"] = {
            k: v
            for k, v in {
                "b": list(narrow.by),
                "me": 1 if narrow.by_me else 0,
                "m": 1 if narrow.mine else 0,
                "nb": list(narrow.not_by),
                "r": narrow.repo,
                "nr": list(narrow.not_repos),
                "w": narrow.workflow,
                "nw": list(narrow.not_workflows),
            }.items()
            if v
        }
    return json.dumps(value, separators=(",", ":"))


def _words(value: object, valid: Callable[[str], bool]) -> tuple[str, ...] | None:
    if not isinstance(value, list) or len(value) > MAX_NARROW:
        return None
    if not all(isinstance(v, str) and valid(v) for v in value):
        return None
    return tuple(value)


def _decode_narrow(value: object) -> Narrow | None:
    if value is None:
        return Narrow()
    if not isinstance(value, dict) or set(value) - {"b", "me", "m", "nb", "r", "nr", "w", "nw"}:
        return None

    def login(v: str) -> bool:
        return valid_login(v) and v == v.lower()

    def repo(v: str) -> bool:
        return valid_repo(v, longest=MAX_NARROW_VALUE)

    def workflow(v: str) -> bool:
        return valid_workflow(v, longest=MAX_NARROW_VALUE)

    by, not_by = _words(value.get("b", []), login), _words(value.get("nb", []), login)
    not_repos, not_workflows = _words(value.get("nr", []), repo), _words(value.get("nw", []), workflow)
    one_repo, one_workflow = value.get("r"), value.get("w")
    if by is None or not_by is None or not_repos is None or not_workflows is None:
        return None
    if one_repo is not None and not (isinstance(one_repo, str) and repo(one_repo)):
        return None
    if one_workflow is not None and not (isinstance(one_workflow, str) and workflow(one_workflow)):
        return None
    if value.get("me", 0) not in (0, 1) or value.get("m", 0) not in (0, 1):
        return None
    return Narrow(
        by=by,
        by_me=value.get("me") == 1,
        mine=value.get("m") == 1,
        not_by=not_by,
        repo=one_repo,
        not_repos=not_repos,
        workflow=one_workflow,
        not_workflows=not_workflows,
    )


def _versioned(value: str | None) -> dict[str, object] | None:
    """A version-1 JSON object we encoded, or None for anything else."""
    try:
        data = json.loads(value or "")
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("v") == 1 else None


def _int(value: object, low: int, high: int) -> int | None:
    """A JSON integer within bounds; booleans (which Python counts as ints) and huge numbers are not."""
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    return None


def _str(value: object, pattern: re.Pattern[str]) -> str | None:
    return value if isinstance(value, str) and pattern.match(value) else None


def decode_page(value: str | None) -> RunQuery | None:
    data = _versioned(value)
    if data is None:
        return None
    statuses = data.get("s", [])
    sort, direction, parent = data.get("k"), data.get("d"), data.get("p")
    offset = _int(data.get("o", 0), 0, MAX_OFFSET)
    limit = _int(data.get("l", DEFAULT_LIMIT), 1, MAX_LIMIT)
    if not isinstance(statuses, list) or not all(isinstance(s, str) and s in BUCKETS for s in statuses):
        return None
    if offset is None or limit is None or data.get("a", 0) not in (0, 1):
        return None
    if sort is not None and not (isinstance(sort, str) and sort in SORT_LABELS):
        return None
    if direction not in (None, "asc", "desc") or (parent is not None and _str(parent, _ID) is None):
        return None
    narrow = _decode_narrow(data.get("n"))
    if narrow is None:
        return None
    return RunQuery(
        statuses=tuple(statuses),
        sort=sort,
        direction=direction if isinstance(direction, str) else None,
        limit=limit,
        offset=offset,
        parent_id=parent if isinstance(parent, str) else None,
        include_archived=data.get("a") == 1,
        narrow=narrow,
    )


# -- acting on runs ------------------------------------------------------------------------

STEER_VERBS = (
    "answer",
    "choose",
    "pick",
    "submit",
    "text",
    "approve",
    "deny",
    "retry",
    "resume_run",
    "cancel",
    "create_pr",
    "merge",
    "close_pr",
    "steer_text",
    "interrupt",
    "pause",
    "resume",
    "changes",
    "cost",
    "logs",
    "graph",
    "patch",
    "ask",
)
STEER_ACTION = re.compile(r"^steer:(" + "|".join(STEER_VERBS) + r")(?::\d{1,3})?$")
ANSWER_MODAL = "steer_answer_modal"
DENY_MODAL = "steer_deny_modal"
MERGE_MODAL = "steer_merge_modal"  # choose how to merge…
MERGE_CONFIRM = "steer_merge_confirm"  # …then see what will be merged, and how, before the final submit
CLOSE_MODAL = "steer_close_modal"  # which pull request will be closed, before it is
MERGE_METHODS = ("merge", "squash", "rebase")
STEER_MODAL = "steer_agent_modal"  # what to say to the agent, and whether to interrupt it first
ASK_MODAL = "ask_fabro_modal"  # a question about the run, for Fabro to answer in the card's thread
_BLOCK = re.compile(r"^(answer|decide|retry|cancel|ship|agent|inspect):([0-9A-Za-z_-]{1,64})(?::([^\s]{1,150}))?$")
_QUESTION_ID = re.compile(r"^[^\s]{1,150}$")


@dataclass(frozen=True)
class Target:
    """The run (and question, or failure) a control acts on."""

    run_id: str
    question_id: str | None = None
    failure: str | None = None  # the failure Retry and Resume take up (`bot.core.keys.failure_of`)


def steer_action_id(verb: str, index: int | None = None) -> str:
    """`steer:<verb>`, numbered when one block holds several (action ids are unique per block)."""
    assert verb in STEER_VERBS
    return f"steer:{verb}" if index is None else f"steer:{verb}:{index}"


def steer_verb(action_id: str | None) -> str | None:
    match = STEER_ACTION.match(action_id or "")
    return match.group(1) if match else None


def control_block_id(kind: str, target: Target) -> str:
    """The actions block's id carries the target: `answer:<run>:<question>`, `retry:<run>:<failure>`…"""
    block_id = f"{kind}:{target.run_id}"
    subject = target.question_id or (target.failure if kind == "retry" else None)
    return block_id + (f":{subject}" if subject else "")


def parse_control_block(block_id: str | None) -> tuple[str, Target] | None:
    """The kind of control and its target; a Retry block without a failure (drawn where the failure
    was not known, or before failures were told apart) leaves it to the action to read."""
    match = _BLOCK.fullmatch(block_id or "")
    if not match:
        return None
    kind, run_id, subject = match.groups()
    if kind == "retry" and subject is not None:
        return (kind, Target(run_id, failure=subject)) if names_a_failure(subject) else None
    if (kind == "answer") != (subject is not None):
        return None
    return kind, Target(run_id, subject)


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


# -- starting runs ---------------------------------------------------------------------------

START_ACTION = "start"  # the confirmation card's buttons: start:go, start:cancel
START_BUTTONS = re.compile(r"^start:(go|cancel)$")
START_MODAL = "start_modal"
START_PICK = "start_pick"
_AUTOMATION_ID = re.compile(r"^[0-9A-Za-z_.-]{1,128}$")
_INTENT = re.compile(r"^[0-9a-f]{8,40}$")


WORK_ACTION = "work"  # the confirmation of work asked for in a conversation: work:go, work:edit, work:cancel
WORK_BUTTONS = re.compile(r"^work:(go|edit|cancel)$")
WORK_MODAL = "work_modal"


def encode_work(intent: str) -> str:
    """What the confirmation's buttons (and its Edit window) carry: the intent; the draft waits in the store."""
    return json.dumps({"v": 1, "w": intent}, separators=(",", ":"))


def decode_work(value: str | None) -> str | None:
    data = _versioned(value)
    intent = data.get("w") if data is not None else None
    return intent if isinstance(intent, str) and _INTENT.match(intent) else None


def encode_start(automation_id: str, intent: str, channel: str | None) -> str:
    """What a Start button carries: the automation, the intent it starts once, where to announce it."""
    value = {"v": 1, "a": automation_id, "i": intent, "c": channel}
    return json.dumps({k: v for k, v in value.items() if v is not None}, separators=(",", ":"))


def decode_start(value: str | None) -> tuple[str, str, str | None] | None:
    data = _versioned(value)
    if data is None:
        return None
    automation, intent, channel = _str(data.get("a"), _AUTOMATION_ID), _str(data.get("i"), _INTENT), data.get("c")
    if automation is None or intent is None or (channel is not None and _str(channel, _CHANNEL) is None):
        return None
    return automation, intent, channel if isinstance(channel, str) else None


def encode_picker(channel: str | None, nonce: str | None = None) -> str:
    value = {"v": 1, "c": channel, "n": nonce}
    return json.dumps({k: v for k, v in value.items() if v is not None}, separators=(",", ":"))


def decode_picker(value: str | None) -> str | None:
    """The channel a picker window was opened from (None: unknown or not a channel id)."""
    data = _versioned(value)
    return _str(data.get("c"), _CHANNEL) if data else None


def picker_nonce(value: str | None) -> str | None:
    """The nonce the bot gave the picker window when it opened it (`bot.people.bindings`)."""
    data = _versioned(value)
    return _str(data.get("n"), _NONCE) if data else None


@dataclass(frozen=True)
class ModalContext:
    """What a modal acts on, and where the card it came from is (to update it after)."""

    target: Target
    channel: str | None = None
    message_ts: str | None = None
    response_url: str | None = None
    method: str | None = None  # how to merge, once chosen
    nonce: str | None = None  # the bot opened this window for one person (`bot.people.bindings`)


def encode_modal(context: ModalContext) -> str:
    value = {
        "v": 1,
        "r": context.target.run_id,
        "q": context.target.question_id,
        "c": context.channel,
        "t": context.message_ts,
        "u": context.response_url,
        "m": context.method,
        "n": context.nonce,
    }
    return json.dumps({k: v for k, v in value.items() if v is not None}, separators=(",", ":"))


_CHANNEL = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_TS = re.compile(r"^\d{1,12}\.\d{1,9}$")
_URL = re.compile(r"^https?://\S{1,3000}$")
_METHOD = re.compile(r"^(merge|squash|rebase)$")
_NONCE = re.compile(r"^[0-9a-f]{16,64}$")


def decode_modal(value: str | None) -> ModalContext | None:
    """What a modal acts on. A response URL is only kept here; whether the bot may post to it
    is decided where it is used (Slack's own hosts only)."""
    data = _versioned(value)
    if data is None:
        return None
    run_id = _str(data.get("r"), _ID)
    fields = {"q": _QUESTION_ID, "c": _CHANNEL, "t": _TS, "u": _URL, "m": _METHOD, "n": _NONCE}
    parsed = {name: _str(data.get(name), pattern) for name, pattern in fields.items()}
    if run_id is None or any(data.get(name) is not None and parsed[name] is None for name in fields):
        return None
    target = Target(run_id, parsed["q"])
    return ModalContext(target, parsed["c"], parsed["t"], parsed["u"], parsed["m"], parsed["n"])
