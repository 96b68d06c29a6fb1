"""Replies to `/runs subscribe`, `subscriptions`, `unsubscribe`, `summary`, `mute`, `unmute` and `muted`.  [pure]"""

from __future__ import annotations

from typing import Any

from bot.blocks import kit
from bot.blocks.text import BOT_MENTION, clip, escape, slack_date
from bot.core.records import ChannelSummary, Mute, Subscription

__all__ = [
    "BROKEN_FIXES",
    "describe_subscription",
    "muted_list_message",
    "muted_message",
    "subscribed_message",
    "subscriptions_message",
    "summary_message",
    "unmuted_message",
    "unsubscribed_message",
]

Message = dict[str, Any]

_KIND_WORDS = {
    "failed": "failed runs",
    "questions": "questions",
    "approvals": "approvals",
    "cancelled": "cancelled runs",
    "succeeded": "succeeded runs",
    "pr": "pull requests opened",
    "cost": "runs over the cost alert",
}
BROKEN_FIXES = {
    "not_in_channel": f"I am not in this channel: invite me with `/invite {BOT_MENTION}`.",
    "channel_not_found": f"I cannot see this channel (private, or deleted): invite me with `/invite {BOT_MENTION}`.",
    "is_archived": "This channel is archived: unarchive it, or remove these subscriptions.",
}


def describe_subscription(sub: Subscription) -> str:
    kinds = [w for k, w in _KIND_WORDS.items() if k in sub.kinds]
    what = ", ".join(kinds[:-1]) + f" and {kinds[-1]}" if len(kinds) > 1 else (kinds[0] if kinds else "nothing")
    where = []
    if sub.repo:
        where.append(f"repo `{escape(sub.repo)}`")
    if sub.workflow:
        where.append(f"workflow `{escape(sub.workflow)}`")
    where += [f"label `{escape(k)}={escape(v)}`" for k, v in sorted(sub.labels.items())]
    besides = []
    if sub.by:
        besides.append("started by " + " or ".join(f"`{escape(login)}`" for login in sub.by))
    besides += [f"not by `{escape(login)}`" for login in sub.not_by]
    besides += [f"not in repo `{escape(repo)}`" for repo in sub.not_repos]
    besides += [f"not of workflow `{escape(name)}`" for name in sub.not_workflows]
    said = what + (" in " + ", ".join(where) if where else " in all runs")
    return said + "".join(f", {b}" for b in besides)


def subscribed_message(sub: Subscription, *, user_id: str, command: str, existing: bool) -> Message:
    text = describe_subscription(sub)
    if existing:
        line = f"This channel already gets alerts for {text} (subscription `{sub.id}`)."
    else:
        line = f"<@{escape(user_id)}> subscribed this channel to alerts for {text} (subscription `{sub.id}`)."
    hint = f"`{escape(command)} subscriptions` lists them; `{escape(command)} unsubscribe {sub.id}` stops this one."
    if not existing and sub.kinds & {"questions", "approvals"}:
        hint = "What already waits here is posted in a moment (many at once as one digest). " + hint
    return {"text": _plain(line), "blocks": [kit.section(line, block_id="subscribed"), kit.context(hint)]}


def subscriptions_message(
    subs: list[Subscription], *, channel: str, default_channel: str | None, broken: str | None, command: str
) -> Message:
    cmd = escape(command)
    lines = []
    if default_channel == channel:
        lines.append("• *default* — failed runs, questions and approvals in all runs (set by `ALERT_CHANNEL`)")
    lines += [
        f"• `{s.id}` — {describe_subscription(s)}" + (f" (by <@{escape(s.created_by)}>)" if s.created_by else "")
        for s in subs
    ]
    if not lines:
        text = (
            f"This channel has no alert subscriptions. `{cmd} subscribe` sends it failed runs, questions and approvals."
        )
        return {"text": _plain(text), "blocks": [kit.section(text, block_id="subscriptions")]}
    body = clip("*Alerts for this channel*\n" + "\n".join(lines), 2900)
    blocks = [kit.section(body, block_id="subscriptions")]
    if broken:
        fix = BROKEN_FIXES.get(broken, "Check that I can post here.")
        blocks.append(
            kit.section(
                f":warning: My last alert could not be posted here (`{escape(broken)}`). {fix}", block_id="broken"
            )
        )
    blocks.append(kit.context(f"`{cmd} unsubscribe <id>` or `{cmd} unsubscribe all` removes them."))
    return {"text": _plain(f"{len(lines)} alert subscriptions in this channel"), "blocks": blocks}


def unsubscribed_message(removed: int, *, ids: tuple[int, ...] | None, user_id: str, command: str) -> Message:
    if removed == 0:
        what = "any subscription" if ids is None else "subscription " + ", ".join(f"`{i}`" for i in ids)
        text = f"This channel has no {what} to remove. `{escape(command)} subscriptions` lists what it has."
    else:
        text = (
            f"<@{escape(user_id)}> removed {removed} alert subscription{'s' if removed != 1 else ''} from this channel."
        )
    return {"text": _plain(text), "blocks": [kit.section(text, block_id="unsubscribed")]}


def _plain(text: str) -> str:
    return text.replace("`", "")


def summary_message(summary: ChannelSummary | None, *, command: str, changed_by: str | None = None) -> Message:
    """The channel's daily summary: what it is, or that it was just set or stopped (and by whom)."""
    cmd = escape(command)
    if summary is None:
        text = (
            f"<@{changed_by}> stopped this channel's daily summary."
            if changed_by
            else f"This channel has no daily summary. `{cmd} summary daily 09:00` posts yesterday's picture every day."
        )
    else:
        when = f"every day at {escape(summary.at)} ({escape(summary.tz)})"
        text = (
            f"<@{changed_by}> set this channel's daily summary: yesterday's runs, cost and who is waited on, {when}."
            if changed_by
            else f"This channel gets a daily summary {when}, set by <@{summary.created_by}>."
            f" `{cmd} summary off` stops it."
        )
    return {"text": _plain(text), "blocks": [kit.section(f":calendar: {text}", block_id="summary")]}


def _until(mute: Mute) -> str:
    if mute.until is None:
        return "for the rest of the run, its end included"
    return f"until {slack_date(mute.until)}"


def muted_message(mute: Mute, *, user_id: str, command: str) -> Message:
    """Told in the conversation: who muted which run, for how long, and how to undo it."""
    run = escape(mute.run_id)
    line = (
        f":mute: <@{escape(user_id)}> muted run `{run}` here {_until(mute)}:"
        " no alerts, reminders or escalations about it."
    )
    hint = f"`{escape(command)} unmute {run}` ends it; `{escape(command)} muted` lists what is muted here."
    return {"text": _plain(clip(line, 3000)), "blocks": [kit.section(line, block_id="muted"), kit.context(hint)]}


def unmuted_message(run_id: str, *, user_id: str, removed: bool) -> Message:
    run = escape(run_id)
    line = (
        f":loud_sound: <@{escape(user_id)}> unmuted run `{run}` here." if removed else f"Run `{run}` is not muted here."
    )
    return {"text": _plain(line), "blocks": [kit.section(line, block_id="unmuted")]}


_MUTED_SHOWN = 40


def muted_list_message(mutes: list[Mute], *, command: str) -> Message:
    """What is muted in this conversation, each with how long and who muted it."""
    cmd = escape(command)
    if not mutes:
        text = f"Nothing is muted here. An alert's menu (⋯) mutes its run, or `{cmd} mute <run-id> [1h|1d|end]`."
        return {"text": _plain(text), "blocks": [kit.section(text, block_id="muted:none")]}
    lines = [
        f"• `{escape(m.run_id)}` {_until(m)}" + (f", by <@{escape(m.created_by)}>" if m.created_by else "")
        for m in mutes[:_MUTED_SHOWN]
    ]
    blocks = [kit.section(f"*{len(mutes)} run{'s' if len(mutes) != 1 else ''} muted here*", block_id="muted:head")]
    for start in range(0, len(lines), 10):
        blocks.append(kit.section("\n".join(lines[start : start + 10]), block_id=f"muted:{start}"))
    if len(mutes) > _MUTED_SHOWN:
        blocks.append(kit.context(f"… and {len(mutes) - _MUTED_SHOWN} more."))
    blocks.append(kit.context(f"`{cmd} unmute <run-id>` ends one."))
    return {"text": f"{len(mutes)} runs muted here", "blocks": blocks}
