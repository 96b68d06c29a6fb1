"""The confirmation of work and the set-up messages hold every Slack limit, whatever people wrote."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.blocks.limits import problems
from bot.blocks.work import edit_window, setup_changed, setup_shown, started_note, work_card
from bot.core.drafts import MAX_GOAL, Draft, Said, compose_goal, first_line
from bot.core.records import ChannelSetup
from bot.fabro.models import Run
from tests.blocks.test_blocks import HOSTILE
from tests.fakes.runs import make_run

TEXT = st.text(max_size=400) | st.just(HOSTILE * 20)
NAMES = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)


@settings(max_examples=80, deadline=None)
@given(
    request=st.text(min_size=1, max_size=MAX_GOAL) | st.just(HOSTILE * 20),
    context=st.lists(st.tuples(TEXT, st.text(max_size=2000)), max_size=60),
    branch=st.none() | st.text(max_size=200),
    workflow=NAMES,
)
def test_the_confirmation_and_its_window_hold_every_slack_limit_and_mention_nobody(
    request: str, context: list[tuple[str, str]], branch: str | None, workflow: str
) -> None:
    said = tuple(Said(name, text) for name, text in context)
    draft = Draft(request, first_line(request), "acme/api", branch, workflow, "C1", None, said)
    card = work_card(draft, intent="0a1b2c3d4e5f")
    assert problems(card) == []
    assert "<!channel>" not in json.dumps(card) and "<!here>" not in json.dumps(card)
    window = edit_window(draft, intent="0a1b2c3d4e5f", workflows=["implement", workflow])
    assert len(window["private_metadata"]) <= 3000 and len(window["blocks"]) <= 100
    assert Draft.load(draft.dump()) == draft  # what the store keeps comes back whole


@given(request=st.text(max_size=500), context=st.lists(st.tuples(NAMES, st.text(max_size=3000)), max_size=80))
def test_the_goal_keeps_the_request_whole_and_the_context_capped(request: str, context: list[tuple[str, str]]) -> None:
    goal = compose_goal(request, tuple(Said(n, t) for n, t in context))
    assert goal.startswith(request.strip())
    assert len(goal) <= len(request.strip()) + 6_200


@given(repo=st.from_regex(r"[a-z]{1,10}/[a-z]{1,10}", fullmatch=True), branch=st.none() | TEXT, who=NAMES)
def test_set_up_messages_hold_every_slack_limit(repo: str, branch: str | None, who: str) -> None:
    setup = ChannelSetup("C1", repo, branch, "implement", "U1", datetime(2026, 1, 1, tzinfo=UTC))
    for message in (
        setup_shown(setup, command="/runs", allowed=frozenset({repo})),
        setup_shown(None, command="/runs", allowed=frozenset()),
        setup_changed(setup, user_id="U1"),
        setup_changed(None, user_id="U1"),
        started_note(Run.model_validate(make_run("runnable", title=who or "t")), user_id="U1", web_base=None),
    ):
        assert problems(message) == []
