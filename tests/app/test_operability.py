"""Probes, metrics and logs an operator relies on: /healthz, /readyz, /metrics in HTTP mode and
on HEALTH_PORT in Socket Mode, and one-line (JSON) logs that never carry a secret."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import aiohttp
import pytest

from bot.config import configure_logging
from tests.conftest import SlackUser, StartBot
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def test_http_mode_serves_health_readiness_and_metrics(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    fabro.add(make_run("blocked"))
    bot = await start_bot()
    base = f"http://127.0.0.1:{bot.http_port}"
    assert await get(f"{base}/healthz") == (200, '{"ok": true}')
    status, body = await get(f"{base}/readyz")
    assert status == 200 and json.loads(body) == {"ok": True, "checks": {"store": True, "fabro": True, "slack": True}}

    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        await user.reply((await user.command("blocked"))[2])
        await user.command("faild")
    _, metrics = await get(f"{base}/metrics")
    assert 'fabro_bot_commands_total{outcome="ok"} 1.0' in metrics
    assert 'fabro_bot_commands_total{outcome="usage_error"} 1.0' in metrics
    assert 'fabro_bot_fabro_requests_total{method="GET",route="/runs",status="200"} 1.0' in metrics
    assert 'fabro_bot_slack_calls_total{method="auth.test",result="ok"}' in metrics
    assert "fabro_bot_command_seconds_bucket" in metrics
    assert "fabro_bot_scheduler_leader 1.0" in metrics


async def test_a_fabro_outage_is_reported_but_keeps_the_replica_ready(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    """Behind a load balancer, an unready replica gets no traffic: people would get timeouts
    instead of the "Fabro is down" sentence. So Fabro's state is reported, not gating."""
    bot = await start_bot(fabro_timeout_seconds=0.5)
    fabro.fail_next(503, count=20)
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        for _ in range(2):
            said = (await user.reply((await user.command("failed"))[2]))["text"]
            assert said.startswith(("Fabro could not be reached", "Fabro did not answer"))
    base = f"http://127.0.0.1:{bot.http_port}"
    status, body = await get(f"{base}/readyz")
    assert status == 200 and json.loads(body)["checks"] == {"store": True, "slack": True, "fabro": False}
    assert "fabro_bot_fabro_reachable 0.0" in (await get(f"{base}/metrics"))[1]
    fabro.faults.clear()
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        await user.reply((await user.command("failed"))[2])
    assert json.loads((await get(f"{base}/readyz"))[1])["checks"]["fabro"] is True
    assert "fabro_bot_fabro_reachable 1.0" in (await get(f"{base}/metrics"))[1]


async def test_readiness_rechecks_slack_within_30_seconds_of_a_success(start_bot: StartBot, slack: FakeSlack) -> None:
    bot = await start_bot()
    now = [1000.0]
    bot.monotonic = lambda: now[0]
    base = f"http://127.0.0.1:{bot.http_port}"
    assert (await get(f"{base}/readyz"))[0] == 200
    slack.bot_token = "xoxb-revoked-and-replaced"  # the bot's token stops working
    now[0] += 10
    assert (await get(f"{base}/readyz"))[0] == 200  # the answer is kept for a while…
    now[0] += 25
    status, body = await get(f"{base}/readyz")  # …but never longer than 30 s
    assert status == 503 and json.loads(body)["checks"]["slack"] is False


async def test_a_deleted_database_file_makes_the_replica_unready_with_one_error(
    start_bot: StartBot, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bot.db"
    bot = await start_bot(database_url=f"sqlite:///{path}")
    base = f"http://127.0.0.1:{bot.http_port}"
    assert (await get(f"{base}/readyz"))[0] == 200
    path.unlink()
    for _ in range(3):
        status, body = await get(f"{base}/readyz")
        assert status == 503 and json.loads(body)["checks"]["store"] is False
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and "was deleted or replaced" in r.getMessage()]
    assert len(errors) == 1
    assert not path.exists()  # nothing was written into a new file behind the bot's back


async def test_a_locked_database_makes_the_replica_unready(start_bot: StartBot, tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "bot.db"
    bot = await start_bot(database_url=f"sqlite:///{path}")
    base = f"http://127.0.0.1:{bot.http_port}"
    assert (await get(f"{base}/readyz"))[0] == 200
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        status, body = await get(f"{base}/readyz")  # a read alone would still succeed in WAL mode
        assert status == 503 and json.loads(body)["checks"]["store"] is False
    finally:
        other.execute("ROLLBACK")
        other.close()


async def test_readiness_reports_a_refused_slack_token(start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack) -> None:
    bot = await start_bot(slack_bot_token="xoxb-not-the-right-one")
    status, body = await get(f"http://127.0.0.1:{bot.http_port}/readyz")
    assert status == 503 and json.loads(body)["checks"] == {"store": True, "slack": False, "fabro": True}


async def test_socket_mode_exposes_the_probes_on_health_port(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    bot = await start_bot(slack_app_token=slack.app_token, slack_signing_secret=None, health_port=0)
    await slack.wait_for_socket()
    assert bot.http_port is None and bot.health_port
    base = f"http://127.0.0.1:{bot.health_port}"
    assert (await get(f"{base}/healthz"))[0] == 200
    assert (await get(f"{base}/readyz"))[0] == 200
    assert "fabro_bot_event_stream_connected" in (await get(f"{base}/metrics"))[1]
    async with aiohttp.ClientSession() as session, session.post(f"{base}/slack/events", data="x") as response:
        assert response.status == 404  # the probe port serves probes only


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_logs_are_one_line_each_and_never_carry_a_secret(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "xoxb-" + "9" * 30
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("INFO", [secret], fmt)
    log = logging.getLogger("bot.test")
    rid, alert = "4f1c2b9a-1111-2222-3333-444455556666", "failed:01KJW4MG800000000000000004"
    log.warning("fabro GET /runs timed out request_id=%s", rid, extra={"request_id": rid})
    log.info("slack answered not_in_channel slack_request_id=8e1f00aa77", extra={"slack_request_id": "8e1f00aa77"})
    try:
        raise RuntimeError(f"token {secret} was refused")
    except RuntimeError:
        log.exception("alert %s not delivered", alert, extra={"alert": alert})
    lines = stream.getvalue().splitlines()
    assert secret not in stream.getvalue() and "[redacted]" in stream.getvalue()
    if fmt == "json":
        first, slack_line, second = (json.loads(line) for line in lines)
        assert first["request_id"] == "4f1c2b9a-1111-2222-3333-444455556666" and first["level"] == "WARNING"
        assert slack_line["slack_request_id"] == "8e1f00aa77" and "request_id" not in slack_line
        assert second["alert"] == alert and "RuntimeError" in second["error"]
        assert list(first) == ["ts", "level", "logger", "message", "request_id"]  # the ids are fields, not guesses
    else:
        assert lines[0].endswith("request_id=4f1c2b9a-1111-2222-3333-444455556666")
    logging.getLogger().handlers.clear()


async def test_alert_metrics_count_posts_and_updates(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await start_bot(alert_channel="C0M", alert_pace=0.0, database_url=f"sqlite:///{tmp_path}/m.db")
    await bot.scheduled_cycle()
    run = make_run("running")
    fabro.add(run)
    fabro.fail(run["id"])
    await bot.scheduled_cycle()
    fabro.archive(run["id"])
    await bot.scheduled_cycle()
    _, metrics = await get(f"http://127.0.0.1:{bot.http_port}/metrics")
    assert 'fabro_bot_alerts_total{event="posted"} 1.0' in metrics
    assert 'fabro_bot_alerts_total{event="updated"} 1.0' in metrics
    assert 'fabro_bot_alert_cycles_total{result="done"} 3.0' in metrics


async def test_the_fabro_clients_log_lines_carry_fabros_request_id_as_a_field(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from bot.fabro.client import FabroClient
    from bot.fabro.errors import FabroUnavailable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("INFO", [], "json")
    try:
        async with FabroClient(closed, "t", timeout=5) as fabro:
            with pytest.raises(FabroUnavailable) as caught:
                await fabro.health()
    finally:
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    failed = [line for line in lines if line["logger"] == "bot.fabro.client"]
    assert len(failed) == 3  # the first try and two retries, paced by stamina
    assert {line["request_id"] for line in failed} == {caught.value.request_id}
