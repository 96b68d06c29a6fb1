"""Help, usage errors and failure replies: what a person reads when things are not a list.  [pure]

User-facing sentences are constants so tests can assert on exactly what people see.
"""

from __future__ import annotations

from typing import Any

from bot.blocks import kit
from bot.blocks.limits import FALLBACK_TEXT
from bot.blocks.outcomes import outcome_text
from bot.blocks.text import BOT_MENTION, clip, escape, slack_date
from bot.core.errors import (
    ActionFailed,
    AlreadyActed,
    BotError,
    CannotPost,
    FollowLimit,
    NotAllowed,
    NothingToShow,
    NotOpened,
    NotPosted,
    Refusal,
    Refused,
    Unreadable,
)
from bot.core.keys import ActionState, Verb
from bot.core.outcomes import run_state
from bot.core.query import EXAMPLES, GRAMMAR, UsageError
from bot.fabro.errors import (
    AmbiguousRun,
    FabroConflict,
    FabroError,
    FabroNotFound,
    FabroRejected,
    FabroUnauthorized,
    FabroUnavailable,
)

__all__ = [
    "AMBIGUOUS_RUN",
    "FABRO_DOWN",
    "FABRO_REJECTED",
    "FABRO_TIMEOUT",
    "FABRO_UNAUTHORIZED",
    "INTERNAL_ERROR",
    "NOT_ALLOWED",
    "RUN_NOT_FOUND",
    "STALE_CONTROL",
    "bot_error_text",
    "error_message",
    "error_text",
    "help_message",
    "internal_error_message",
    "notice",
    "usage_error_message",
]

Message = dict[str, Any]

FABRO_TIMEOUT = "Fabro did not answer in {seconds} s — {request_id}. Try again in a moment."
FABRO_DOWN = "Fabro could not be reached ({detail}) — {request_id}. Try again in a moment."
FABRO_UNAUTHORIZED = (
    "Fabro refused this bot's API token ({detail}). An admin should check `FABRO_API_TOKEN` "
    "(`fabro-slack-bot check` tests it) — {request_id}."
)
AMBIGUOUS_RUN = "`{selector}` is the start of {count} runs: {names}. Use more of the id."
AMBIGUOUS_SHOWN = 5
RUN_NOT_FOUND = "No run matches `{selector}`. Check the id, or list runs with `{command} active`."
FABRO_REJECTED = "Fabro refused that request: {detail} — {request_id}."
NOT_ALLOWED_BY_CLASS = (
    "You may not {what} from Slack: `{setting}` allows only {who}. Ask one of them, or act in Fabro. Nothing was sent."
)
NOT_ALLOWED = "You are not allowed to {what} from Slack here. Ask someone in {allowlist}, or act in Fabro."
STALE_CONTROL = "That control no longer works. Show the run again with `{command} <run-id>`."
STALE_PAGE = "That button no longer works. Run the command again to get a fresh list."
_WHAT = {
    Verb.ANSWER: "answer questions",
    Verb.APPROVE: "approve runs",
    Verb.DENY: "deny runs",
    Verb.RETRY: "retry runs",
    Verb.RESUME_RUN: "resume failed runs",
    Verb.CANCEL: "cancel runs",
    Verb.CREATE_PR: "create pull requests",
    Verb.MERGE_PR: "merge pull requests",
    Verb.CLOSE_PR: "close pull requests",
    Verb.START: "start runs",
    Verb.STEER: "steer agents",
    Verb.INTERRUPT: "interrupt agents",
    Verb.PAUSE: "pause runs",
    Verb.RESUME: "resume runs",
    Verb.ASK: "ask Fabro about runs",
}
_DOING = {
    Verb.ANSWER: "answering this question",
    Verb.APPROVE: "deciding on this approval",
    Verb.DENY: "deciding on this approval",
    Verb.RETRY: "retrying this run",
    Verb.RESUME_RUN: "resuming this run",
    Verb.CANCEL: "cancelling this run",
    Verb.CREATE_PR: "creating this run's pull request",
    Verb.MERGE_PR: "merging this pull request",
    Verb.CLOSE_PR: "closing this pull request",
    Verb.START: "starting this run",
    Verb.STEER: "sending this to the agent",
    Verb.INTERRUPT: "interrupting this agent",
    Verb.PAUSE: "pausing this run",
    Verb.RESUME: "resuming this run",
    Verb.ASK: "asking Fabro about this run",
}
_REFUSALS = {
    Refusal.QUESTION_GONE: "This question is no longer waiting for an answer: it was answered or withdrawn.",
    Refusal.NOTHING_PICKED: "Tick at least one option, then press Submit.",
    Refusal.NOT_AWAITING_APPROVAL: "This run is no longer waiting for approval: it is {state}.",
    Refusal.ARCHIVED: "This run is archived; archived runs cannot be retried.",
    Refusal.NOT_FINISHED: "Only finished runs can be retried; this one is {state}.",
    Refusal.ALREADY_RETRIED: "This run was already retried: the retry is run {detail}. Nothing was sent to Fabro.",
    Refusal.ALREADY_FINISHED: "This run already finished ({state}); there is nothing to cancel.",
    Refusal.ANSWER_UNFIT: "{detail}",
    Refusal.NOT_SUCCEEDED: "Only a succeeded run gets a pull request from here; this one is {state}.",
    Refusal.PR_EXISTS: "This run already has a pull request; the card now links to it.",
    Refusal.PR_NONE: "This run has no pull request.",
    Refusal.PR_MERGED: "This pull request was already merged; there is nothing left to do.",
    Refusal.PR_CLOSED: "This pull request is already closed.",
    Refusal.ENDED: "This run already ended ({state}): there is nothing left to follow.",
    Refusal.NOT_RUNNING: "This run is {state}: there is no agent at work to steer, interrupt, pause or resume.",
    Refusal.TOO_LONG: "That is {detail} characters; the agent takes at most 8,192 at a time.",
    Refusal.NOTHING_SAID: (
        f"Write what the agent should do after mentioning me: `{BOT_MENTION} steer use the staging db`."
    ),
    Refusal.AUTOMATION_GONE: "That automation no longer exists in Fabro. `/runs start` lists the ones there are.",
    Refusal.NOT_STARTABLE: "{detail} cannot be started from Slack: it has no enabled `api` trigger in Fabro.",
    Refusal.NO_GOAL: (
        f"Say what you want done: `{BOT_MENTION} the login test is flaky since #412, make it deterministic`."
    ),
    Refusal.NOT_SET_UP: "This channel has no repository to work on yet: `/runs setup repo:owner/name` sets one.",
    Refusal.REPO_NOT_ALLOWED: "`{detail}` is not in this bot's `REPOSITORIES`, so no work starts on it here.",
    Refusal.WORKFLOW_INVALID: "The workflow cannot run: {detail}",
    Refusal.NOT_STARTED: "{detail}",
    Refusal.NOT_RESUMABLE: "Only a failed run can be resumed from its checkpoint; this one is {state}.",
    Refusal.NO_CHECKPOINT: "This run failed before it wrote a checkpoint, so there is nothing to resume from:"
    " Retry starts it again from the beginning as a new run.",
    Refusal.ENGINE_RUNNING: "Fabro's engine for this run has not exited yet, so it cannot be resumed now;"
    " try again in a minute. Nothing was changed.",
    Refusal.EARLIER_FAILURE: "This card is about an earlier failure: the run was resumed since and is now {state}."
    " Its newest alert acts on it as it is now. Nothing was sent to Fabro.",
    Refusal.PR_DRAFT: "This pull request is a draft, and GitHub merges only pull requests that are ready for"
    " review: mark it ready on GitHub ({detail}), then merge. Nothing was changed.",
    Refusal.PR_NOT_MERGEABLE: "GitHub did not merge this pull request: {detail}. Nothing was changed.",
}
INTERNAL_ERROR = (
    "Something went wrong on our side and it has been logged — reference `{reference}`. "
    "Please try again; if it keeps happening, share the reference with whoever runs this bot."
)


def help_message(command: str) -> Message:
    cmd = escape(command)
    examples = "\n".join(f"• `{cmd} {escape(example)}` — {why}" for example, why in EXAMPLES)
    blocks = [
        kit.section(f"*{cmd}* lists and shows Fabro runs.\n{GRAMMAR.replace('/runs', cmd)}"),
        kit.section(f"*Examples*\n{examples}"),
        kit.context("Words go in any order and are case-insensitive. Answers are only visible to you."),
    ]
    return {"text": f"{command}: list and show Fabro runs. Try `{command} blocked`.", "blocks": blocks}


def usage_error_message(error: UsageError, command: str) -> Message:
    cmd = escape(command)
    lines = [f":warning: {escape(error.problem)}"]
    if error.suggestion:
        lines.append(f"Did you mean `{escape(error.suggestion)}`?")
    lines += [f"Hint: {escape(h)}" for h in error.hints]
    blocks = [
        kit.section("\n".join(lines), block_id="usage:problem"),
        kit.section(GRAMMAR.replace("/runs", cmd), block_id="usage:grammar"),
    ]
    text = escape(error.problem)
    if error.suggestion:
        text += f" Did you mean `{escape(error.suggestion)}`?"
    return {"text": clip(text, FALLBACK_TEXT), "blocks": blocks}


def request_reference(error: FabroError) -> str:
    """Where to look the call up: Fabro's request id when Fabro answered, else the bot's own."""
    if error.ours:
        return f"bot request id `{escape(error.request_id or 'none')}`, in the bot's logs"
    return f"request id `{escape(error.request_id or 'none')}`"


def error_text(error: FabroError, *, command: str = "/runs", selector: str | None = None) -> str:
    """One friendly sentence for a Fabro failure; never a secret, never a stack trace."""
    request_id = request_reference(error)
    detail = escape(error.detail)
    if isinstance(error, FabroUnavailable):
        if error.timed_out_after is not None:
            return FABRO_TIMEOUT.format(seconds=f"{error.timed_out_after:g}", request_id=request_id)
        return FABRO_DOWN.format(detail=detail, request_id=request_id)
    if isinstance(error, FabroUnauthorized):
        return FABRO_UNAUTHORIZED.format(detail=detail, request_id=request_id)
    if isinstance(error, FabroNotFound) and selector is not None:
        return RUN_NOT_FOUND.format(selector=escape(selector), command=escape(command))
    if isinstance(error, AmbiguousRun) and selector is not None:
        shown = error.candidates[:AMBIGUOUS_SHOWN]
        names = "; ".join(f"`{escape(run_id[:12])}` {escape(clip(title, 60))}".rstrip() for run_id, title in shown)
        more = f"; and {len(error.candidates) - len(shown)} more" if len(error.candidates) > len(shown) else ""
        return AMBIGUOUS_RUN.format(selector=escape(selector), count=len(error.candidates), names=names + more)
    if isinstance(error, FabroRejected) and selector is not None and error.status == 400:
        why = detail.rstrip(".")
        return f"`{escape(selector)}` matches more than one run or is not a run id: {why}. Use more of the id."
    return FABRO_REJECTED.format(detail=detail, request_id=request_id)


def bot_error_text(error: BotError, *, command: str = "/runs") -> str:
    """What a person reads when what they asked for was not done."""
    match error:
        case NotAllowed():
            what = _WHAT.get(error.what, str(error.what)) if isinstance(error.what, Verb) else error.what
            if error.who is not None:
                return NOT_ALLOWED_BY_CLASS.format(what=what, who=error.who, setting=error.allowlist)
            return NOT_ALLOWED.format(what=what, allowlist=error.allowlist)
        case AlreadyActed():
            earlier = error.earlier
            if earlier.state is ActionState.DONE:
                done = outcome_text(earlier.outcome) if earlier.outcome else "this was done"
                return f"Already done: {done} · {slack_date(earlier.requested_at)}"
            doing = _DOING.get(earlier.verb, "acting on this run")
            return f"<@{earlier.user_id}> is already {doing} (since {slack_date(earlier.requested_at)})."
        case Refused():
            state = escape(run_state(error.run)) if error.run is not None else "somewhere else"
            return _REFUSALS[error.reason].format(state=state, detail=escape(error.detail or ""))
        case ActionFailed():
            return _action_failed(error)
        case Unreadable():
            return STALE_CONTROL.format(command=escape(command))
        case NotOpened():
            return "The window could not be opened in time. Please click again."
        case CannotPost():
            return (
                f"I cannot post in this conversation ({escape(error.error)}), so I follow nothing here."
                f" Invite me with `/invite {BOT_MENTION}`, or follow the run from a channel I am in."
            )
        case NothingToShow():
            return escape(error.said)
        case NotPosted():
            return (
                f"Slack would not take it in this thread ({escape(error.error)}). Invite me with"
                f" `/invite {BOT_MENTION}`, or ask with `{escape(command)}` to get it privately."
            )
        case FollowLimit() if error.per_person is not None:
            runs = f"{error.per_person} run{'s' if error.per_person != 1 else ''}"
            return (
                f"You follow {runs} in this channel already, a quarter of its {error.limit}"
                f" (`FOLLOW_MAX`): unfollow one of yours with `{escape(command)} unfollow <run-id>` first."
            )
        case FollowLimit():
            return (
                f"{error.limit} runs are followed in this channel already (`FOLLOW_MAX`): unfollow one with"
                f" `{escape(command)} unfollow <run-id>` first."
            )
    return INTERNAL_ERROR.format(reference="none")


_PULL_REQUEST_VERBS = (Verb.CREATE_PR, Verb.MERGE_PR, Verb.CLOSE_PR)


_AGENT_VERBS = (Verb.STEER, Verb.INTERRUPT, Verb.PAUSE, Verb.RESUME)
_AGENT_CODES = {
    "use_answer_endpoint": "The run is waiting for an answer to its question: answer it instead (its card has"
    " the controls); nothing was sent to the agent.",
    "run_not_steerable": "This run is not in a state where its agent can be steered.",
    "run_not_interruptible": "The agent cannot be interrupted right now.",
    "agent_not_steerable": "This run's agent does not take instructions while it works.",
    "no_active_steerable_session": "No agent is at work at this moment (between stages): try again in a moment.",
    "worker_control_unavailable": "Fabro could not reach the run's worker: your message may or may not have"
    " arrived. Look at the run before sending it again; it is never resent on its own.",
}


def _agent_failed(error: ActionFailed, request_id: str) -> str | None:
    cause = error.cause
    if error.verb in (Verb.PAUSE, Verb.RESUME) and cause.status == 503 and cause.code is None:
        # Fabro wrote the request but could not deliver it: nothing changed, and the request stays
        # pending, so pressing again is refused ("already pending") until the worker takes it.
        verb = "paused" if error.verb is Verb.PAUSE else "resumed"
        return (
            f"Fabro could not deliver that to the run's worker: the run was not {verb}. Fabro keeps the request"
            f" pending, so asking again is refused until the worker picks it up or the run ends — {request_id}."
        )
    said = _AGENT_CODES.get(cause.code or "")
    if said is None and cause.status == 503:
        said = _AGENT_CODES["worker_control_unavailable"]
    if said is None and cause.status == 409:
        said = f"Fabro says no: {escape(cause.detail)}"
    return f"{said} — {request_id}." if said else None


def _start_failed(error: ActionFailed, request_id: str) -> str | None:
    cause = error.cause
    if cause.status == 400:
        return f"Fabro refused to create the run: {escape(cause.detail)} — {request_id}. Nothing was started."
    if cause.status == 404:
        return f"Fabro does not know that automation — {request_id}. `/runs start` lists the ones there are."
    if cause.status == 409 and cause.code == "automation_api_trigger_disabled":
        return f"That automation's `api` trigger is turned off in Fabro — {request_id}. Turn it on there first."
    if cause.status == 422:
        return (
            f"Fabro could not prepare the run's target (repository, ref or workflow): {escape(cause.detail)}"
            f" — {request_id}. Nothing was started."
        )
    return None


def _pull_request_failed(error: ActionFailed, request_id: str) -> str | None:
    """Fabro's answers about pull requests, in words: they are about GitHub more than about the run."""
    cause, status = error.cause, error.cause.status
    if status == 409 and error.verb is Verb.CREATE_PR:
        return f"This run already has a pull request — {request_id}. The card now links to it."
    if status == 404:
        return f"Fabro has no pull request for this run — {request_id}."
    if status == 400:
        return f"That does not apply to this run's pull request: {escape(cause.detail)} — {request_id}."
    if status == 502:
        return f"GitHub refused: {escape(cause.detail)} — {request_id}. Nothing was changed."
    if status == 503:
        return f"GitHub is unavailable to Fabro right now — {request_id}. Nothing was changed; try again later."
    return None


def _action_failed(error: ActionFailed) -> str:
    cause = error.cause
    request_id = request_reference(cause)
    if error.verb in _PULL_REQUEST_VERBS and (said := _pull_request_failed(error, request_id)):
        return said
    if error.verb is Verb.START and (said := _start_failed(error, request_id)):
        return said
    if error.verb in _AGENT_VERBS and (said := _agent_failed(error, request_id)):
        return said
    if isinstance(cause, FabroConflict):
        return (
            f"Fabro says this can no longer be done ({escape(cause.detail.rstrip('.'))}) — {request_id}."
            " Someone got there first; the card now shows where the run is."
        )
    if isinstance(cause, FabroNotFound):
        return f"Fabro no longer knows run `{escape(error.run_id)}` (or it is not live on this server) — {request_id}."
    if isinstance(cause, FabroRejected):
        return f"Fabro refused that: {escape(cause.detail)} — {request_id}."
    return error_text(cause) + " Nothing was changed; try again."


def error_message(error: FabroError | BotError, *, command: str = "/runs", selector: str | None = None) -> Message:
    """Any typed error as the ephemeral message a person reads: one sentence, never a secret."""
    if isinstance(error, BotError):
        text = bot_error_text(error, command=command)
    else:
        text = error_text(error, command=command, selector=selector)
    return notice(text, icon=":information_source:" if isinstance(error, BotError) else ":warning:")


def notice(text: str, *, icon: str = ":information_source:") -> Message:
    return {"text": clip(_plain(text), FALLBACK_TEXT), "blocks": [kit.section(f"{icon} {text}", block_id="error")]}


def internal_error_message(reference: str) -> Message:
    return notice(INTERNAL_ERROR.format(reference=escape(reference)), icon=":warning:")


def _plain(text: str) -> str:
    return text.replace("`", "").replace("*", "")
