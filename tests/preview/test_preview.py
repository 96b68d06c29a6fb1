"""The preview people read first: a Slack message drawn in the terminal, and the gallery of every
message the bot can post, each within Slack's limits."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from bot.blocks import kit
from bot.blocks.limits import problems
from bot.preview.gallery import gallery
from bot.preview.terminal import render_message, render_mrkdwn
from tests.app.test_cli import COMMAND, run_cli
from tests.fakes.slack import limit_violations


def drawn(message: dict[str, Any], *, terminal: bool = False, width: int = 100) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=width, color_system="truecolor" if terminal else None)
    console.print(render_message(message))
    return out.getvalue()


@pytest.mark.parametrize(
    ("mrkdwn", "plain"),
    [
        ("*bold* and _italics_ and `code`", "bold and italics and code"),
        ("<https://fabro.example.com/runs/1|the run>", "the run (https://fabro.example.com/runs/1)"),
        ("<https://example.com>", "https://example.com"),
        ("&lt;!channel&gt; &amp; friends", "<!channel> & friends"),
        (":x: failed :white_check_mark: done", "❌ failed ✅ done"),
        (":not_an_emoji_at_all:", ":not_an_emoji_at_all:"),
        ("<!date^1795870800^{date_short_pretty}|2026-11-28 12:00 UTC>", "2026-11-28 12:00 UTC"),
        ("```line one\nline two```", "line one\nline two"),
        ("a*b*c stays", "a*b*c stays"),
    ],
)
def test_mrkdwn_becomes_what_a_person_reads(mrkdwn: str, plain: str) -> None:
    assert render_mrkdwn(mrkdwn).plain == plain


def test_styles_are_kept_on_a_terminal_and_dropped_in_a_pipe() -> None:
    message = {"text": "x", "blocks": [kit.section("*bold* `code`")]}
    assert "\x1b[" in drawn(message, terminal=True)
    piped = drawn(message)
    assert "\x1b[" not in piped and "bold code" in piped


def test_every_block_type_is_drawn() -> None:
    message = {
        "text": "fallback",
        "blocks": [
            kit.header("A header"),
            kit.section("Section text", fields=["*Left*\none", "*Right*\ntwo"]),
            kit.divider(),
            kit.context("Context line", "second part"),
            kit.actions(
                kit.button("Retry", "steer:retry", style="primary"),
                kit.button("Open in Fabro", "runs_link:web", url="https://fabro.example.com"),
                {"type": "static_select", "action_id": "pick", "placeholder": kit.plain("Choose an option")},
                {"type": "checkboxes", "action_id": "tick", "options": [{"text": kit.plain("lint"), "value": "lint"}]},
            ),
        ],
    }
    text = drawn(message)
    for expected in (
        "A header",
        "Section text",
        "Left",
        "Right",
        "one",
        "two",
        "Context line",
        "second part",
        "[ Retry ]",
        "[ Open in Fabro ]",
        "[ Choose an option ▾ ]",
        "☐ lint",
        "─",
    ):
        assert expected in text, expected


def test_a_message_without_blocks_shows_its_fallback_text() -> None:
    assert "only text" in drawn({"text": "only *text*"})


@given(st.text(max_size=400))
def test_any_mrkdwn_renders_without_error(text: str) -> None:
    render_mrkdwn(text)


def test_the_gallery_has_every_kind_of_message_each_within_slacks_limits() -> None:
    items = gallery(datetime.now(UTC))
    titles = " | ".join(title for title, _ in items)
    for kind in (
        "a list",
        "a list the bot filtered",
        "/runs mine (your runs",
        "/runs mine, before linking",
        "a detail card",
        "a run failed",
        "in a channel shared with another organisation",
        "Logs, refused",
        "yes_no",
        "confirmation",
        "multiple_choice",
        "multi_select",
        "freeform",
        "an approval waiting",
        "cancelled",
        "resolved: answered",
        "a digest",
        "Mute this run for 1 hour",
        "/runs muted",
        "/runs unmute",
        "a run succeeded (subscribe succeeded)",
        "a pull request opened",
        "a run over COST_ALERT_USD",
        "DAILY_BUDGET_USD",
        "DAILY_BUDGET_USD, in a channel shared with another organisation",
        "a digest of successes and pull requests",
        "stats",
        "help",
        "usage error",
        "did not answer",
        "Not allowed",
        "subscriptions",
        "summary",
        "unfurled",
        "start <automation-id>",
        "the window",
        "started from Slack",
        "ready to ship",
        "live card",
        "a stage failed",
    ):
        assert kind in titles, kind
    for title, message in items:
        assert problems(message) == [], title
        assert limit_violations(message) == [], title
        assert drawn(message).strip(), title


async def test_preview_draws_the_answer_and_json_and_builder_give_the_payload() -> None:
    code, out, _ = await run_cli("preview", "--demo", "blocked")
    assert code == 0 and "❓ blocked" in out and '"blocks"' not in out
    code, out, _ = await run_cli("preview", "--demo", "--json", "blocked")
    assert code == 0 and json.loads(out)["response_type"] == "ephemeral"
    code, out, _ = await run_cli("preview", "--demo", "--builder", "blocked")
    assert code == 0 and out.startswith("https://app.slack.com/block-kit-builder/#")
    code, out, _ = await run_cli("preview", "--gallery")
    assert code == 0 and "Alert: a multi_select question" in out and "[ Submit ]" in out


async def test_the_gallery_ends_quietly_when_its_reader_stops_early() -> None:
    for flags in (("--json",), (), ("--builder",)):
        process = await asyncio.create_subprocess_shell(
            f"'{COMMAND}' preview --gallery {' '.join(flags)} | head -c 100 > /dev/null; exit ${{PIPESTATUS[0]}}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            executable="/bin/bash",
        )
        _, err = await asyncio.wait_for(process.communicate(), 60)
        assert err.decode() == "", flags  # no BrokenPipeError traceback
        assert process.returncode in (0, 1), flags


async def test_the_gallery_gives_one_block_kit_builder_link_per_message() -> None:
    code, out, err = await run_cli("preview", "--gallery", "--builder")
    assert code == 0, err
    lines = out.splitlines()
    titles, links = lines[0::2], lines[1::2]
    assert len(titles) == len(gallery(datetime.now(UTC)))
    assert all(link.startswith("  https://app.slack.com/block-kit-builder/#") for link in links)
    first = json.loads(unquote(links[0].split("#", 1)[1]))
    assert first["blocks"][0]["type"] == "section"
