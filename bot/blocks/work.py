"""Work asked for in a conversation: the confirmation, its Edit window, the channel's set-up.  [pure]"""

from __future__ import annotations

from typing import Any

from bot.blocks import kit
from bot.blocks.routing import WORK_ACTION, WORK_MODAL, encode_work
from bot.blocks.text import BOT_MENTION, clip, escape, link
from bot.core.drafts import MAX_GOAL, Draft
from bot.core.records import ChannelSetup
from bot.fabro.manifest import MAX_TITLE
from bot.fabro.models import Run

__all__ = [
    "BRANCH_INPUT",
    "GOAL_INPUT",
    "SHOWN_GOAL",
    "TITLE_INPUT",
    "WORKFLOW_INPUT",
    "edit_window",
    "setup_changed",
    "setup_shown",
    "started_note",
    "work_card",
]

Message = dict[str, Any]
GOAL_INPUT, TITLE_INPUT, BRANCH_INPUT, WORKFLOW_INPUT = "work_goal", "work_title", "work_branch", "work_workflow"
SHOWN_GOAL = 2500  # characters of the goal shown on the card (a section takes 3,000)


def _where(draft: Draft) -> list[str]:
    return [
        f"*Repository*\n{escape(draft.repository)}",
        f"*Branch*\n{escape(draft.branch or 'default branch')}",
        f"*Workflow*\n{escape(draft.workflow)}",
    ]


def work_card(draft: Draft, *, intent: str) -> Message:
    """What would start, seen by the asker alone: Start, Edit… and Cancel."""
    goal = draft.goal
    shown = clip(escape(goal), SHOWN_GOAL)
    quoted = "\n".join(f"> {line}" if line.strip() else ">" for line in shown.splitlines()) or ">"
    blocks: list[dict[str, Any]] = [
        kit.section(f"Start a run on *{escape(draft.repository)}*?\n*{escape(draft.title)}*", block_id="work:ask"),
        kit.section(quoted, block_id="work:goal"),
        kit.section(fields=_where(draft), block_id="work:where"),
    ]
    if draft.context:
        blocks.append(kit.context(f"The goal includes {len(draft.context)} earlier messages of the thread."))
    value = encode_work(intent)
    buttons = kit.actions(
        kit.button("Start", f"{WORK_ACTION}:go", value=value, style="primary"),
        kit.button("Edit…", f"{WORK_ACTION}:edit", value=value),
        kit.button("Cancel", f"{WORK_ACTION}:cancel", value=value),
        block_id="work:buttons",
    )
    if buttons:
        blocks.append(buttons)
    return {"text": clip(f"Start a run on {escape(draft.repository)}: {escape(draft.title)}?", 3000), "blocks": blocks}


def _input(block_id: str, label: str, element: dict[str, Any], *, optional: bool = False) -> dict[str, Any]:
    block = {"type": "input", "block_id": block_id, "label": kit.plain(label, 2000), "element": element}
    return block | ({"optional": True} if optional else {})


def _text(action_id: str, value: str | None, max_length: int, *, multiline: bool = False) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": action_id, "max_length": max_length}
    if multiline:
        element["multiline"] = True
    if value:
        element["initial_value"] = value[:max_length]
    return element


def edit_window(draft: Draft, *, intent: str, workflows: list[str]) -> dict[str, Any]:
    """Change the goal, title, branch and workflow before starting."""
    names = workflows or [draft.workflow]
    options = [{"text": kit.plain(n, 75), "value": n[:150]} for n in names[:100]]
    picked = next((o for o in options if o["value"] == draft.workflow), options[0])
    return {
        "type": "modal",
        "callback_id": WORK_MODAL,
        "private_metadata": encode_work(intent),
        "title": kit.plain("Start a run", 24),
        "submit": kit.plain("Start", 24),
        "close": kit.plain("Back", 24),
        "blocks": [
            kit.context(f"On *{escape(draft.repository)}*. It starts as soon as you press *Start*."),
            _input(GOAL_INPUT, "What should be done", _text(GOAL_INPUT, draft.request, MAX_GOAL, multiline=True)),
            _input(TITLE_INPUT, "Title", _text(TITLE_INPUT, draft.title, MAX_TITLE)),
            _input(BRANCH_INPUT, "Branch", _text(BRANCH_INPUT, draft.branch, 200), optional=True),
            _input(
                WORKFLOW_INPUT,
                "Workflow",
                {"type": "static_select", "action_id": WORKFLOW_INPUT, "options": options, "initial_option": picked},
            ),
        ],
    }


def started_note(run: Run, *, user_id: str, web_base: str | None) -> Message:
    """In the thread it was asked in, for everyone: who started which run."""
    said = f"<@{user_id}> started {link(run.web_url(web_base), run.title or run.id)} (`{run.id}`)."
    return {"text": clip(f"Started run {run.id}", 3000), "blocks": [kit.section(said, block_id="work:started")]}


def setup_shown(setup: ChannelSetup | None, *, command: str, allowed: frozenset[str]) -> Message:
    cmd = escape(command)
    if setup is None:
        text = (
            "This channel has no repository to work on. "
            f"`{cmd} setup repo:owner/name [branch:main] [workflow:implement]` sets one"
        )
        text += f" ({_allowed(allowed)})." if allowed else "; but this bot's `REPOSITORIES` allows none yet."
        return {"text": text.replace("`", ""), "blocks": [kit.section(text)]}
    blocks = [
        kit.section(f"Work started here goes to *{escape(setup.repository)}*.", block_id="setup:head"),
        kit.section(
            fields=[
                f"*Branch*\n{escape(setup.branch or 'default branch')}",
                f"*Workflow*\n{escape(setup.workflow)}",
                f"*Set by*\n<@{setup.set_by}>",
            ],
            block_id="setup:facts",
        ),
        kit.context(
            f"`{BOT_MENTION} <what to do>` or `{cmd} new <what to do>` starts work · `{cmd} setup off` clears it"
        ),
    ]
    return {"text": f"Work started here goes to {escape(setup.repository)}.", "blocks": blocks}


def _allowed(allowed: frozenset[str]) -> str:
    names = sorted(allowed)
    shown = ", ".join(f"`{escape(n)}`" for n in names[:10])
    return "allowed: " + shown + (f" and {len(names) - 10} more" if len(names) > 10 else "")


def setup_changed(setup: ChannelSetup | None, *, user_id: str) -> Message:
    """Announced in the channel: everyone sees where work started here will go."""
    if setup is None:
        text = f"<@{user_id}> cleared this channel's repository: work is no longer started from here."
    else:
        branch = f" (branch `{escape(setup.branch)}`)" if setup.branch else ""
        text = (
            f"<@{user_id}> set this channel to work on *{escape(setup.repository)}*{branch} with the workflow"
            f" `{escape(setup.workflow)}`: `{BOT_MENTION} <what to do>` starts a run there."
        )
    return {"text": clip(text.replace("*", ""), 3000), "blocks": [kit.section(text, block_id="setup:changed")]}
