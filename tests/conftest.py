"""Shared fixtures: fake Fabro and fake Slack on loopback, the bot in front of them, and
helpers that send Slack requests exactly as Slack does (form-encoded and signed)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.app import Bot
from bot.config import Settings
from tests.fakes.fabro import FakeFabro
from tests.fakes.slack import FakeSlack, Message

# What the `start_bot` fixture gives: `await start_bot(**settings)` is a started bot.
StartBot = Callable[..., Awaitable[Bot]]

SIGNING_SECRET = "test-signing-secret-" + "5" * 12

# PostgreSQL for the store tests: this server, or TEST_DATABASE_URL. CI sets
# TEST_REQUIRE_POSTGRES=1 so that a missing server fails the run instead of skipping.
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_unavailable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except Exception as exc:
        where = POSTGRES_URL.split("@")[-1]
        return f"PostgreSQL at {where} is not reachable ({type(exc).__name__}); set TEST_DATABASE_URL"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    reason = _postgres_unavailable()
    if reason is not None:
        if os.environ.get("TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + " and TEST_REQUIRE_POSTGRES=1")
        pytest.skip(reason)
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A DATABASE_URL on a fresh, empty schema of its own, dropped afterwards."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in postgres_server else "?"
    yield f"{postgres_server}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read the developer's own settings or .env file."""
    for name in list(os.environ):
        ours = name.startswith(
            ("SLACK_", "FABRO_", "ALERT_", "POLL_", "ACTION_", "HEALTH_", "LOG_", "SUBSCRIPTION_", "ALLOW_", "GITHUB_")
        )
        if ours or name in ("DATABASE_URL", "PORT", "HOST", "SLASH_COMMAND", "USER_LINKING", "EXTERNAL_CHANNELS"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SKIP_SLACK_SDK_WARNING", "1")


async def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll until `predicate()` is truthy; fail with a clear message at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


async def wait_until(predicate: Callable[[], Awaitable[Any]], timeout: float = 5.0, interval: float = 0.05) -> Any:
    """`wait_for` for a condition that must itself be awaited (an HTTP probe, a cycle)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


def sign(body: str, timestamp: int | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


@pytest.fixture
async def fabro() -> AsyncIterator[FakeFabro]:
    server = await FakeFabro().start()
    yield server
    await server.stop()
    # Every request the bot sent and every answer the fake gave kept to Fabro's published contract.
    assert not server.violations, "off Fabro's OpenAPI contract:\n" + "\n".join(server.violations)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    server = await FakeSlack().start()
    yield server
    await server.stop()


def bot_settings(fabro: FakeFabro, slack: FakeSlack, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "fabro_api_url": fabro.url,
        "fabro_api_token": fabro.token,
        "fabro_web_url": "https://fabro.example.com",
        "slack_bot_token": slack.bot_token,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": slack.api_url,
        "host": "127.0.0.1",
        "port": 0,
        "fabro_timeout_seconds": 2.0,
    }
    if not {"action_allowlist", "subscription_allowlist"} & overrides.keys():
        # Most tests act as one person on runs nobody owns: they run with every class open.
        # Tests of permissions name the rules they mean (or the deprecated allowlists).
        for name in ("allow_answer", "allow_approve", "allow_operate", "allow_start", "allow_ship", "allow_route"):
            values[name] = "*"
    values.setdefault("user_linking", "self")  # most tests link by typing a login; identity tests say otherwise
    values.update(overrides)
    return Settings(_env_file=None, **values)


def event_body(event: dict[str, Any]) -> str:
    """An Events API callback around `event`, as Slack posts it (JSON)."""
    return json.dumps(
        {
            "token": "deprecated",
            "team_id": "T111",
            "api_app_id": "A111",
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "event": event,
        }
    )


@dataclass
class SlackUser:
    """Sends what Slack sends: signed, form-encoded commands and interaction payloads."""

    url: str
    slack: FakeSlack
    session: aiohttp.ClientSession
    command_name: str = "/runs"

    @classmethod
    def of(cls, bot: Bot, slack: FakeSlack, session: aiohttp.ClientSession) -> SlackUser:
        """A user talking to `bot`'s HTTP endpoint."""
        return cls(f"http://127.0.0.1:{bot.http_port}/slack/events", slack, session)

    async def post(
        self,
        body: str,
        headers: dict[str, str] | None = None,
        *,
        content_type: str = "application/x-www-form-urlencoded",
    ) -> tuple[int, str]:
        all_headers = {"Content-Type": content_type, **sign(body), **(headers or {})}
        async with self.session.post(self.url, data=body.encode(), headers=all_headers) as response:
            return response.status, await response.text()

    def command_body(self, text: str, *, user: str = "U123ADA", channel: str = "C123OPS") -> tuple[str, str]:
        response_url = self.slack.response_url()
        body = urlencode(
            {
                "token": "deprecated",
                "team_id": "T111",
                "team_domain": "test",
                "channel_id": channel,
                "channel_name": "ops",
                "user_id": user,
                "user_name": "ada",
                "command": self.command_name,
                "text": text,
                "api_app_id": "A111",
                "is_enterprise_install": "false",
                "response_url": response_url,
                "trigger_id": "123.456.abc",
            }
        )
        return body, response_url

    async def command(self, text: str, **kw: Any) -> tuple[int, str, str]:
        """POST a signed slash command; returns (status, ack body, response_url)."""
        body, response_url = self.command_body(text, **kw)
        status, ack = await self.post(body)
        return status, ack, response_url

    def action_payload(
        self,
        action: dict[str, Any],
        *,
        message: dict[str, Any] | None = None,
        user: str = "U123ADA",
        block_id: str = "runs:paging",
        channel: str = "C123OPS",
        message_ts: str = "1700000000.000001",
        ephemeral: bool = True,
        state: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], str]:
        response_url = self.slack.response_url()
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": "ada", "name": "ada", "team_id": "T111"},
            "api_app_id": "A111",
            "token": "deprecated",
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel,
                "is_ephemeral": ephemeral,
            },
            "trigger_id": "123.456.abc",
            "team": {"id": "T111", "domain": "test"},
            "channel": {"id": channel, "name": "ops"},
            "message": message or {"type": "message", "text": "", "ts": message_ts},
            "response_url": response_url,
            "actions": [{"block_id": block_id, "action_ts": "1700000001.000001", "type": "button", **action}],
        }
        if state is not None:
            payload["state"] = {"values": state}
        return payload, response_url

    async def click(self, action: dict[str, Any], **kw: Any) -> tuple[int, str, str]:
        payload, response_url = self.action_payload(action, **kw)
        status, ack = await self.post(urlencode({"payload": json.dumps(payload)}))
        return status, ack, response_url

    async def press(self, message: Message, action_id: str, *, user: str = "U123ADA") -> tuple[int, str]:
        """Press the one button `action_id` of a message the bot posted in a conversation, signed as
        Slack sends it; returns (status, response_url)."""
        actions = [b for b in message.blocks if b["type"] == "actions"]
        [(block, element)] = [(b, e) for b in actions for e in b["elements"] if e["action_id"] == action_id]
        status, _, response_url = await self.click(
            {"action_id": action_id, "value": element.get("value")},
            block_id=block["block_id"],
            user=user,
            channel=message.channel,
            message_ts=message.ts,
            ephemeral=False,
        )
        return status, response_url

    async def submit_view(
        self,
        view: dict[str, Any],
        values: dict[str, str],
        *,
        user: str = "U123ADA",
        state: dict[str, Any] | None = None,
    ) -> tuple[int, str]:
        """Submit a modal the bot opened, with `values` typed into its inputs (block id = action id),
        or with a raw `state` for other inputs (radio buttons, selects)."""
        payload = {
            "type": "view_submission",
            "team": {"id": "T111", "domain": "test"},
            "user": {"id": user, "username": "ada", "name": "ada", "team_id": "T111"},
            "api_app_id": "A111",
            "token": "deprecated",
            "trigger_id": "123.456.def",
            "view": {
                **view,
                "id": "V0001",
                "team_id": "T111",
                "app_id": "A111",
                "bot_id": "B111",
                "state": {
                    "values": state or {k: {k: {"type": "plain_text_input", "value": v}} for k, v in values.items()}
                },
            },
        }
        return await self.post(urlencode({"payload": json.dumps(payload)}))

    async def mention(self, text: str, *, channel: str, thread_ts: str, user: str = "U123ADA") -> tuple[int, str]:
        """An Events API `app_mention` in a thread, posted as JSON the way Slack sends events."""
        return await self.post(
            self.mention_body(text, channel=channel, thread_ts=thread_ts, user=user), content_type="application/json"
        )

    def mention_body(self, text: str, *, channel: str, thread_ts: str, user: str = "U123ADA") -> str:
        return event_body(
            {
                "type": "app_mention",
                "user": user,
                "text": f"<@U0BOT> {text}",
                "ts": f"{time.time():.6f}",
                "channel": channel,
                "thread_ts": thread_ts,
                "event_ts": f"{time.time():.6f}",
            }
        )

    async def open_home(self, user: str = "U123ADA") -> tuple[int, str]:
        """The Events API `app_home_opened` Slack sends when someone opens the app's Home tab."""
        event = {"type": "app_home_opened", "user": user, "channel": "D" + user[1:], "tab": "home"}
        return await self.post(event_body(event), content_type="application/json")

    async def reply(self, response_url: str, timeout: float = 5.0, index: int = 0) -> dict[str, Any]:
        """The `index`-th message the bot posted to `response_url` (waits for it)."""
        await wait_for(lambda: len(self.slack.responses_to(response_url)) > index, timeout)
        return self.slack.responses_to(response_url)[index]


@pytest.fixture
async def start_bot(fabro: FakeFabro, slack: FakeSlack) -> AsyncIterator[StartBot]:
    """`start_bot(**settings)` starts a bot on the fakes; `schedule_alerts` (off unless a test
    asks: cycles are driven by the tests) and `alert_pace` go to the Bot itself. Every bot
    started is stopped at the end (stopping twice is harmless)."""
    started: list[Bot] = []

    async def start(*, schedule_alerts: bool = False, alert_pace: float = 1.0, **overrides: Any) -> Bot:
        extra = {"clock": overrides.pop("clock")} if "clock" in overrides else {}
        bot = Bot(
            bot_settings(fabro, slack, **overrides), schedule_alerts=schedule_alerts, alert_pace=alert_pace, **extra
        )
        await bot.start()
        started.append(bot)
        return bot

    yield start
    for bot in started:
        await bot.stop()


@pytest.fixture
async def user(start_bot: StartBot, slack: FakeSlack) -> AsyncIterator[SlackUser]:
    bot = await start_bot()
    async with aiohttp.ClientSession() as session:
        yield SlackUser.of(bot, slack, session)
