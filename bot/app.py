"""The composition root: builds the Fabro client, the store, the Bolt app, the alert machinery
and the servers, and runs them.

Nothing imports this module except the CLI and the tests that start the whole bot.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app, send_async_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.listener.async_listener_completion_handler import AsyncListenerCompletionHandler
from slack_bolt.listener.async_listener_start_handler import AsyncListenerStartHandler
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.acting.steering import Steering, action_lease
from bot.asking.answers import Answerer
from bot.asking.ask import AskDesk
from bot.asking.dispatch import Commands
from bot.asking.inspect import Inspector
from bot.asking.subscriptions import SubscriptionDesk
from bot.asking.work import WorkDesk
from bot.blocks.presentation import Presentation
from bot.config import Settings
from bot.core.durations import parse_duration
from bot.core.exposure import ExternalChannels
from bot.core.links import hosts_of
from bot.core.tasks import InFlight, stop_task
from bot.fabro.client import FabroClient
from bot.fabro.models import Run
from bot.listeners import commands as commands_listener
from bot.listeners import controls, mentions, start, unfurls
from bot.listeners import work as work_listener
from bot.listeners.boundary import new_reference
from bot.listeners.controls import Controls
from bot.listeners.http import SlackGate
from bot.listeners.payloads import foreign, payload_problem
from bot.listeners.showing import Shower
from bot.metrics import CONTENT_TYPE, Metrics
from bot.people.bindings import Bindings
from bot.people.identity import GitHubDeviceFlow, Linker, LinkMode, parse_user_links
from bot.people.notify import Personal
from bot.people.permissions import Allowlist, Permissions, parse_allowlist
from bot.redact import public_url
from bot.slack.channels import Exposures
from bot.slack.clients import TimeZones, response_url_check, slack_client
from bot.slack.webapi import EditBudget, app_self, slack_error
from bot.store import Store, open_store
from bot.store.leadership import Leadership, leadership_for
from bot.telling.backfill import Backfill
from bot.telling.daily import Daily
from bot.telling.delivery import Delivery, Lease
from bot.telling.engine import Alerter, CycleReport, log_cycle
from bot.telling.following import CardEditor, Follower
from bot.telling.home import Home
from bot.telling.live import LiveAlerts
from bot.telling.reminders import Reminders
from bot.telling.retention import Retention
from bot.telling.scheduler import start_scheduler

__all__ = ["Bot", "build_bolt_app", "serve"]

log = logging.getLogger(__name__)

SLACK_EVENTS_PATH = "/slack/events"
_SLACK_AUTH_RECHECK = 30.0
_REQUESTS_FINISH = 4.0  # seconds an HTTP request being answered gets once its server stops


class _ClientTokenNotice(logging.Filter):
    """Drops Bolt's one warning that a token from the environment is unused because a client was given."""

    _TEXT = warning_client_prioritized_and_token_skipped()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self._TEXT


class _Holding(AsyncListenerStartHandler):
    """A listener's work after its ack is in flight from its start (Bolt runs it in a task of its own)…"""

    def __init__(self, in_flight: InFlight) -> None:
        self.in_flight = in_flight

    async def handle(self, request: AsyncBoltRequest, response: BoltResponse | None) -> None:
        self.in_flight.enter()


class _Released(AsyncListenerCompletionHandler):
    """…to its end, however it ended: stopping waits for it before anything it uses is closed."""

    def __init__(self, in_flight: InFlight) -> None:
        self.in_flight = in_flight

    async def handle(self, request: AsyncBoltRequest, response: BoltResponse | None) -> None:
        self.in_flight.leave()


def _socket_mode(app: AsyncApp, app_token: str, in_flight: InFlight) -> AsyncSocketModeHandler:
    """Bolt's Socket Mode handler, with each envelope in flight until it is acknowledged: a stop lets
    an envelope being dispatched send its ack before the connection closes."""
    handler = AsyncSocketModeHandler(app, app_token)

    async def dispatch(client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        with in_flight.held():  # what Bolt's handler does, held
            started = time.time()
            await send_async_response(client, request, await run_async_bolt_app(app, request), started)

    handler.client.socket_mode_request_listeners[:] = [dispatch]
    return handler


def _bot_token(settings: Settings) -> str | None:
    return settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None


def _version() -> str:
    try:
        return metadata.version("fabro-slack-bot")
    except metadata.PackageNotFoundError:
        return "0"


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_bolt_app(
    settings: Settings,
    *,
    client: AsyncWebClient,
    commands: Commands,
    steering: Steering,
    store: Store,
    metrics: Metrics,
    outbox: Delivery,
    home: Home | None = None,
    inspector: Inspector | None = None,
    asker: AskDesk | None = None,
    exposures: Exposures | None = None,
    in_flight: InFlight | None = None,
) -> AsyncApp:
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    # Bolt reads SLACK_BOT_TOKEN from the environment even when given a client, then warns that
    # the token "will be unused": true, and by design here (the client carries the token).
    framework = logging.getLogger("slack_bolt.AsyncApp")
    framework.addFilter(_ClientTokenNotice())
    app = AsyncApp(
        client=client,
        # Given its logger, Bolt leaves its level alone; left to itself it copies the root's INFO
        # and, in Socket Mode, logs each session it opens and closes (configure_logging says why not).
        logger=framework,
        signing_secret=secret,
        request_verification_enabled=not settings.socket_mode,
        raise_error_for_unhandled_request=False,
    )
    allowed = response_url_check(settings.slack_api_url)
    exposures = exposures or outbox.exposures
    in_flight = in_flight if in_flight is not None else commands.in_flight  # an empty InFlight is falsy
    # Bolt runs each listener's work after the ack in a task it keeps no handle to; its runner's
    # start and completion hooks, called inside that task, are the one place every listener passes.
    # Reached through Bolt's public `listener_runner`; tests/app/test_shutdown.py fails if they stop being called.
    runner = app.listener_runner
    runner.listener_start_handler = _Holding(in_flight)
    runner.listener_completion_handler = _Released(in_flight)

    @app.middleware
    async def well_formed(body: dict[str, Any], next: Callable[[], Awaitable[None]]) -> BoltResponse | None:
        """Socket Mode's payloads take this check here (HTTP ones took it at the door, in SlackGate)."""
        problem = payload_problem(body)
        url = body.get("response_url") if problem is None else None
        if problem is None and url is not None and not allowed(url):
            problem = "its response_url is not Slack's"
        if problem is not None:
            log.warning("dropped a request: %s", problem)
            return BoltResponse(status=400, body="")
        me = await app_self(client)
        elsewhere = foreign(body, team_id=me.team_id, app_id=me.app_id) if me is not None else None
        if elsewhere is not None:
            log.warning("dropped a request: %s", elsewhere)
            return BoltResponse(status=200, body="")  # acknowledged, so Slack does not send it again
        event = body.get("event")
        if isinstance(event, dict):  # Slack says with each event whether its channel is shared outside
            exposures.heard(
                event.get("channel") if isinstance(event.get("channel"), str) else None,
                body.get("is_ext_shared_channel"),
            )
        await next()
        return None

    @app.error
    async def on_error(error: Exception) -> None:
        # Listeners have their own boundary (bot.listeners.boundary); what reaches here happened
        # around them. Nothing of the request is used: it may not even be verified.
        log.error("unhandled error around a listener, reference %s", new_reference(), exc_info=error)

    async def open_start(client: AsyncWebClient, trigger_id: str, channel: str | None, user_id: str | None) -> None:
        await start.open_picker(
            client, steering, trigger_id=trigger_id, channel=channel, user_id=user_id, bindings=commands.bindings
        )

    commands_listener.register(app, commands, metrics, open_start=open_start)
    start.register(app, steering)
    unfurls.register(
        app,
        commands.answerer.fabro,
        hosts=hosts_of(settings.fabro_web_url, settings.fabro_api_url),
        clock=commands.answerer.clock,
        presentation=steering.presentation,
        exposures=exposures,
    )
    shower = Shower(app.client, steering.clock, steering.presentation, allowed, home, exposures=exposures)
    clicks = Controls(
        steering,
        shower,
        metrics,
        commands.answerer,
        commands.follower,
        steering.clock,
        steering.presentation,
        outbox,
        inspector,
        asker,
        desk=commands.desk,
        work=commands.work,
        bindings=commands.bindings,
        in_flight=in_flight,
    )
    controls.register(app, clicks)
    desk = commands.work

    async def ask_for_work(client: AsyncWebClient, event: dict[str, Any], body: dict[str, Any]) -> None:
        if desk is not None:
            await work_listener.ask_for_work(
                desk, client, event, body, command=settings.slash_command, shared_outside=exposures.external
            )

    mentions.register(app, steering, store, shower, clicks.act, asker=asker, ask_for_work=ask_for_work)
    if home is not None:

        @app.event("app_home_opened")
        async def on_home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
            user = event.get("user")
            if event.get("tab") == "home" and isinstance(user, str) and user[:1] in ("U", "W"):
                await home.publish(client, user)

    return app


@dataclass
class Bot:
    """One running bot: Slack over HTTP or Socket Mode, one Fabro client, one store, and the
    alert scheduler (`schedule_alerts=False` leaves cycles to the caller, as tests do)."""

    settings: Settings
    clock: Callable[[], datetime] = utc_now
    schedule_alerts: bool = True
    alert_pace: float = 1.0
    monotonic: Callable[[], float] = time.monotonic  # seconds, for how long a readiness answer is kept
    metrics: Metrics = field(init=False)
    fabro: FabroClient = field(init=False)
    follower: Follower = field(init=False)
    budget: EditBudget = field(init=False)
    outbox: Delivery = field(init=False)  # everything the bot posts by itself, exactly once
    daily: Daily = field(init=False)
    inspector: Inspector = field(init=False)
    asker: AskDesk = field(init=False)
    exposures: Exposures = field(init=False)  # what each channel may see of a run (EXTERNAL_CHANNELS)
    store: Store = field(init=False)
    alerter: Alerter = field(init=False)
    leadership: Leadership = field(init=False)
    live: LiveAlerts | None = field(init=False, default=None)
    in_flight: InFlight = field(init=False, default_factory=InFlight)  # what stopping lets finish first
    bolt: AsyncApp = field(init=False)
    http_port: int | None = field(init=False, default=None)
    health_port: int | None = field(init=False, default=None)
    _runners: list[web.AppRunner] = field(init=False, default_factory=list)
    _slack_http: web.AppRunner | None = field(init=False, default=None)  # HTTP mode's Slack endpoint
    _socket: AsyncSocketModeHandler | None = field(init=False, default=None)
    _scheduler: AsyncIOScheduler | None = field(init=False, default=None)
    _background: list[asyncio.Task[None]] = field(init=False, default_factory=list)
    _slack_auth: tuple[float, bool] = field(init=False, default=(0.0, False))
    _stopped: bool = field(init=False, default=False)
    _cycling: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)  # held for a whole scheduled cycle

    def __post_init__(self) -> None:
        s = self.settings
        assert s.fabro_api_url and s.fabro_api_token
        self.metrics = Metrics()
        self.fabro = FabroClient(
            s.fabro_api_url,
            s.fabro_api_token.get_secret_value(),
            timeout=s.fabro_timeout_seconds,
            observer=self.metrics.fabro,
            max_response_bytes=s.fabro_max_response_bytes,
            max_event_bytes=s.fabro_max_event_bytes,
        )
        self.store = open_store(s.database_url)
        client = slack_client(_bot_token(s), s.slack_api_url, self.metrics)
        github = (
            GitHubDeviceFlow(
                s.github_client_id,
                github_url=s.github_url or "https://github.com",
                api_url=s.github_api_url or "https://api.github.com",
            )
            if s.github_client_id
            else None
        )
        self.linker = Linker(
            self.store,
            self.clock,
            parse_user_links(s.user_links),
            LinkMode(s.link_mode),
            github=github,
            token_login=self.fabro.token_login,
        )
        presentation = Presentation(web_base=s.fabro_web_url, command=s.slash_command)
        answerer = Answerer(self.fabro, self.clock, presentation, linker=self.linker)
        self.permissions = Permissions(s.permission_rules, client)
        desk = SubscriptionDesk(
            self.store,
            default_channel=s.alert_channel,
            presentation=presentation,
            permissions=self.permissions,
            linker=self.linker,
        )
        alert_slack = slack_client(_bot_token(s), s.slack_api_url, self.metrics, resend_on_disconnect=False)
        # Whether a channel is shared with another organisation, asked of Slack in this one place.
        self.exposures = Exposures(client, ExternalChannels(s.external_channels))
        self.budget = EditBudget()
        self.daily = Daily(self.fabro, self.clock)
        self.outbox = delivery = Delivery(
            self.store,
            self.fabro,
            alert_slack,
            self.clock,
            presentation=presentation,
            digest_threshold=s.alert_digest_threshold,
            cost_alert_usd=s.cost_alert_usd,
            daily_budget_usd=s.daily_budget_usd,
            pace=self.alert_pace,
            daily=self.daily,
            budget=self.budget,
            exposures=self.exposures,
            lease=Lease(
                duration=timedelta(seconds=max(60.0, 4 * s.poll_interval_seconds))
                if s.shared_database
                else timedelta(0)
            ),
        )
        self.follower = Follower(
            self.store,
            self.fabro,
            delivery,
            self.clock,
            CardEditor(alert_slack, self.budget),
            presentation=presentation,
            follow_max=s.follow_max,
        )
        personal = Personal(self.linker, self.store, self.fabro, alert_slack)
        self.follower.permissions, self.follower.owner_of = self.permissions, personal.owner_of
        self.home = Home(self.store, self.fabro, self.linker, personal, self.clock, presentation=presentation)
        self.inspector = Inspector(
            self.fabro,
            self.store,
            alert_slack,
            self.clock,
            delivery,
            permissions=self.permissions,
            owner_of=personal.owner_of,
            log_max_bytes=s.log_max_bytes,
            external=self.exposures.minimal,
            command=s.slash_command,
        )
        self.asker = AskDesk(
            self.fabro,
            self.store,
            alert_slack,
            self.clock,
            self.budget,
            delivery,
            permissions=self.permissions,
            owner_of=personal.owner_of,
            external=self.exposures.minimal,
            command=s.slash_command,
        )
        commands = Commands(
            answerer,
            desk,
            daily=self.daily,
            zone_of=TimeZones(client).of,
            follower=self.follower,
            linker=self.linker,
            inspector=self.inspector,
            work=WorkDesk(
                self.store,
                self.clock,
                s.allowed_repositories,
                Path(s.workflows_dir),
                permissions=self.permissions,
                command=s.slash_command,
                bindings=Bindings(self.store, self.clock),
            ),
            tell=self._tell_person(personal, alert_slack),
            bindings=Bindings(self.store, self.clock),
            in_flight=self.in_flight,
        )
        steering = Steering(
            self.store,
            self.fabro,
            self.permissions,
            self.clock,
            presentation=presentation,
            workflows_dir=Path(s.workflows_dir),
            repositories=s.allowed_repositories,
            user_agent=f"fabro-slack-bot/{_version()}",
            owner_of=personal.owner_of,
            created=self._learn_token_login,
            lease=action_lease(s.fabro_timeout_seconds),
        )
        self.steering = steering
        self.bolt = build_bolt_app(
            s,
            client=client,
            commands=commands,
            steering=steering,
            store=self.store,
            metrics=self.metrics,
            outbox=delivery,
            home=self.home,
            inspector=self.inspector,
            asker=self.asker,
            exposures=self.exposures,
        )
        self.alerter = Alerter(
            self.store,
            self.fabro,
            self.clock,
            delivery,
            default_channel=s.alert_channel,
            presentation=presentation,
            personal=personal,
            on_index=self.home.changed,  # Home refreshes in its own task; the cycle only marks
            cost_alert_usd=s.cost_alert_usd,
            daily_budget_usd=s.daily_budget_usd,
        )
        self.reminders = Reminders(
            self.store,
            self.fabro,
            delivery,
            self.clock,
            remind_after=parse_duration(s.remind_after),
            escalate_after=parse_duration(s.escalate_after),
            escalate_to=Allowlist(parse_allowlist(s.escalate_to), client) if s.escalate_to else None,
            personal=personal,
        )
        # Stand-ins try for leadership often enough to take over well within two poll intervals.
        check_every = max(0.5, min(5.0, s.poll_interval_seconds / 2))
        self.leadership = leadership_for(s.database_url, check_every=check_every, on_change=self.metrics.leader.set)
        self.metrics.leader.set(1 if self.leadership.is_leader else 0)
        self.retention = Retention(self.store, self.clock, s.retention_days, lambda: self.leadership.is_leader)
        self.backfill = Backfill(
            self.store,
            self.fabro,
            personal,
            self.clock,
            lambda: self.leadership.is_leader,
            window=timedelta(seconds=max(300.0, 10 * s.poll_interval_seconds)),
            web_base=s.fabro_web_url,
            pages=s.index_backfill_pages,
        )
        if s.fabro_event_stream:
            self.live = LiveAlerts(
                self.fabro,
                self._live_reconcile,
                self.scheduled_cycle,
                lambda: self.leadership.is_leader and self.alerter.watching,
                on_state=self.metrics.stream.set,
                on_event=self.follower.on_event,
            )

    # -- HTTP surfaces ---------------------------------------------------------------------

    def probes(self) -> list[web.RouteDef]:
        return [
            web.get("/healthz", self._healthz),
            web.get("/readyz", self._readyz),
            web.get("/metrics", self._metrics),
        ]

    def web_app(self) -> web.Application:
        """Slack's requests and the probes, for HTTP mode."""
        application = web.Application()

        gate = SlackGate(
            self.settings.slack_signing_secret.get_secret_value() if self.settings.slack_signing_secret else ""
        )

        async def slack_events(request: web.Request) -> web.Response:
            admitted = await gate.admit(request)
            if isinstance(admitted, web.Response):
                return admitted
            return await to_aiohttp_response(await self.bolt.async_dispatch(admitted))

        application.add_routes([web.post(SLACK_EVENTS_PATH, slack_events), *self.probes()])
        return application

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _readyz(self, _: web.Request) -> web.Response:
        """Ready when this replica can serve Slack: the store takes a write and Slack takes the token.

        Fabro's state is reported but never makes the replica unready: during a Fabro outage every
        person must still get the "Fabro is down" sentence, not a timeout from an emptied pool.
        """
        checks = {"store": await self._store_ok(), "slack": await self._slack_ok()}
        ready = all(checks.values())
        self.metrics.fabro_up.set(1 if self.fabro.reachable else 0)
        body = {"ok": ready, "checks": {**checks, "fabro": self.fabro.reachable}}
        return web.json_response(body, status=200 if ready else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        self.metrics.fabro_up.set(1 if self.fabro.reachable else 0)
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def _store_ok(self) -> bool:
        try:
            async with asyncio.timeout(3):
                await self.store.ping(self.clock())
            return True
        except Exception as exc:  # noqa: BLE001 - any failure means not ready, whatever the backend raised
            log.warning("readiness: the store did not take a write (%s)", type(exc).__name__)
            return False

    async def _slack_ok(self) -> bool:
        checked_at, ok = self._slack_auth
        # Either answer is kept for at most 30 s: a revoked token makes the replica unready.
        if checked_at and self.monotonic() - checked_at < _SLACK_AUTH_RECHECK:
            return ok
        try:
            async with asyncio.timeout(5):
                await self.bolt.client.auth_test()
            ok = True
        except SlackApiError as exc:
            log.warning("Slack auth.test failed: %s", slack_error(exc))
            ok = False
        except Exception as exc:  # noqa: BLE001 - reported by /readyz and logged
            log.warning("Slack auth.test failed: %s", type(exc).__name__)
            ok = False
        self._slack_auth = (self.monotonic(), ok)
        return ok

    async def _serve(self, application: web.Application, port: int) -> tuple[web.AppRunner, int]:
        # Requests still being answered when it stops get a few seconds (Bolt answers Slack's within 3).
        runner = web.AppRunner(application, access_log=None, shutdown_timeout=_REQUESTS_FINISH)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, self.settings.host, port)
        await site.start()
        address = runner.addresses[-1] if runner.addresses else None
        return runner, int(address[1]) if isinstance(address, tuple) else port

    # -- alerts ------------------------------------------------------------------------------

    async def scheduled_cycle(self) -> CycleReport | None:
        """One alert cycle, on the leader only; its outcome is counted for /metrics."""
        async with self._cycling:
            if self._stopped:
                return None
            with self.in_flight.held():  # stopping lets the cycle finish, within its grace
                return await self._cycle()

    async def _cycle(self) -> CycleReport | None:
        """One alert cycle's work: the engine decides, the outbox delivers, then the sweeps."""
        if not self.leadership.is_leader:
            self.metrics.cycles.labels("not_leader").inc()
            await self.follower.stop()  # only the leader follows runs
            return None
        # The engine decides, then the outbox delivers.
        report, fresh = await self.alerter.decide()
        if report.skipped != "closed":
            await self.outbox.deliver(report, fresh)
            log_cycle(report)
        if report.skipped is None:
            await self.backfill.polled()  # Fabro was read: no outage to fill in on the next start
        await self._resume_starts()
        await self.reminders.sweep()
        await self.follower.sync_all(self.alerter.changed_runs)  # only what the listing saw change
        await self.asker.recover()  # answers a crash left being written
        self._count(report)
        return report

    async def _resume_starts(self) -> None:
        """Starts of work a dead process left half-done are finished, then told and followed as any start."""
        # Longer than a start can take: validate, create and start, each within the Fabro timeout.
        older_than = timedelta(seconds=3 * self.settings.fabro_timeout_seconds + 5)
        for settled, draft in await self.steering.resume_starts(older_than=older_than):
            await start.after_work_started(self.outbox, self.follower, settled, draft, self.steering.presentation)
        # Retries, starts, merges, closes and steers a dead process left pending: settled from Fabro.
        await self.steering.settle_interrupted()

    async def _live_reconcile(self, run_id: str) -> CycleReport:
        if self._stopped:
            return CycleReport(skipped="closed")
        with self.in_flight.held():
            report = await self.alerter.reconcile_run(run_id)
        self._count(report, cycle=False)  # a live reconcile delivers alerts; it is not a cycle
        return report

    def _count(self, report: CycleReport, *, cycle: bool = True) -> None:
        if cycle:
            self.metrics.cycles.labels(
                "skipped_" + report.skipped.replace(" ", "_") if report.skipped else "done"
            ).inc()
        for event, n in (
            ("posted", report.posted),
            ("digested", report.digests),
            ("updated", report.updated),
            ("deduplicated", report.deduplicated),
            ("failed", report.failed),
        ):
            if n:
                self.metrics.alerts.labels(event).inc(n)

    # -- lifecycle ---------------------------------------------------------------------------

    def _tell_person(self, personal: Personal, slack: AsyncWebClient) -> Callable[[str, str], Awaitable[None]]:
        async def tell(user_id: str, said: str) -> None:
            dm = await personal.dm(user_id)
            if dm is None:
                return
            try:
                await slack.chat_postMessage(channel=dm, text=said, unfurl_links=False)
            except SlackApiError as exc:
                log.warning("could not tell user=%s: %s", user_id, slack_error(exc))

        return tell

    def _learn_token_login(self, run: Run) -> None:
        """A run the bot created names the login its token acts as: that login is nobody's."""
        principal = run.created_by
        if principal is not None and principal.kind == "user":
            self.linker.reserve(principal.login)

    async def start(self) -> None:
        """Open the store, connect to Slack, start the alerts. Cancelling it midway is a stop
        during startup: `stop` then closes whatever it had opened."""
        await self.store.open()
        if self.settings.socket_mode:
            assert self.settings.slack_app_token
            token = self.settings.slack_app_token.get_secret_value()
            self._socket = _socket_mode(self.bolt, token, self.in_flight)
            await self._socket.connect_async()
            mode = "Socket Mode"
        else:
            self._slack_http, self.http_port = await self._serve(self.web_app(), self.settings.port)
            mode = f"HTTP mode, listening on http://{self.settings.host}:{self.http_port}{SLACK_EVENTS_PATH}"
        if self.settings.health_port is not None:
            probes = web.Application()
            probes.add_routes(self.probes())
            _, self.health_port = await self._serve(probes, self.settings.health_port)
            mode += f", probes on port {self.health_port}"
        await self.leadership.start()
        alerts = "no alerts (not scheduled here)"
        if self.schedule_alerts:
            # Decided before the first cycle marks Fabro as read: runs older than the bot, or
            # changed during an outage, reach the index in the background, a page at a time.
            if await self.backfill.due():
                self._background.append(asyncio.create_task(self.backfill.fill(), name="index-backfill"))
            self._scheduler = start_scheduler(self.scheduled_cycle, self.settings.poll_interval_seconds)
            alerts = f"alerts every {self.settings.poll_interval_seconds:g}s"
            if self.live is not None:
                await self.live.start()
                alerts += " and from Fabro's event stream"
            self._background.append(asyncio.create_task(self.retention.run(), name="retention"))
        self.home.start(self.bolt.client)
        # The one line that says the bot is up, and with what: an operator's first question.
        store = public_url(self.settings.database_url)
        replicas = "shared by replicas" if self.settings.shared_database else "one process"
        fabro = public_url(self.settings.fabro_api_url or "")
        log.info("ready: %s; store %s (%s); Fabro at %s; %s", mode, store, replicas, fabro, alerts)

    async def stop(self) -> None:
        """Stop in the order that keeps every write inside an open store, whenever it is called
        (a started bot, or one whose start was cancelled midway):

        1. no new work: Slack's requests and events stop coming in, no cycle starts, and the
           index's backfill and retention (taken up again on the next start) stop;
        2. work in flight (a person's request being answered, an alert cycle, a follow-up) finishes,
           within SHUTDOWN_GRACE_SECONDS; what is still running then is cancelled, and an action
           record it leaves pending is settled from Fabro's evidence on the next start;
        3. the bot's own tasks stop: live alerts, Home, followed runs, the scheduler, leadership;
        4. Slack's and Fabro's clients close, and the store last.
        """
        if self._stopped:
            return
        self._stopped = True
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.settings.shutdown_grace_seconds
            # 1. Nothing new comes in, and the index's backfill and retention sweeps, owed to nobody and
            # taken up again on the next start, stop.
            if self._scheduler is not None:
                self._scheduler.pause()
            for task in self._background:
                await stop_task(task)
            await self._stop_receiving()
            if self._slack_http is not None:
                await self._slack_http.cleanup()  # stops listening; requests being answered finish
            # 2. What is in flight finishes, or is cancelled at the deadline.
            late = await self.in_flight.settle(deadline - loop.time())
            if late:
                log.warning(
                    "stopped %d piece(s) of work still running after %g s (SHUTDOWN_GRACE_SECONDS): %s;"
                    " any action they left pending is settled from Fabro on the next start",
                    len(late),
                    self.settings.shutdown_grace_seconds,
                    ", ".join(late),
                )
            await self.alerter.close(timeout=max(0.0, deadline - loop.time()))
            # 3. The bot's own tasks.
            if self.live is not None:
                await self.live.stop()
            await self.home.stop()
            await self.follower.stop()
            if self._scheduler is not None:
                self._scheduler.shutdown(wait=False)  # nothing of it runs any more: its cycle was let finish
            await self.leadership.stop()
            # 4. Clients, then the store.
            await self._close_socket()
            for runner in self._runners:
                if runner is not self._slack_http:  # the probes: answered until now
                    await runner.cleanup()
        finally:  # whatever failed above, the connections and the store are let go
            await self.fabro.aclose()
            await self.store.close()

    async def _stop_receiving(self) -> None:
        """Socket Mode reads no more envelopes (Slack gives those it sent meanwhile to another
        connection, or sends them again); the connection stays open for the acks still to send."""
        if self._socket is None:
            return
        client = self._socket.client
        # Closed for its loops: none reads or reconnects again (sending, for acks, still works).
        client.closed, client.auto_reconnect_enabled = True, False
        for task in (client.message_receiver, client.current_session_monitor):
            if isinstance(task, asyncio.Task):
                await stop_task(task)

    async def _close_socket(self) -> None:
        """Socket Mode's client closes, and the tasks it started are waited for (it only cancels them)."""
        if self._socket is None:
            return
        await self._socket.close_async()
        client = self._socket.client
        for task in (client.message_receiver, client.current_session_monitor, client.message_processor):
            if isinstance(task, asyncio.Task):
                await stop_task(task)


async def serve(settings: Settings, *, signalled: Callable[[], bool] = lambda: False) -> None:
    """Run until SIGINT or SIGTERM, then stop cleanly; a signal during startup stops it too.

    `signalled` says whether a signal came before this loop could take it (the CLI catches them
    from its very start).
    """
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    if signalled():
        stopping.set()
    bot = Bot(settings)
    starting = asyncio.create_task(bot.start(), name="startup")
    signal_seen = asyncio.create_task(stopping.wait(), name="until-signalled")
    try:
        await asyncio.wait({starting, signal_seen}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # a start that failed is raised, once what it opened is closed
            await signal_seen
        else:
            log.info("stopping during startup")
    finally:
        await stop_task(starting, timeout=settings.shutdown_grace_seconds)  # a start cut short unwinds
        await stop_task(signal_seen)
        log.info("shutting down")
        await bot.stop()
