"""`fabro-slack-bot run` starts quietly in either mode: one ready line, and no library's own news."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
from pathlib import Path

import pytest

from tests.app.test_cli import COMMAND, _env, fake_env
from tests.fakes.fabro import FakeFabro
from tests.fakes.slack import FakeSlack

# "<date> <time> <LEVEL> <logger> <message>": the text format of configure_logging.
LINE = re.compile(r"^\S+ \S+ (?P<level>[A-Z]+) (?P<logger>\S+) ")


async def lines_of_a_run(env: dict[str, str]) -> list[str]:
    """stderr of a real `fabro-slack-bot run` from its start to a clean SIGTERM once it has started:
    ready, and its first alert cycle done."""
    process = await asyncio.create_subprocess_exec(
        COMMAND, "run", env=_env(env), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    lines: list[str] = []
    try:
        assert process.stderr is not None
        while not any(" first alert cycle" in line for line in lines):
            line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
            assert line, "the process ended before it was ready:\n" + "".join(lines)
            lines.append(line)
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(process.communicate(), 30)
    return [line.rstrip("\n") for line in lines] + rest.decode().splitlines()


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_at_the_default_level_only_the_bot_speaks_and_says_once_that_it_is_ready(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, mode: str
) -> None:
    database = f"sqlite:///{tmp_path}/bot.db"
    if mode == "socket":
        env = fake_env(fabro, slack, SLACK_APP_TOKEN=slack.app_token, HEALTH_PORT="0", DATABASE_URL=database)
    else:
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            port = str(free.getsockname()[1])
        env = fake_env(fabro, slack, HOST="127.0.0.1", PORT=port, DATABASE_URL=database)
    lines = await lines_of_a_run(env)
    loggers = [m.group("logger") for m in map(LINE.match, lines) if m is not None]
    assert len(loggers) == len(lines), lines  # every line is a log line of ours, none a bare library print
    assert sum(" ready: " in line for line in lines) == 1
    assert [name for name in loggers if not name.startswith("bot.")] == [], lines
    ready = next(line for line in lines if " ready: " in line)
    assert ("Socket Mode" if mode == "socket" else "HTTP mode") in ready
    assert f"store {database} (one process); Fabro at {fabro.url}" in ready
