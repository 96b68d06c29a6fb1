"""The installed `fabro-slack-bot` command: preview, check, and run as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from tests.conftest import SIGNING_SECRET, SlackUser, wait_until
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack

COMMAND = str(Path(sys.executable).parent / "fabro-slack-bot")


async def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30, cwd: Path | None = None
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        COMMAND, *args, env=_env(env), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=cwd
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None  # communicate() returns once the process has exited
    return process.returncode, out.decode(), err.decode()


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "FABRO_"))}
    return base | (extra or {})


def fake_env(fabro: FakeFabro, slack: FakeSlack, **extra: str) -> dict[str, str]:
    return {
        "FABRO_API_URL": fabro.url,
        "FABRO_API_TOKEN": fabro.token,
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        **extra,
    }


async def test_preview_demo_needs_no_configuration() -> None:
    code, out, err = await run_cli("preview", "--demo", "--json", "failed sort:elapsed asc")
    assert code == 0, err
    message = json.loads(out)
    assert message["response_type"] == "ephemeral"
    sections = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]
    assert sections[0].startswith("*Failed runs, by elapsed time (ascending)* — 2 match")
    assert "sandbox init failed" in sections[1]  # the shorter failure comes first


async def test_preview_demo_shows_a_detail_card_with_the_failure_message() -> None:
    code, out, _ = await run_cli("preview", "--demo", "--json", "01KJT9DB")
    assert code == 0
    assert "still fail after 4 attempts" in out


async def test_preview_of_a_typo_prints_the_usage_error() -> None:
    code, out, _ = await run_cli("preview", "--demo", "--json", "blokced")
    assert code == 0 and "Did you mean `blocked`?" in out


async def test_run_without_settings_lists_each_problem_and_exits_2() -> None:
    code, _out, err = await run_cli("run")
    assert code == 2
    assert "FABRO_API_URL: missing" in err and "SLACK_BOT_TOKEN: missing" in err
    assert "Traceback" not in err


async def test_check_passes_against_a_working_fabro_and_slack(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    code, out, err = await run_cli("check", env=fake_env(fabro, slack), cwd=tmp_path)
    assert code == 0, out + err
    assert "✓ settings" in out and "✓ Slack accepts the bot token" in out
    assert f"✓ Fabro at {fabro.url} is reachable (GET /health)" in out
    assert f"✓ Fabro at {fabro.url} accepts the API token (GET /api/v1/runs)" in out
    # A real Fabro has no /api/v1/user (it answers 404 whatever the token): check must not rely on it.
    assert not fabro.calls("/api/v1/user")
    assert "✓ database sqlite:///./fabro-slack-bot.db does not exist yet: `run` creates it" in out
    assert not (tmp_path / "fabro-slack-bot.db").exists()  # check changes nothing
    assert "✓ Slack app scopes" in out
    assert "who may act from Slack:" in out
    assert err == ""


async def test_check_names_missing_slack_scopes_and_what_they_break(fabro: FakeFabro, slack: FakeSlack) -> None:
    slack.scopes = ("commands", "chat:write")
    code, out, _ = await run_cli("check", env=fake_env(fabro, slack))
    assert code == 1
    assert "✗ Slack app scopes: missing, reinstall the app from its manifest:" in out
    assert "channels:history — after a crash, finding alerts already posted" in out


def test_check_knows_exactly_the_scopes_the_manifest_asks_for() -> None:
    from bot.cli import SCOPES
    from tests.app.test_manifest import manifest

    assert set(SCOPES) == set(manifest()["oauth_config"]["scopes"]["bot"])


async def test_check_names_an_unreachable_database_and_maps_the_deprecated_allowlist(
    fabro: FakeFabro, slack: FakeSlack
) -> None:
    env = fake_env(
        fabro, slack, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none", ACTION_ALLOWLIST="U1AAA,S2BBB"
    ) | {"ALLOW_ANSWER": "*"}
    code, out, _ = await run_cli("check", env=env)
    assert code == 1
    assert "✗ database postgresql://nobody@127.0.0.1:1/none" in out
    assert "ALLOW_ANSWER   everyone  (ALLOW_ANSWER)" in out
    for setting in ("ALLOW_APPROVE", "ALLOW_OPERATE", "ALLOW_START", "ALLOW_SHIP", "ALLOW_ROUTE"):
        assert f"{setting:<14} U1AAA and the members of S2BBB  (ACTION_ALLOWLIST (deprecated))" in out
    assert "! ACTION_ALLOWLIST is deprecated and will be removed in the next release" in out


async def test_check_prints_the_effective_permission_table_with_its_defaults(
    fabro: FakeFabro, slack: FakeSlack
) -> None:
    _code, out, _ = await run_cli("check", env=fake_env(fabro, slack, ALLOW_START="S0ONCALL,admins"))
    assert "ALLOW_ANSWER   everyone  (default)" in out
    assert "ALLOW_APPROVE  the run's owner and workspace admins  (default)" in out
    assert "ALLOW_OPERATE  the run's owner and workspace admins  (default)" in out
    assert "ALLOW_START    workspace admins and the members of S0ONCALL  (ALLOW_START)" in out
    assert "ALLOW_SHIP     the run's owner and workspace admins  (default)" in out
    assert "ALLOW_ROUTE    workspace admins  (default)" in out
    assert "deprecated" not in out


async def test_check_fails_on_a_refused_token_without_printing_it(fabro: FakeFabro, slack: FakeSlack) -> None:
    bad = "fabro_dev_" + "ef" * 32
    code, out, err = await run_cli("check", env=fake_env(fabro, slack, FABRO_API_TOKEN=bad))
    assert code == 1
    assert f"✓ Fabro at {fabro.url} is reachable" in out
    assert f"✗ Fabro at {fabro.url} refuses the API token: Invalid access token." in out
    assert bad not in out + err


async def test_check_says_fabro_is_unreachable_rather_than_blaming_the_token(
    fabro: FakeFabro, slack: FakeSlack
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    code, out, _ = await run_cli("check", env=fake_env(fabro, slack, FABRO_API_URL=closed, FABRO_TIMEOUT_SECONDS="2"))
    assert code == 1
    assert f"✗ Fabro at {closed} is unreachable: Could not connect to Fabro." in out
    assert "API token" not in out


async def test_check_never_prints_credentials_in_urls(fabro: FakeFabro, slack: FakeSlack, postgres_server: str) -> None:
    with_user = fabro.url.replace("http://", "http://robot:hunter2-fabro@")
    database = postgres_server.replace("postgresql://postgres@", "postgresql://postgres:hunter2-db@")
    env = fake_env(fabro, slack, FABRO_API_URL=with_user, DATABASE_URL=database)
    _code, out, err = await run_cli("check", env=env)
    assert "hunter2" not in out + err
    assert f"Fabro at {fabro.url.replace('http://', 'http://robot@')} is reachable" in out
    assert "database postgresql://postgres@127.0.0.1:5432" in out


async def test_check_hides_a_database_password_given_in_the_query_string(
    fabro: FakeFabro, slack: FakeSlack, postgres_server: str
) -> None:
    separator = "&" if "?" in postgres_server else "?"
    for form in ("password=hunter2-query", "sslpassword=hunter2-ssl&password=hunter2-both", "PASSWORD=hunter2-caps"):
        env = fake_env(fabro, slack, DATABASE_URL=f"{postgres_server}{separator}{form}")
        _code, out, err = await run_cli("check", env=env)
        assert "hunter2" not in out + err, form
        assert "database postgresql://postgres@127.0.0.1:5432" in out


async def test_run_serves_http_and_stops_cleanly_on_sigterm(fabro: FakeFabro, slack: FakeSlack) -> None:
    fabro.add(make_run("blocked", title="From a real process"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = _env(fake_env(fabro, slack, HOST="127.0.0.1", PORT=str(port), LOG_LEVEL="DEBUG"))
    process = await asyncio.create_subprocess_exec(
        COMMAND, "run", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with aiohttp.ClientSession() as session:

            async def healthy() -> bool:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_until(healthy, timeout=30)  # a start takes seconds on a loaded machine
            user = SlackUser(f"http://127.0.0.1:{port}/slack/events", slack, session)
            status, _, response_url = await user.command("blocked")
            assert status == 200
            reply = await user.reply(response_url)
            assert "From a real process" in json.dumps(reply["blocks"])
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 0
    logs = err.decode()
    assert f"HTTP mode, listening on http://127.0.0.1:{port}/slack/events" in logs
    for secret in (fabro.token, slack.bot_token, SIGNING_SECRET):
        assert secret not in logs


async def test_run_starts_quietly_with_one_ready_line_naming_mode_store_and_fabro(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # SLACK_BOT_TOKEN in the environment is what makes Bolt warn that a token "will be unused".
    database = f"sqlite:///{tmp_path}/bot.db"
    env = _env(fake_env(fabro, slack, HOST="127.0.0.1", PORT=str(port), DATABASE_URL=database))
    process = await asyncio.create_subprocess_exec(
        COMMAND, "run", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    lines: list[str] = []
    try:
        assert process.stderr is not None
        while not any("ready:" in line for line in lines):
            lines.append((await asyncio.wait_for(process.stderr.readline(), 20)).decode())
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(process.communicate(), 15)
    ready = lines[-1]
    assert " INFO bot.app ready: HTTP mode, listening on " in ready
    assert f"store {database} (one process); Fabro at {fabro.url}; alerts every 30s" in ready
    lines += rest.decode().splitlines()
    assert not [line for line in lines if "unused" in line or "apscheduler" in line or "Scheduler" in line]
    # Besides the ready line, only the bot's own news: who leads the alerts, the first cycle, goodbye.
    news = ("alert scheduler leader", "first alert cycle", "shutting down")
    others = [line for line in lines if " INFO " in line and "ready:" not in line]
    assert all(any(n in line for n in news) for line in others), others
    assert len(others) <= 4


async def test_python_dash_m_bot_is_the_same_command() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "--version", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0 and out.decode().startswith("fabro-slack-bot ")


async def test_preview_answers_every_command_the_slash_command_answers() -> None:
    for words in ("subscribe failed", "subscriptions", "unsubscribe all"):
        code, out, err = await run_cli("preview", "--demo", "--json", words)
        assert code == 0, err
        assert "Subscriptions belong to a Slack channel" in json.loads(out)["text"]
    code, out, _ = await run_cli("preview", "--demo", "--json", "summary daily 09:00")
    assert code == 0 and "Daily summaries belong to a Slack channel" in json.loads(out)["text"]
    code, out, _ = await run_cli("preview", "--demo", "limit:²")
    assert code == 0 and "limit takes a whole number" in out


async def test_check_validates_every_workflow_against_fabro_and_names_what_is_wrong(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "workflow.fabro").write_text("digraph B { a -> b }")
    env = fake_env(fabro, slack) | {"WORKFLOWS_DIR": str(tmp_path), "REPOSITORIES": "acme/api"}
    code, out, _ = await run_cli("check", env=env)
    assert code == 1
    assert "✓ workflow implement is valid (POST /api/v1/validate)" in out
    assert "✗ workflow broken is invalid: start_node:" in out
    assert "work from Slack may start on: acme/api" in out
    assert len(fabro.calls("/api/v1/validate", method="POST")) == 2
