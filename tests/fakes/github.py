"""A fake GitHub for the OAuth device flow, serving real HTTP on 127.0.0.1: `/login/device/code`,
`/login/oauth/access_token` and `GET /user`, with the pacing rules GitHub enforces."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.loopback import serve


@dataclass
class FakeGitHub:
    client_id: str = "Iv1.fakeclient0001"
    login: str = "Grace-H"  # who signs in
    interval: int = 1  # seconds between polls GitHub asks for
    pending_polls: int = 1  # "authorization_pending" answers before the person has authorised
    slow_down_once: bool = False  # answer the first poll with slow_down (interval + 5), as GitHub does
    outcome: str = "authorised"  # or "denied", "expired"
    polls: list[float] = field(default_factory=list)  # when each token poll arrived (monotonic seconds)
    tokens_issued: list[str] = field(default_factory=list)
    user_requests: list[dict[str, str]] = field(default_factory=list)  # headers of GET /user
    too_fast: int = 0  # polls that came sooner than the interval in force
    port: int = 0
    _interval_now: float = 0.0
    _runner: web.AppRunner | None = None
    _codes: dict[str, str] = field(default_factory=dict)  # device code -> user code

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeGitHub:
        app = web.Application()
        app.add_routes(
            [
                web.post("/login/device/code", self._device_code),
                web.post("/login/oauth/access_token", self._token),
                web.get("/user", self._user),
            ]
        )
        self._runner, self.port = await serve(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _device_code(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("client_id") != self.client_id:
            return web.json_response({"error": "incorrect_client_credentials"}, status=400)
        device, user_code = uuid.uuid4().hex, f"{uuid.uuid4().hex[:4]}-{uuid.uuid4().hex[:4]}".upper()
        self._codes[device] = user_code
        self._interval_now = float(self.interval)
        body: dict[str, Any] = {
            "device_code": device,
            "user_code": user_code,
            "verification_uri": f"{self.url}/login/device",
            "expires_in": 900,
            "interval": self.interval,
        }
        return web.json_response(body)

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        now = time.monotonic()
        if self.polls and now - self.polls[-1] < self._interval_now - 0.05:
            self.too_fast += 1
        self.polls.append(now)
        if form.get("device_code") not in self._codes or form.get("client_id") != self.client_id:
            return web.json_response({"error": "incorrect_device_code"})
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code":
            return web.json_response({"error": "unsupported_grant_type"})
        if self.slow_down_once:
            self.slow_down_once = False
            self._interval_now += 5
            return web.json_response({"error": "slow_down", "interval": int(self._interval_now)})
        if self.pending_polls > 0:
            self.pending_polls -= 1
            return web.json_response({"error": "authorization_pending"})
        if self.outcome == "denied":
            return web.json_response({"error": "access_denied"})
        if self.outcome == "expired":
            return web.json_response({"error": "expired_token"})
        token = "gho_" + uuid.uuid4().hex
        self.tokens_issued.append(token)
        return web.json_response({"access_token": token, "token_type": "bearer", "scope": ""})

    async def _user(self, request: web.Request) -> web.Response:
        self.user_requests.append(dict(request.headers))
        if request.headers.get("Authorization") not in {f"Bearer {t}" for t in self.tokens_issued}:
            return web.json_response({"message": "Bad credentials"}, status=401)
        return web.json_response({"login": self.login, "id": 1})
