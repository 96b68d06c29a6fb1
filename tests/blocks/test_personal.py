"""What `/runs` says about a person's links, settings and follows: any input renders within Slack's limits."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.blocks import personal
from bot.blocks.limits import problems

logins = st.from_regex(r"[A-Za-z0-9-]{1,39}", fullmatch=True)
users = st.none() | st.from_regex(r"U[A-Z0-9]{2,10}", fullmatch=True)
kinds = st.frozensets(st.sampled_from(["questions", "approvals", "failed", "succeeded"]))


@given(
    login=logins,
    holder=users,
    why=st.sampled_from(["taken", "pinned", "reserved", "closed"]),
    pinned=st.lists(logins, max_size=5),
    linked=st.lists(logins, max_size=5),
    chosen=kinds,
    was_set=st.booleans(),
    removed=st.integers(0, 50),
)
def test_every_personal_reply_renders_within_slacks_limits(
    login: str,
    holder: str | None,
    why: str,
    pinned: list[str],
    linked: list[str],
    chosen: frozenset[str],
    was_set: bool,
    removed: int,
) -> None:
    settings = personal.notifications(chosen, chosen=was_set, command="/runs")
    messages = [
        personal.link_refused(why, login, holder, command="/runs"),
        personal.linked(login, already=was_set, command="/runs"),
        personal.whoami(pinned, linked, settings=settings, command="/runs"),
        personal.unlinked(removed, pinned, login if was_set else None),
        personal.followed(login),
        personal.unfollowed(login, was_followed=was_set),
        personal.needs_a_channel("/runs", "subscribe"),
        personal.start_needs_slack("/runs"),
        personal.follow_needs_slack("/runs"),
        personal.link_needs_slack("/runs", "whoami"),
        personal.inspect_needs_slack("/runs", "logs"),
        personal.mute_needs_slack("/runs", "mute"),
        personal.work_needs_slack("/runs", "new"),
    ]
    for message in messages:
        assert problems(message) == []
    assert ("(the default)" in settings) == (bool(chosen) and not was_set)
