"""A fake Slack: the Web API, response_url sinks and a Socket Mode WebSocket, on 127.0.0.1.

Every message the bot sends is checked against Slack's Block Kit limits independently
of the bot's own builders (here and through slack_sdk's validators), and recorded.
Tests can make any method answer 429 with Retry-After, as Slack does.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import yaml
from aiohttp import WSMsgType, web
from slack_sdk.models.blocks import Block

from tests.fakes.loopback import serve


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    headers: dict[str, str]
    at: float = field(default_factory=time.perf_counter)


# What installing the app from manifest.yml grants: exactly the bot scopes it asks for.
MANIFEST_SCOPES: tuple[str, ...] = tuple(
    yaml.safe_load((Path(__file__).resolve().parents[2] / "manifest.yml").read_text())["oauth_config"]["scopes"]["bot"]
)


def dm_of(user: str) -> str:
    """The id of a user's direct-message channel with the bot, as `conversations.open` gives it."""
    return "D" + user[1:]


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
            parsed = Block.parse(block)  # slack_sdk's own validators
            assert parsed is not None, f"slack_sdk does not know a {block.get('type')} block"
            parsed.to_dict()
        except Exception as exc:
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
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any] | None
    thread_ts: str | None
    edits: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)  # shared with the message (files.completeUploadExternal)
    user: str | None = None  # a person's message (None: the bot's own)
    bot_id: str = "B111"  # who posted it: the bot under test, unless a test says another app did


@dataclass
class FakeSlack:
    bot_token: str = "xoxb-test-" + "1" * 24
    app_token: str = "xapp-1-A111-test-" + "2" * 16
    calls: list[Call] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)  # posts to response_url
    responding: int = 0  # posts to response_url received, answered or not yet
    respond_delay: float = 0.0  # seconds every post to response_url waits before it is taken
    violations: list[str] = field(default_factory=list)
    rate_limited: dict[str, int] = field(default_factory=dict)
    retry_after: int = 1
    port: int = 0
    ws_acks: list[dict[str, Any]] = field(default_factory=list)
    ws_connections: int = 0
    messages: list[Message] = field(default_factory=list)  # what is in the channels now
    unreachable: dict[str, str] = field(default_factory=dict)  # channel -> error (not_in_channel…)
    failing: dict[str, list[str]] = field(default_factory=dict)  # method -> errors to answer with, in order
    hang: dict[str, float] = field(default_factory=dict)  # method -> seconds before answering (once)
    slow_reply: dict[str, float] = field(default_factory=dict)  # method -> seconds to wait after acting (once)
    latency: dict[str, float] = field(default_factory=dict)  # method -> seconds every call waits before answering
    check_limits: bool = True  # benchmarks turn this off: it measures the fake, not the bot
    usergroups: dict[str, list[str]] = field(default_factory=dict)  # group id -> member user ids
    proxy_error: dict[str, int] = field(default_factory=dict)  # method -> status of one HTML page from a proxy
    garbled: set[str] = field(default_factory=set)  # methods answered once with JSON cut off midway
    time_zones: dict[str, str] = field(default_factory=dict)  # user id -> tz in their profile (users.info)
    names: dict[str, str] = field(default_factory=dict)  # user id -> display name in their profile (users.info)
    admins: set[str] = field(default_factory=set)  # workspace admins (users.info is_admin)
    owners: set[str] = field(default_factory=set)  # workspace owners (users.info is_owner)
    scopes: tuple[str, ...] = field(default_factory=lambda: MANIFEST_SCOPES)  # granted at install
    views: list[dict[str, Any]] = field(default_factory=list)  # modals opened with views.open
    homes: dict[str, dict[str, Any]] = field(default_factory=dict)  # user id -> their published Home view
    published_at: dict[str, float] = field(default_factory=dict)  # user id -> perf_counter() of their last Home
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)  # file id -> name, length, content
    external: set[str] = field(default_factory=set)  # channels shared with another organisation (Slack Connect)
    _ws: web.WebSocketResponse | None = None
    _ws_ready: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    _last_ts: float = 0.0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/respond/{uuid.uuid4().hex}"

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def posts(self, channel: str | None = None, *, top_level: bool = True) -> list[Message]:
        """The bot's messages in `channel` (all channels when None), oldest first; thread replies only on request."""
        return [
            m
            for m in self.messages
            if (channel is None or m.channel == channel) and (not top_level or m.thread_ts is None) and m.user is None
        ]

    def say(self, channel: str, user: str, text: str, *, thread_ts: str | None = None) -> str:
        """A person's message in the channel (or a thread): the bot sees it when it reads the thread."""
        ts = self._next_ts()
        self.messages.append(Message(channel, ts, text, [], None, thread_ts, user=user))
        return ts

    def alert_keys(self, channel: str | None = None) -> list[str]:
        """The alert keys of the posted alert messages, as their metadata names them."""
        return [
            m.metadata["event_payload"]["key"]
            for m in self.posts(channel)
            if m.metadata and m.metadata.get("event_type") == "fabro_run_alert"
        ]

    def replies(self, message: Message) -> list[Message]:
        return [m for m in self.messages if m.channel == message.channel and m.thread_ts == message.ts]

    def responses_to(self, response_url: str) -> list[dict[str, Any]]:
        token = response_url.rsplit("/", 1)[-1]
        return [r["body"] for r in self.responses if r["token"] == token]

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.add_routes(
            [
                web.post("/api/{method}", self._api),
                web.get("/api/{method}", self._api),
                web.post("/respond/{token}", self._respond),
                web.post("/upload/{file_id}", self._upload),
                web.get("/link/", self._link),
            ]
        )
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
        if method in self.proxy_error:
            status = self.proxy_error.pop(method)
            return web.Response(status=status, text="<html><body>Bad gateway</body></html>", content_type="text/html")
        if method in self.garbled:
            self.garbled.discard(method)
            return web.Response(text='{"ok": tr', content_type="application/json")
        if self.rate_limited.get(method, 0) > 0:
            self.rate_limited[method] -= 1
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(self.retry_after)}
            )
        auth = request.headers.get("Authorization", "")
        if method in self.hang:
            await asyncio.sleep(self.hang.pop(method))
        if method == "apps.connections.open":
            if auth != f"Bearer {self.app_token}":
                return web.json_response({"ok": False, "error": "invalid_auth"})
            return web.json_response(
                {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?ticket={uuid.uuid4().hex}&app_id=A111"}
            )
        if auth != f"Bearer {self.bot_token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if method == "auth.test":
            return web.json_response(
                {
                    "ok": True,
                    "url": "https://test.slack.com/",
                    "team": "Test",
                    "user": "fabro",
                    "team_id": "T111",
                    "user_id": "U0BOT",
                    "bot_id": "B111",
                },
                headers={"x-oauth-scopes": ",".join(self.scopes)},
            )
        if self.latency.get(method):
            await asyncio.sleep(self.latency[method])
        if self.failing.get(method):
            return web.json_response(
                {"ok": False, "error": self.failing[method].pop(0)}, headers={"x-slack-req-id": uuid.uuid4().hex}
            )
        channel = args.get("channel")
        if method in ("chat.postMessage", "chat.update", "conversations.history") and channel in self.unreachable:
            return web.json_response(
                {"ok": False, "error": self.unreachable[channel]}, headers={"x-slack-req-id": uuid.uuid4().hex}
            )
        if method == "chat.postMessage":
            response = self._post_message(args)
            if method in self.slow_reply:  # the message is in; the answer is late (a lost response)
                await asyncio.sleep(self.slow_reply.pop(method))
            return response
        if method == "chat.update":
            return self._update_message(args)
        if method == "chat.postEphemeral":
            self.violations += limit_violations(args)
            return web.json_response({"ok": True, "message_ts": self._next_ts()})
        if method == "conversations.history":
            return self._history(args)
        if method == "conversations.replies":
            return self._replies(args)
        if method == "files.getUploadURLExternal":
            return self._upload_url(args)
        if method == "files.completeUploadExternal":
            return self._complete_upload(args)
        if method == "views.open":
            view = self._json_arg(args, "view") or {}
            if not args.get("trigger_id") or not isinstance(view, dict) or view.get("type") != "modal":
                return web.json_response({"ok": False, "error": "invalid_arguments"})
            self.violations += limit_violations({"text": "modal", "blocks": view.get("blocks") or []})
            self.views.append(view)
            return web.json_response({"ok": True, "view": {"id": f"V{len(self.views):08d}", "hash": "h1", **view}})
        if method == "views.publish":
            view = self._json_arg(args, "view") or {}
            user = str(args.get("user_id") or "")
            if not user.startswith(("U", "W")) or not isinstance(view, dict) or view.get("type") != "home":
                return web.json_response({"ok": False, "error": "invalid_arguments"})
            blocks = view.get("blocks") or []
            for start in range(0, len(blocks) if self.check_limits else 0, 50):
                # A Home takes 100 blocks; each is checked as in messages.
                self.violations += limit_violations({"text": "home", "blocks": blocks[start : start + 50]})
            if len(blocks) > 100:
                self.violations.append("home view over 100 blocks")
            self.homes[user] = view
            self.published_at[user] = time.perf_counter()
            return web.json_response({"ok": True, "view": {"id": f"VH{user}", **view}})
        if method == "views.update":
            view = self._json_arg(args, "view") or {}
            opened = [i for i, v in enumerate(self.views) if f"V{i + 1:08d}" == args.get("view_id")]
            if not opened or not isinstance(view, dict):
                return web.json_response({"ok": False, "error": "not_found"})
            self.violations += limit_violations({"text": "modal", "blocks": view.get("blocks") or []})
            self.views[opened[0]] = view
            return web.json_response({"ok": True, "view": {"id": args.get("view_id"), **view}})
        if method == "users.info":
            asked = args.get("user")
            if "users:read" not in self.scopes:
                return web.json_response({"ok": False, "error": "missing_scope", "needed": "users:read"})
            tz = self.time_zones.get(str(asked), "America/Los_Angeles")
            shown = self.names.get(str(asked), "")
            profile = {"display_name": shown, "real_name": shown or "Someone"}
            person = {
                "id": asked,
                "name": "someone",
                "tz": tz,
                "is_admin": asked in self.admins or asked in self.owners,
                "is_owner": asked in self.owners,
                "profile": profile,
            }
            return web.json_response({"ok": True, "user": person})
        if method == "conversations.open":
            if "im:write" not in self.scopes:
                return web.json_response({"ok": False, "error": "missing_scope", "needed": "im:write"})
            users = str(args.get("users") or "")
            if not users.startswith(("U", "W")) or "," in users:
                return web.json_response({"ok": False, "error": "user_not_found"})
            return web.json_response({"ok": True, "channel": {"id": dm_of(users)}})
        if method == "conversations.info":
            return self._channel_info(str(args.get("channel") or ""))
        if method == "bots.info":
            if args.get("bot") != "B111":
                return web.json_response({"ok": False, "error": "bot_not_found"})
            return web.json_response({"ok": True, "bot": {"id": "B111", "app_id": "A111", "user_id": "U0BOT"}})
        if method == "usergroups.users.list":
            group = args.get("usergroup")
            if group not in self.usergroups:
                return web.json_response({"ok": False, "error": "no_such_subteam"})
            return web.json_response({"ok": True, "users": self.usergroups[group]})
        return web.json_response({"ok": True})

    def _channel_info(self, channel: str) -> web.Response:
        """`conversations.info` as Slack answers it: `is_ext_shared` for a Slack Connect channel."""
        private = channel.startswith("G")
        if ("groups:read" if private else "channels:read") not in self.scopes:
            needed = "groups:read" if private else "channels:read"
            return web.json_response({"ok": False, "error": "missing_scope", "needed": needed})
        if not channel.startswith(("C", "G", "D")):
            return web.json_response({"ok": False, "error": "channel_not_found"})
        shared = channel in self.external
        described = {
            "id": channel,
            "is_channel": channel.startswith("C"),
            "is_private": private,
            "is_im": channel.startswith("D"),
            "is_shared": shared,
            "is_ext_shared": shared,
            "is_org_shared": False,
            "is_pending_ext_shared": False,
        }
        return web.json_response({"ok": True, "channel": described})

    def _next_ts(self) -> str:
        # Real message timestamps: epoch seconds with microseconds, unique and increasing.
        self._last_ts = max(time.time(), self._last_ts + 0.000001)
        return f"{self._last_ts:.6f}"

    @staticmethod
    def _json_arg(args: dict[str, Any], name: str) -> Any:
        value = args.get(name)
        return json.loads(value) if isinstance(value, str) and value else value

    def _post_message(self, args: dict[str, Any]) -> web.Response:
        self.violations += limit_violations(args)
        metadata = self._json_arg(args, "metadata")
        if metadata is not None and (
            not isinstance(metadata, dict)
            or not metadata.get("event_type")
            or not isinstance(metadata.get("event_payload"), dict)
        ):
            return web.json_response({"ok": False, "error": "invalid_metadata_format"})
        message = Message(
            channel=args["channel"],
            ts=self._next_ts(),
            text=args.get("text", ""),
            blocks=self._json_arg(args, "blocks") or [],
            metadata=metadata,
            thread_ts=args.get("thread_ts"),
        )
        self.messages.append(message)
        return web.json_response(
            {"ok": True, "channel": message.channel, "ts": message.ts, "message": {"text": message.text}}
        )

    def shared_files(self, channel: str | None = None) -> list[tuple[Message, dict[str, Any]]]:
        """Every file shared into a conversation, with the message that carries it."""
        return [(m, f) for m in self.messages if channel in (None, m.channel) for f in m.files]

    def _upload_url(self, args: dict[str, Any]) -> web.Response:
        if "files:write" not in self.scopes:
            return web.json_response({"ok": False, "error": "missing_scope", "needed": "files:write"})
        name, length = args.get("filename"), str(args.get("length") or "")
        if not name or not length.isdigit():
            return web.json_response({"ok": False, "error": "invalid_arguments"})
        file_id = f"F{uuid.uuid4().hex[:10].upper()}"
        self.uploads[file_id] = {"name": name, "length": int(length), "content": None, "shared": False}
        return web.json_response(
            {"ok": True, "upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}", "file_id": file_id}
        )

    async def _upload(self, request: web.Request) -> web.Response:
        """The upload URL: the file's bytes, which must be exactly as long as announced."""
        upload = self.uploads.get(request.match_info["file_id"])
        content = await request.read()
        if upload is None or upload["content"] is not None:
            return web.Response(status=404, text="not found")
        if len(content) != upload["length"]:
            return web.Response(status=400, text="length mismatch")
        upload["content"] = content
        return web.Response(text=f"OK - {len(content)}")

    def _complete_upload(self, args: dict[str, Any]) -> web.Response:
        listed = self._json_arg(args, "files")
        channel = args.get("channel_id")
        if not isinstance(listed, list) or not listed:
            return web.json_response({"ok": False, "error": "invalid_arguments"})
        if channel in self.unreachable:
            return web.json_response({"ok": False, "error": self.unreachable[channel]})
        shared = []
        for item in listed:
            upload = self.uploads.get(str(item.get("id"))) if isinstance(item, dict) else None
            if upload is None or upload["content"] is None or upload["shared"]:
                return web.json_response({"ok": False, "error": "file_not_found"})
            upload["shared"] = True
            upload["title"] = item.get("title") or upload["name"]
            shared.append({"id": item["id"], "name": upload["name"], "title": upload["title"]})
        if channel:
            comment = args.get("initial_comment") or ""
            self.violations += [] if len(comment) <= 4000 else ["initial_comment over 4000"]
            self.messages.append(
                Message(
                    channel=channel,
                    ts=self._next_ts(),
                    text=comment,
                    blocks=[],
                    metadata=None,
                    thread_ts=args.get("thread_ts"),
                    files=shared,
                )
            )
        return web.json_response({"ok": True, "files": shared})

    def _update_message(self, args: dict[str, Any]) -> web.Response:
        self.violations += limit_violations(args)
        found = next((m for m in self.messages if m.channel == args.get("channel") and m.ts == args.get("ts")), None)
        if found is None:
            return web.json_response({"ok": False, "error": "message_not_found"})
        found.text = args.get("text", found.text)
        found.blocks = self._json_arg(args, "blocks") or []
        found.edits += 1
        return web.json_response({"ok": True, "channel": found.channel, "ts": found.ts, "text": found.text})

    def _history(self, args: dict[str, Any]) -> web.Response:
        """Newest first, `oldest`/`latest` exclusive bounds, cursor paging, metadata only on request."""
        limit = min(int(args.get("limit") or 100), 999)
        oldest = float(args.get("oldest") or 0)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        found = [m for m in reversed(self.posts(args.get("channel"))) if float(m.ts) > oldest]
        start = int(args.get("cursor") or 0)
        page = found[start : start + limit]
        more = start + limit < len(found)
        items = []
        for m in page:
            item: dict[str, Any] = {"type": "message", "ts": m.ts, "text": m.text, "bot_id": m.bot_id}
            if with_metadata and m.metadata:
                item["metadata"] = m.metadata
            if m.files:
                item["files"] = m.files
            items.append(item)
        return web.json_response(
            {
                "ok": True,
                "messages": items,
                "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""},
            }
        )

    def _replies(self, args: dict[str, Any]) -> web.Response:
        """A thread: its parent, then its replies, oldest first; metadata only on request."""
        parent = str(args.get("ts"))
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        thread = [
            m for m in self.messages if m.channel == args.get("channel") and (m.ts == parent or m.thread_ts == parent)
        ]
        items = []
        limit = int(args.get("limit") or 1000)
        for m in thread[:limit]:
            item: dict[str, Any] = {"type": "message", "ts": m.ts, "text": m.text, "thread_ts": parent}
            item |= {"user": m.user} if m.user else {"bot_id": m.bot_id}
            if with_metadata and m.metadata:
                item["metadata"] = m.metadata
            if m.files:
                item["files"] = m.files
            items.append(item)
        return web.json_response({"ok": True, "messages": items, "has_more": False})

    async def _respond(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.responding += 1
        if self.respond_delay:
            await asyncio.sleep(self.respond_delay)
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

    async def send_envelope(
        self, envelope_type: str, payload: dict[str, Any], *, accepts_response_payload: bool = True
    ) -> str:
        assert self._ws is not None, "no Socket Mode connection"
        envelope_id = str(uuid.uuid4())
        await self._ws.send_str(
            json.dumps(
                {
                    "envelope_id": envelope_id,
                    "type": envelope_type,
                    "payload": payload,
                    "accepts_response_payload": accepts_response_payload,
                    "retry_attempt": 0,
                    "retry_reason": "",
                }
            )
        )
        return envelope_id

    def ack_for(self, envelope_id: str) -> dict[str, Any] | None:
        return next((a for a in self.ws_acks if a.get("envelope_id") == envelope_id), None)

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        assert self._ws is not None
        await self._ws.send_str(json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake"}}))
