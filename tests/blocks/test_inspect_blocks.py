"""The messages that look into a run (changes, cost, logs, preview, graph, Fabro's answers): whatever
Fabro sends, they never raise, hold every Slack limit, escape what they show and lose nothing silently."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block

from bot.blocks.exposure import for_exposure
from bot.blocks.inspect import (
    ANSWER_CHUNK,
    ASK_FAILURES,
    ASK_UNAVAILABLE,
    answer_chunks,
    answer_message,
    ask_failure_text,
    ask_unavailable_text,
    changes_message,
    cost_message,
    inspect_controls,
    log_comment,
    mark_stage,
    patch_file,
    preview_message,
)
from bot.blocks.limits import problems
from bot.blocks.presentation import Presentation
from bot.blocks.text import escape
from bot.core.exposure import Exposure
from bot.fabro.models import Run
from bot.fabro.outputs import RunBilling, RunCommits, RunFiles
from tests.fakes.runs import make_run

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
hostile = st.lists(st.sampled_from([*"ab <>&|*_`~@!#\n\t", "<!channel>", "é", "字"]), max_size=120).map("".join)
counts = st.integers(min_value=0, max_value=10**9)


def fits(message: dict[str, Any]) -> None:
    assert problems(message) == [], problems(message)
    for block in message["blocks"]:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.to_dict()  # slack_sdk's own validators
    assert "<!channel>" not in message["text"] + str(message["blocks"])


def a_run(title: str = "Add rate limiting", **fields: Any) -> Run:
    return Run.model_validate(make_run("running", title=title, **fields))


a_file = st.fixed_dictionaries(
    {
        "old_file": st.fixed_dictionaries({"name": hostile, "contents": st.none() | hostile}),
        "new_file": st.fixed_dictionaries({"name": hostile, "contents": st.none() | hostile}),
    },
    optional={
        "change_kind": st.sampled_from(["added", "modified", "deleted", "renamed", "symlink", "weird"]),
        "truncated": st.booleans(),
        "truncation_reason": st.sampled_from(["file_too_large", "budget_exhausted", "new"]),
        "binary": st.booleans(),
        "sensitive": st.booleans(),
        "unified_patch": st.none() | hostile.map(lambda t: "+" + t.replace("\n", "\n-")),
    },
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=hostile,
    files=st.lists(a_file, max_size=230),
    junk=st.lists(st.integers() | st.text(max_size=5), max_size=3),
    stats=st.fixed_dictionaries({"additions": counts, "deletions": counts}),
    commits=st.lists(
        st.fixed_dictionaries({"sha": st.just("a" * 40), "subject": hostile, "author": st.just({"name": "x<@U1>"})}),
        max_size=120,
    ),
    degraded=st.booleans(),
)
def test_changes_fit_slack_whatever_fabro_sends(
    title: str,
    files: list[dict[str, Any]],
    junk: list[int | str],
    stats: dict[str, int],
    commits: list[dict[str, Any]],
    degraded: bool,
) -> None:
    listing = RunFiles.model_validate(
        {"data": files, "meta": {"stats": stats, "total_changed": len(files) + 3, "degraded": degraded}}
    )
    message = changes_message(a_run(title), listing, RunCommits.model_validate({"data": commits}))
    fits(message)
    if len(files) > 40:
        assert "more file" in str(message["blocks"])
    patch = patch_file(a_run(title), listing)
    assert all((f.unified_patch or "").rstrip("\n") in patch for f in listing.data)


def test_changes_without_commits_say_why() -> None:
    message = changes_message(a_run(), RunFiles(), None, commits_problem="Run has no base SHA.")
    fits(message)
    assert "Run has no base SHA." in str(message["blocks"]) and "No changed files" in str(message["blocks"])


billing_row = st.fixed_dictionaries(
    {
        "stage": st.fixed_dictionaries({"id": hostile, "name": st.none() | hostile}),
        "model": st.none() | st.fixed_dictionaries({"provider": hostile, "model_id": hostile}),
        "billing": st.fixed_dictionaries(
            {"total_tokens": counts, "input_tokens": counts, "output_tokens": counts},
            optional={"total_usd_micros": st.none() | counts},
        ),
    }
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    stages=st.lists(billing_row | st.integers(), max_size=150),
    models=st.lists(
        st.fixed_dictionaries({"model": st.fixed_dictionaries({"model_id": hostile}), "stages": counts}), max_size=60
    ),
    total=st.none() | counts,
)
def test_cost_fits_slack_whatever_fabro_sends(
    stages: list[dict[str, Any] | int], models: list[dict[str, Any]], total: int | None
) -> None:
    bill = RunBilling.model_validate(
        {"stages": stages, "totals": {"total_tokens": 5, "total_usd_micros": total}, "by_model": models}
    )
    assert len(bill.stages) == sum(1 for s in stages if isinstance(s, dict))  # an unreadable row costs itself
    fits(cost_message(a_run("<!channel> cost"), bill))


@given(text=hostile, size=counts, kept=counts, stage=st.none() | hostile, tail=st.none() | hostile)
def test_a_log_comment_is_within_a_message_and_escaped(
    text: str, size: int, kept: int, stage: str | None, tail: str | None
) -> None:
    said = log_comment(a_run(text), size=size, kept=min(kept, size), stage=stage, tail=tail)
    assert len(said) <= 4000 and "<!channel>" not in said


@given(port=st.integers(1, 65535), host=st.from_regex(r"[a-z0-9-]{1,60}", fullmatch=True), title=hostile)
def test_a_preview_message_fits_and_carries_the_whole_link(port: int, host: str, title: str) -> None:
    url = f"https://{port}-{host}.preview.example/?tkn=" + "s" * 64
    message = preview_message(a_run(title), port, url, NOW)
    fits(message)
    assert url in str(message["blocks"])


@settings(max_examples=80)
@given(text=hostile | st.text(max_size=20_000))
def test_an_answer_of_any_length_is_split_without_losing_a_character(text: str) -> None:
    chunks = answer_chunks(text)
    assert all(len(c) <= ANSWER_CHUNK for c in chunks)
    joined = "".join(chunks).replace(" ", "").replace("\n", "")

    assert joined == escape(text.strip()).replace(" ", "").replace("\n", "") or not text.strip()
    for i, chunk in enumerate(chunks, start=1):
        fits(answer_message(chunk, run_id="01KJW4MG", part=i, parts=len(chunks), note=escape(ask_failure_text("x<y>"))))
        fits(answer_message(chunk, run_id="01KJW4MG", writing=True))


@settings(max_examples=60)
@given(code=st.none() | hostile | st.text(max_size=5_000) | st.sampled_from(sorted(ASK_FAILURES)))
def test_a_failed_turn_reads_as_a_sentence_that_fits_whatever_code_fabro_sends(code: str | None) -> None:
    sentence = ask_failure_text(code)
    assert sentence[:1].isupper() and sentence.endswith(".")  # a sentence, whatever the code
    fits(answer_message(escape(sentence), run_id="01KJW4MG"))  # the whole reply, as when nothing was written
    fits(answer_message("Half an answer", run_id="01KJW4MG", note=escape(sentence)))  # under what was written
    reason = ask_unavailable_text(code)  # a reason Fabro did not document reads the same, never echoed
    assert (
        reason
        == "Ask Fabro is unavailable: " + ASK_UNAVAILABLE.get(code or "", "Fabro says it cannot answer now") + "."
    )


@given(stage=hostile, nodes=st.lists(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), max_size=8))
def test_marking_a_stage_never_breaks_the_svg_and_marks_only_that_node(stage: str, nodes: list[str]) -> None:
    svg = "<svg>" + "".join(
        f'<g id="n{i}" class="node"><title>{n}</title><ellipse fill="none" stroke="black"/></g>'
        for i, n in enumerate(nodes)
    )
    marked, found = mark_stage(svg + "</svg>", stage)
    assert found == (stage in nodes)
    assert marked.count('stroke="#d84315"') == nodes.count(stage)


def test_ask_is_hidden_with_its_reason_and_a_shared_channel_card_has_no_inspect_buttons() -> None:
    unavailable = a_run(ask_fabro={"available": False, "unavailable_reason": "no_sandbox", "default_model": None})
    blocks = inspect_controls(unavailable)
    names = [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert "steer:ask" not in names and "no sandbox" in str(blocks)
    ready = a_run(ask_fabro={"available": True, "unavailable_reason": None, "default_model": "m"})
    assert "steer:ask" in str(inspect_controls(ready))
    card = {"text": "t", "blocks": inspect_controls(ready)}
    shared = for_exposure(card, ready, Exposure.MINIMAL, Presentation(web_base="https://fabro.example.com"))
    assert "steer:" not in json.dumps(shared) and "Open in Fabro" in json.dumps(shared)
    assert for_exposure(card, ready, Exposure.FULL, Presentation()) is card
    private = inspect_controls(ready, private=True)
    assert "steer:ask" not in str(private) and "mentioning me in the thread" in str(private)
