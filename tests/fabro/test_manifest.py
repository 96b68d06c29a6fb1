"""The manifest a run is created from: the goal reaches the agent as written whatever it contains,
the title is one line Fabro accepts, workflows are bundled in Fabro's layout, and the shipped
workflow passes the server's checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.fabro.manifest import (
    MAX_TITLE,
    BadWorkflow,
    as_written,
    build_manifest,
    clean_title,
    load_workflow,
    neutralise,
    workflow_names,
)
from tests.fakes.fabro import FakeFabro
from tests.fakes.manifests import Refused, check_manifest, render, rendered_goal, schema_errors

TEMPLATE_BITS = st.sampled_from(["{{", "}}", "{%", "%}", "{#", "#}", "{", "}", "@", "vars.", "'", '"', "\\", "\n", " "])
GOALS = st.lists(st.one_of(st.text(max_size=8), TEMPLATE_BITS), max_size=30).map("".join)


def manifest_for(goal: str, title: str = "A title") -> dict[str, Any]:
    workflow = load_workflow(None, "implement")
    labels = {"slack_user": "U1", "slack_channel": "C1", "slack_thread": "1.2"}
    return build_manifest(workflow, goal=goal, title=title, repository="acme/api", branch="main", labels=labels)


@settings(max_examples=300, deadline=None)
@given(GOALS)
@example("{{ vars.TOKEN }}")
@example("{% raw %}{{ x }}{% endraw %}")
@example("{{{{ goal }}}}")
@example("@README.md please")
@example("{#- comment -#}{%- if x -%}")
@example("{ {{ '{' }} }")
def test_any_goal_reaches_the_agent_exactly_as_written(goal: str) -> None:
    """Fabro renders the goal twice and substitutes `{{ vars.X }}` first: what comes out is what was written."""
    text = neutralise(goal)
    assert rendered_goal(text, {"TOKEN": "secret"}) == as_written(goal)


def test_without_neutralising_the_same_goals_would_fail_the_run() -> None:
    """The property above is not vacuous: these goals, sent raw, are refused or altered by the server."""
    with pytest.raises(Refused):
        rendered_goal("use {{ x }} here", {})
    with pytest.raises(Refused):
        rendered_goal("{% if %}", {})
    with pytest.raises(Refused):
        rendered_goal("@notes.md", {})
    assert render("a {# note #} b") != "a {# note #} b"


@settings(max_examples=100, deadline=None)
@given(GOALS, st.text(max_size=300))
def test_any_goal_and_title_make_a_manifest_the_spec_and_the_server_accept(goal: str, title: str) -> None:
    manifest = manifest_for(goal or "x", title)
    assert schema_errors("RunManifest", manifest) == []
    checked = check_manifest(manifest, {}, for_create=True)
    assert checked.goal == as_written(goal or "x") or not as_written(goal or "x")
    assert checked.labels == {"slack_user": "U1", "slack_channel": "C1", "slack_thread": "1.2"}


@given(st.text(max_size=500))
def test_a_title_is_one_line_of_at_most_100_characters_and_never_blank(text: str) -> None:
    title = clean_title(text)
    assert 0 < len(title) <= MAX_TITLE and title == title.strip()
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in title)


def test_a_long_title_is_cut_and_says_so() -> None:
    assert clean_title("word " * 40).endswith("…") and len(clean_title("word " * 40)) == MAX_TITLE


def test_the_shipped_workflow_is_bundled_with_its_prompts_and_config_as_fabros_cli_does() -> None:
    manifest = manifest_for("Fix the flaky login test")
    key = ".fabro/workflows/implement/workflow.fabro"
    assert manifest["target"] == {"path": key}
    entry = manifest["workflows"][key]
    assert entry["config"]["path"] == ".fabro/workflows/implement/workflow.toml"
    prompts = {f".fabro/workflows/implement/prompts/{p}.md" for p in ("plan", "implement", "verify")}
    assert set(entry["files"]) == prompts
    plan = entry["files"][".fabro/workflows/implement/prompts/plan.md"]
    assert plan["ref"] == {"type": "file_inline", "original": "prompts/plan.md", "from": key}
    assert "{{ goal }}" in plan["content"]
    assert manifest["git"] == {"origin_url": "https://github.com/acme/api", "branch": "main", "dirty": "clean"}
    assert "slack_user=U1" in manifest["args"]["label"]


def test_the_shipped_workflow_passes_the_validator_with_no_error() -> None:
    checked = check_manifest(manifest_for("anything"), {}, for_create=False)
    assert [d for d in checked.diagnostics if d["severity"] == "error"] == []
    assert {"start", "exit", "plan", "implement", "verify"} <= set(checked.graph.nodes)


def test_a_deployers_folder_adds_workflows_and_may_replace_a_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "triage").mkdir()
    (tmp_path / "triage" / "workflow.fabro").write_text('digraph T { start -> work -> exit\n work [prompt="@p.md"] }')
    (tmp_path / "triage" / "p.md").write_text("Triage {{ goal }}")
    assert workflow_names(tmp_path) == ["implement", "triage"]
    triage = load_workflow(tmp_path, "triage")
    assert triage.files == {"p.md": "Triage {{ goal }}"} and triage.config is None


@pytest.mark.parametrize(
    ("source", "files", "said"),
    [
        (None, {}, "There is no workflow `nope`"),
        ('digraph T { a [prompt="@../secret.md"] }', {}, "outside its folder"),
        ('digraph T { a [prompt="@missing.md"] }', {}, "cannot read missing.md"),
    ],
)
def test_a_workflow_that_cannot_be_bundled_says_why(
    tmp_path: Path, source: str | None, files: dict[str, str], said: str
) -> None:
    if source is not None:
        (tmp_path / "nope").mkdir()
        (tmp_path / "nope" / "workflow.fabro").write_text(source)
    with pytest.raises(BadWorkflow, match=said):
        load_workflow(tmp_path, "nope")


def test_a_name_that_is_not_a_folder_name_is_refused() -> None:
    with pytest.raises(BadWorkflow, match="not a workflow name"):
        load_workflow(None, "../etc")


# -- through the client, against the fake server ------------------------------------------------


async def test_a_manifest_is_validated_created_started_and_found_again_by_its_label(fabro: FakeFabro) -> None:
    from bot.fabro.client import FabroClient

    manifest = manifest_for("Fix {{ this }} please")
    manifest["args"]["label"].append("slack_intent=abc123")
    async with FabroClient(fabro.url, fabro.token) as client:
        assert (await client.validate(manifest)).passed
        run = await client.create_run(manifest, user_agent="fabro-slack-bot/0.1 (intent abc123)")
        assert run.status.kind == "submitted" and run.goal == "Fix {{ this }} please"
        assert fabro.user_agents[run.id] == "fabro-slack-bot/0.1 (intent abc123)"
        assert (await client.start_run(run.id)).status.kind == "runnable"
        found = await client.labelled("slack_intent", "abc123")
        assert found is not None and found.id == run.id
        assert await client.labelled("slack_intent", "other") is None


async def test_the_fake_refuses_what_the_server_refuses(fabro: FakeFabro) -> None:
    from bot.fabro.client import FabroClient
    from bot.fabro.errors import FabroConflict, FabroRejected, FabroUnavailable

    async with FabroClient(fabro.url, fabro.token) as client:
        raw = manifest_for("x")
        raw["goal"]["text"] = "use {{ x }}"  # not neutralised: the undefined name fails the graph
        with pytest.raises(FabroRejected, match="Validation failed"):
            await client.create_run(raw, user_agent="t")
        raw["goal"]["text"] = "{% if"  # a syntax error is Fabro's 500
        with pytest.raises(FabroUnavailable):
            await client.create_run(raw, user_agent="t")
        broken = manifest_for("x")
        broken["workflows"][broken["target"]["path"]]["source"] = "digraph X { a -> b }"
        validation = await client.validate(broken)
        assert not validation.passed and {d.rule for d in validation.errors} >= {"start_node", "terminal_node"}
        broken["title"] = "x" * 101
        with pytest.raises(FabroRejected):
            await client.create_run(broken, user_agent="t")
        run = await client.create_run(manifest_for("x"), user_agent="t")
        await client.start_run(run.id)
        with pytest.raises(FabroConflict, match="expected submitted"):
            await client.start_run(run.id)
