"""What `/runs` says about a person's own things: links, direct-message settings, follows, and the
words a command needs Slack (or a channel) for.  [pure]"""

from __future__ import annotations

from typing import Any

from bot.blocks.replies import notice

__all__ = [
    "NEEDS_A_CHANNEL",
    "follow_needs_slack",
    "followed",
    "inspect_needs_slack",
    "link_needs_slack",
    "link_refused",
    "linked",
    "mute_needs_slack",
    "needs_a_channel",
    "notifications",
    "start_needs_slack",
    "unfollowed",
    "unlinked",
    "whoami",
    "work_needs_slack",
]

Message = dict[str, Any]

NEEDS_A_CHANNEL = "{what} belong to a Slack channel: run `{command} {words}` in the channel itself."


def needs_a_channel(command: str, words: str, *, what: str = "Subscriptions") -> Message:
    return notice(NEEDS_A_CHANNEL.format(what=what, command=command, words=words))


def start_needs_slack(command: str) -> Message:
    return notice(
        f"`{command} start` opens a window in Slack listing the automations you can start;"
        f" `{command} start <automation-id>` asks you to confirm one."
    )


def follow_needs_slack(command: str) -> Message:
    return notice(f"Runs are followed in a Slack channel: run `{command} follow <run-id>` there.")


def inspect_needs_slack(command: str, words: str) -> Message:
    return notice(f"`{command} {words}` answers in Slack: run it there.")


def mute_needs_slack(command: str, words: str) -> Message:
    return notice(f"A run is muted in a Slack conversation: run `{command} {words}` there.")


def work_needs_slack(command: str, words: str) -> Message:
    return notice(f"Work starts from a Slack channel: run `{command} {words}` there.")


def followed(run_id: str) -> Message:
    return notice(f"Following run `{run_id}` here: its live card shows where it is, its thread what matters.")


def unfollowed(selector: str, *, was_followed: bool) -> Message:
    return notice(f"No longer following `{selector}` here." if was_followed else f"`{selector}` is not followed here.")


def link_needs_slack(command: str, words: str) -> Message:
    return notice(f"Links belong to a Slack account: run `{command} {words}` in Slack.")


def notifications(kinds: frozenset[str], *, chosen: bool, command: str) -> str:
    """The person's direct-message setting, as one sentence (`chosen`: they set it; else the defaults)."""
    if not kinds:
        return f"Direct messages are off for you (`{command} notify questions approvals failed` turns them on)."
    named = " · ".join(f"`{k}`" for k in sorted(kinds))
    return f"Direct messages about your runs: {named}{'' if chosen else ' (the default)'}."


def whoami(pinned: list[str], linked_logins: list[str], *, settings: str, command: str) -> Message:
    if not pinned and not linked_logins:
        return notice(
            "You are not linked to a Fabro login yet, so runs you start in Fabro are not known to be"
            f" yours. Link your GitHub login with `{command} link <login>`.\n{settings}"
        )
    lines = [f"`{login}` (pinned by an admin)" for login in pinned] + [f"`{login}`" for login in linked_logins]
    return notice("Your Fabro logins: " + ", ".join(lines) + f".\n{settings}")


def unlinked(removed: int, kept: list[str], login: str | None) -> Message:
    said = (
        f"Unlinked {removed} login{'s' if removed != 1 else ''}."
        if removed
        else "You had no link to remove."
        if login is None
        else f"`{login}` is not linked to you."
    )
    if kept:
        said += " Pinned by an admin, so still yours: " + ", ".join(f"`{k}`" for k in kept) + "."
    return notice(said)


def linked(login: str, *, already: bool, command: str) -> Message:
    if already:
        return notice(f"`{login}` is linked to you already.")
    return notice(f"Linked: runs started by `{login}` in Fabro are yours. `{command} whoami` shows it.")


def link_refused(why: str, login: str, holder: str | None, *, command: str) -> Message:
    """Why a login cannot be linked to the asker: `taken`, `pinned`, `reserved`, `closed` or `verify`."""
    someone = f"<@{holder}>" if holder else "someone"
    said = {
        "taken": f"`{login}` is linked to {someone}. If it is yours, ask them to run `{command} unlink {login}`.",
        "pinned": f"An admin pinned `{login}` to {someone} (`USER_LINKS`); ask them to change it if it is yours.",
        "reserved": f"`{login}` is the login of this bot's Fabro token, so it starts runs for everyone:"
        " it cannot be linked.",
        "closed": "Links are set by an admin here (`USER_LINKING=pinned`): ask them to add yours to `USER_LINKS`.",
        "verify": f"A login is not taken as typed here: run `{command} link` on its own and sign in to GitHub,"
        " and the login GitHub names is linked to you.",
    }[why]
    return notice(said, icon=":warning:")
