"""A fake Slack: the Web API, response_url sinks and a Socket Mode WebSocket, on 127.0.0.1.

Every message the bot sends is checked against Slack's Block Kit limits independently
of the bot's own builders (here and through slack_sdk's validators), and recorded.
Tests can make any method answer 429 with Retry-After, as Slack does.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from aiohttp import WSMsgType, web
from slack_sdk.models.blocks import Block

from tests.fakes.loopback import serve


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    headers: dict[str, str]


def limit_violations(message: dict[str, Any]) -> list[str]:
    """Slack's documented message limits, checked on what was actually sent."""
    found = []
    text = message.get("text")
    if not text:
        found.append("no fallback text")
    elif len(text) > 4000:
        found.append("fallback text over 4000")
    blocks = message.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    if len(blocks) > 50:
        found.append(f"{len(blocks)} blocks")
    for block in blocks:
        try:
            Block.parse(block).to_dict()  # slack_sdk's own validators
        except Exception as exc:  # noqa: BLE001 - recorded as a violation
            found.append(f"slack_sdk rejects a {block.get('type')} block: {exc}")
        if block.get("type") == "section":
            if len((block.get("text") or {}).get("text", "")) > 3000:
                found.append("section text over 3000")
            fields = block.get("fields") or []
            if len(fields) > 10 or any(len(f["text"]) > 2000 for f in fields):
                found.append("section fields over limit")
        for element in block.get("elements") or []:
            if element.get("type") == "button" and len(element["text"]["text"]) > 75:
                found.append("button text over 75")
    return found


@dataclass
class FakeSlack:
    bot_token: str = "xoxb-test-" + "1" * 24
    app_token: str = "xapp-1-A111-test-" + "2" * 16
    calls: list[Call] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)  # posts to response_url
    violations: list[str] = field(default_factory=list)
    rate_limited: dict[str, int] = field(default_factory=dict)
    retry_after: int = 1
    port: int = 0
    ws_acks: list[dict[str, Any]] = field(default_factory=list)
    ws_connections: int = 0
    _ws: web.WebSocketResponse | None = None
    _ws_ready: asyncio.Event = field(default_factory=asyncio.Event)
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/respond/{uuid.uuid4().hex}"

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def responses_to(self, response_url: str) -> list[dict[str, Any]]:
        token = response_url.rsplit("/", 1)[-1]
        return [r["body"] for r in self.responses if r["token"] == token]

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.add_routes([
            web.post("/api/{method}", self._api),
            web.post("/respond/{token}", self._respond),
            web.get("/link/", self._link),
        ])
        self._runner, self.port = await serve(app)
        return self

    async def stop(self) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._runner:
            await self._runner.cleanup()

    # -- Web API ------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw = await request.text()
        if "json" in request.headers.get("Content-Type", ""):
            args = json.loads(raw) if raw else {}
        else:
            args = {k: v[0] for k, v in parse_qs(raw).items()}
            args.update(request.query)
        self.calls.append(Call(method, args, dict(request.headers)))
        if self.rate_limited.get(method, 0) > 0:
            self.rate_limited[method] -= 1
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(self.retry_after)}
            )
        auth = request.headers.get("Authorization", "")
        if method == "apps.connections.open":
            if auth != f"Bearer {self.app_token}":
                return web.json_response({"ok": False, "error": "invalid_auth"})
            return web.json_response({"ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?ticket={uuid.uuid4().hex}&app_id=A111"})
        if auth != f"Bearer {self.bot_token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if method == "auth.test":
            return web.json_response({"ok": True, "url": "https://test.slack.com/", "team": "Test", "user": "fabro", "team_id": "T111", "user_id": "U0BOT", "bot_id": "B111"})
        if method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            self.violations += limit_violations(args)
            ts = args.get("ts") or f"1700000000.{next(self._ts):06d}"
            return web.json_response({"ok": True, "channel": args.get("channel"), "ts": ts, "message": {"text": args.get("text")}})
        return web.json_response({"ok": True})

    async def _respond(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.violations += limit_violations(body)
        self.responses.append({"token": request.match_info["token"], "body": body, "at": time.perf_counter()})
        return web.Response(text="ok")

    # -- Socket Mode ----------------------------------------------------------------

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        self.ws_connections += 1
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A111"}}))
        self._ws_ready.set()
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.ws_acks.append(json.loads(msg.data))
        return ws

    async def wait_for_socket(self, connections: int = 1, timeout: float = 10) -> None:
        async def connected() -> None:
            while self.ws_connections < connections or self._ws is None or self._ws.closed:
                await asyncio.sleep(0.02)
        await asyncio.wait_for(connected(), timeout)

    async def send_envelope(self, envelope_type: str, payload: dict[str, Any], *, accepts_response_payload: bool = True) -> str:
        assert self._ws is not None, "no Socket Mode connection"
        envelope_id = str(uuid.uuid4())
        await self._ws.send_str(json.dumps({
            "envelope_id": envelope_id,
            "type": envelope_type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            "retry_attempt": 0,
            "retry_reason": "",
        }))
        return envelope_id

    def ack_for(self, envelope_id: str) -> dict[str, Any] | None:
        return next((a for a in self.ws_acks if a.get("envelope_id") == envelope_id), None)

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        assert self._ws is not None
        await self._ws.send_str(json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake"}}))
