"""The composition root: builds the Fabro client, the Bolt app and the servers, and runs them.

Nothing imports this module except the CLI and the tests that start the whole bot.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp, AsyncRespond
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.alerts.engine import Alerter
from bot.alerts.scheduler import start_scheduler
from bot.answers import Answerer
from bot.blocks.replies import internal_error_message
from bot.config import Settings
from bot.fabro.client import FabroClient
from bot.listeners import buttons, commands, steer
from bot.permissions import Allowlist, parse_allowlist
from bot.steering import Steering
from bot.store import Store, open_store
from bot.subscriptions import SubscriptionDesk

__all__ = ["Bot", "build_bolt_app", "serve"]

log = logging.getLogger(__name__)

SLACK_EVENTS_PATH = "/slack/events"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def slack_client(settings: Settings) -> AsyncWebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return AsyncWebClient(
        token=token,
        base_url=settings.slack_api_url,
        timeout=10,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
        ],
    )


def build_bolt_app(settings: Settings, answerer: Answerer, desk: SubscriptionDesk, store: Store, clock: Callable[[], datetime]) -> AsyncApp:
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    app = AsyncApp(
        client=slack_client(settings),
        signing_secret=secret,
        request_verification_enabled=not settings.socket_mode,
        raise_error_for_unhandled_request=False,
    )

    @app.error
    async def on_error(error: Exception, body: dict, respond: AsyncRespond) -> None:
        reference = uuid.uuid4().hex[:12]
        log.error("unhandled error in a listener, reference %s", reference, exc_info=error)
        if not body.get("response_url"):
            return
        try:
            await respond(response_type="ephemeral", replace_original=False, **internal_error_message(reference))
        except Exception as exc:  # noqa: BLE001 - the user cannot be told; the log line above stands
            log.warning("could not tell the user about error %s: %s", reference, type(exc).__name__)

    commands.register(app, answerer, desk)
    buttons.register(app, answerer)
    allowlist = Allowlist(parse_allowlist(settings.action_allowlist), app.client)
    steering = Steering(store, answerer.fabro, allowlist, clock, web_base=settings.fabro_web_url)
    steer.register(app, steering, store)
    return app


@dataclass
class Bot:
    """One running bot: Slack over HTTP or Socket Mode, one Fabro client, one store, and the
    alert scheduler (`schedule_alerts=False` leaves cycles to the caller, as tests do)."""

    settings: Settings
    clock: Callable[[], datetime] = utc_now
    schedule_alerts: bool = True
    alert_pace: float = 1.0
    fabro: FabroClient = field(init=False)
    store: Store = field(init=False)
    alerter: Alerter = field(init=False)
    bolt: AsyncApp = field(init=False)
    http_port: int | None = field(init=False, default=None)
    _runner: web.AppRunner | None = field(init=False, default=None)
    _socket: AsyncSocketModeHandler | None = field(init=False, default=None)
    _scheduler: AsyncIOScheduler | None = field(init=False, default=None)
    _stopped: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        s = self.settings
        assert s.fabro_api_url and s.fabro_api_token
        self.fabro = FabroClient(
            s.fabro_api_url, s.fabro_api_token.get_secret_value(), timeout=s.fabro_timeout_seconds
        )
        self.store = open_store(s.database_url)
        answerer = Answerer(self.fabro, self.clock, web_base=s.fabro_web_url, command=s.slash_command)
        desk = SubscriptionDesk(self.store, default_channel=s.alert_channel, command=s.slash_command)
        self.bolt = build_bolt_app(s, answerer, desk, self.store, self.clock)
        self.alerter = Alerter(
            store=self.store, fabro=self.fabro, slack=self.bolt.client, clock=self.clock,
            default_channel=s.alert_channel, web_base=s.fabro_web_url, command=s.slash_command,
            digest_threshold=s.alert_digest_threshold, pace=self.alert_pace,
        )

    def web_app(self) -> web.Application:
        """The HTTP surface: Slack's requests and the liveness probe."""
        application = web.Application()

        async def slack_events(request: web.Request) -> web.Response:
            bolt_request = await to_bolt_request(request)
            return await to_aiohttp_response(await self.bolt.async_dispatch(bolt_request))

        async def healthz(_: web.Request) -> web.Response:
            return web.json_response({"ok": True})

        application.add_routes(
            [web.post(SLACK_EVENTS_PATH, slack_events), web.get("/healthz", healthz)]
        )
        return application

    async def start(self) -> None:
        await self.store.open()
        if self.settings.socket_mode:
            assert self.settings.slack_app_token
            self._socket = AsyncSocketModeHandler(
                self.bolt, self.settings.slack_app_token.get_secret_value()
            )
            await self._socket.connect_async()
            log.info("connected to Slack in Socket Mode")
        else:
            self._runner = web.AppRunner(self.web_app(), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
            await site.start()
            sockets = site._server.sockets if site._server else []  # noqa: SLF001
            self.http_port = sockets[0].getsockname()[1] if sockets else self.settings.port
            log.info(
                "listening for Slack on http://%s:%s%s",
                self.settings.host, self.http_port, SLACK_EVENTS_PATH,
            )
        if self.schedule_alerts:
            self._scheduler = start_scheduler(self.alerter.cycle, self.settings.poll_interval_seconds)
            log.info("alerts: checking Fabro every %gs", self.settings.poll_interval_seconds)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        # Let a cycle in progress finish before the scheduler would cancel it.
        await self.alerter.close()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        if self._socket is not None:
            await self._socket.close_async()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.fabro.aclose()
        await self.store.close()


async def serve(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then stop cleanly."""
    bot = Bot(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await bot.start()
    try:
        await stopping.wait()
    finally:
        log.info("shutting down")
        await bot.stop()
