"""The controls that act on a run from a card, and the modals they open.  [pure]

- A question, by type: Yes/No, Confirm/Decline, a button per option (a select menu past
  five), checkboxes and Submit (a multi-select menu past ten), and "Answer…" (a modal)
  for free text.
- An approval: Approve, and Deny (a modal asks for an optional reason).
- A failed run: Retry (a new run), and Resume (the same run, from its last checkpoint) when it
  may have one. An active run: Cancel, behind a confirmation dialog.
- A succeeded run: Create pull request when Fabro can open one (changes, on github.com); with a
  pull request, Merge… and Close, except on a draft, which GitHub does not merge.

What is acted on (run, question) travels in the block id and the modal's private
metadata, and the choice in the element's value; all of it is decoded as untrusted
input by `bot.blocks.routing`, and re-checked against Fabro before anything is sent.
"""

from __future__ import annotations

from typing import Any

from bot.blocks import kit
from bot.blocks.outcomes import DRAFT_NOTE
from bot.blocks.routing import (
    ANSWER_MODAL,
    CLOSE_MODAL,
    DENY_MODAL,
    MERGE_CONFIRM,
    MERGE_MODAL,
    STEER_MODAL,
    Target,
    choice_value,
    control_block_id,
    steer_action_id,
)
from bot.blocks.text import clip, escape, link
from bot.core.keys import failure_of
from bot.fabro.models import PullRequestState, Question, Run

__all__ = [
    "ANSWER_INPUT",
    "DENY_INPUT",
    "DRAFT_NOTE",
    "INTERRUPT_INPUT",
    "MAX_BUTTON_OPTIONS",
    "MAX_CHECKBOXES",
    "MERGE_INPUT",
    "STEER_INPUT",
    "UNBOUND_START",
    "UNBOUND_WINDOW",
    "UNBOUND_WORK",
    "agent_controls",
    "answer_modal",
    "approval_controls",
    "can_open_pull_request",
    "close_modal",
    "deny_modal",
    "may_resume",
    "merge_confirm_view",
    "merge_modal",
    "question_controls",
    "retry_control",
    "run_controls",
    "ship_controls",
    "steer_modal",
    "unbound_view",
]

Block = dict[str, Any]

MAX_BUTTON_OPTIONS = 5  # more options than this become a select menu
MAX_CHECKBOXES = 10  # Slack's limit for a checkboxes element
MAX_MENU_OPTIONS = 100  # Slack's limit for a select menu
ANSWER_INPUT = "answer_text"
DENY_INPUT = "deny_reason"
MERGE_INPUT = "merge_method"
STEER_INPUT = "steer_instruction"
INTERRUPT_INPUT = "steer_interrupt"
# Failures that come before any stage finished: no checkpoint to resume from.
_NO_CHECKPOINT = frozenset({"cancelled", "approval_denied", "launch_failed", "bootstrap_failed", "sandbox_init_failed"})


def _option_text(label: str, limit: int = 75) -> dict[str, Any]:
    return kit.plain(label, limit)


def _menu_option(question: Question, index: int) -> dict[str, Any]:
    option = question.options[index]
    item: dict[str, Any] = {"text": _option_text(option.label or option.key), "value": choice_value(question, index)}
    if option.description:
        item["description"] = _option_text(option.description)
    return item


def question_controls(run: Run, question: Question) -> list[Block]:
    """Blocks that answer `question` of `run`, by its type (and free text when allowed)."""
    target = Target(run.id, question.id)
    block_id = control_block_id("answer", target)
    kind = question.question_type
    elements: list[Block | None] = []
    if kind in ("yes_no", "confirmation"):
        yes, no = ("Yes", "No") if kind == "yes_no" else ("Confirm", "Decline")
        elements += [
            kit.button(yes, steer_action_id("answer", 0), value="yes", style="primary"),
            kit.button(no, steer_action_id("answer", 1), value="no"),
        ]
    elif kind == "multiple_choice" and question.options:
        if len(question.options) <= MAX_BUTTON_OPTIONS:
            elements += [
                kit.button(option.label or option.key, steer_action_id("answer", i), value=choice_value(question, i))
                for i, option in enumerate(question.options)
            ]
        else:
            elements.append(
                {
                    "type": "static_select",
                    "action_id": steer_action_id("choose"),
                    "placeholder": kit.plain("Choose an answer…", 150),
                    "options": [_menu_option(question, i) for i in range(min(len(question.options), MAX_MENU_OPTIONS))],
                }
            )
    elif kind == "multi_select" and question.options:
        few = len(question.options) <= MAX_CHECKBOXES
        pick: Block = {
            "type": "checkboxes" if few else "multi_static_select",
            "action_id": steer_action_id("pick"),
            "options": [_menu_option(question, i) for i in range(min(len(question.options), MAX_MENU_OPTIONS))],
        }
        if not few:
            pick["placeholder"] = kit.plain("Choose answers…", 150)
        elements.append(pick)
        elements.append(kit.button("Submit", steer_action_id("submit"), value="submit", style="primary"))
    if kind == "freeform" or question.allow_freeform:
        label = "Answer…" if kind == "freeform" else "Answer in words…"
        elements.append(kit.button(label, steer_action_id("text"), value="text"))
    block = kit.actions(*elements, block_id=block_id)
    return [block] if block else []


def approval_controls(run: Run) -> list[Block]:
    block = kit.actions(
        kit.button("Approve", steer_action_id("approve"), value="approve", style="primary"),
        kit.button("Deny…", steer_action_id("deny"), value="deny", style="danger"),
        block_id=control_block_id("decide", Target(run.id)),
    )
    return [block] if block else []


def run_controls(run: Run, pr: PullRequestState | None = None) -> list[Block]:
    """Retry (and Resume) for a failed run; Cancel (confirmed first) for an active one; shipping for a
    succeeded one (`pr`, when read, says whether its pull request is a draft)."""
    target = Target(run.id)
    if run.status.kind == "succeeded" and not run.lifecycle.archived:
        return ship_controls(run, pr)
    if run.bucket == "failed" and not run.superseded_by:
        return retry_control(run.id, resume=may_resume(run), failure=failure_of(run.timestamps.completed_at))
    if not run.is_terminal and run.bucket not in ("archived", "removing") and run.lifecycle.pending_control != "cancel":
        agent = agent_controls(run)
        cancel = kit.button("Cancel run", steer_action_id("cancel"), value="cancel", style="danger")
        if cancel is not None:
            cancel["confirm"] = {
                "title": kit.plain("Cancel this run?", 100),
                "text": kit.mrkdwn(
                    f"*{clip(escape(run.title or run.id), 200)}* will be stopped. This cannot be undone.", 300
                ),
                "confirm": kit.plain("Cancel run", 30),
                "deny": kit.plain("Keep running", 30),
                "style": "danger",
            }
        block = kit.actions(cancel, block_id=control_block_id("cancel", target))
        return agent + ([block] if block else [])
    return []


def retry_control(run_id: str, *, resume: bool = False, failure: str | None = None) -> list[Block]:
    """Retry, for a failed run (on its card, and on Home's list of a person's runs), and Resume beside
    it when the run may have a checkpoint (the action reads Fabro's timeline before sending).

    The block names the failure they take up when it is known (`failure_of`): a run resumed in place
    can fail again, and each failure is taken up once. Without it the action takes up the failure
    Fabro shows when the button is pressed."""
    elements = [kit.button("Retry", steer_action_id("retry"), value="retry")]
    if resume:
        elements.append(kit.button("Resume", steer_action_id("resume_run"), value="resume_run"))
    block = kit.actions(*elements, block_id=control_block_id("retry", Target(run_id, failure=failure)))
    return [block] if block else []


def may_resume(run: Run) -> bool:
    """Whether a run may be resumed in place: only a `failed` one (not `dead`, not archived) that got
    far enough to write a checkpoint. Fabro has the last word (409 "no checkpoint to resume from")."""
    status = run.status
    return (
        status.kind == "failed"
        and status.reason not in _NO_CHECKPOINT
        and not run.lifecycle.archived
        and run.timestamps.started_at is not None
    )


def can_open_pull_request(run: Run) -> bool:
    """Whether Fabro can open a pull request for the run: it changed files, in a repository on
    github.com (else Fabro answers 400 `empty_diff`, `missing_repo_origin` or `unsupported_host`)."""
    diff, repository = run.diff, run.repository
    changed = diff is not None and bool((diff.additions or 0) + (diff.deletions or 0) or diff.files_changed)
    return changed and bool(repository.origin_url) and repository.provider == "github"


def agent_controls(run: Run) -> list[Block]:
    """For a run whose agent is at work: Steer… (a window), Interrupt, and Pause; for a paused run,
    Resume only (Fabro refuses to steer or interrupt a paused run: `run_not_steerable`)."""
    kind, control = run.status.kind, run.lifecycle.pending_control
    if kind not in ("running", "paused"):
        return []
    elements: list[Block | None] = []
    if kind == "running":
        elements.append(kit.button("Steer…", steer_action_id("steer_text"), value="steer_text"))
        elements.append(kit.button("Interrupt", steer_action_id("interrupt"), value="interrupt"))
    if kind == "paused" or control == "pause":
        elements.append(kit.button("Resume", steer_action_id("resume"), value="resume"))
    else:
        elements.append(kit.button("Pause", steer_action_id("pause"), value="pause"))
    block = kit.actions(*elements, block_id=control_block_id("agent", Target(run.id)))
    return [block] if block else []


def steer_modal(run: Run, *, metadata: str) -> dict[str, Any]:
    """What to say to the agent (Slack's text box holds 3,000 characters), and whether to interrupt it first."""
    return {
        "type": "modal",
        "callback_id": STEER_MODAL,
        "private_metadata": metadata,
        "title": kit.plain("Steer the agent", 24),
        "submit": kit.plain("Send", 24),
        "close": kit.plain("Cancel", 24),
        "blocks": [
            kit.section(f"Tell the agent of *{clip(escape(run.title or run.id), 500)}* what to do next."),
            {
                "type": "input",
                "block_id": STEER_INPUT,
                "label": kit.plain("Instruction", 2000),
                "element": {
                    "type": "plain_text_input",
                    "action_id": STEER_INPUT,
                    "multiline": True,
                    "max_length": 3000,
                },
            },
            {
                "type": "input",
                "block_id": INTERRUPT_INPUT,
                "optional": True,
                "label": kit.plain("Now?", 2000),
                "element": {
                    "type": "checkboxes",
                    "action_id": INTERRUPT_INPUT,
                    "options": [{"text": kit.plain("Interrupt the current step first", 75), "value": "interrupt"}],
                },
            },
        ],
    }


def ship_controls(run: Run, state: PullRequestState | None = None) -> list[Block]:
    """A succeeded run without a pull request: Create pull request (when Fabro can open one). With one:
    Merge… and Close pull request; a draft (as Fabro opens them) gets no Merge, and a line saying why."""
    block_id = control_block_id("ship", Target(run.id))
    pr = run.pull_request
    if pr is None or not pr.html_url:
        if not can_open_pull_request(run):
            return []
        create = kit.button("Create pull request", steer_action_id("create_pr"), value="create_pr", style="primary")
        block = kit.actions(create, block_id=block_id)
        return [block] if block else []
    # A window (`close_modal`), not Slack's own confirmation: the bot opens it for one person.
    close = kit.button("Close pull request…", steer_action_id("close_pr"), value="close_pr", style="danger")
    if state is not None and state.draft:
        note = kit.context(f":memo: Pull request {link(pr.html_url, f'#{pr.number}')} is a draft. {DRAFT_NOTE}")
        block = kit.actions(close, block_id=block_id)
        return [note, *([block] if block else [])]
    block = kit.actions(
        kit.button("Merge…", steer_action_id("merge"), value="merge", style="primary"), close, block_id=block_id
    )
    return [block] if block else []


def merge_modal(run: Run, *, metadata: str) -> dict[str, Any]:
    """First step of a merge: how. The second step (`merge_confirm_view`) shows what, before it happens."""
    options = [
        {"text": kit.plain(label, 75), "description": kit.plain(why, 75), "value": method}
        for method, label, why in (
            ("squash", "Squash and merge", "One commit on the base branch"),
            ("merge", "Create a merge commit", "Keep every commit, plus a merge commit"),
            ("rebase", "Rebase and merge", "Every commit, replayed on the base branch"),
        )
    ]
    return {
        "type": "modal",
        "callback_id": MERGE_MODAL,
        "private_metadata": metadata,
        "title": kit.plain("Merge the pull request", 24),
        "submit": kit.plain("Next", 24),
        "close": kit.plain("Cancel", 24),
        "blocks": [
            kit.section(f"Merge the pull request of *{clip(escape(run.title or run.id), 500)}*"),
            {
                "type": "input",
                "block_id": MERGE_INPUT,
                "label": kit.plain("How", 2000),
                "element": {
                    "type": "radio_buttons",
                    "action_id": MERGE_INPUT,
                    "options": options,
                    "initial_option": options[0],
                },
            },
        ],
    }


def merge_confirm_view(run: Run, pr: PullRequestState | None, method: str, *, metadata: str) -> dict[str, Any]:
    """What will be merged, and how: the last look before the final submit."""
    details = pr.details if pr is not None else None
    number = run.pull_request.number if run.pull_request else None
    title = escape(details.title) if details and details.title else "_(GitHub did not say its title)_"
    lines = [f"*Pull request #{number}*: {clip(title, 500)}"]
    if details is not None and details.additions is not None:
        lines.append(f"+{details.additions} −{details.deletions or 0} in {details.changed_files or 0} file(s)")
    lines.append(f"Method: *{escape(method)}*")
    return {
        "type": "modal",
        "callback_id": MERGE_CONFIRM,
        "private_metadata": metadata,
        "title": kit.plain("Merge the pull request", 24),
        "submit": kit.plain("Merge", 24),
        "close": kit.plain("Cancel", 24),
        "blocks": [kit.section("\n".join(lines)), kit.context(f"Run `{escape(run.id)}`")],
    }


def close_modal(run: Run, *, metadata: str) -> dict[str, Any]:
    """Which pull request will be closed, before it is."""
    number = run.pull_request.number if run.pull_request else None
    title = clip(escape(run.title or run.id), 500)
    said = f"Pull request #{number} of *{title}* will be closed on GitHub without merging."
    return {
        "type": "modal",
        "callback_id": CLOSE_MODAL,
        "private_metadata": metadata,
        "title": kit.plain("Close pull request", 24),
        "submit": kit.plain("Close it", 24),
        "close": kit.plain("Keep it open", 24),
        "blocks": [kit.section(said), kit.context(f"Run `{escape(run.id)}`")],
    }


def answer_modal(run: Run, question: Question, *, metadata: str) -> dict[str, Any]:
    """A modal showing the question and its context, with a text box for the answer."""
    blocks: list[Block] = [kit.section(f"*{clip(escape(question.text or 'Your answer'), 2900)}*")]
    if question.context_display:
        blocks.append(kit.section(f"```{clip(escape(question.context_display), 2800)}```"))
    blocks.append(kit.context(f"Run `{escape(run.id)}` · {clip(escape(run.title or ''), 200)}"))
    blocks.append(
        {
            "type": "input",
            "block_id": ANSWER_INPUT,
            "label": kit.plain("Answer", 2000),
            "element": {"type": "plain_text_input", "action_id": ANSWER_INPUT, "multiline": True, "max_length": 3000},
        }
    )
    return {
        "type": "modal",
        "callback_id": ANSWER_MODAL,
        "private_metadata": metadata,
        "title": kit.plain("Answer the question", 24),
        "submit": kit.plain("Send answer", 24),
        "close": kit.plain("Cancel", 24),
        "blocks": blocks,
    }


UNBOUND_WINDOW = (
    "This window was not opened for you, or it was open too long: nothing was sent to Fabro."
    " Open it again from the run's card."
)
UNBOUND_START = "This was not shown to you, or it was open too long: nothing was started. Run `{command} start` again."
UNBOUND_WORK = (
    "This was not shown to you, or it was open too long: nothing was started."
    " Ask again with `{command} new <what to do>` or by mentioning me."
)


def unbound_view(said: str) -> dict[str, Any]:
    """What a window becomes when its submission is refused because the bot did not open it for this person."""
    return {
        "type": "modal",
        "title": kit.plain("Nothing was done", 24),
        "close": kit.plain("Close", 24),
        "blocks": [kit.section(f":warning: {escape(said)}")],
    }


def deny_modal(run: Run, *, metadata: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": DENY_MODAL,
        "private_metadata": metadata,
        "title": kit.plain("Deny this run", 24),
        "submit": kit.plain("Deny", 24),
        "close": kit.plain("Back", 24),
        "blocks": [
            kit.section(f"Deny *{clip(escape(run.title or run.id), 500)}*? It will fail with `approval_denied`."),
            {
                "type": "input",
                "block_id": DENY_INPUT,
                "optional": True,
                "label": kit.plain("Reason (optional)", 2000),
                "element": {"type": "plain_text_input", "action_id": DENY_INPUT, "multiline": True, "max_length": 1000},
            },
        ],
    }
