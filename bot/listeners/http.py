"""Slack's HTTP requests, checked before anything of them is used: size, signature, shape.

Only a request that is Slack's (signed with the signing secret, within five minutes) and
well formed reaches Bolt. A rejected one costs one short log line (method, path, reason,
size) and never its body, so neither a flood nor a forged newline reaches the logs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.listeners.payloads import payload_problem

__all__ = ["MAX_BODY_BYTES", "SlackGate"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # Slack's own payloads are far smaller
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^v0=[0-9a-f]{64}$")
_WINDOW = 60 * 5


class SlackGate:
    def __init__(self, signing_secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self._secret = signing_secret.encode()
        self._clock = clock

    async def admit(self, request: web.Request) -> AsyncBoltRequest | web.Response:
        """The request as Bolt takes it, or the response that turns it away."""
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._reject(request, "too large", request.content_length or 0, 413)
        if raw.startswith(b"ssl_check=1") or b"&ssl_check=1" in raw:
            return web.Response(status=200, text="")  # Slack checking the certificate: nothing is used
        problem = self._unsigned(request, raw)
        if problem is not None:
            return self._reject(request, problem, len(raw), 401)
        body = raw.decode("utf-8", errors="replace")
        parsed = _parse(body, request.content_type)
        problem = parsed if isinstance(parsed, str) else payload_problem(parsed)
        if problem is not None:
            return self._reject(request, f"unreadable payload: {problem}", len(raw), 400, level=logging.WARNING)
        return AsyncBoltRequest(body=body, query=request.query_string, headers=dict(request.headers))

    def _unsigned(self, request: web.Request, raw: bytes) -> str | None:
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not _TIMESTAMP.match(timestamp):
            return "no valid timestamp"
        if abs(self._clock() - int(timestamp)) > _WINDOW:
            return "stale timestamp"
        if not _SIGNATURE.match(signature):
            return "no valid signature"
        expected = hmac.new(self._secret, b"v0:" + timestamp.encode() + b":" + raw, hashlib.sha256).hexdigest()
        return None if hmac.compare_digest(f"v0={expected}", signature) else "bad signature"

    @staticmethod
    def _reject(request: web.Request, reason: str, size: int, status: int, level: int = logging.INFO) -> web.Response:
        log.log(level, "rejected %s %s: %s (%d bytes)", request.method, request.path, reason, size)
        return web.Response(status=status, text="")


def _parse(body: str, content_type: str) -> Any:
    """The payload Bolt would read, or why it cannot be read."""
    if content_type == "application/json":
        try:
            return json.loads(body)
        except ValueError:
            return "not JSON"
    form = parse_qs(body, keep_blank_values=True)
    if "payload" not in form:
        return {}  # a slash command: flat text fields
    try:
        return json.loads(form["payload"][0])
    except ValueError:
        return "the payload is not JSON"
