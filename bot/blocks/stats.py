"""The daily picture as a card: counts, cost, the slowest and priciest runs, what waits on people.  [pure]"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.blocks import kit
from bot.blocks.limits import FALLBACK_TEXT
from bot.blocks.routing import encode_page, show_action_id
from bot.blocks.text import ago, clip, dollars, duration, escape, link
from bot.core.query import RunQuery
from bot.core.stats import Picture, Window
from bot.fabro.models import Run

__all__ = ["PARTIAL", "stats_message"]

Message = dict[str, Any]
_WAITING_SHOWN = 10
PARTIAL = "Only the most recent runs of this window were read (the request cap): the counts are partial."
_TITLES = {Window.TODAY: "Today", Window.YESTERDAY: "Yesterday", Window.WEEK: "The last 7 days"}


def _name(run: Run, web_base: str | None) -> str:
    return link(run.web_url(web_base), clip(run.title or run.goal or run.id, 80))


def stats_message(
    picture: Picture, *, now: datetime, web_base: str | None, command: str = "/runs", heading: str | None = None
) -> Message:
    title = heading or f"{_TITLES[picture.window]} in Fabro"
    cost = dollars(picture.cost_micros) or "$0.00"
    blocks: list[dict[str, Any]] = [
        kit.section(f"*{escape(title)}* · {escape(picture.tz)}", block_id="stats:header"),
        kit.section(
            fields=[
                f"*Succeeded*\n{picture.succeeded}",
                f"*Failed*\n{picture.failed}",
                f"*Cancelled or denied*\n{picture.cancelled}",
                f"*Cost*\n{cost}"
                + (f"\n_{picture.without_cost} run(s) reported no cost_" if picture.without_cost else ""),
            ],
            block_id="stats:counts",
        ),
    ]
    standouts = []
    if picture.slowest is not None:
        run, seconds = picture.slowest
        standouts.append(f":turtle: Slowest: {_name(run, web_base)} · {duration(seconds)}")
    priciest = picture.priciest
    if priciest is not None and priciest.billing is not None:
        spent = dollars(priciest.billing.total_usd_micros)
        standouts.append(f":moneybag: Most expensive: {_name(priciest, web_base)} · {spent}")
    if not picture.finished:
        standouts.append("No run finished in this window.")
    blocks.append(kit.section("\n".join(standouts), block_id="stats:standouts"))
    if picture.waiting:
        lines = []
        for run in picture.waiting[:_WAITING_SHOWN]:
            what = ":question: question" if run.bucket == "blocked" else ":raised_hand: approval"
            since = ago(run.updated_at, now) or "a while"
            lines.append(f"• {what} · {_name(run, web_base)} · waiting since {since}")
        more = len(picture.waiting) - _WAITING_SHOWN
        if more > 0:
            lines.append(f"… and {more} more")
        blocks.append(
            kit.section("*Waiting on people now*, the oldest first\n" + "\n".join(lines), block_id="stats:waiting")
        )
    else:
        blocks.append(kit.section("*Waiting on people now*: nobody. :tada:", block_id="stats:waiting"))
    if picture.partial:
        blocks.append(kit.context(PARTIAL))
    listings = kit.actions(
        kit.button(
            "Failed runs",
            show_action_id("failed"),
            value=encode_page(RunQuery(statuses=("failed",), sort="updated_at")),
        ),
        kit.button(
            "Waiting on people",
            show_action_id("waiting"),
            value=encode_page(RunQuery(statuses=("blocked", "pending"), sort="updated_at", direction="asc")),
        ),
        block_id="stats:listings",
    )
    if listings:
        blocks.append(listings)
    text = (
        f"{title}: {picture.succeeded} succeeded, {picture.failed} failed, {picture.cancelled} cancelled, {cost};"
        f" {len(picture.waiting)} waiting on people"
    )
    return {"text": clip(escape(text), FALLBACK_TEXT), "blocks": kit.within_budget(blocks)}
