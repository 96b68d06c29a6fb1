"""The README and docs/ say what the code does: generated parts match, links resolve, samples are real."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from bot.config import reference_table
from bot.core.query import GRAMMAR
from bot.fabro.models import BUCKETS

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
TEST_COMMAND = 'python3 -m venv .venv && .venv/bin/pip install -q -e ".[test]" && .venv/bin/python -m pytest'


def test_the_configuration_reference_is_the_table_generated_from_the_settings() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    block = re.search(r"<!-- settings:[^\n]*-->\n(.*?)<!-- end of settings -->", text, re.S)
    assert block, "docs/configuration.md lost its generated settings block"
    assert block.group(1) == reference_table(), "regenerate it with `fabro-slack-bot settings`"


def test_the_readme_shows_the_test_command_ci_runs() -> None:
    assert TEST_COMMAND in (ROOT / "README.md").read_text()
    assert TEST_COMMAND.replace('"', '\\"') not in (ROOT / ".ci" / "run").read_text()  # quoted once, in single quotes
    assert TEST_COMMAND in (ROOT / ".ci" / "run").read_text()


def test_the_readme_stays_short_and_links_every_page_of_the_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 120
    for page in DOCS:
        assert f"(docs/{page.name}" in readme, f"the README does not link docs/{page.name}"


def test_every_relative_link_in_the_readme_and_docs_resolves() -> None:
    broken = []
    for page in [ROOT / "README.md", *DOCS]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:", "#")):
                continue
            path = target.split("#", 1)[0]
            if not (page.parent / path).resolve().exists():
                broken.append(f"{page.relative_to(ROOT)} → {target}")
    assert broken == []


def test_the_docs_and_the_manifests_comments_name_the_bot_user_as_the_manifest_does() -> None:
    name = yaml.safe_load((ROOT / "manifest.yml").read_text())["features"]["bot_user"]["display_name"]
    for page in [ROOT / "README.md", *DOCS, ROOT / "manifest.yml", ROOT / "manifest.http.yml"]:
        mentions = set(re.findall(r"(?<![\w/])@([A-Za-z][\w-]*)", page.read_text()))
        wrong = {m for m in mentions if m.lower().startswith("fabro") and m != name}
        assert wrong == set(), f"{page.name} mentions {wrong}, the bot user is @{name}"


def test_every_scope_the_manifest_asks_for_is_explained_in_the_docs() -> None:
    scopes = yaml.safe_load((ROOT / "manifest.yml").read_text())["oauth_config"]["scopes"]["bot"]
    text = (ROOT / "docs" / "slack-app.md").read_text()
    assert [s for s in scopes if f"`{s}`" not in text] == []


def test_the_readmes_sample_preview_is_what_the_command_prints() -> None:
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"fabro-slack-bot preview --demo \"([^\"]+)\"", readme)
    sample = re.search(r"```\n(╭─ /runs .*?)\n```", readme, re.S)
    assert command and sample
    shown = [line for line in sample.group(1).splitlines() if line.strip("│ ") != "…"]  # "│ …" is the rest
    printed = subprocess.run(
        [str(Path(sys.executable).parent / "fabro-slack-bot"), "preview", "--demo", command.group(1)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
        check=True,
    ).stdout.splitlines()
    assert printed[: len(shown)] == shown


def test_the_bot_names_itself_as_the_manifest_names_its_user() -> None:
    from bot.blocks.text import BOT_MENTION

    for name in ("manifest.yml", "manifest.http.yml"):
        user = yaml.safe_load((ROOT / name).read_text())["features"]["bot_user"]["display_name"]
        assert f"@{user}" == BOT_MENTION
    for path in (ROOT / "bot").rglob("*.py"):
        assert "@Fabro" not in path.read_text(), f"{path.name} names the bot @Fabro; it is {BOT_MENTION}"


def test_the_commands_table_lists_every_runs_word() -> None:
    """Every command's first word in the help, and every word of a listing, has its row in docs/commands.md."""
    text = (ROOT / "docs" / "commands.md").read_text()
    table = text[text.index("| words | meaning |") : text.index("Examples:")]
    column = [re.split(r"(?<!\\)\|", line)[1] for line in table.splitlines()[2:] if line.startswith("|")]
    listed = {word for cell in column for word in re.findall(r"`(-?[a-z]+:?)", cell)}
    first_words = set(re.findall(r"`/runs ([a-z]+)", GRAMMAR))
    assert {"mute", "unmute", "muted", "notify", "subscribe", "stats"} <= first_words  # the help still reads so
    listing = {"mine", "by:", "-by:", "-repo:", "-workflow:", "repo:", "workflow:", "sort:", "limit:", "page:"}
    listing |= {"parent:", "all", "asc", "desc", "active", "done", *BUCKETS}
    assert sorted((first_words | listing) - listed) == []


def test_every_first_word_of_runs_is_in_the_help_and_in_the_commands_reference() -> None:
    from bot.core.query import _FIRST_WORDS, GRAMMAR

    helped = set(re.findall(r"`/runs ([a-z]+)", GRAMMAR))
    # The words parse() reads first on its own, before its table of first words.
    read_first = {"new", "setup", "subscribe", "subscriptions", "unsubscribe", "stats", "follow", "unfollow", "start"}
    assert (read_first | set(_FIRST_WORDS)) - helped == set(), "add it to GRAMMAR in bot/core/query.py"
    table = (ROOT / "docs" / "commands.md").read_text().split("## `fabro-slack-bot`")[0]
    rows = [re.split(r"(?<!\\)\|", line) for line in table.splitlines() if line.startswith("| `")]
    first_column = " ".join(row[1] for row in rows)  # split at the pipes not escaped as \|
    documented = set(re.findall(r"`([a-z]+)", first_column))
    assert helped - documented == set(), "add it to the /runs table in docs/commands.md"
