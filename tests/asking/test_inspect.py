"""Looking into a run from Slack: Changes, Cost, Logs, Graph and a preview link, by `/runs` words and by
the buttons on a run's card, answered in the card's thread (once per click) or to the asker alone."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Bot
from tests.conftest import SlackUser, StartBot, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack, Message, dm_of

ADA = "U123ADA"
CHANNEL = "C0ALERTS"


@pytest.fixture
async def bot(start_bot: StartBot, tmp_path: Path) -> Bot:
    started = await start_bot(
        alert_channel=CHANNEL, alert_pace=0.0, database_url=f"sqlite:///{tmp_path}/inspect.db", log_max_bytes=2048
    )
    await started.alerter.cycle()  # past its first look at Fabro: what fails from now on is news
    return started


@pytest.fixture
async def user(bot: Bot, slack: FakeSlack) -> AsyncIterator[SlackUser]:
    async with aiohttp.ClientSession() as session:
        yield SlackUser.of(bot, slack, session)


def failed_run(fabro: FakeFabro) -> dict[str, Any]:
    run = make_run("running", title="Add rate limiting")
    fabro.add(run)
    fabro.sandbox_ready(run["id"])
    fabro.stage(run["id"], "plan", "succeeded")
    fabro.stage(run["id"], "verify", "failed", failure={"message": "pytest failed", "category": "workflow"})
    fabro.fail(run["id"], "Stage `verify` exited with status 1")
    return run


async def alert_of(bot: Bot, slack: FakeSlack) -> Message:
    await bot.alerter.cycle()
    [alert] = slack.posts(CHANNEL)
    return alert


def inspect_block(message: Message | dict[str, Any]) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = message.blocks if isinstance(message, Message) else message["blocks"]
    [block] = [b for b in blocks if b["type"] == "actions" and b["block_id"].startswith("inspect:")]
    return block


async def press(
    user: SlackUser, block: dict[str, Any], verb: str, message: Message, *, ts: str = "1700000001.000001"
) -> str:
    _, _, url = await user.click(
        {"action_id": f"steer:{verb}", "value": verb, "action_ts": ts},
        block_id=block["block_id"],
        channel=message.channel,
        message_ts=message.ts,
        ephemeral=False,
    )
    return url


def replies(slack: FakeSlack, message: Message) -> list[Message]:
    return [m for m in slack.messages if m.channel == message.channel and m.thread_ts == message.ts]


def text_of(message: Message) -> str:
    return message.text + json.dumps(message.blocks, ensure_ascii=False)


# -- Changes ----------------------------------------------------------------------------------------


async def test_changes_lists_the_largest_files_first_with_totals_commits_and_what_was_left_out(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("succeeded", reason="completed", title="Add rate limiting")
    fabro.add(run)
    fabro.change(run["id"], "src/small.py", added=1, removed=0)
    fabro.change(run["id"], "src/big.py", added=40, removed=12)
    fabro.change(run["id"], "assets/logo.png", binary=True)
    fabro.change(run["id"], "data/huge.json", truncated=True, truncation_reason="file_too_large")
    for i in range(60):
        fabro.change(run["id"], f"tests/test_{i:02d}.py", added=2, removed=0)
    fabro.commit(run["id"], "Add the limiter")
    fabro.commit(run["id"], "Test the limiter <!channel>")
    _, _, url = await user.command(f"changes {run['id'][:12]}")
    reply = await user.reply(url)
    said = json.dumps(reply["blocks"], ensure_ascii=False)
    assert reply.get("response_type", "ephemeral") == "ephemeral"
    assert "64 files" in said and "+161 −12" in said
    assert said.index("src/big.py") < said.index("tests/test_00.py")  # largest first
    assert "`+40 −12`" in said
    assert "binary: not shown" in said and "truncated: too large to show" in said
    assert "and 24 more files" in said and "src/small.py" not in said  # the smallest are counted
    assert "Test the limiter &lt;!channel&gt;" in said and "<!channel>" not in said  # escaped
    assert any(e.get("action_id") == "steer:patch" for b in reply["blocks"] for e in b.get("elements", []))
    assert slack.violations == []


async def test_the_changes_button_answers_in_the_alerts_thread_once_and_the_patch_comes_as_a_file(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = failed_run(fabro)
    fabro.change(run["id"], "src/limiter.py", added=5, removed=2)
    fabro.change(run["id"], "secrets/.env", sensitive=True)
    alert = await alert_of(bot, slack)
    block = inspect_block(alert)
    await press(user, block, "changes", alert)
    await press(user, block, "changes", alert)  # the same click, delivered twice
    await wait_for(lambda: replies(slack, alert))
    await wait_for(lambda: len(fabro.calls(f"/api/v1/runs/{run['id']}/files")) >= 2)
    [answer] = replies(slack, alert)
    assert "src/limiter.py" in text_of(answer) and "sensitive: contents withheld" in text_of(answer)
    patch_block = next(b for b in answer.blocks if b.get("block_id", "").startswith("inspect:"))
    await press(user, patch_block, "patch", alert, ts="1700000002.000001")
    await wait_for(lambda: slack.shared_files(CHANNEL))
    [(carrier, shared)] = slack.shared_files(CHANNEL)
    assert carrier.thread_ts == alert.ts and shared["name"].endswith("changes.patch")
    content = slack.uploads[shared["id"]]["content"].decode()
    assert "+++ b/src/limiter.py" in content and "# secrets/.env: sensitive, withheld" in content
    for method in ("files.getUploadURLExternal", "files.completeUploadExternal"):
        assert len(slack.calls_to(method)) == 1


# -- Cost -------------------------------------------------------------------------------------------


async def test_cost_shows_each_stage_and_model_the_total_and_the_most_expensive_stage(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("succeeded", reason="completed")
    fabro.add(run)
    fabro.bill(
        run["id"],
        [
            ("plan", "claude-sonnet-4-5", 420_000, 12_000),
            ("implement", "claude-opus-4", 2_300_000, 90_000),
            ("lint", None, None, 0),
        ],
    )
    _, _, url = await user.command(f"cost {run['id']}")
    said = json.dumps((await user.reply(url))["blocks"], ensure_ascii=False)
    assert "$2.72" in said and "102,000 tokens" in said
    assert "Most expensive stage: `implement` ($2.30, 85% of the run)" in said
    assert said.index("`implement`") < said.index("`plan`")
    assert "claude-opus-4 · $2.30" in said and "claude-sonnet-4-5 · $0.42" in said
    assert slack.violations == []


async def test_the_cost_button_answers_in_the_thread(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = failed_run(fabro)
    fabro.bill(run["id"], [("verify", "claude-sonnet-4-5", 100_000, 5_000)])
    alert = await alert_of(bot, slack)
    await press(user, inspect_block(alert), "cost", alert)
    await wait_for(lambda: replies(slack, alert))
    assert "$0.10" in text_of(replies(slack, alert)[0])


# -- Logs -------------------------------------------------------------------------------------------


async def test_the_logs_button_uploads_the_logs_tail_and_quotes_the_failed_stages_last_lines(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = failed_run(fabro)
    fabro.logs[run["id"]] = b"".join(f"line {i:05d}\n".encode() for i in range(1000))  # 11,000 bytes
    alert = await alert_of(bot, slack)
    await press(user, inspect_block(alert), "logs", alert)
    await wait_for(lambda: slack.shared_files(CHANNEL))
    [(carrier, shared)] = slack.shared_files(CHANNEL)
    content = slack.uploads[shared["id"]]["content"]
    assert len(content) == 2048 and content.endswith(b"line 00999\n")  # LOG_MAX_BYTES, the tail kept
    assert carrier.thread_ts == alert.ts
    assert "the last 2.0 KiB kept" in carrier.text and "10.7 KiB" in carrier.text
    assert "stage `verify`" in carrier.text and "pytest failed" in carrier.text
    methods = [c.method for c in slack.calls if c.method.startswith("files.")]
    assert methods == ["files.getUploadURLExternal", "files.completeUploadExternal"]


async def test_runs_logs_sends_the_log_to_the_asker_privately(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("succeeded", reason="completed")
    fabro.add(run)
    fabro.logs[run["id"]] = b"all good\n"
    _, _, url = await user.command(f"logs {run['id']}")
    reply = await user.reply(url)
    assert "direct messages" in reply["text"]
    [(carrier, shared)] = slack.shared_files()
    assert carrier.channel == dm_of(ADA) and slack.uploads[shared["id"]]["content"] == b"all good\n"


async def test_a_run_without_a_log_is_told_in_a_sentence(user: SlackUser, fabro: FakeFabro, slack: FakeSlack) -> None:
    run = make_run("succeeded", reason="completed")
    fabro.add(run)
    _, _, url = await user.command(f"logs {run['id']}")
    reply = await user.reply(url)
    assert "Fabro has no log of this run (Run log not available; request id req_" in reply["text"]
    assert slack.shared_files() == []


async def test_a_crash_after_the_upload_does_not_upload_the_log_twice(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    from bot.core.keys import AlertKey, AlertKind

    key = AlertKey(AlertKind.REPLY, "01KJW4MG", "logs.abc")
    await bot.store.claim_alert(key, CHANNEL, bot.clock())  # claimed, then the process died after uploading…
    done = await bot.bolt.client.files_upload_v2(
        channel=CHANNEL, filename="01kjw4mg-abc-run.log", content=b"x", title="Run log", initial_comment="Log"
    )
    assert done["ok"]
    again = await bot.outbox.upload_once(
        key,
        CHANNEL,
        filename="01kjw4mg-abc-run.log",
        content=b"x",
        title="Run log",
        comment="Log",
    )
    assert again is False and len(slack.shared_files(CHANNEL)) == 1  # …found by its name, not sent again


# -- What Fabro refuses, endpoint by endpoint ---------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "path", "status", "detail", "said"),  # a 503 is tried again by the client: it comes thrice
    [
        (
            "changes",
            "files",
            404,
            "Run sandbox was not created.",
            "Fabro has no changes of this run to show (Run sandbox",
        ),
        ("changes", "files", 503, "git status failed.", "Fabro could not read this run's sandbox just now (git status"),
        ("changes", "commits", 409, "Run has no base SHA.", "Run has no base SHA"),
        ("changes", "commits", 404, "Run sandbox was not created.", "Run sandbox was not created"),
        ("cost", "billing", 404, "Run not found.", "Fabro has no cost of this run to show (Run not found; request id"),
        ("logs", "logs", 404, "Run log not available.", "Fabro has no log of this run (Run log not available;"),
        ("preview 3000", "preview", 404, "Run not found.", "Fabro has no preview for port 3000 of this run: Run not"),
        (
            "preview 3000",
            "preview",
            409,
            "Run has no active sandbox.",
            "no preview for port 3000 of this run: Run has no",
        ),
    ],
)
async def test_each_refusal_of_fabro_is_told_to_the_asker_in_a_sentence(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack, words: str, path: str, status: int, detail: str, said: str
) -> None:
    run = make_run("running", title="Add rate limiting")
    fabro.add(run)
    fabro.sandbox_ready(run["id"])
    fabro.change(run["id"], "src/app.py")
    verb, *rest = words.split()
    fabro.fail_next(status, 3 if status == 503 else 1, path_prefix=f"/api/v1/runs/{run['id']}/{path}", detail=detail)
    _, _, url = await user.command(" ".join([verb, run["id"], *rest]))
    reply = await user.reply(url)
    text = json.dumps(reply, ensure_ascii=False)
    assert said in text and "No run matches" not in text and "Traceback" not in text
    assert reply.get("response_type", "ephemeral") == "ephemeral"
    assert slack.messages == [] and slack.shared_files() == [] and slack.violations == []


async def test_a_graph_fabro_has_not_is_told_in_the_thread_askers_sentence(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = failed_run(fabro)
    alert = await alert_of(bot, slack)
    fabro.graphs.pop(run["id"], None)  # GET /graph and /graph/source: 404 "Graph not found."
    url = await press(user, inspect_block(alert), "graph", alert)
    reply = await user.reply(url)
    assert "Fabro has no graph of this run (Graph not found; request id req_" in reply["text"]
    assert replies(slack, alert) == [] and slack.shared_files() == []


async def test_a_patch_of_a_run_whose_sandbox_never_was_is_told_not_uploaded(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = failed_run(fabro)
    fabro.change(run["id"], "src/limiter.py", added=5, removed=2)
    alert = await alert_of(bot, slack)
    await press(user, inspect_block(alert), "changes", alert)
    await wait_for(lambda: replies(slack, alert))
    [answer] = replies(slack, alert)
    patch_block = next(b for b in answer.blocks if b.get("block_id", "").startswith("inspect:"))
    fabro.fail_next(404, path_prefix=f"/api/v1/runs/{run['id']}/files", detail="Run sandbox was not created.")
    reply = await user.reply(await press(user, patch_block, "patch", alert, ts="1700000002.000001"))
    assert "Fabro has no changes of this run to show (Run sandbox was not created; request id req_" in reply["text"]
    assert slack.shared_files() == [] and len(replies(slack, alert)) == 1


# -- Preview ----------------------------------------------------------------------------------------


async def test_a_preview_link_is_shown_only_to_the_asker_and_never_logged(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot")
    run = make_run("running")
    fabro.add(run)
    fabro.sandbox_ready(run["id"])
    _, _, url = await user.command(f"preview {run['id']} 3000")
    reply = await user.reply(url)
    [given] = fabro.previews
    assert given["port"] == 3000 and given["signed"] is True and given["ttl"] == 3600
    said = json.dumps(reply)
    assert given["url"] in said and "<!date^" in said and "shown only to you" in said
    assert reply.get("response_type", "ephemeral") == "ephemeral"
    assert slack.messages == [] and slack.calls_to("chat.postMessage") == []
    assert given["url"] not in caplog.text and "tkn=" not in caplog.text


async def test_a_preview_of_a_run_without_a_sandbox_says_why(user: SlackUser, fabro: FakeFabro) -> None:
    run = make_run("succeeded", reason="completed")
    fabro.add(run)
    _, _, url = await user.command(f"preview {run['id']} 8080")
    reply = await user.reply(url)
    assert "no preview for port 8080" in reply["text"] and "no active sandbox" in reply["text"]


async def test_a_preview_is_refused_to_whoever_allow_operate_leaves_out(
    start_bot: Callable[..., Awaitable[Bot]], fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await start_bot(database_url=f"sqlite:///{tmp_path}/refused.db", allow_operate="owner,admins")
    run = make_run("running")
    fabro.add(run)
    fabro.sandbox_ready(run["id"])
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        _, _, url = await user.command(f"preview {run['id']} 3000")
        reply = await user.reply(url)
    assert "You may not open a preview of a run's sandbox from Slack" in reply["text"]
    assert "ALLOW_OPERATE allows only the run's owner and workspace admins" in reply["text"]
    assert fabro.previews == [] and fabro.calls(method="POST") == []


async def test_preview_words_are_checked_before_fabro_is_asked(user: SlackUser, fabro: FakeFabro) -> None:
    _, ack, _ = await user.command("preview 01KJW4MG 99999")
    assert "65535" in ack and fabro.calls(method="POST") == []


# -- Graph ------------------------------------------------------------------------------------------

DOT = "digraph implement {\n  plan [label=plan];\n  verify [label=verify];\n  plan -> verify;\n}\n"


async def test_the_graph_button_posts_a_png_with_the_current_stage_marked(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = failed_run(fabro)
    fabro.graphs[run["id"]] = DOT
    drawn: list[str] = []
    render = bot.inspector.render_png
    assert render is not None

    def keep(svg: str) -> bytes:
        drawn.append(svg)
        return render(svg)

    bot.inspector.render_png = keep
    alert = await alert_of(bot, slack)
    await press(user, inspect_block(alert), "graph", alert)
    await wait_for(lambda: slack.shared_files(CHANNEL))
    [(carrier, shared)] = slack.shared_files(CHANNEL)
    assert shared["name"].endswith("graph.png"), carrier.text
    assert slack.uploads[shared["id"]]["content"].startswith(b"\x89PNG\r\n\x1a\n")
    assert "the current stage `verify` is marked" in carrier.text
    verify = drawn[0].split("<title>verify</title>")[1].split("</g>")[0]
    assert 'stroke="#d84315"' in verify and 'stroke="#d84315"' not in drawn[0].split("<title>verify</title>")[0]


async def test_without_an_image_renderer_the_graph_comes_as_its_dot_source(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = failed_run(fabro)
    fabro.graphs[run["id"]] = DOT
    bot.inspector.render_png = None
    alert = await alert_of(bot, slack)
    await press(user, inspect_block(alert), "graph", alert)
    await wait_for(lambda: slack.shared_files(CHANNEL))
    [(carrier, shared)] = slack.shared_files(CHANNEL)
    assert shared["name"].endswith("graph.dot") and slack.uploads[shared["id"]]["content"] == DOT.encode()
    assert "no image renderer is installed" in carrier.text


def test_even_at_debug_slacks_sdk_does_not_log_the_bodies_it_sends() -> None:
    """slack_sdk logs request bodies at DEBUG: a preview link would be in them."""
    from bot.config import configure_logging

    root = logging.getLogger()
    kept = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in ("slack_sdk", "slack_bolt")})
    try:
        configure_logging("DEBUG", [])
        assert logging.getLogger("slack_sdk.web.async_base_client").getEffectiveLevel() == logging.INFO
        assert logging.getLogger("slack_sdk.webhook.async_client").getEffectiveLevel() == logging.INFO
        assert logging.getLogger("bot").getEffectiveLevel() == logging.DEBUG
    finally:
        root.handlers[:], root.level = kept[0], kept[1]
        for name, level in kept[2].items():
            logging.getLogger(name).setLevel(level)


async def test_when_fabro_fails_the_clicker_is_told_and_nothing_is_posted_in_the_thread(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = failed_run(fabro)
    alert = await alert_of(bot, slack)
    fabro.fail_next(503, count=3, path_prefix=f"/api/v1/runs/{run['id']}/files")
    url = await press(user, inspect_block(alert), "changes", alert)
    reply = await user.reply(url)
    assert reply["response_type"] == "ephemeral" and "req_" in json.dumps(reply)
    assert replies(slack, alert) == []


async def test_a_channel_that_will_not_take_the_file_is_told_kindly(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = failed_run(fabro)
    fabro.logs[run["id"]] = b"log\n"
    alert = await alert_of(bot, slack)
    slack.unreachable[CHANNEL] = "not_in_channel"
    url = await press(user, inspect_block(alert), "logs", alert)
    reply = await user.reply(url)
    assert "not_in_channel" in reply["text"] and "/invite" in reply["text"] and "reference" not in reply["text"]


async def test_the_detail_card_looks_privately_and_says_where_to_ask(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("running", title="Add rate limiting")
    fabro.add(run)
    fabro.sandbox_ready(run["id"])
    fabro.bill(run["id"], [("plan", "claude-sonnet-4-5", 50_000, 1_000)])
    _, _, url = await user.command(run["id"])
    card = await user.reply(url)
    [block] = [b for b in card["blocks"] if b["type"] == "actions" and b["block_id"].startswith("inspect:")]
    assert "steer:ask" not in json.dumps(block) and "mentioning me in the thread" in json.dumps(card)
    _, _, clicked = await user.click(
        {"action_id": "steer:cost", "value": "cost"}, block_id=block["block_id"], ephemeral=True
    )
    reply = await user.reply(clicked)
    assert reply["response_type"] == "ephemeral" and "$0.05" in json.dumps(reply)
    assert slack.messages == []  # nothing in the channel: the card was the asker's alone
