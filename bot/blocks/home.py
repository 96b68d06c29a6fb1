"""The Home tab: what waits on the person, what waits on anyone, and their own runs.  [pure]"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.blocks import kit
from bot.blocks.controls import approval_controls, question_controls, retry_control
from bot.blocks.runs import STATUS_EMOJI, UNKNOWN_EMOJI, link_buttons, run_summary
from bot.blocks.text import ago, clip, escape, link
from bot.core.records import IndexedRun
from bot.fabro.models import Run

__all__ = ["WAITING_ON_ANYONE", "home_view"]

WAITING_ON_ANYONE = 8  # shown before "… and N more"

Block = dict[str, Any]


def home_view(
    *,
    notice: str | None,
    linked: bool,
    mine: list[Run],
    others: list[Run],
    unavailable: bool,
    yours: list[IndexedRun] | None,
    yours_total: int = 0,
    now: datetime,
    web_base: str | None,
    command: str,
) -> dict[str, Any]:
    """A person's Home. `linked`: they have a Fabro login (else they are told how to link one);
    `yours`: their latest runs, when linked, of `yours_total` in all."""
    blocks: list[Block] = [kit.header("Fabro runs")]
    if notice:
        blocks.append(kit.context(clip(notice, 1000), block_id="home:notice"))
    if not linked:
        blocks.append(
            kit.section(
                ":wave: Link your GitHub login to see what waits on you here and get direct messages about"
                f" your runs: `{escape(command)} link <login>`."
            )
        )
    if linked:
        blocks.append(kit.header("Waiting on you"))
        if unavailable:
            blocks.append(kit.context(":warning: Fabro did not answer; this shows again when it does."))
        elif not mine:
            blocks.append(kit.context("Nothing is waiting on you."))
        for run in mine:
            blocks += _waiting(run, now, web_base)
    blocks.append(kit.header("Waiting on anyone"))
    if not others and not unavailable:
        blocks.append(kit.context("Nothing else is waiting."))
    for run in others[:WAITING_ON_ANYONE]:
        blocks += _waiting(run, now, web_base)
    if len(others) > WAITING_ON_ANYONE:
        more = len(others) - WAITING_ON_ANYONE
        blocks.append(kit.context(f"… and {more} more: `{escape(command)} blocked pending` lists them."))
    if yours is not None:
        blocks += _your_runs(yours, yours_total, now, web_base, command)
    return {"type": "home", "blocks": kit.within_budget(blocks[:100])}


def _your_runs(runs: list[IndexedRun], total: int, now: datetime, web_base: str | None, command: str) -> list[Block]:
    blocks = [kit.header("Your runs")]
    if not runs:
        blocks.append(kit.context("No runs of yours seen yet."))
    for entry in runs:
        emoji = STATUS_EMOJI.get(entry.status, UNKNOWN_EMOJI)
        title = link(entry.web_url, clip(escape(entry.title), 120)) if entry.web_url else escape(entry.title)
        when = ago(entry.updated_at, now) or ""
        blocks.append(kit.section(f"{emoji} *{escape(entry.status)}* — {title} · `{entry.run_id[:10]}` · {when}"))
        if entry.status == "failed" and entry.retried_as:  # Retry only where nobody retried it yet
            url = f"{web_base.rstrip('/')}/runs/{entry.retried_as}" if web_base else None
            where = link(url, entry.retried_as)
            blocks.append(kit.context(f":repeat: Retried as run {where}", block_id=f"retried:{entry.run_id}"))
        elif entry.status == "failed":
            blocks += retry_control(entry.run_id)
    if total > len(runs):
        blocks.append(kit.context(f"… and {total - len(runs)} more: `{escape(command)} mine` lists them."))
    return blocks


def _waiting(run: Run, now: datetime, web_base: str | None) -> list[Block]:
    """The run, the same controls as its card (answering, approving), and its links."""
    question = run.current_question
    controls = question_controls(run, question) if question else approval_controls(run)
    buttons = link_buttons(run, web_base, follow=False)
    blocks = [kit.section(run_summary(run, now)), *controls, kit.actions(*buttons)]
    return [b for b in blocks if b]
