"""A card as a channel shared with another organisation sees it: status, title and link.  [pure]

Every message about a run that goes to a conversation for everyone passes through `for_exposure`
with the conversation's `Exposure`: unchanged where everything may be shown, reduced to the same
minimal card everywhere else, so no renderer has to remember what to leave out.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from bot.blocks import kit
from bot.blocks.limits import FALLBACK_TEXT
from bot.blocks.outcomes import outcome_text
from bot.blocks.presentation import Presentation
from bot.blocks.replies import notice
from bot.blocks.routing import link_action_id
from bot.blocks.runs import ARCHIVED_EMOJI, STATUS_EMOJI, UNKNOWN_EMOJI
from bot.blocks.text import clip, escape
from bot.core.exposure import Exposure
from bot.core.outcomes import Outcome
from bot.fabro.models import Run

__all__ = ["MINIMAL_NOTE", "for_exposure", "kept_inside", "minimal_card", "minimal_outcome", "minimal_status"]

Message = dict[str, Any]

_CODE = re.compile(r"^[a-z][a-z_]{0,39}$")  # Fabro's reason codes (`workflow_error`); free text is left out
MINIMAL_NOTE = "This channel is shared with another organisation: only the run's status, title and link are shown here."


def minimal_status(run: Run) -> str:
    """':x: *failed* · workflow error': the state and, when it is one of Fabro's codes, why."""
    emoji = ARCHIVED_EMOJI if run.bucket == "archived" else STATUS_EMOJI.get(run.status.kind, UNKNOWN_EMOJI)
    label = run.status.kind if run.status.kind not in ("submitted", "starting") else run.bucket
    parts = [f"{emoji} *{escape(label if _CODE.match(label or '') else 'unknown')}*"]
    why = run.status.reason or run.status.blocked_reason
    if why and _CODE.match(why):
        parts.append(why.replace("_", " "))
    return " · ".join(parts)


def _title(run: Run) -> str:
    # The title, never the goal: a goal is what a person wrote for the agent.
    return escape(clip(run.title, 150)) if run.title else f"run `{escape(run.id)}`"


def minimal_card(run: Run, presentation: Presentation, *, said: str | None = None) -> Message:
    """The run's status, title and link, and where to see the rest (`said`: what just happened, already
    reduced by the caller, e.g. a `minimal_outcome`)."""
    blocks: list[dict[str, Any] | None] = [
        kit.section(f"{minimal_status(run)} — *{_title(run)}*", block_id=f"minimal:{run.id}"[:255])
    ]
    if said:
        blocks.append(kit.context(said))
    command = escape(presentation.command)
    blocks.append(
        kit.context(f"{MINIMAL_NOTE} `{command} {escape(run.id)}` shows the rest to you alone, as does Fabro.")
    )
    web = run.web_url(presentation.web_base)
    if web:
        blocks.append(
            kit.actions(kit.button("Open in Fabro", link_action_id("web"), url=web), block_id=f"links:{run.id}")
        )
    text = f"{run.title or 'Run ' + run.id} — {run.status.kind}"
    return {"text": clip(escape(text), FALLBACK_TEXT), "blocks": [b for b in blocks if b]}


def minimal_outcome(outcome: Outcome) -> Outcome:
    """What was done, by whom, without the words: no question, answer, reason or steering text."""
    return dataclasses.replace(outcome, question=None, answer=None, reason=None, text=None)


def for_exposure(
    message: Message,
    run: Run,
    exposure: Exposure,
    presentation: Presentation,
    *,
    outcome: Outcome | None = None,
) -> Message:
    """`message` where everything may be shown; else the run's minimal card, keeping the message's
    metadata (how the outbox finds it again) and, reduced, the `outcome` it reports."""
    if not exposure.minimal:
        return message
    said = outcome_text(minimal_outcome(outcome)) if outcome is not None else None
    reduced = minimal_card(run, presentation, said=said)
    if "metadata" in message:
        reduced["metadata"] = message["metadata"]
    return reduced


# What each look at a run is called, whether it is many, and the `/runs` words that show it to one person.
_PRIVATELY = {
    "changes": ("changes", True, "changes {id}"),
    "patch": ("patch", False, "changes {id}"),
    "cost": ("costs", True, "cost {id}"),
    "logs": ("logs", True, "logs {id}"),
    "graph": ("graph", False, "{id}"),
}


def kept_inside(what: str, *, run_id: str, command: str) -> Message:
    """Why a look at a run asked for in a shared channel's thread is not posted there, and where to get it."""
    shared = "This channel is shared with another organisation, so"
    if what == "ask":
        private = f"`{escape(command)} {escape(run_id)}`"
        said = (
            f"{shared} Fabro's answers are not posted here. Ask in the run's thread in an internal channel,"
            f" or open the run in Fabro; {private} shows you the run alone."
        )
        return notice(said, icon=":lock:")
    named, many, words = _PRIVATELY.get(what, (what, False, "{id}"))
    private = f"`{escape(command)} {escape(words.format(id=run_id))}`"
    are, them = ("are", "them") if many else ("is", "it")
    said = (
        f"{shared} the run's {escape(named)} {are} not posted here: {private} shows {them} to you alone"
        + (" (in a direct message)" if what == "logs" else "")
        + ", or open the run in Fabro."
    )
    return notice(said, icon=":lock:")
