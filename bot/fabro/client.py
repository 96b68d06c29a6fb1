"""The async HTTP client for Fabro's API: bounded time, retried reads, typed errors."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import stamina
from httpx_sse import EventSource, ServerSentEvent
from pydantic import BaseModel, ValidationError

from bot.fabro.errors import (
    AmbiguousRun,
    FabroConflict,
    FabroError,
    FabroNotFound,
    FabroRejected,
    FabroUnauthorized,
    FabroUnavailable,
    FabroUnreadable,
)
from bot.fabro.events import pull_request_opened
from bot.fabro.filters import RunFilter
from bot.fabro.models import (
    AutomationPreset,
    ErrorResponse,
    Failure,
    ListMeta,
    PullRequestCreation,
    PullRequestOpened,
    PullRequestState,
    Question,
    Run,
    RunEvent,
    RunList,
    Stage,
    Validation,
)
from bot.fabro.outputs import (
    ChangedFile,
    FilesMeta,
    RunBilling,
    RunCommits,
    RunFiles,
    Session,
    SessionDetail,
    TurnEvent,
)
from bot.redact import redact

__all__ = ["ULID_LENGTH", "FabroClient"]

log = logging.getLogger(__name__)

ULID_LENGTH = 26
_RETRYABLE_STATUS = frozenset({502, 503, 504})
_MAX_DETAIL = 300


class FabroClient:
    """One `httpx.AsyncClient` to one Fabro server.

    Every call finishes within `timeout` seconds, retries included: the bot must always
    answer its user. Reads (GET) are retried with jittered backoff on connection errors
    and 502/503/504; writes are sent once, because Fabro may have acted on them.
    Each call sends its own `x-request-id`, so even a call that timed out can be traced.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        connect_timeout: float = 3.0,
        retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        observer: Callable[[str, str, int | None], None] | None = None,
        max_response_bytes: int = 32 * 1024 * 1024,
        max_event_bytes: int = 1024 * 1024,
    ) -> None:
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self.max_event_bytes = max_event_bytes
        self.observer = observer
        self.recent: list[bool] = []  # whether the last few calls reached Fabro (for readiness)
        self.connect_timeout = min(connect_timeout, timeout)
        self.retries = retries
        self._token = token
        self._root = httpx.URL(base_url.rstrip("/") + "/")
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/api/v1",
            headers={"Accept": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {}),
            transport=transport,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
            follow_redirects=False,
        )
        # Event streams hold their connection for minutes: they get a pool of their own.
        self._streams = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/api/v1",
            headers={"Accept": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {}),
            transport=transport,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=0),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._streams.aclose()

    async def __aenter__(self) -> FabroClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- reads -------------------------------------------------------------------

    async def list_runs(self, listing: RunFilter) -> RunList:
        body = await self._json("GET", "/runs", params=listing.params())
        return self._read(lambda: _parse_run_list(body))

    async def get_run(self, run_id: str) -> Run:
        body = await self._json("GET", f"/runs/{_segment(run_id)}")
        return self._read(lambda: _one(Run, body, "a run"))

    async def resolve_run(self, selector: str) -> Run:
        body = await self._json("GET", "/runs/resolve", params=[("selector", selector)])
        return self._read(lambda: _one(Run, body, "a run"))

    async def find_run(self, selector: str) -> Run:
        """A full run id is fetched directly; anything shorter is resolved as a prefix.

        Fabro's resolver falls back to a workflow name and answers that workflow's newest run:
        a run whose id does not start with the prefix is not the one asked for.
        """
        if len(selector) == ULID_LENGTH:
            return await self.get_run(selector.upper())
        try:
            run = await self.resolve_run(selector)
        except FabroRejected as exc:
            if exc.status != 400 or not selector.strip():
                raise
            # Fabro says only "ambiguous": name the runs it could be, from the newest ones.
            candidates = await self._starting_with(selector.upper())
            if len(candidates) < 2:
                raise
            raise AmbiguousRun(exc.detail, candidates=candidates, request_id=exc.request_id) from None
        if not run.id.upper().startswith(selector.upper()):
            raise FabroNotFound(f"No run id starts with {selector!r}.", status=404, request_id=_last_request_id.get())
        return run

    async def _starting_with(self, prefix: str, *, newest: int = 100) -> list[tuple[str, str]]:
        """Runs among the newest `newest` (archived included) whose id starts with `prefix`."""
        page = await self.list_runs(RunFilter(limit=newest, include_archived=True))
        return [(r.id, r.title or r.goal or "") for r in page.data if r.id.startswith(prefix)]

    async def events_back(
        self, run_id: str, found: Callable[[list[RunEvent]], bool], *, page: int = 100, pages: int = 5
    ) -> list[RunEvent]:
        """The run's events, newest first, paging back with `before_seq` until `found` says the
        events needed are there, or `pages` pages were read (busy agent runs have thousands)."""
        events: list[RunEvent] = []
        params = [("order", "desc"), ("limit", str(page))]
        for _ in range(pages):
            body = await self._json("GET", f"/runs/{_segment(run_id)}/events", params=params)
            batch = self._read(functools.partial(_many, RunEvent, body, "events"))
            events += batch
            seqs = [e.seq for e in batch if e.seq is not None]
            if found(events) or len(batch) < page or not seqs or min(seqs) <= 1:
                break
            params = [("order", "desc"), ("limit", str(page)), ("before_seq", str(min(seqs)))]
        return events

    async def recent_events(self, run_id: str, *, limit: int = 100) -> list[RunEvent]:
        body = await self._json(
            "GET",
            f"/runs/{_segment(run_id)}/events",
            params=[("order", "desc"), ("limit", str(limit))],
        )
        return self._read(lambda: _many(RunEvent, body, "events"))

    async def opened_pull_request(self, run_id: str, number: int | None) -> PullRequestOpened | None:
        """What the run's `pull_request.created` (or `.linked`) event says of pull request `number`."""

        def of(events: list[RunEvent]) -> PullRequestOpened | None:
            for event in events:
                opened = pull_request_opened(event)
                if opened is not None and (number is None or opened.number == number):
                    return opened
            return None

        return of(await self.events_back(run_id, lambda events: of(events) is not None, pages=3))

    async def latest_failure(self, run_id: str) -> Failure | None:
        """The failure of the run's latest `run.failed` event (Fabro leaves `lifecycle.error` null)."""
        for event in await self.recent_events(run_id):
            if event.event == "run.failed":
                return Failure.from_event(event)
        return None

    async def list_questions(self, run_id: str) -> list[Question]:
        body = await self._json("GET", f"/runs/{_segment(run_id)}/questions")
        return self._read(lambda: _many(Question, body, "questions"))

    async def health(self) -> None:
        """`GET /health` (no token needed): raises unless the server answers 2xx."""
        response = await self._send("GET", f"{self._root}health")
        if response.status_code >= 300:
            raise FabroUnavailable(f"Fabro answered {response.status_code} to /health.", status=response.status_code)

    async def check_token(self) -> None:
        """One cheap authenticated call: raises FabroUnauthorized for a bad token."""
        await self.list_runs(RunFilter(limit=1))

    async def token_login(self) -> str | None:
        """The login the API token acts as, from `GET /api/v1/auth/me`, which exists only where Fabro
        serves its web UI (404 elsewhere); None when Fabro does not say."""
        try:
            body = await self._json("GET", "/auth/me")
        except (FabroNotFound, FabroUnreadable, FabroRejected):
            return None
        user = body.get("user") if isinstance(body, dict) else None
        login = user.get("login") if isinstance(user, dict) else None
        return login.lower() if isinstance(login, str) and login else None

    # -- writes: sent once (Fabro may have acted); the caller decides about retrying --

    async def answer_question(self, run_id: str, question_id: str, answer: dict[str, Any]) -> None:
        """`answer` is Fabro's tagged body: {"kind": "yes"}, {"kind": "selected", "option_key": …}…"""
        await self._json("POST", f"/runs/{_segment(run_id)}/questions/{_segment(question_id)}/answer", body=answer)

    async def approve(self, run_id: str) -> Run:
        return await self._post_run(f"/runs/{_segment(run_id)}/approve", None, "the approved run")

    async def deny(self, run_id: str, reason: str | None = None) -> Run:
        return await self._post_run(
            f"/runs/{_segment(run_id)}/deny", {"reason": reason} if reason else {}, "the denied run"
        )

    async def cancel(self, run_id: str) -> tuple[Run, bool]:
        """The run, and whether the cancel is done (200) rather than requested and converging (202)."""
        response = await self._send("POST", f"/runs/{_segment(run_id)}/cancel")
        return self._read(lambda: _one(Run, _decode(response), "the cancelled run")), response.status_code != 202

    async def retry(self, run_id: str, *, user_agent: str | None = None) -> Run:
        """The NEW run (201), whose `retried_from` is `run_id`. Fabro keeps `user_agent` in the new
        run's provenance: an intent named there finds the run again after a crash."""
        headers = {"User-Agent": user_agent} if user_agent else None
        answer = await self._json("POST", f"/runs/{_segment(run_id)}/retry", body=None, headers=headers)
        return self._read(lambda: _one(Run, answer, "the new run"))

    async def resume(self, run_id: str) -> Run:
        """Run a failed run again in place from its last checkpoint (200, the same run, `runnable`)."""
        return await self._post_run(f"/runs/{_segment(run_id)}/start", {"resume": True}, "the resumed run")

    async def checkpoints(self, run_id: str) -> int:
        """How many checkpoints the run has (`GET /runs/{id}/timeline`, a bare array): none, no resume."""
        body = await self._json("GET", f"/runs/{_segment(run_id)}/timeline")
        if not isinstance(body, list):
            raise FabroUnreadable(f"Fabro answered without a timeline (got {_shape(body)}).")
        return sum(1 for entry in body if isinstance(entry, dict))

    async def _post_run(self, path: str, body: dict[str, Any] | None, what: str) -> Run:
        answer = await self._json("POST", path, body=body)
        return self._read(lambda: _one(Run, answer, what))

    # -- working with a running agent ---------------------------------------------------------

    async def steer(self, run_id: str, text: str, *, interrupt: bool = False) -> None:
        """Queue `text` for the agent's next turn (202); with `interrupt`, stop its current round first."""
        body: dict[str, Any] = {"text": text} | ({"interrupt": True} if interrupt else {})
        await self._json("POST", f"/runs/{_segment(run_id)}/steer", body=body)

    async def interrupt(self, run_id: str) -> None:
        await self._json("POST", f"/runs/{_segment(run_id)}/interrupt")

    async def pause(self, run_id: str) -> Run:
        return await self._post_run(f"/runs/{_segment(run_id)}/pause", None, "the paused run")

    async def unpause(self, run_id: str) -> Run:
        return await self._post_run(f"/runs/{_segment(run_id)}/unpause", None, "the resumed run")

    # -- automations -------------------------------------------------------------------

    async def automations(self) -> list[AutomationPreset]:
        body = await self._json("GET", "/automations")
        return self._read(lambda: _many(AutomationPreset, body, "automations"))

    async def start_automation(self, automation_id: str, *, user_agent: str | None = None) -> Run:
        """Fire the automation's enabled `api` trigger (201, the new run). Never repeated: it costs money.
        Fabro keeps `user_agent` in the new run's provenance, as for `retry`."""
        headers = {"User-Agent": user_agent} if user_agent else None
        answer = await self._json("POST", f"/automations/{_segment(automation_id)}/runs", headers=headers)
        return self._read(lambda: _one(Run, answer, "the started run"))

    # -- runs from a manifest (shared/fabro/CREATE-RUN.md) ---------------------------------

    async def validate(self, manifest: dict[str, Any]) -> Validation:
        """`POST /validate`: the workflow's diagnostics, without creating anything."""
        answer = await self._json("POST", "/validate", body=manifest)
        return self._read(lambda: _one(Validation, answer, "a validation"))

    async def create_run(self, manifest: dict[str, Any], *, user_agent: str) -> Run:
        """`POST /runs` (201, status `submitted`). Never repeated: a second call makes a second run."""
        answer = await self._json("POST", "/runs", body=manifest, headers={"User-Agent": user_agent})
        return self._read(lambda: _one(Run, answer, "the created run"))

    async def start_run(self, run_id: str) -> Run:
        """`POST /runs/{id}/start`: a created run waits in `submitted` until this is called."""
        return await self._post_run(f"/runs/{_segment(run_id)}/start", {"resume": False}, "the started run")

    async def labelled(self, key: str, value: str, *, pages: int = 3) -> Run | None:
        """The newest run labelled `key=value` among the most recently created (Fabro has no label filter)."""
        for page in range(pages):
            listing = await self.list_runs(RunFilter(sort="created_at", direction="desc", limit=100, offset=page * 100))
            found = next((r for r in listing.data if r.labels.get(key) == value), None)
            if found is not None or not listing.meta.has_more:
                return found
        return None

    async def created_since(self, since: datetime, keep: Callable[[Run], bool], *, pages: int = 3) -> list[Run]:
        """The runs created at or after `since` that `keep` wants, newest first, among the most recently
        created (`pages` pages of 100: Fabro filters by neither origin nor creator)."""
        found: list[Run] = []
        for page in range(pages):
            listing = await self.list_runs(
                RunFilter(sort="created_at", direction="desc", limit=100, offset=page * 100, include_archived=True)
            )
            for run in listing.data:
                created = run.timestamps.created_at
                if created is not None and created < since:
                    return found
                if keep(run):
                    found.append(run)
            if not listing.meta.has_more:
                break
        return found

    async def successors(self, run: Run, *, skew: timedelta = timedelta(minutes=10)) -> list[Run]:
        """The runs retried from `run`, newest first: Fabro creates them after it ended (`skew` allows
        for the clocks of the asker and Fabro)."""
        since = run.timestamps.completed_at or run.timestamps.created_at or datetime.min.replace(tzinfo=UTC)
        return await self.created_since(since - skew, lambda r: r.retried_from == run.id)

    async def creation_agent(self, run_id: str) -> str | None:
        """The `User-Agent` of the request that created the run, from its provenance (its `run.created` event)."""
        body = await self._json("GET", f"/runs/{_segment(run_id)}/events", params=[("order", "asc"), ("limit", "5")])
        for event in self._read(lambda: _many(RunEvent, body, "events")):
            if event.event == "run.created":
                client = _dig(event.properties, "provenance", "client")
                agent = client.get("user_agent") if isinstance(client, dict) else None
                return agent if isinstance(agent, str) else None
        return None

    # -- pull requests ---------------------------------------------------------------

    async def create_pull_request(self, run_id: str) -> tuple[PullRequestCreation, str, float]:
        """Ask Fabro to write and open the run's pull request (202; Fabro opens it as a draft): the
        creation, where to poll it, and how long to wait first."""
        response = await self._send("POST", f"/runs/{_segment(run_id)}/pull_request", body={"force": False})
        creation = self._read(lambda: _one(PullRequestCreation, _decode(response), "a pull request creation"))
        location = response.headers.get("location") or "pull_request/creation"
        url = self._on_this_server(response.request.url.join(location), response)
        return creation, str(url), _seconds(response.headers.get("retry-after"))

    def _on_this_server(self, url: httpx.URL, response: httpx.Response | None = None) -> httpx.URL:
        """`url` when it is on FABRO_API_URL's origin (scheme, host and port): the token is never sent
        elsewhere, whatever a `Location` header names. Fabro's root-relative `/api/v1/…` gets the
        base URL's own path prefix (a server behind `https://host/fabro`)."""
        if (url.scheme, url.host, url.port) != (self._root.scheme, self._root.host, self._root.port):
            request_id = response.headers.get("x-request-id") if response is not None else None
            raise FabroUnreadable(
                "Fabro named another server for the pull request's creation; it was not asked",
                request_id=request_id,
            )
        prefix = self._root.path.rstrip("/")
        if prefix and url.path.startswith("/api/v1/"):
            url = url.copy_with(path=prefix + url.path)
        return url

    async def pull_request_creation(self, url: str) -> tuple[PullRequestCreation, float]:
        """The creation at `url` (from `create_pull_request`); only ever asked of FABRO_API_URL's origin."""
        response = await self._send("GET", str(self._on_this_server(httpx.URL(url))))
        creation = self._read(lambda: _one(PullRequestCreation, _decode(response), "a pull request creation"))
        return creation, _seconds(response.headers.get("retry-after"))

    async def pull_request(self, run_id: str) -> PullRequestState:
        body = await self._json("GET", f"/runs/{_segment(run_id)}/pull_request")
        data = body.get("data") if isinstance(body, dict) else None
        state = self._read(lambda: _one(PullRequestState, data, "the run's pull request"))
        meta = body.get("meta") if isinstance(body, dict) else None
        if state.details is None and isinstance(meta, dict):
            reason = meta.get("details_unavailable_reason")
            state.unavailable = reason if isinstance(reason, str) else "unavailable"
        return state

    async def merge_pull_request(self, run_id: str, method: str) -> None:
        await self._json("POST", f"/runs/{_segment(run_id)}/pull_request/merge", body={"method": method})

    async def close_pull_request(self, run_id: str) -> None:
        await self._json("POST", f"/runs/{_segment(run_id)}/pull_request/close")

    # -- the live event stream -------------------------------------------------------

    @asynccontextmanager
    async def attach(self, *, idle_timeout: float = 300.0) -> AsyncIterator[AsyncIterator[RunEvent]]:
        """Fabro's global event stream (`GET /api/v1/attach`, SSE with `data:` frames only).

        Live only: nothing is replayed, and a slow reader loses events. `idle_timeout`
        bounds the silence between frames, so a dead connection is noticed. A run resumed in
        place on the same server gets a second forwarder and its events arrive twice: each
        (run_id, seq) is given once.
        """
        async with self._stream("/attach", [], idle_timeout) as events, aclosing(_distinct(events)) as distinct:
            yield distinct

    @asynccontextmanager
    async def attach_run(
        self, run_id: str, since_seq: int, *, idle_timeout: float = 300.0
    ) -> AsyncIterator[AsyncIterator[RunEvent]]:
        """One run's events from `since_seq` on (replayed, then live); the stream ends after the run does."""
        params = [("since_seq", str(since_seq))]
        async with self._stream(f"/runs/{_segment(run_id)}/attach", params, idle_timeout) as events:
            yield events

    async def stages(self, run_id: str) -> list[Stage]:
        body = await self._json("GET", f"/runs/{_segment(run_id)}/stages")
        return self._read(lambda: _many(Stage, body, "stages"))

    async def events_since(self, run_id: str, since_seq: int, *, limit: int = 200, pages: int = 10) -> list[RunEvent]:
        """The run's events with `seq >= since_seq`, oldest first (a bounded number of pages)."""
        events: list[RunEvent] = []
        for _ in range(pages):
            params = [("since_seq", str(since_seq)), ("limit", str(limit))]
            body = await self._json("GET", f"/runs/{_segment(run_id)}/events", params=params)
            batch = self._read(functools.partial(_many, RunEvent, body, "events"))
            events += batch
            seqs = [e.seq for e in batch if e.seq is not None]
            if len(batch) < limit or not seqs:
                break
            since_seq = max(seqs) + 1
        return events

    # -- what a run produced and used ---------------------------------------------------

    async def run_files(self, run_id: str) -> RunFiles:
        """The run's changed files (at most 200, Fabro's cap), file by file: one unreadable costs itself."""
        body = await self._json("GET", f"/runs/{_segment(run_id)}/files")
        return self._read(lambda: _parse_files(body))

    async def run_commits(self, run_id: str) -> RunCommits:
        body = await self._json("GET", f"/runs/{_segment(run_id)}/commits")
        return self._read(lambda: _one(RunCommits, body, "the run's commits"))

    async def run_billing(self, run_id: str) -> RunBilling:
        body = await self._json("GET", f"/runs/{_segment(run_id)}/billing")
        return self._read(lambda: _one(RunBilling, body, "the run's billing"))

    async def run_log(self, run_id: str, max_bytes: int) -> tuple[bytes, int]:
        """The run's log (`text/plain`), at most its last `max_bytes` bytes, and its whole size.

        Read as a stream, so a log of any size costs `max_bytes` of memory: the tail is what
        tells why a run ended."""
        path = f"/runs/{_segment(run_id)}/logs"
        async with self._raw_stream("GET", path, idle_timeout=self.timeout) as response:
            tail, size = bytearray(), 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                tail += chunk
                if len(tail) > 2 * max_bytes:
                    del tail[: len(tail) - max_bytes]
            return bytes(tail[-max_bytes:] if max_bytes else b""), size

    async def run_graph(self, run_id: str) -> str:
        """The run's workflow graph as SVG (Fabro renders it with Graphviz)."""
        return await self._text("GET", f"/runs/{_segment(run_id)}/graph")

    async def graph_source(self, run_id: str) -> str:
        """The run's workflow graph as Graphviz DOT source."""
        return await self._text("GET", f"/runs/{_segment(run_id)}/graph/source")

    async def preview_url(self, run_id: str, port: int, expires_in: int) -> str:
        """A signed link to `port` of the run's sandbox, valid `expires_in` seconds. It is a secret."""
        body = {"port": port, "expires_in_secs": expires_in, "signed": True}
        answer = await self._json("POST", f"/runs/{_segment(run_id)}/preview", body=body)
        return self._read(lambda: _preview_link(answer))

    # -- Ask Fabro ------------------------------------------------------------------------

    async def create_session(self, run_id: str) -> Session:
        answer = await self._json("POST", f"/runs/{_segment(run_id)}/sessions", body={"title": "Asked from Slack"})
        return self._read(lambda: _one(Session, answer, "a session"))

    async def get_session(self, session_id: str) -> SessionDetail:
        body = await self._json("GET", f"/sessions/{_segment(session_id)}")
        return self._read(lambda: _one(SessionDetail, body, "a session"))

    @asynccontextmanager
    async def turn(
        self, session_id: str, text: str, *, idle_timeout: float = 120.0
    ) -> AsyncIterator[AsyncIterator[TurnEvent]]:
        """Send one question to a session and read its answer as it is written (SSE, closed at the end).

        Fabro refuses a second turn while one runs: 409 `session_active_turn`."""
        path = f"/sessions/{_segment(session_id)}/turns"
        async with self._raw_stream("POST", path, idle_timeout=idle_timeout, body={"input": text}) as response:
            yield self._turn_events(response)

    async def _turn_events(self, response: httpx.Response) -> AsyncIterator[TurnEvent]:
        """A turn's frames (parsed by httpx-sse, see `_sse_frames`): `event:` names it, `data:` is the
        envelope; other frames are skipped."""
        request_id = response.headers.get("x-request-id") or ""
        try:
            async for sse in _sse_frames(response, self.max_event_bytes):
                if not sse.data:
                    continue
                try:
                    envelope = json.loads(sse.data)
                    if isinstance(envelope, dict):
                        event = TurnEvent.model_validate(envelope)
                        # httpx-sse calls a frame without `event:` a "message": such a frame names nothing.
                        name = "" if sse.event == "message" else sse.event
                        yield event if event.event else event.model_copy(update={"event": name})
                except (ValueError, ValidationError):
                    log.debug("skipped a turn frame that is not an event")
        except httpx.HTTPError as exc:
            raise FabroUnavailable(
                f"The answer stream broke ({type(exc).__name__}).", request_id=request_id, ours=True
            ) from exc

    async def _text(self, method: str, path: str) -> str:
        response = await self._send(method, path)
        return response.text

    @asynccontextmanager
    async def _raw_stream(
        self, method: str, path: str, *, idle_timeout: float, body: Any = None
    ) -> AsyncIterator[httpx.Response]:
        """One streamed answer on the streams' own connections; a 4xx/5xx is raised as a typed error."""
        request_id = str(uuid.uuid4())
        timeout = httpx.Timeout(self.timeout, connect=self.connect_timeout, read=idle_timeout)
        headers = {"x-request-id": request_id} | ({"Content-Type": "application/json"} if body is not None else {})
        try:
            async with self._streams.stream(
                method,
                path,
                content=None if body is None else json.dumps(body),
                timeout=timeout,
                headers=headers,
            ) as response:
                self._observe(method, path, response.status_code)
                if response.status_code >= 400:
                    await response.aread()
                    raise self._scrubbed(error_from_response(response, fallback_request_id=request_id))
                yield response
        except httpx.HTTPError as exc:
            self._observe(method, path, None)
            raise FabroUnavailable(
                f"Fabro's answer broke off ({type(exc).__name__}).", request_id=request_id, ours=True
            ) from exc

    @asynccontextmanager
    async def _stream(
        self, path: str, params: list[tuple[str, str]], idle_timeout: float
    ) -> AsyncIterator[AsyncIterator[RunEvent]]:
        """Server-sent events on connections of their own: fifty open streams never make a command wait."""
        request_id = str(uuid.uuid4())
        timeout = httpx.Timeout(self.timeout, connect=self.connect_timeout, read=idle_timeout)
        try:
            async with self._streams.stream(
                "GET",
                path,
                params=tuple(params),
                timeout=timeout,
                headers={"Accept": "text/event-stream", "x-request-id": request_id},
            ) as response:
                self._observe("GET", path, response.status_code)
                if response.status_code >= 400:
                    await response.aread()
                    raise self._scrubbed(error_from_response(response, fallback_request_id=request_id))
                # Closed here, with the response: never left for the garbage collector to finish later.
                async with aclosing(self._sse_events(response, request_id)) as events:
                    yield events
        except httpx.HTTPError as exc:
            self._observe("GET", path, None)
            raise FabroUnavailable(
                f"The event stream broke ({type(exc).__name__}).", request_id=request_id, ours=True
            ) from exc

    # -- core --------------------------------------------------------------------

    async def _json(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        response = await self._send(method, path, params=params, body=body, headers=headers)
        return self._read(lambda: _decode(response))

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One call, within `timeout` seconds. A read (GET) is retried by stamina, with jittered
        exponential backoff, on a refused connection or a 502/503/504; a write is sent once, since
        Fabro may have acted on it. The deadline bounds the retries and the waits between them."""
        request_id = str(uuid.uuid4())
        deadline = asyncio.get_running_loop().time() + self.timeout
        attempts = 1 + (self.retries if method == "GET" else 0)
        try:
            async with asyncio.timeout_at(deadline):
                async for attempt in stamina.retry_context(
                    on=_Retryable, attempts=attempts, timeout=None, wait_initial=0.2, wait_max=2.0, wait_jitter=0.2
                ):
                    with attempt:
                        return await self._attempt(method, path, params, body, headers, request_id, deadline)
        except _Retryable as exc:
            raise exc.error from exc.__cause__
        except TimeoutError as exc:  # the deadline fell while waiting to try again
            raise self._timed_out(request_id) from exc
        raise AssertionError("unreachable: stamina makes at least one attempt")

    async def _attempt(
        self,
        method: str,
        path: str,
        params: Sequence[tuple[str, str]] | None,
        body: Any,
        headers: dict[str, str] | None,
        request_id: str,
        deadline: float,
    ) -> httpx.Response:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise self._timed_out(request_id)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(remaining):
                request = self._http.build_request(
                    method,
                    path,
                    params=tuple(params) if params is not None else None,
                    content=None if body is None else json.dumps(body),
                    headers={"x-request-id": request_id}
                    | ({"Content-Type": "application/json"} if body is not None else {})
                    | (headers or {}),
                    timeout=httpx.Timeout(remaining, connect=min(self.connect_timeout, remaining)),
                )
                response = await self._capped(await self._http.send(request, stream=True), request_id)
        except (TimeoutError, httpx.TimeoutException) as exc:
            # INFO: the caller decides how bad it is and says so once (a user reply, a skipped cycle).
            log.info("fabro %s %s timed out request_id=%s", method, path, request_id, extra={"request_id": request_id})
            self._observe(method, path, None)
            raise self._timed_out(request_id) from exc
        except httpx.TransportError as exc:
            log.info(
                "fabro %s %s failed: %s request_id=%s",
                method,
                path,
                type(exc).__name__,
                request_id,
                extra={"request_id": request_id},
            )
            self._observe(method, path, None)
            unavailable = FabroUnavailable("Could not connect to Fabro.", request_id=request_id, ours=True)
            raise _Retryable(unavailable) from exc

        elapsed_ms = (time.perf_counter() - started) * 1000
        rid = response.headers.get("x-request-id") or request_id
        _last_request_id.set(rid)
        self._observe(method, path, response.status_code)
        log.debug(
            "fabro %s %s -> %s in %.0f ms request_id=%s",
            method,
            path,
            response.status_code,
            elapsed_ms,
            rid,
            extra={"request_id": rid},
        )
        if 300 <= response.status_code < 400:
            # Not followed: an API answering with a redirect is a login page or a wrong URL.
            self._observe(method, path, None)
            raise FabroUnavailable(
                f"Fabro answered {response.status_code} (a redirect): check that FABRO_API_URL is the API server.",
                status=response.status_code,
                request_id=rid,
            )
        if response.status_code < 400:
            return response
        error = self._scrubbed(error_from_response(response, fallback_request_id=request_id))
        if response.status_code in _RETRYABLE_STATUS:
            log.info(
                "fabro %s %s -> %s request_id=%s", method, path, response.status_code, rid, extra={"request_id": rid}
            )
            raise _Retryable(error)
        raise error

    async def _capped(self, response: httpx.Response, request_id: str) -> httpx.Response:
        """The whole response, read into memory only up to FABRO_MAX_RESPONSE_BYTES."""
        limit = self.max_response_bytes
        try:
            declared = int(response.headers.get("content-length") or 0)
            if declared > limit:
                raise FabroUnreadable(
                    f"Fabro's answer is {declared} bytes, over FABRO_MAX_RESPONSE_BYTES ({limit}).",
                    status=response.status_code,
                    request_id=response.headers.get("x-request-id") or request_id,
                )
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    raise FabroUnreadable(
                        f"Fabro's answer is over FABRO_MAX_RESPONSE_BYTES ({limit} bytes).",
                        status=response.status_code,
                        request_id=response.headers.get("x-request-id") or request_id,
                    )
        except httpx.DecodingError as exc:
            raise FabroUnreadable(
                "Fabro's answer could not be decoded.", status=response.status_code, request_id=request_id, ours=True
            ) from exc
        finally:
            await response.aclose()
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-encoding", "content-length")}
        return httpx.Response(response.status_code, headers=headers, content=bytes(body), request=response.request)

    def _scrubbed(self, error: FabroError) -> FabroError:
        """Fabro's (or a proxy's) words may echo the request: never let them carry a credential."""
        error.detail = redact(error.detail, [self._token])
        error.args = (error.detail,)
        return error

    async def _sse_events(self, response: httpx.Response, request_id: str) -> AsyncGenerator[RunEvent, None]:
        """Server-sent events (`_sse_frames`); a frame whose `data` is not an event is skipped."""
        try:
            async for sse in _sse_frames(response, self.max_event_bytes):
                if not sse.data:
                    continue
                try:
                    envelope = json.loads(sse.data)
                    if isinstance(envelope, dict):
                        yield RunEvent.model_validate(envelope)
                except (ValueError, ValidationError):
                    log.debug("skipped an event stream frame that is not an event")
        except httpx.HTTPError as exc:  # a broken connection, a body that does not decode, not an event stream
            raise FabroUnavailable(
                f"The event stream broke ({type(exc).__name__}).", request_id=request_id, ours=True
            ) from exc

    def _read(self, parse: Callable[[], T]) -> T:
        """Parse an answer; one that is not what the API documents counts against Fabro's health."""
        try:
            return parse()
        except FabroUnreadable as exc:
            self.recent = [*self.recent[-4:], False]
            if exc.request_id is None:
                exc.request_id = _last_request_id.get()
            raise

    def _observe(self, method: str, path: str, status: int | None) -> None:
        """Record one call: reached Fabro (any HTTP answer below 500) or not, for readiness and metrics."""
        self.recent = [*self.recent[-4:], status is not None and status < 500]
        if self.observer is not None:
            self.observer(method, _route(path), status)

    @property
    def reachable(self) -> bool:
        """Fabro's last answer was a usable one (or no call was made yet)."""
        return not self.recent or self.recent[-1]

    def _timed_out(self, request_id: str) -> FabroUnavailable:
        seconds = f"{self.timeout:g}"
        return FabroUnavailable(
            f"Fabro did not answer in {seconds} s.",
            request_id=request_id,
            ours=True,
            timed_out_after=self.timeout,
        )


# stamina logs every retry at WARNING by default; each attempt here already logs its own line at
# INFO (with Fabro's request id), so stamina only counts them (`stamina_retries_total`).
stamina.instrumentation.set_on_retry_hooks([stamina.instrumentation.PrometheusOnRetryHook])


class _Retryable(Exception):
    """What one attempt ended in, when trying again may help; `_send` raises `error` once retries are spent."""

    def __init__(self, error: FabroError) -> None:
        super().__init__(error.detail)
        self.error = error


# The request id of the last answer in this task: a shape problem found after decoding still names it.
_last_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("fabro_request_id", default=None)
_RUN_ID = re.compile(r"/runs/[^/]+")
_QUESTION_ID = re.compile(r"/questions/[^/]+")


def _route(path: str) -> str:
    """`/runs/01KJ…/questions/q-1/answer` → `/runs/{id}/questions/{qid}/answer`: few metric labels."""
    if path == "/runs/resolve":
        return path
    if "://" in path:  # the server's own routes, outside /api/v1
        return "/" + path.rsplit("/", 1)[-1]
    return _QUESTION_ID.sub("/questions/{qid}", _RUN_ID.sub("/runs/{id}", path))


def _sse_frames(response: httpx.Response, limit: int) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events, parsed by httpx-sse. httpx-sse reads lines of any length, so the body
    reaches it through `_CappedLines`, which ends the stream with a Fabro error past `limit` bytes."""
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-encoding", "content-length")}
    capped = httpx.Response(
        response.status_code,
        headers=headers,
        stream=_CappedLines(response.aiter_bytes(), limit),
        request=response.request,
    )
    return EventSource(capped).aiter_sse()


class _CappedLines(httpx.AsyncByteStream):
    """A byte stream passed through as it comes, ended by a Fabro error once a line passes `limit` bytes."""

    def __init__(self, chunks: AsyncIterator[bytes], limit: int) -> None:
        self._chunks = chunks
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        current = 0  # bytes of the line in progress, carried over from earlier chunks
        async for chunk in self._chunks:
            parts = chunk.split(b"\n")
            lengths = [current + len(parts[0]), *(len(part) for part in parts[1:])]
            if max(lengths) > self._limit:
                raise FabroUnreadable(
                    f"An event stream line was longer than {self._limit} bytes (FABRO_MAX_EVENT_BYTES)."
                )
            current = lengths[-1]
            yield chunk


_SEEN = 10_000  # (run_id, seq) pairs remembered per stream: far more than one run's resends


async def _distinct(events: AsyncIterator[RunEvent]) -> AsyncGenerator[RunEvent, None]:
    """The events of a stream, each (run_id, seq) once; an event without a seq is passed on."""
    seen: OrderedDict[tuple[str, int], None] = OrderedDict()
    async for event in events:
        if event.run_id is not None and event.seq is not None:
            key = (event.run_id, event.seq)
            if key in seen:
                continue
            seen[key] = None
            if len(seen) > _SEEN:
                seen.popitem(last=False)
        yield event


M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def _one(model: type[M], body: Any, what: str) -> M:
    """One object as the API documents it, or a Fabro error saying it was not."""
    if not isinstance(body, dict):
        raise FabroUnreadable(f"Fabro answered without {what} (got {_shape(body)}).")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        fields = ", ".join(sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]}))
        raise FabroUnreadable(f"Fabro sent {what} that cannot be read ({fields}).") from exc


def _many(model: type[M], body: Any, what: str) -> list[M]:
    """A `{"data": [...]}` list; an item that cannot be read costs itself only, with a WARNING."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise FabroUnreadable(f"Fabro answered without a list of {what} (got {_shape(body)}).")
    items: list[M] = []
    for item in body["data"]:
        try:
            items.append(model.model_validate(item))
        except ValidationError:
            ident = item.get("id") if isinstance(item, dict) else None
            log.warning("skipped one of the %s Fabro sent that cannot be read (id %r)", what, ident)
    return items


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _seconds(value: str | None, default: float = 1.0) -> float:
    """A Retry-After in seconds, within reason (0 to 60)."""
    return float(min(int(value), 60)) if value and value.isascii() and value.isdigit() and len(value) < 6 else default


def _shape(body: Any) -> str:
    if body is None:
        return "an empty answer"
    if isinstance(body, dict):
        return "an object without `data`" if "data" not in body else "an object whose `data` is not a list"
    return f"a {type(body).__name__}"


def _decode(response: httpx.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise FabroUnreadable(
            "Fabro answered with something that is not JSON.",
            status=response.status_code,
            request_id=response.headers.get("x-request-id"),
        ) from exc


def error_from_response(response: httpx.Response, *, fallback_request_id: str | None = None) -> FabroError:
    """Turn a 4xx/5xx into a typed error, reading JSON `errors` or Fabro's plain-text bodies."""
    status = response.status_code
    fabros = response.headers.get("x-request-id") or _body_request_id(response)
    request_id = fabros or fallback_request_id
    detail, code = _error_detail(response)
    kind: type[FabroError]
    if status in (401, 403):
        kind, fallback = FabroUnauthorized, "Fabro refused the API token."
    elif status == 404:
        kind, fallback = FabroNotFound, "Not found."
    elif status == 409:
        kind, fallback = FabroConflict, "Conflict."
    elif status >= 500:
        kind, fallback = FabroUnavailable, f"Fabro answered {status}."
    else:
        kind, fallback = FabroRejected, f"Fabro rejected the request ({status})."
    return kind(detail or fallback, status=status, request_id=request_id, code=code, ours=not fabros)


def _error_detail(response: httpx.Response) -> tuple[str, str | None]:
    text = response.text.strip()
    if "json" in response.headers.get("content-type", ""):
        try:
            parsed = ErrorResponse.model_validate(response.json())
        except (ValueError, ValidationError):
            parsed = None
        if parsed and parsed.errors:
            first = parsed.errors[0]
            return _clip(first.detail or first.title or ""), first.code
    return _clip(text), None


def _body_request_id(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("request_id") if isinstance(body, dict) else None


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _segment(value: str) -> str:
    return quote(value, safe="")


def _preview_link(answer: Any) -> str:
    url = answer.get("url") if isinstance(answer, dict) else None
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise FabroUnreadable("Fabro answered without a preview link.")
    return url


def _parse_files(body: Any) -> RunFiles:
    """Changed files one by one: a file Fabro sent in a shape not understood costs that file only."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise FabroUnreadable(f"Fabro answered without a list of changed files (got {_shape(body)}).")
    files: list[ChangedFile] = []
    for item in body["data"]:
        try:
            files.append(ChangedFile.model_validate(item))
        except ValidationError:
            log.warning("skipped a changed file Fabro sent that cannot be read")
    meta = body.get("meta")
    return RunFiles(
        data=files,
        meta=FilesMeta.model_validate(meta if isinstance(meta, dict) else {}),
        unreadable=len(body["data"]) - len(files),
    )


def _parse_run_list(body: Any) -> RunList:
    """Parse run by run, so one malformed item costs one card, not the whole listing."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise FabroUnreadable(f"Fabro answered without a list of runs (got {_shape(body)}).")
    runs: list[Run] = []
    unreadable = 0
    for item in body["data"]:
        try:
            runs.append(Run.model_validate(item))
        except ValidationError:
            unreadable += 1
            ident = item.get("id") if isinstance(item, dict) else None
            log.warning("skipped a run Fabro sent that cannot be read (id %r)", ident)
    meta = body.get("meta")
    return RunList(
        data=runs,
        meta=ListMeta.model_validate(meta if isinstance(meta, dict) else {}),
        unreadable=unreadable,
    )
