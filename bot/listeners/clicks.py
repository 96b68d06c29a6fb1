"""What a click means: every block action and window submission, read once into a closed union.  [pure]

Slack sends a button press, a menu choice or a window's Submit as a payload whose shape is not
trusted (`bot.listeners.payloads` reads it without raising, `bot.blocks.routing` decodes the
routing data the bot put in it). `read_click` turns one payload into exactly one `Click`;
`bot.listeners.controls` matches it once, with `assert_never`, so a click nobody handles is a
type error rather than a silent drop.

Adding a verb takes three steps:

1. one member of the union below (a frozen dataclass carrying what the verb needs) and its name
   in `Click`;
2. one entry in the action table: `_BUTTONS` (button verb → reader; the verb itself goes in the
   button codec, `bot.blocks.routing.STEER_VERBS`) or `_WINDOWS` (window callback id → reader);
3. one arm in `Controls.handle`'s match (`bot.listeners.controls`).

Intent keys (what makes a window, a click or an event act once) are made by `intent_of` only.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.acting.interview import AnswerKind, Choice
from bot.acting.steering import Where
from bot.asking.inspect import Look
from bot.blocks.controls import ANSWER_INPUT, DENY_INPUT, INTERRUPT_INPUT, MERGE_INPUT, STEER_INPUT
from bot.blocks.inspect import ASK_INPUT
from bot.blocks.routing import (
    ANSWER_MODAL,
    ASK_MODAL,
    CLOSE_MODAL,
    DENY_MODAL,
    FOLLOW_ACTION,
    LINK_ACTION,
    MERGE_CONFIRM,
    MERGE_METHODS,
    MERGE_MODAL,
    MUTE_ACTION,
    PAGE_ACTION,
    SHOW_ACTION,
    START_BUTTONS,
    START_MODAL,
    START_PICK,
    STEER_ACTION,
    STEER_MODAL,
    STEER_VERBS,
    WORK_BUTTONS,
    WORK_MODAL,
    ModalContext,
    Target,
    decode_modal,
    decode_mute,
    decode_page,
    decode_picker,
    decode_start,
    decode_work,
    parse_control_block,
    picker_nonce,
    steer_verb,
)
from bot.blocks.work import BRANCH_INPUT, GOAL_INPUT, TITLE_INPUT, WORKFLOW_INPUT
from bot.core.keys import Verb
from bot.core.query import RunQuery
from bot.listeners.payloads import first_action, obj, picked, picked_in, text, user_of, view_input, where_clicked
from bot.people.bindings import PICKER, WORK, start_purpose

__all__ = [
    "ACTION_IDS",
    "WINDOW_IDS",
    "Answer",
    "Approve",
    "Ask",
    "Cancel",
    "ChooseMerge",
    "Click",
    "ClosePullRequest",
    "Control",
    "CreatePullRequest",
    "Deny",
    "DismissStart",
    "EditWork",
    "Follow",
    "Ignored",
    "Inspect",
    "Merge",
    "MuteRun",
    "NothingPicked",
    "OpenWindow",
    "Origin",
    "ResumeRun",
    "Retry",
    "ShowRuns",
    "Stale",
    "Start",
    "StartEditedWork",
    "StartWork",
    "Steer",
    "Surface",
    "Unfinished",
    "Unreadable",
    "Window",
    "binding_of",
    "intent_of",
    "purpose",
    "read_click",
]


def intent_of(name: str) -> str:
    """The once-only key of one window, click or event, from the id Slack gave it (hex, as keys take);
    a name longer than 20 bytes is hashed, so nothing that tells two intents apart is cut off."""
    raw = name.encode()
    return raw.hex() if len(raw) <= 20 else hashlib.sha256(raw).hexdigest()[:40]


class Surface(enum.Enum):
    """Where the clicked thing is, which decides how what became of it is shown."""

    MESSAGE = "message"  # a card in a conversation: redrawn through the click's response URL
    HOME = "home"  # the Home tab: republished, the note on top
    WINDOW = "window"  # a window's Submit: the card it was opened from is redrawn


@dataclass(frozen=True)
class Origin:
    """Who clicked, on which card, and how to redraw it (a window keeps its card's response URL)."""

    who: Where
    surface: Surface = Surface.MESSAGE
    response_url: str | None = None
    nonce: str | None = None  # the window's or confirmation's, from when the bot opened it


class Window(enum.Enum):
    """The windows a button opens before anything is acted on."""

    ANSWER = "answer"  # a written answer
    DENY = "deny"  # a denial's reason
    MERGE = "merge"  # how to merge (then what will be merged)
    CLOSE = "close"  # which pull request will be closed
    STEER = "steer"  # what to say to the agent
    ASK = "ask"  # a question for Fabro about the run


class Stale(enum.Enum):
    """What an unreadable click was, which decides what the person is told."""

    CONTROL = "control"  # a run card's control: told through the boundary, like any refusal
    LISTING = "listing"  # paging or following from a listing: "that list is out of date"
    START = "start"  # a start confirmation's button
    WINDOW = "window"  # a window's Submit: the window is closed, only the log says why


# -- the union ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    origin: Origin
    target: Target  # always with a question
    choice: Choice


@dataclass(frozen=True)
class NothingPicked:
    """Submit beside checkboxes with none ticked: refused before anything is recorded."""

    origin: Origin


@dataclass(frozen=True)
class Approve:
    origin: Origin
    target: Target


@dataclass(frozen=True)
class Deny:
    origin: Origin
    target: Target
    reason: str | None


@dataclass(frozen=True)
class Retry:
    origin: Origin
    target: Target


@dataclass(frozen=True)
class ResumeRun:
    """Run a failed run again in place, from its last checkpoint."""

    origin: Origin
    target: Target


@dataclass(frozen=True)
class Cancel:
    origin: Origin
    target: Target


@dataclass(frozen=True)
class CreatePullRequest:
    origin: Origin
    target: Target


@dataclass(frozen=True)
class Merge:
    origin: Origin
    target: Target
    method: str


@dataclass(frozen=True)
class ClosePullRequest:
    origin: Origin
    target: Target


@dataclass(frozen=True)
class Control:
    """Interrupt the agent, pause or resume the run: one click, one request."""

    origin: Origin
    target: Target
    verb: Verb
    intent: str


@dataclass(frozen=True)
class Steer:
    origin: Origin
    target: Target
    words: str
    intent: str
    interrupt: bool


@dataclass(frozen=True)
class Inspect:
    """Changes, Cost, Logs, Graph or the full patch of a run, answered in its card's thread
    (`thread`), or to the clicker alone when the card has no thread (an ephemeral card)."""

    origin: Origin
    target: Target
    look: Look
    thread: str | None
    intent: str


@dataclass(frozen=True)
class Ask:
    """A question for Fabro about a run, answered in the thread `thread` of `origin.who.channel`."""

    origin: Origin
    target: Target
    words: str
    thread: str
    intent: str


@dataclass(frozen=True)
class Start:
    origin: Origin  # its `who.channel` is where to announce the run
    automation_id: str
    intent: str


@dataclass(frozen=True)
class StartWork:
    """Start on the confirmation of work asked for in a conversation: the draft waits under `intent`."""

    origin: Origin
    intent: str


@dataclass(frozen=True)
class EditWork:
    """Edit… on that confirmation: open the window to change goal, title, branch and workflow."""

    intent: str
    trigger_id: str
    user_id: str


@dataclass(frozen=True)
class StartEditedWork:
    """The Edit window's Start: the draft as changed, then started like the card's Start."""

    origin: Origin
    intent: str
    request: str
    title: str
    branch: str | None
    workflow: str


@dataclass(frozen=True)
class DismissStart:
    """Cancel on a start confirmation: the card goes, nothing starts."""


@dataclass(frozen=True)
class OpenWindow:
    window: Window
    target: Target
    trigger_id: str
    context: ModalContext  # what the window will act on, and the card to redraw after
    user_id: str = ""  # who clicked: a person who may not act is told so before any window opens


@dataclass(frozen=True)
class ChooseMerge:
    """Step one of a merge submitted: show what will be merged, and how, before the final Submit."""

    context: ModalContext  # its `method` is the one chosen
    user_id: str | None = None  # who submitted it


@dataclass(frozen=True)
class ShowRuns:
    query: RunQuery
    in_place: bool  # paging replaces the listing; "show" leaves the message it came from as it is
    user: str | None = None  # who clicked: `mine` and `by:me` are theirs


@dataclass(frozen=True)
class MuteRun:
    who: Where  # the conversation it is muted in (a DM mutes only the DM)
    run_id: str
    minutes: int | None  # None: for the rest of the run


@dataclass(frozen=True)
class Follow:
    who: Where  # channel always known: the live card goes there
    run_id: str


@dataclass(frozen=True)
class Unfinished:
    """A window submitted without what it needs: it stays open with `error` under `block`."""

    block: str
    error: str


@dataclass(frozen=True)
class Ignored:
    """A click that only changes the message's own state (a ticked checkbox), or a link button."""


@dataclass(frozen=True)
class Unreadable:
    """A click whose data cannot be read: stale, or forged."""

    stale: Stale
    user_id: str | None


Click = (
    Answer
    | NothingPicked
    | Approve
    | Deny
    | Retry
    | ResumeRun
    | Cancel
    | CreatePullRequest
    | Merge
    | ClosePullRequest
    | Control
    | Steer
    | Inspect
    | Ask
    | Start
    | StartWork
    | EditWork
    | StartEditedWork
    | DismissStart
    | OpenWindow
    | ChooseMerge
    | ShowRuns
    | Follow
    | MuteRun
    | Unfinished
    | Ignored
    | Unreadable
)


# -- buttons on run cards -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pressed:
    """A run card's control, its target already read."""

    origin: Origin
    target: Target
    action: dict[str, Any]
    body: dict[str, Any]

    @property
    def value(self) -> str:
        return text(self.action.get("value")) or ""


def _answer(choice: Choice) -> Callable[[_Pressed], Click]:
    def read(p: _Pressed) -> Click:
        if p.target.question_id is None:
            return Unreadable(Stale.CONTROL, p.origin.who.user_id)
        return Answer(p.origin, p.target, choice)

    return read


def _answered(p: _Pressed) -> Click:
    choice = Choice(AnswerKind(p.value)) if p.value in ("yes", "no") else Choice(AnswerKind.OPTION, (p.value,))
    return _answer(choice)(p)


def _chosen(p: _Pressed) -> Click:
    selected = text(obj(p.action.get("selected_option")).get("value"))
    return _answer(Choice(AnswerKind.OPTION, (selected,) if selected else ()))(p)


def _submitted(p: _Pressed) -> Click:
    ticked = picked(p.body, text(p.action.get("block_id")))
    if not ticked:
        return NothingPicked(p.origin)
    return _answer(Choice(AnswerKind.OPTIONS, tuple(ticked)))(p)


def _window(window: Window) -> Callable[[_Pressed], Click]:
    def read(p: _Pressed) -> Click:
        channel, message_ts = where_clicked(p.body)
        # An ephemeral card cannot be edited by ts: only its response URL can redraw it.
        response_url = None if message_ts else text(p.body.get("response_url"))
        context = ModalContext(p.target, channel, message_ts, response_url)
        return OpenWindow(window, p.target, text(p.body.get("trigger_id")) or "", context, p.origin.who.user_id)

    return read


def _control(verb: Verb) -> Callable[[_Pressed], Click]:
    def read(p: _Pressed) -> Click:
        # The click's own timestamp names it: Fabro refuses a second pending request anyway.
        return Control(p.origin, p.target, verb, intent_of(text(p.action.get("action_ts")) or "0"))

    return read


def _thread_of(body: dict[str, Any]) -> str | None:
    """The thread a card belongs to: the one it is a reply in, or its own; None for an ephemeral card."""
    if obj(body.get("container")).get("is_ephemeral") is True:
        return None
    _, message_ts = where_clicked(body)
    return text(obj(body.get("message")).get("thread_ts")) or message_ts


def _look(look: Look) -> Callable[[_Pressed], Click]:
    def read(p: _Pressed) -> Click:
        stamp = text(p.action.get("action_ts")) or "0"
        thread = _thread_of(p.body) if p.origin.surface is Surface.MESSAGE else None
        return Inspect(p.origin, p.target, look, thread, intent_of(f"{stamp}:{p.origin.who.user_id}"))

    return read


def _ask(p: _Pressed) -> Click:
    thread = _thread_of(p.body)
    channel = p.origin.who.channel
    if thread is None or channel is None or p.origin.surface is not Surface.MESSAGE:
        return Unreadable(Stale.CONTROL, p.origin.who.user_id)
    context = ModalContext(p.target, channel, thread)
    return OpenWindow(Window.ASK, p.target, text(p.body.get("trigger_id")) or "", context, p.origin.who.user_id)


_BUTTONS: dict[str, Callable[[_Pressed], Click]] = {
    "answer": _answered,
    "choose": _chosen,
    "pick": lambda p: Ignored(),  # ticking a checkbox only changes the message's state; Submit reads it
    "submit": _submitted,
    "text": _window(Window.ANSWER),
    "approve": lambda p: Approve(p.origin, p.target),
    "deny": _window(Window.DENY),
    "retry": lambda p: Retry(p.origin, p.target),
    "resume_run": lambda p: ResumeRun(p.origin, p.target),
    "cancel": lambda p: Cancel(p.origin, p.target),
    "create_pr": lambda p: CreatePullRequest(p.origin, p.target),
    "merge": _window(Window.MERGE),
    "close_pr": _window(Window.CLOSE),
    "steer_text": _window(Window.STEER),
    "interrupt": _control(Verb.INTERRUPT),
    "pause": _control(Verb.PAUSE),
    "resume": _control(Verb.RESUME),
    "changes": _look(Look.CHANGES),
    "cost": _look(Look.COST),
    "logs": _look(Look.LOGS),
    "graph": _look(Look.GRAPH),
    "patch": _look(Look.PATCH),
    "ask": _ask,
}
assert set(_BUTTONS) == set(STEER_VERBS), "every button verb the codec knows has a reader, and only those"


def _run_control(body: dict[str, Any], action: dict[str, Any], user: str | None) -> Click:
    verb = steer_verb(text(action.get("action_id")))
    parsed = parse_control_block(text(action.get("block_id")))
    if verb is None or parsed is None or user is None:
        return Ignored() if verb == "pick" else Unreadable(Stale.CONTROL, user)
    channel, message_ts = where_clicked(body)
    in_home = obj(body.get("container")).get("type") == "view"  # Home has no response URL
    origin = Origin(Where(user, channel, message_ts), Surface.HOME if in_home else Surface.MESSAGE)
    return _BUTTONS[verb](_Pressed(origin, parsed[1], action, body))


def _listing(action_id: str, action: dict[str, Any], user: str | None) -> Click:
    query = decode_page(text(action.get("value")))
    if query is None:
        return Unreadable(Stale.LISTING, user)
    return ShowRuns(query, in_place=PAGE_ACTION.match(action_id) is not None, user=user)


def _follow(body: dict[str, Any], action: dict[str, Any], user: str | None) -> Click:
    run_id = text(action.get("value")) or ""
    channel, message_ts = where_clicked(body)
    if channel is None or user is None or not run_id:
        return Unreadable(Stale.LISTING, user)
    return Follow(Where(user, channel, message_ts), run_id)


def _mute(body: dict[str, Any], action: dict[str, Any], user: str | None) -> Click:
    decoded = decode_mute(text(obj(action.get("selected_option")).get("value")))
    channel, message_ts = where_clicked(body)
    if decoded is None or channel is None or user is None:
        return Unreadable(Stale.CONTROL, user)
    minutes, run_id = decoded
    return MuteRun(Where(user, channel, message_ts), run_id, minutes)


def _start_button(action_id: str, action: dict[str, Any], user: str | None) -> Click:
    decoded = decode_start(text(action.get("value")))
    if decoded is None or user is None:
        return Unreadable(Stale.START, user)
    if action_id == "start:cancel":
        return DismissStart()
    automation_id, intent, channel = decoded
    return Start(Origin(Where(user, channel), nonce=intent), automation_id, intent)  # its intent is its nonce


def _work_button(body: dict[str, Any], action_id: str, action: dict[str, Any], user: str | None) -> Click:
    intent = decode_work(text(action.get("value")))
    if intent is None or user is None:
        return Unreadable(Stale.START, user)
    if action_id == "work:cancel":
        return DismissStart()
    if action_id == "work:edit":
        return EditWork(intent, text(body.get("trigger_id")) or "", user)
    return StartWork(Origin(Where(user)), intent)


def _read_action(body: dict[str, Any]) -> Click:
    action = first_action(body)
    action_id, user = text(action.get("action_id")) or "", user_of(body)
    if STEER_ACTION.match(action_id):
        return _run_control(body, action, user)
    if PAGE_ACTION.match(action_id) or SHOW_ACTION.match(action_id):
        return _listing(action_id, action, user)
    if action_id == FOLLOW_ACTION:
        return _follow(body, action, user)
    if action_id == MUTE_ACTION:
        return _mute(body, action, user)
    if START_BUTTONS.match(action_id):
        return _start_button(action_id, action, user)
    if WORK_BUTTONS.match(action_id):
        return _work_button(body, action_id, action, user)
    if LINK_ACTION.match(action_id):
        return Ignored()  # Slack opens the URL itself; the click is only acknowledged
    return Unreadable(Stale.CONTROL, user)


# -- windows -----------------------------------------------------------------------------------


def _context(view: dict[str, Any]) -> ModalContext | None:
    return decode_modal(text(view.get("private_metadata")))


def _origin(user: str, context: ModalContext) -> Origin:
    where = Where(user, context.channel, context.message_ts)
    return Origin(where, Surface.WINDOW, context.response_url, context.nonce)


def _answer_window(body: dict[str, Any], view: dict[str, Any]) -> Click:
    words = view_input(view, ANSWER_INPUT)
    if not words.strip():
        return Unfinished(ANSWER_INPUT, "Write an answer, or close this window.")
    context, user = _context(view), user_of(body)
    if context is None or context.target.question_id is None or user is None:
        return Unreadable(Stale.WINDOW, user)
    return Answer(_origin(user, context), context.target, Choice(AnswerKind.TEXT, text=words))


def _deny_window(body: dict[str, Any], view: dict[str, Any]) -> Click:
    context, user = _context(view), user_of(body)
    if context is None or user is None:
        return Unreadable(Stale.WINDOW, user)
    return Deny(_origin(user, context), context.target, view_input(view, DENY_INPUT) or None)


def _steer_window(body: dict[str, Any], view: dict[str, Any]) -> Click:
    words = view_input(view, STEER_INPUT)
    if not words.strip():
        return Unfinished(STEER_INPUT, "Write what the agent should do.")
    context, user = _context(view), user_of(body)
    intent = intent_of(text(view.get("id")) or "")  # one window, one delivery
    if context is None or user is None or not intent:
        return Unreadable(Stale.WINDOW, user)
    interrupt = bool(picked_in(view, INTERRUPT_INPUT))
    return Steer(_origin(user, context), context.target, words, intent, interrupt)


def _merge_window(body: dict[str, Any], view: dict[str, Any]) -> Click:
    context = _context(view)
    chosen = obj(obj(obj(obj(view.get("state")).get("values")).get(MERGE_INPUT)).get(MERGE_INPUT))
    method = text(obj(chosen.get("selected_option")).get("value"))
    if context is None or method not in MERGE_METHODS:
        return Unfinished(MERGE_INPUT, "Choose how to merge.")
    chosen_how = ModalContext(
        context.target, context.channel, context.message_ts, context.response_url, method, context.nonce
    )
    return ChooseMerge(chosen_how, user_of(body))


def _merge_confirmed(body: dict[str, Any], view: dict[str, Any]) -> Click:
    context, user = _context(view), user_of(body)
    if context is None or context.method is None or user is None:
        return Unreadable(Stale.WINDOW, user)
    return Merge(_origin(user, context), context.target, context.method)


def _close_window(body: dict[str, Any], view: dict[str, Any]) -> Click:
    context, user = _context(view), user_of(body)
    if context is None or user is None:
        return Unreadable(Stale.WINDOW, user)
    return ClosePullRequest(_origin(user, context), context.target)


def _start_window(body: dict[str, Any], view: dict[str, Any]) -> Click:
    chosen = obj(obj(obj(obj(view.get("state")).get("values")).get(START_PICK)).get(START_PICK))
    automation_id = text(obj(chosen.get("selected_option")).get("value"))
    if not automation_id:
        return Unfinished(START_PICK, "Choose an automation to start.")
    metadata = text(view.get("private_metadata"))
    user, channel = user_of(body), decode_picker(metadata)
    view_id = (text(view.get("id")) or "").lower()  # one window, one start: a resubmission starts nothing
    if user is None or not view_id.isalnum():
        return Unreadable(Stale.WINDOW, user)
    origin = Origin(Where(user, channel), Surface.WINDOW, nonce=picker_nonce(metadata))
    return Start(origin, automation_id, intent_of(view_id))


def _ask_window(body: dict[str, Any], view: dict[str, Any]) -> Click:
    words = view_input(view, ASK_INPUT)
    if not words.strip():
        return Unfinished(ASK_INPUT, "Write your question, or close this window.")
    context, user = _context(view), user_of(body)
    intent = intent_of(text(view.get("id")) or "")  # one window, one question
    if context is None or user is None or context.channel is None or context.message_ts is None or not intent:
        return Unreadable(Stale.WINDOW, user)
    origin = Origin(Where(user, context.channel, context.message_ts), Surface.WINDOW, nonce=context.nonce)
    return Ask(origin, context.target, words, context.message_ts, intent)


_BRANCH = re.compile(r"^(?!/)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,200}(?<![/.])$")


def _work_window(body: dict[str, Any], view: dict[str, Any]) -> Click:
    request = view_input(view, GOAL_INPUT)
    if not request.strip():
        return Unfinished(GOAL_INPUT, "Say what should be done.")
    branch = view_input(view, BRANCH_INPUT).strip()
    if branch and not _BRANCH.match(branch):
        return Unfinished(BRANCH_INPUT, "That is not a branch name.")
    state = obj(obj(obj(view.get("state")).get("values")).get(WORKFLOW_INPUT)).get(WORKFLOW_INPUT)
    workflow = text(obj(obj(state).get("selected_option")).get("value")) or ""
    intent, user = decode_work(text(view.get("private_metadata"))), user_of(body)
    if intent is None or user is None or not workflow:
        return Unreadable(Stale.WINDOW, user)
    title = view_input(view, TITLE_INPUT)
    return StartEditedWork(Origin(Where(user), Surface.WINDOW), intent, request, title, branch or None, workflow)


_WINDOWS: dict[str, Callable[[dict[str, Any], dict[str, Any]], Click]] = {
    ANSWER_MODAL: _answer_window,
    DENY_MODAL: _deny_window,
    STEER_MODAL: _steer_window,
    MERGE_MODAL: _merge_window,
    MERGE_CONFIRM: _merge_confirmed,
    CLOSE_MODAL: _close_window,
    START_MODAL: _start_window,
    ASK_MODAL: _ask_window,
    WORK_MODAL: _work_window,
}

# What the listener registers for: every action id and window callback id read here.
ACTION_IDS = (
    STEER_ACTION,
    PAGE_ACTION,
    SHOW_ACTION,
    FOLLOW_ACTION,
    MUTE_ACTION,
    START_BUTTONS,
    WORK_BUTTONS,
    LINK_ACTION,
)
WINDOW_IDS = tuple(_WINDOWS)


def purpose(window: Window, target: Target) -> str:
    """What a window acts on, as its binding records it: `merge:<run>`, `answer:<run>:<question>`…"""
    question = f":{target.question_id}" if window is Window.ANSWER and target.question_id else ""
    return f"{window.value}:{target.run_id}{question}"


def binding_of(click: Click) -> tuple[str | None, str | None, str] | None:
    """What a window's submission or a confirmation's click must have been opened for, when it is one:
    (the nonce it carries, who sent it, what it acts on). None: a click on a card, bound to nothing."""
    match click:
        case Answer(origin, target, _) if origin.surface is Surface.WINDOW:
            return origin.nonce, origin.who.user_id, purpose(Window.ANSWER, target)
        case Deny(origin, target, _):
            return origin.nonce, origin.who.user_id, purpose(Window.DENY, target)
        case Merge(origin, target, _):
            return origin.nonce, origin.who.user_id, purpose(Window.MERGE, target)
        case ClosePullRequest(origin, target):
            return origin.nonce, origin.who.user_id, purpose(Window.CLOSE, target)
        case ChooseMerge(context, user_id):
            return context.nonce, user_id, purpose(Window.MERGE, context.target)
        case Steer(origin=origin, target=target):
            return origin.nonce, origin.who.user_id, purpose(Window.STEER, target)
        case Ask(origin=origin, target=target):
            return origin.nonce, origin.who.user_id, purpose(Window.ASK, target)
        case Start(origin, _, _) if origin.surface is Surface.WINDOW:
            return origin.nonce, origin.who.user_id, PICKER
        case Start(origin, automation_id, _):
            return origin.nonce, origin.who.user_id, start_purpose(automation_id)
        # A confirmation of work: its intent is its nonce, and its Edit… window carries it back.
        case StartWork(origin, intent) | StartEditedWork(origin, intent):
            return intent, origin.who.user_id, WORK
        case EditWork(intent, _, user_id):
            return intent, user_id, WORK
    return None


def read_click(body: dict[str, Any]) -> Click:
    """The one reading of a block action or window submission; never raises, whatever `body` holds."""
    if body.get("type") == "view_submission":
        view = obj(body.get("view"))
        reader = _WINDOWS.get(text(view.get("callback_id")) or "")
        return reader(body, view) if reader is not None else Unreadable(Stale.WINDOW, user_of(body))
    return _read_action(body)
