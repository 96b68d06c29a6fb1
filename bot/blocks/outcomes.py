"""An outcome in one line of mrkdwn: who did what, with which answer or reason.  [pure]"""

from __future__ import annotations

import re

from bot.blocks.text import clip, escape, link
from bot.core.keys import AlertKind
from bot.core.outcomes import Outcome, OutcomeVerb

DRAFT_NOTE = "GitHub merges only pull requests that are ready for review: mark it ready on GitHub, then merge."

__all__ = ["DRAFT_NOTE", "actor_name", "outcome_text"]

_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")


def actor_name(actor: dict[str, str]) -> str | None:
    """Who a Fabro principal is, for people: a login, a Slack mention, or what kind of thing acted."""
    if not actor:
        return None
    kind = actor.get("kind")
    if kind == "user" and actor.get("login"):
        return escape(actor["login"])
    if kind == "slack":
        user_id = actor.get("user_id") or ""
        if _SLACK_USER.match(user_id):
            return f"<@{user_id}>"
        return escape(actor.get("user_name") or "someone in Slack")
    if kind == "worker" and actor.get("run_id"):
        return f"run `{escape(actor['run_id'])}`"
    if kind == "system":
        return f"Fabro ({escape(actor.get('system_kind') or 'system')})"
    if kind == "webhook":
        return "a webhook"
    if kind == "agent":
        model = actor.get("model")
        return f"an agent ({escape(model)})" if model else "an agent"
    name = actor.get("login") or actor.get("name")
    return escape(name) if name else None


def _by(outcome: Outcome) -> str:
    if outcome.slack_user and _SLACK_USER.match(outcome.slack_user):
        return f" by <@{outcome.slack_user}>"
    who = actor_name(outcome.actor)
    return f" by {who}" if who else ""


def _answer(answer: str | None) -> str:
    if not answer:
        return ""
    if answer in ("yes", "no"):
        return f": {answer.capitalize()}"
    return f": {clip(escape(answer), 300)}"


_MOVED_ON = {
    AlertKind.QUESTION: "No longer waiting: the run is {state}",
    AlertKind.APPROVAL: "No longer waiting for approval: the run is {state}",
    AlertKind.FAILED: "The run is now {state}",
    AlertKind.CANCELLED: "The run is now {state}",
    AlertKind.SUCCEEDED: "The run is now {state}",
    AlertKind.COST: "The run is now {state}",
    AlertKind.PR: "The pull request is no longer the run's; the run is {state}",
    None: "The run is {state}",
}


def outcome_text(outcome: Outcome) -> str:
    """`Answered *Deploy?* by @ada: Yes`, `Denied by @ada: not during the freeze`, `Retried → new run X`."""
    verb, by = outcome.verb, _by(outcome)
    if verb in _AGENT_VERBS:
        return _agent_text(outcome, by)
    if verb in _WORK_VERBS:
        return _work_text(outcome, by)
    match verb:
        case OutcomeVerb.ANSWERED:
            what = f" *{clip(escape(outcome.question), 80)}*" if outcome.question else ""
            return f"Answered{what}{by}{_answer(outcome.answer)}"
        case OutcomeVerb.TIMED_OUT:
            return "Timed out without an answer"
        case OutcomeVerb.WITHDRAWN:
            return "Question withdrawn (interrupted)"
        case OutcomeVerb.APPROVED:
            return f"Approved{by}"
        case OutcomeVerb.DENIED:
            return f"Denied{by}" + (f": {clip(escape(outcome.reason), 300)}" if outcome.reason else "")
        case OutcomeVerb.RETRIED:
            return f"Retried{by} → new run {link(outcome.run_url, outcome.run_id or '?')}"
        case OutcomeVerb.CANCELLED:
            return f"Cancelled{by}" if by else "Cancelled in Fabro"
        case OutcomeVerb.CANCEL_REQUESTED:
            return f"Cancellation requested{by}; Fabro is stopping the run"
        case OutcomeVerb.SUPERSEDED:
            return f"Superseded by run `{escape(outcome.run_id or '?')}`"
        case OutcomeVerb.ARCHIVED:
            return f"Archived{by}"
        case OutcomeVerb.MOVED_ON:
            return _MOVED_ON[outcome.subject].format(state=escape(outcome.state or "unknown"))
        case OutcomeVerb.NOT_POSTED:
            return "Not posted: no longer current"
    return outcome.text or ""  # LEGACY: as it was stored


_AGENT_VERBS = frozenset(
    {OutcomeVerb.STEERED, OutcomeVerb.INTERRUPTED, OutcomeVerb.PAUSE_REQUESTED, OutcomeVerb.RESUME_REQUESTED}
)
_WORK_VERBS = frozenset(
    {
        OutcomeVerb.STARTED,
        OutcomeVerb.RESUMED,
        OutcomeVerb.PR_REQUESTED,
        OutcomeVerb.PR_OPENED,
        OutcomeVerb.PR_FAILED,
        OutcomeVerb.PR_MERGED,
        OutcomeVerb.PR_CLOSED,
    }
)


def _work_text(outcome: Outcome, by: str) -> str:
    """Starting work and shipping it."""
    match outcome.verb:
        case OutcomeVerb.STARTED:
            started = f"Started{by} → run {link(outcome.run_url, outcome.run_id or '?')}"
            return started + (f" from {clip(escape(outcome.answer), 100)}" if outcome.answer else "")
        case OutcomeVerb.RESUMED:
            return f"Resumed{by} from its last checkpoint"
        case OutcomeVerb.PR_REQUESTED:
            return f"Pull request requested{by}; Fabro is writing it"
        case OutcomeVerb.PR_OPENED:
            opened = f"Pull request {link(outcome.run_url, outcome.run_id or 'opened')} opened{by}"
            # Fabro opens every pull request it is asked for as a draft, which GitHub does not merge.
            return opened + (f" as a draft. {DRAFT_NOTE}" if outcome.state == "draft" else "")
        case OutcomeVerb.PR_FAILED:
            return "The pull request could not be created" + (
                f": {clip(escape(outcome.reason), 300)}" if outcome.reason else ""
            )
        case OutcomeVerb.PR_MERGED:
            return f"Merged{by}" + (f" ({escape(outcome.answer)})" if outcome.answer else "")
        case OutcomeVerb.PR_CLOSED:
            return f"Pull request closed{by}"
    return ""


def _agent_text(outcome: Outcome, by: str) -> str:
    """Working with a running agent."""
    match outcome.verb:
        case OutcomeVerb.STEERED:
            said = f": {clip(escape(outcome.answer), 500)}" if outcome.answer else ""
            return f"↪{by.removeprefix(' by')} to the agent{said}"
        case OutcomeVerb.INTERRUPTED:
            return f"Interrupted{by}: the agent waits for its next instruction"
        case OutcomeVerb.PAUSE_REQUESTED:
            return f"Pause requested{by}"
        case OutcomeVerb.RESUME_REQUESTED:
            return f"Resume requested{by}"
    return ""
