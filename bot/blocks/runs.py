"""Run cards: the list answer to `/runs <query>` and the detail answer to `/runs <id>`.  [pure]"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.blocks import kit
from bot.blocks.controls import approval_controls, question_controls, run_controls
from bot.blocks.inspect import inspect_controls
from bot.blocks.limits import FALLBACK_TEXT, MAX_BLOCKS, TOTAL_BLOCK_TEXT
from bot.blocks.question import question_text
from bot.blocks.routing import FOLLOW_ACTION, encode_page, link_action_id, page_action_id
from bot.blocks.text import ago, clip, dollars, duration, escape, link, slack_date
from bot.core.query import MAX_OFFSET, RunQuery
from bot.fabro.models import Failure, Run, RunList

__all__ = [
    "STATUS_EMOJI",
    "Scanned",
    "link_buttons",
    "run_detail_message",
    "run_list_message",
    "run_summary",
    "started_by",
    "status_line",
    "unfurl_card",
]

Message = dict[str, Any]

STATUS_EMOJI: dict[str, str] = {
    "submitted": ":inbox_tray:",
    "pending": ":raised_hand:",
    "runnable": ":hourglass_flowing_sand:",
    "starting": ":rocket:",
    "running": ":arrows_counterclockwise:",
    "paused": ":double_vertical_bar:",
    "blocked": ":question:",
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "dead": ":skull:",
    "removing": ":wastebasket:",
}
UNKNOWN_EMOJI = ":grey_question:"
ARCHIVED_EMOJI = ":file_cabinet:"

# A list card stays short so that many runs fit one message.
_LIST_TITLE = 150
_LIST_QUESTION = 300
_RESERVED_BLOCKS = 4  # header, note, paging buttons, and one spare


def _words(value: str | None) -> str:
    return value.replace("_", " ") if value else ""


def status_line(run: Run) -> str:
    """':x: *failed* · workflow error' — emoji, bucket, and why, all escaped."""
    status = run.status
    emoji = STATUS_EMOJI.get(status.kind, UNKNOWN_EMOJI)
    if run.bucket == "archived":
        emoji = ARCHIVED_EMOJI
    label = status.kind if status.kind not in ("submitted", "starting") else run.bucket
    parts = [f"{emoji} *{escape(label)}*"]
    why = status.reason or status.blocked_reason or status.prior_block
    if why:
        parts.append(escape(_words(why)))
    if run.lifecycle.archived:
        parts.append("archived")
    if run.lifecycle.pending_control:
        parts.append(f"{escape(run.lifecycle.pending_control)} requested")
    return " · ".join(parts)


def started_by(run: Run) -> str | None:
    by = run.created_by
    if by is None:
        return None
    if by.kind == "user":
        return escape(by.login) if by.login else "a user"
    if by.kind == "slack":
        return escape(f"@{by.user_name}") + " (Slack)" if by.user_name else "someone in Slack"
    if by.kind == "worker":
        return f"run `{escape(by.run_id)}`" if by.run_id else "a parent run"
    if by.kind == "system":
        return escape(_words(by.system_kind) or "Fabro")
    if by.kind == "agent":
        return f"an agent ({escape(by.model)})" if by.model else "an agent"
    return escape(_words(by.kind))


def elapsed(run: Run, now: datetime) -> str | None:
    if run.timing and run.timing.wall_time_ms is not None:
        return duration(run.timing.wall_time_ms / 1000)
    ts = run.timestamps
    start = ts.started_at or ts.created_at
    if start is None:
        return None
    end = ts.completed_at if run.is_terminal and ts.completed_at else now
    return duration(end - start)


def diff_text(run: Run) -> str | None:
    d = run.diff
    if d is None or (d.additions is None and d.deletions is None and d.files_changed is None):
        return None
    text = f"+{d.additions or 0} −{d.deletions or 0}"
    if d.files_changed is not None:
        text += f" in {d.files_changed} file" + ("" if d.files_changed == 1 else "s")
    return text


def link_buttons(run: Run, web_base: str | None, *, follow: bool = True) -> list[dict[str, Any]]:
    """The pull request, the run in Fabro, and Follow while the run is not finished (unless `follow` is off)."""
    buttons = []
    pr = run.pull_request
    if pr and pr.html_url:
        label = f"Pull request #{pr.number}" if pr.number is not None else "Pull request"
        buttons.append(kit.button(label, link_action_id("pr"), url=pr.html_url))
    web = run.web_url(web_base)
    if web:
        buttons.append(kit.button("Open in Fabro", link_action_id("web"), url=web))
    if follow and not run.is_terminal and run.bucket not in ("archived", "removing"):
        buttons.append(kit.button("Follow", FOLLOW_ACTION, value=run.id))
    return [b for b in buttons if b]


def _where(run: Run) -> list[str]:
    parts = [f"`{escape(run.id)}`"]
    if run.workflow.display_name:
        parts.append(escape(run.workflow.display_name))
    if run.repository.name:
        parts.append(escape(run.repository.name))
    who = started_by(run)
    if who:
        parts.append(f"by {who}")
    return parts


def _when(run: Run, now: datetime) -> list[str]:
    parts = []
    created = ago(run.timestamps.created_at, now)
    if created:
        parts.append(f"created {created}")
    took = elapsed(run, now)
    if took:
        if run.is_terminal:
            parts.append(f"ran {took}")
        elif run.bucket in ("pending", "runnable"):
            parts.append(f"waiting for {took}")
        else:
            parts.append(f"running for {took}")
    cost = dollars(run.billing.total_usd_micros if run.billing else None)
    if cost:
        parts.append(cost)
    diff = diff_text(run)
    if diff:
        parts.append(diff)
    return parts


def _question_line(run: Run, limit: int) -> str | None:
    q = run.current_question
    if q is None:
        return None
    return f":speech_balloon: _{clip(escape(q.text or 'A question is waiting.'), limit)}_"


def _approval_line(run: Run, now: datetime) -> str | None:
    approval = run.lifecycle.approval
    if approval is None or not approval.state:
        return None
    state = {"pending": "waiting for approval", "approved": "approved", "denied": "denied"}
    text = state.get(approval.state, escape(approval.state))
    since = ago(approval.requested_at, now)
    if approval.state == "pending" and since:
        text += f" (asked {since})"
    if approval.state == "denied" and approval.denial_reason:
        text += f": {clip(escape(approval.denial_reason), 200)}"
    return f":raised_hand: {text}"


def run_summary(run: Run, now: datetime, *, with_question: bool = True) -> str:
    """The few lines that identify a run in a list or an alert.

    `with_question=False` leaves out the pending question, for cards that show it in full.
    """
    title = clip(escape(run.title or run.goal or "Untitled run"), _LIST_TITLE)
    lines = [
        f"{status_line(run)} — *{title}*",
        " · ".join(_where(run)),
    ]
    when = _when(run, now)
    if when:
        lines.append(" · ".join(when))
    question = _question_line(run, _LIST_QUESTION) if with_question else None
    lines += [line for line in (question, _approval_line(run, now)) if line]
    return "\n".join(lines)


def _run_blocks(run: Run, now: datetime, web_base: str | None) -> list[dict[str, Any]]:
    blocks = [kit.section(run_summary(run, now), block_id=f"run:{run.id}")]
    buttons = kit.actions(*link_buttons(run, web_base), block_id=f"links:{run.id}")
    if buttons:
        blocks.append(buttons)
    return blocks


def _text_size(blocks: list[dict[str, Any]]) -> int:
    size = 0
    for b in blocks:
        size += len((b.get("text") or {}).get("text", ""))
        size += sum(len(e.get("text", "")) for e in b.get("elements", []) if e.get("type") == "mrkdwn")
    return size


@dataclass(frozen=True)
class Scanned:
    """A page the bot filtered itself: it read `read` runs from `query.offset` on and kept the page's runs.

    `ends[i]` is the offset just after the i-th kept run (where the next page starts if the message
    ends with it), and `next_offset` where reading stopped (None: nothing more to read).
    """

    read: int
    ends: tuple[int, ...]
    next_offset: int | None


def run_list_message(
    query: RunQuery,
    page: RunList,
    *,
    now: datetime,
    web_base: str | None = None,
    command: str = "/runs",
    scanned: Scanned | None = None,
    note: str | None = None,
) -> Message:
    """One page of runs as cards, with a header, and paging when more match.

    A `scanned` page was filtered by the bot: its header says how many of the runs read are shown
    ("12 of 50 shown"), and *Next* continues from where reading stopped.
    """
    runs = page.data
    total = page.meta.total
    described = escape(query.describe())
    if not runs:
        text = f"No {described} match." if query.offset == 0 else f"No more {described}."
        if scanned is not None and scanned.read:
            text += f" (none of the {scanned.read} runs read)"
        empty: list[dict[str, Any] | None] = [kit.section(f":mag: {clip(text, 2900)}")]
        if note:
            empty.append(kit.context(clip(note, 1900)))
        elif query.offset == 0:
            empty.append(kit.context(f"Try `{escape(command)} active` or `{escape(command)} help`."))
        if scanned is not None and scanned.next_offset is not None and scanned.next_offset <= MAX_OFFSET:
            empty.append(
                kit.actions(
                    kit.button("Next", page_action_id("next"), value=encode_page(query.at(scanned.next_offset))),
                    block_id="runs:paging",
                )
            )
        return {"text": clip(text, FALLBACK_TEXT), "blocks": [b for b in empty if b]}
    if scanned is not None:
        return _scanned_message(query, page, scanned, now=now, web_base=web_base, note=note)

    shown: list[dict[str, Any]] = []
    fitted = 0
    for run in runs:
        candidate = _run_blocks(run, now, web_base)
        too_many = len(shown) + len(candidate) > MAX_BLOCKS - _RESERVED_BLOCKS
        too_long = _text_size(shown + candidate) > TOTAL_BLOCK_TEXT - 1500
        if too_many or too_long:
            break
        shown += candidate
        fitted += 1

    first = query.offset + 1
    last = query.offset + fitted
    count = f"{total} match" if total is not None else ("more match" if page.meta.has_more else "")
    head = f"*{described.capitalize()}*"
    head += f" — {count} · showing {first}–{last}" if count else f" — showing {first}–{last}"
    blocks: list[dict[str, Any]] = [kit.section(head, block_id="runs:header"), *shown]

    notes = [note] if note else []
    if fitted < len(runs):
        notes.append(
            f"{len(runs) - fitted} more on this page did not fit in one Slack message; *Next* continues from there."
        )
    if page.unreadable:
        notes.append(f"{page.unreadable} run(s) Fabro sent could not be read and are left out.")
    if notes:
        blocks.append(kit.context(*notes, block_id="runs:notes"))

    more_after = page.meta.has_more or fitted < len(runs) or (total is not None and last < total)
    paging = kit.actions(
        kit.button("Previous", page_action_id("prev"), value=encode_page(query.at(query.offset - query.limit)))
        if query.offset > 0
        else None,
        kit.button("Next", page_action_id("next"), value=encode_page(query.at(query.offset + fitted)))
        if more_after
        else None,
        block_id="runs:paging",
    )
    if paging:
        blocks.append(paging)

    fallback = f"{described.capitalize()}: showing {first}–{last}"
    fallback += f" of {total}" if total is not None else ""
    titles = [f"{escape(r.title or r.id)} ({escape(r.status.kind)})" for r in runs[:fitted]]
    fallback = clip(fallback + ". " + "; ".join(titles), FALLBACK_TEXT)
    return {"text": fallback, "blocks": blocks}


def _fit(runs: list[Run], now: datetime, web_base: str | None) -> tuple[list[dict[str, Any]], int]:
    shown: list[dict[str, Any]] = []
    fitted = 0
    for run in runs:
        candidate = _run_blocks(run, now, web_base)
        too_many = len(shown) + len(candidate) > MAX_BLOCKS - _RESERVED_BLOCKS
        too_long = _text_size(shown + candidate) > TOTAL_BLOCK_TEXT - 1500
        if too_many or too_long:
            break
        shown += candidate
        fitted += 1
    return shown, fitted


def _scanned_message(
    query: RunQuery, page: RunList, scanned: Scanned, *, now: datetime, web_base: str | None, note: str | None
) -> Message:
    runs = page.data
    described = escape(query.describe())
    shown, fitted = _fit(runs, now, web_base)
    head = f"*{described.capitalize()}* — {fitted} of {scanned.read} shown"
    blocks: list[dict[str, Any]] = [kit.section(clip(head, 2900), block_id="runs:header"), *shown]
    notes = [note] if note else []
    if query.narrow.filters:
        notes.append(
            "Fabro cannot filter by who started a run, its repository or workflow:"
            " the bot read the runs and kept those that match."
        )
    if fitted < len(runs):
        notes.append(f"{len(runs) - fitted} more did not fit in one Slack message; *Next* continues from there.")
    if page.unreadable:
        notes.append(f"{page.unreadable} run(s) Fabro sent could not be read and are left out.")
    if notes:
        blocks.append(kit.context(*(clip(n, 1900) for n in notes), block_id="runs:notes"))
    after = scanned.ends[fitted - 1] if fitted < len(runs) else scanned.next_offset
    if after is not None and after > MAX_OFFSET:
        after = None  # past where Fabro pages
    paging = kit.actions(
        kit.button("First page", page_action_id("prev"), value=encode_page(query.at(0))) if query.offset > 0 else None,
        kit.button("Next", page_action_id("next"), value=encode_page(query.at(after))) if after is not None else None,
        block_id="runs:paging",
    )
    if paging:
        blocks.append(paging)
    titles = [f"{escape(r.title or r.id)} ({escape(r.status.kind)})" for r in runs[:fitted]]
    fallback = clip(f"{described.capitalize()}: {fitted} of {scanned.read} shown. " + "; ".join(titles), FALLBACK_TEXT)
    return {"text": fallback, "blocks": [b for b in blocks if b]}


def run_detail_message(
    run: Run,
    *,
    now: datetime,
    failure: Failure | None = None,
    web_base: str | None = None,
    retried_as: Run | None = None,
) -> Message:
    """Everything about one run: the list summary and goal, labels, models, times, failure; a run
    already retried says where the retry is instead of offering Retry."""
    title = run.title or run.goal or "Untitled run"
    blocks: list[dict[str, Any]] = [
        kit.header(title),  # plain_text: shown literally, no escaping needed
        kit.section(status_line(run), block_id=f"status:{run.id}"),
        kit.section(fields=_facts(run, now)[:10], block_id=f"facts:{run.id}"),
    ]
    if run.goal and run.goal != run.title:
        blocks.append(kit.section(f"*Goal*\n{clip(escape(run.goal), 2500)}", block_id=f"goal:{run.id}"))
    blocks += _failure_blocks(run, failure)
    blocks += _waiting_blocks(run, now)
    times = _times(run)
    if times:
        blocks.append(kit.context(" · ".join(times), block_id=f"times:{run.id}"))
    if retried_as is not None:
        where = link(retried_as.web_url(web_base), retried_as.id)
        blocks.append(kit.context(f":repeat: Retried as run {where}", block_id=f"retried:{run.id}"))
    else:
        blocks += run_controls(run)
    blocks += inspect_controls(run, private=True)  # the answer to `/runs <id>`: the asker's alone
    buttons = kit.actions(*link_buttons(run, web_base), block_id=f"links:{run.id}")
    if buttons:
        blocks.append(buttons)

    fallback = f"{escape(title)} — {escape(run.status.kind)}"
    if run.status.reason:
        fallback += f" ({escape(run.status.reason)})"
    return {"text": clip(fallback, FALLBACK_TEXT), "blocks": kit.within_budget(blocks)}


def _facts(run: Run, now: datetime) -> list[str]:
    """The fields of a detail card: id, workflow, repository, who, time and cost, models, labels, family."""
    fields = [f"*Run*\n`{escape(run.id)}`"]
    if run.workflow.display_name:
        fields.append(f"*Workflow*\n{escape(run.workflow.display_name)}")
    if run.repository.name:
        fields.append(f"*Repository*\n{escape(run.repository.name)}")
    who = started_by(run)
    if who:
        fields.append(f"*Started by*\n{who}")
    when = _when(run, now)
    if when:
        fields.append("*Time, cost, diff*\n" + "\n".join(when))
    if run.models:
        fields.append("*Models*\n" + ", ".join(escape(m.name or m.provider or "?") for m in run.models))
    if run.labels:
        fields.append("*Labels*\n" + " ".join(f"`{escape(k)}={escape(v)}`" for k, v in run.labels.items()))
    fields.append("*Family*\n" + "\n".join(_family(run)))
    if run.sandbox is not None:
        state = run.sandbox.kind or ("failed" if run.sandbox.failure else "present")
        fields.append(f"*Sandbox*\n{escape(state)}")
    elif not run.is_terminal:
        fields.append("*Sandbox*\nnot started")
    if run.automation and (run.automation.name or run.automation.id):
        fields.append(f"*Automation*\n{escape(run.automation.name or run.automation.id)}")
    return fields


def _family(run: Run) -> list[str]:
    family = [f"parent `{escape(run.parent_id)}`"] if run.parent_id else []
    family.append(f"{run.children_count} child run" + ("" if run.children_count == 1 else "s"))
    if run.retried_from:
        family.append(f"retry of `{escape(run.retried_from)}`")
    if run.superseded_by:
        family.append(f"superseded by `{escape(run.superseded_by)}`")
    return family


def _failure_blocks(run: Run, failure: Failure | None) -> list[dict[str, Any]]:
    if failure is not None:
        reason = failure.reason or run.status.reason
        lines = [":rotating_light: *Failure*" + (f" ({escape(_words(reason))})" if reason else "")]
        if failure.message:
            lines.append(f"```{clip(escape(failure.message), 2000)}```")
        lines += [f"• {clip(escape(cause), 300)}" for cause in failure.causes[:5]]
        return [kit.section("\n".join(lines), block_id=f"failure:{run.id}")]
    if run.status.kind in ("failed", "dead"):
        return [kit.context("Fabro recorded no failure message for this run.")]
    return []


def _waiting_blocks(run: Run, now: datetime) -> list[dict[str, Any]]:
    """The pending question and the approval, with their controls."""
    blocks: list[dict[str, Any]] = []
    if run.current_question is not None:
        asked = run.timestamps.last_event_at if run.bucket == "blocked" else None
        text = question_text(run.current_question, now=now, asked_at=asked)
        blocks.append(kit.section(text, block_id=f"question:{run.id}"))
        blocks += question_controls(run, run.current_question)
    approval = _approval_line(run, now)
    if approval:
        blocks.append(kit.section(approval, block_id=f"approval:{run.id}"))
    if run.awaits_approval:
        blocks += approval_controls(run)
    return blocks


def _times(run: Run) -> list[str]:
    moments = (
        ("created", run.timestamps.created_at),
        ("started", run.timestamps.started_at),
        ("last event", run.timestamps.last_event_at),
        ("completed", run.timestamps.completed_at if run.is_terminal else None),
        ("archived", run.lifecycle.archived_at),
    )
    return [f"{label} {slack_date(value)}" for label, value in moments if value is not None]


def unfurl_card(run: Run, *, now: datetime, web_base: str | None) -> dict[str, Any]:
    """A compact card for a pasted link: what the run is and where it stands. No controls (an
    unfurl is seen by everyone in the channel, and never acts) and nothing that mentions anyone."""
    blocks: list[dict[str, Any]] = [kit.section(run_summary(run, now), block_id=f"unfurl:{run.id}")]
    pr = run.pull_request
    if pr and pr.html_url:
        label = f"Pull request #{pr.number}" if pr.number is not None else "Pull request"
        blocks.append(kit.context(f":twisted_rightwards_arrows: {link(pr.html_url, label)}"))
    return {"blocks": kit.within_budget(blocks, 3500)}
