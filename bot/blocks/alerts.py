"""Channel alert cards: a failed run, a question waiting, an approval waiting, a digest,
and the final state an alert is edited to when its run moves on.  [pure]"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from bot.blocks import kit
from bot.blocks.controls import approval_controls, question_controls, run_controls
from bot.blocks.inspect import cost_message, inspect_controls
from bot.blocks.limits import FALLBACK_TEXT, MAX_BLOCKS, TOTAL_BLOCK_TEXT
from bot.blocks.question import question_text
from bot.blocks.routing import MUTE_ACTION, encode_mute, encode_page, show_action_id
from bot.blocks.runs import link_buttons, run_summary
from bot.blocks.text import clip, escape, link, slack_date
from bot.core.keys import AlertKey, AlertKind
from bot.core.query import RunQuery
from bot.core.records import IndexedRun
from bot.fabro.models import Failure, PullRequestOpened, PullRequestState, Question, Run
from bot.fabro.outputs import RunBilling

__all__ = [
    "ALERT_EVENT_TYPE",
    "RUN_EVENT_TYPE",
    "alert_metadata",
    "approval_alert",
    "budget_alert",
    "cost_alert",
    "digest_message",
    "failed_alert",
    "metadata_key",
    "metadata_run",
    "mute_menu",
    "pr_alert",
    "question_alert",
    "resolved_alert",
    "run_metadata",
    "succeeded_alert",
]

Message = dict[str, Any]

_RUN_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
# Slack message metadata event type that marks our alerts, so a restart can find them.
ALERT_EVENT_TYPE = "fabro_run_alert"
_CONTEXT_LIMIT = 1500
_DIGEST_NAME = 80
_DIGEST_SECTION = 2800  # characters of names per section
_DIGEST_SECTIONS = MAX_BLOCKS - 4  # header, "…and N more", Show them all, one spare
_DIGEST_BUDGET = TOTAL_BLOCK_TEXT - 1000


def _title(run: Run) -> str:
    return escape(run.title or run.goal or run.id)


def alert_metadata(key: AlertKey, run_id: str | None = None) -> dict[str, Any]:
    """Slack message metadata that finds a posted message again after a crash, by its key."""
    return {"event_type": ALERT_EVENT_TYPE, "event_payload": {"key": key.encode(), "run_id": run_id or key.run_id}}


RUN_EVENT_TYPE = "fabro_run"  # any other message of the bot about one run (a start announcement)


def run_metadata(run_id: str) -> dict[str, Any]:
    """Slack message metadata naming the run a message is about, so its thread is the run's thread."""
    return {"event_type": RUN_EVENT_TYPE, "event_payload": {"run_id": run_id}}


def metadata_run(message: dict[str, Any]) -> str | None:
    """The run a message of the bot is about, from its metadata (an alert's, or `run_metadata`)."""
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") not in (ALERT_EVENT_TYPE, RUN_EVENT_TYPE):
        return None
    payload = metadata.get("event_payload")
    run_id = payload.get("run_id") if isinstance(payload, dict) else None
    return run_id if isinstance(run_id, str) and _RUN_ID.match(run_id) else None


def metadata_key(message: dict[str, Any], bot_id: str | None = None) -> str | None:
    """The key `alert_metadata` put on a message Slack gives back, or None for any other message.
    With `bot_id`, only a message posted by that bot counts: another app may copy the metadata."""
    if bot_id is not None and message.get("bot_id") != bot_id:
        return None
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != ALERT_EVENT_TYPE:
        return None
    payload = metadata.get("event_payload")
    key = payload.get("key") if isinstance(payload, dict) else None
    return key if isinstance(key, str) and key else None


_MUTE_LABELS = {
    "1h": "Mute this run here for 1 hour",
    "1d": "Mute this run here for 1 day",
    "end": "Mute this run here until it ends",
}


def mute_menu(run_id: str) -> dict[str, Any]:
    """An alert's overflow menu: no more alerts, reminders or escalations about the run in this conversation."""
    options = [
        {"text": kit.plain(label, 75), "value": encode_mute(choice, run_id)} for choice, label in _MUTE_LABELS.items()
    ]
    return {"type": "overflow", "action_id": MUTE_ACTION, "options": options}


def _with_metadata(message: Message, key: AlertKey | None, run: Run) -> Message:
    if key is not None:
        message["metadata"] = alert_metadata(key, run.id)
    return message


def failed_alert(
    run: Run, *, now: datetime, failure: Failure | None, web_base: str | None, key: AlertKey | None = None
) -> Message:
    blocks = [kit.section(run_summary(run, now), block_id=f"alert:{run.id}")]
    if failure is not None and (failure.message or failure.causes):
        lines = []
        if failure.message:
            lines.append(f"```{clip(escape(failure.message), 1800)}```")
        lines += [f"• {clip(escape(c), 300)}" for c in failure.causes[:5]]
        blocks.append(kit.section("\n".join(lines), block_id=f"failure:{run.id}"))
    else:
        blocks.append(kit.context("Fabro recorded no failure message for this run."))
    blocks += run_controls(run)
    blocks += inspect_controls(run)
    buttons = kit.actions(*link_buttons(run, web_base), mute_menu(run.id), block_id=f"links:{run.id}")
    if buttons:
        blocks.append(buttons)
    reason = (failure.reason if failure else None) or run.status.reason or run.status.kind
    if reason == "cancelled":
        text = clip(f"Run cancelled: {_title(run)}", FALLBACK_TEXT)
    else:
        text = clip(f"Run failed ({escape(reason)}): {_title(run)}", FALLBACK_TEXT)
    return _with_metadata({"text": text, "blocks": blocks}, key, run)


def succeeded_alert(run: Run, *, now: datetime, web_base: str | None, key: AlertKey | None = None) -> Message:
    """A run that succeeded: what it did, and what can be done next (open or merge its pull request)."""
    blocks = [kit.section(run_summary(run, now), block_id=f"alert:{run.id}")]
    blocks += run_controls(run)
    blocks += inspect_controls(run)
    buttons = kit.actions(*link_buttons(run, web_base), mute_menu(run.id), block_id=f"links:{run.id}")
    if buttons:
        blocks.append(buttons)
    return _with_metadata({"text": clip(f"Run succeeded: {_title(run)}", FALLBACK_TEXT), "blocks": blocks}, key, run)


def pr_alert(
    run: Run,
    *,
    now: datetime,
    opened: PullRequestOpened | None,
    state: PullRequestState | None,
    web_base: str | None,
    key: AlertKey | None = None,
) -> Message:
    """A pull request opened (or linked) for a run: its number, title, branches, and where it stands now."""
    pr = run.pull_request
    number = (opened.number if opened else None) or (pr.number if pr else None)
    url = (opened.html_url if opened else None) or (pr.html_url if pr else None)
    named = f"#{number}" if number is not None else "a pull request"
    title = (state.details.title if state and state.details else None) or (opened.title if opened else None)
    verb = "linked to" if opened is not None and opened.linked else "opened for"
    head = f":twisted_rightwards_arrows: Pull request {link(url, named) if url else escape(named)} {verb} this run"
    if title:
        head += f": *{clip(escape(title), 300)}*"
    facts = []
    where = _pr_state(opened, state)
    if where:
        facts.append(where)
    if opened is not None and opened.head_branch and opened.base_branch:
        facts.append(f"`{clip(escape(opened.head_branch), 100)}` → `{clip(escape(opened.base_branch), 100)}`")
    details = state.details if state else None
    if details is not None and (details.additions is not None or details.deletions is not None):
        facts.append(f"+{details.additions or 0} −{details.deletions or 0}")
    blocks = [kit.section(head, block_id=f"pr:{run.id}")]
    if facts:
        blocks.append(kit.context(" · ".join(facts)))
    blocks.append(kit.section(run_summary(run, now), block_id=f"alert:{run.id}"))
    blocks += run_controls(run, state)  # a draft gets no Merge
    buttons = kit.actions(*link_buttons(run, web_base), mute_menu(run.id), block_id=f"links:{run.id}")
    if buttons:
        blocks.append(buttons)
    text = clip(f"Pull request {named} {verb} {_title(run)}", FALLBACK_TEXT)
    return _with_metadata({"text": text, "blocks": blocks}, key, run)


def cost_alert(
    run: Run,
    bill: RunBilling | None,
    *,
    over_usd: float,
    now: datetime,
    web_base: str | None,
    key: AlertKey | None = None,
) -> Message:
    """A run whose cost crossed COST_ALERT_USD: what it costs now, and per stage (when Fabro tells it)."""
    micros = run.billing.total_usd_micros if run.billing is not None else None
    spent = f"${micros / 1_000_000:,.2f}" if micros is not None else "more"
    head = f":money_with_wings: *{_title(run)}* has cost {spent}, over the ${over_usd:,.2f} alert."
    blocks: list[dict[str, Any]] = [kit.section(clip(head, 2900), block_id=f"cost-alert:{run.id}")]
    blocks.append(kit.section(run_summary(run, now), block_id=f"alert:{run.id}"))
    if bill is not None:
        blocks += cost_message(run, bill)["blocks"][1:]  # its heading says what the alert's does
    else:
        blocks.append(kit.context("Fabro did not say its cost per stage just now."))
    blocks = blocks[: MAX_BLOCKS - 1]
    buttons = kit.actions(*link_buttons(run, web_base), mute_menu(run.id), block_id=f"links:{run.id}")
    if buttons:
        blocks.append(buttons)
    text = clip(f"Run over the cost alert ({spent}): {_title(run)}", FALLBACK_TEXT)
    return _with_metadata({"text": text, "blocks": kit.within_budget(blocks)}, key, run)


def budget_alert(
    day: date,
    spent_micros: int,
    budget_usd: float,
    top: list[IndexedRun],
    *,
    tz: str,
    command: str,
    key: AlertKey | None = None,
    minimal: bool = False,
) -> Message:
    """The day's spend crossed DAILY_BUDGET_USD: how much, and which runs cost most.

    `minimal`: a channel shared with another organisation, which sees no costs; it is told that the
    budget was passed, and how to see the rest alone."""
    if minimal:
        return _budget_passed_minimal(day, tz=tz, command=command, key=key)
    spent = f"${spent_micros / 1_000_000:,.2f}"
    head = (
        f":money_with_wings: *{day.strftime('%A %-d %B')}*: runs have cost {spent} so far,"
        f" over the daily budget of ${budget_usd:,.2f} ({escape(tz)})."
    )
    blocks: list[dict[str, Any]] = [kit.section(head, block_id=f"budget:{day.isoformat()}")]
    lines = [
        f"• {link(r.web_url, clip(r.title, 100)) if r.web_url else escape(clip(r.title, 100))}"
        f" · `{escape(r.run_id[:10])}` · ${(r.cost_micros or 0) / 1_000_000:,.2f}"
        for r in top[:5]
    ]
    if lines:
        blocks.append(kit.section("*Costliest today*\n" + "\n".join(lines), block_id="budget:top"))
    blocks.append(
        kit.context(
            f"Told once a day, from the runs the bot has seen change today. `{escape(command)} active sort:cost`"
            " lists what is running by cost."
        )
    )
    message: Message = {
        "text": clip(f"Daily budget passed: {spent} of ${budget_usd:,.2f}", FALLBACK_TEXT),
        "blocks": blocks,
    }
    if key is not None:
        message["metadata"] = alert_metadata(key)
    return message


def _budget_passed_minimal(day: date, *, tz: str, command: str, key: AlertKey | None) -> Message:
    when = day.strftime("%A %-d %B")
    head = f":money_with_wings: *{when}*: runs have cost more than the daily budget ({escape(tz)})."
    note = (
        "This channel is shared with another organisation, so amounts and runs are left out:"
        f" `{escape(command)} active sort:cost` shows them to you alone."
    )
    message: Message = {
        "text": clip(f"Daily budget passed on {day.isoformat()}", FALLBACK_TEXT),
        "blocks": [kit.section(clip(head, 2900), block_id=f"budget:{day.isoformat()}"), kit.context(note)],
    }
    if key is not None:
        message["metadata"] = alert_metadata(key)
    return message


def _pr_state(opened: PullRequestOpened | None, state: PullRequestState | None) -> str | None:
    if state is not None and state.finished:
        return state.finished
    if state is not None and state.details is not None:
        draft: bool | None = state.details.draft
    else:
        draft = opened.draft if opened else None
    if draft is None:
        return None
    return "draft" if draft else "ready for review"


def question_alert(
    run: Run,
    question: Question,
    *,
    now: datetime,
    asked_at: datetime | None,
    web_base: str | None,
    key: AlertKey | None = None,
) -> Message:
    blocks = [
        kit.section(run_summary(run, now, with_question=False), block_id=f"alert:{run.id}"),
        kit.section(question_text(question, now=now, asked_at=asked_at), block_id=f"question:{question.id}"[:255]),
    ]
    if question.context_display:
        context = escape(question.context_display)
        shown = clip(context, _CONTEXT_LIMIT)
        note = "" if shown == context else "\n_Context shortened; the full text is in Fabro._"
        blocks.append(kit.section(f"*Context*\n```{shown}```{note}", block_id=f"context:{question.id}"[:255]))
    if question.review_target and question.review_target.url:
        label = question.review_target.label or "Review"
        review = kit.actions(
            kit.button(label, "runs_link:review", url=question.review_target.url),
            block_id=f"review:{question.id}"[:255],
        )
        if review:
            blocks.append(review)
    blocks += question_controls(run, question)
    buttons = kit.actions(*link_buttons(run, web_base), mute_menu(run.id), block_id=f"links:{run.id}")
    if buttons:
        blocks.append(buttons)
    text = clip(f"Question waiting on {_title(run)}: {escape(question.text)}", FALLBACK_TEXT)
    return _with_metadata({"text": text, "blocks": blocks}, key, run)


def approval_alert(run: Run, *, now: datetime, web_base: str | None, key: AlertKey | None = None) -> Message:
    lines = [run_summary(run, now)]
    if run.parent_id:
        lines.append(f"Child of run `{escape(run.parent_id)}`")
    blocks = [kit.section("\n".join(lines), block_id=f"alert:{run.id}")]
    blocks += approval_controls(run)
    buttons = kit.actions(*link_buttons(run, web_base), mute_menu(run.id), block_id=f"links:{run.id}")
    if buttons:
        blocks.append(buttons)
    text = clip(f"Approval waiting: {_title(run)}", FALLBACK_TEXT)
    return _with_metadata({"text": text, "blocks": blocks}, key, run)


def resolved_alert(run: Run, *, outcome: str, now: datetime, web_base: str | None) -> Message:
    """The final state of an alert: what happened, by whom and when; no more buttons to act."""
    summary = run_summary(run, now)
    blocks = [
        kit.section(summary, block_id=f"resolved:{run.id}"),
        kit.context(f":white_check_mark: {outcome} · {slack_date(now)}"),
    ]
    links = kit.actions(*link_buttons(run, web_base, follow=False), block_id=f"links:{run.id}:final")
    if links:
        blocks.append(links)
    text = clip(f"{_title(run)}: {outcome}", FALLBACK_TEXT)
    return {"text": text, "blocks": blocks}


# What each alert kind is called in a digest, its emoji, and the /runs bucket that lists such runs.
_DIGEST_KINDS = {
    AlertKind.FAILED: ("failed run", ":x:", "failed"),
    AlertKind.QUESTION: ("question waiting", ":question:", "blocked"),
    AlertKind.APPROVAL: ("approval waiting", ":raised_hand:", "pending"),
    AlertKind.CANCELLED: ("cancelled run", ":no_entry_sign:", "failed"),
    AlertKind.SUCCEEDED: ("succeeded run", ":white_check_mark:", "succeeded"),
    AlertKind.PR: ("pull request opened", ":twisted_rightwards_arrows:", "succeeded"),
    AlertKind.COST: ("run over the cost alert", ":money_with_wings:", "running"),
}
_PLURALS = {AlertKind.PR: "pull requests opened", AlertKind.COST: "runs over the cost alert"}


def _count(n: int, kind: AlertKind) -> str:
    noun = _DIGEST_KINDS[kind][0]
    if n != 1 and kind in _PLURALS:
        noun = _PLURALS[kind]
    elif n != 1:
        first, _, rest = noun.partition(" ")
        ended = (AlertKind.FAILED, AlertKind.CANCELLED, AlertKind.SUCCEEDED)
        noun = noun + "s" if kind in ended else f"{first}s {rest}"
    return f"{n} {noun}"


def digest_message(
    items: list[tuple[AlertKind, Run]], *, command: str, web_base: str | None, key: str | None = None
) -> Message:
    """Many new alerts at once as one message naming every run, overflowing into '…and N more'.

    `items` are (alert kind, run) pairs; the overflow points at the `/runs` query that
    lists the same kinds of runs.
    """
    kinds = list(dict.fromkeys(kind for kind, _ in items))
    counts = ", ".join(_count(sum(1 for k, _ in items if k == kind), kind) for kind in kinds)
    header = f"*{len(items)} new alerts* · {escape(counts)}" if len(kinds) > 1 else f"*{escape(counts)}*"
    # Every run is named while the message has room: as many sections as it takes, within
    # Slack's 50 blocks and the whole message's text budget; "…and N more" only past that.
    sections: list[list[str]] = [[]]
    named, total = 0, len(header)
    for kind, run in items:
        # link() drops unsafe URLs and escapes the label; each part is bounded, never the
        # whole line, so a link is never cut in half.
        name = link(run.web_url(web_base), clip(run.title or run.id, _DIGEST_NAME))
        repo = f" · {clip(escape(run.repository.name), _DIGEST_NAME)}" if run.repository.name else ""
        emoji = _DIGEST_KINDS[kind][1] + " " if len(kinds) > 1 else ""
        line = f"• {emoji}`{escape(run.id[:10])}` {name}{repo}"
        if sum(len(x) + 1 for x in sections[-1]) + len(line) > _DIGEST_SECTION:
            if len(sections) == _DIGEST_SECTIONS:
                break
            sections.append([])
        if total + len(line) > _DIGEST_BUDGET:
            break
        sections[-1].append(line)
        named, total = named + 1, total + len(line) + 1
    blocks = [kit.section(header, block_id="digest:header")]
    blocks += [kit.section("\n".join(lines) or "—", block_id=f"digest:runs:{i}") for i, lines in enumerate(sections)]
    if named < len(items):
        buckets = tuple(dict.fromkeys(_DIGEST_KINDS[k][2] for k in kinds if k in _DIGEST_KINDS))
        blocks.append(kit.context(f"…and {len(items) - named} more: `{escape(command)} {escape(' '.join(buckets))}`"))
        # The same query, one click away, answered to the clicker alone.
        query = RunQuery(statuses=buckets, sort="updated_at", direction="desc", limit=20)
        show = kit.actions(
            kit.button("Show them all", show_action_id(), value=encode_page(query)), block_id="digest:show"
        )
        if show:
            blocks.append(show)
    text = clip(f"{counts}: " + ", ".join(escape(r.title or r.id) for _, r in items), FALLBACK_TEXT)
    message: Message = {"text": text, "blocks": blocks}
    if key is not None:
        message["metadata"] = {
            "event_type": ALERT_EVENT_TYPE,
            "event_payload": {"key": key, "run_id": "", "count": len(items)},
        }
    return message
