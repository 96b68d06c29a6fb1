"""A fake Fabro server: real HTTP on 127.0.0.1, faithful to shared/fabro/API.md.

It serves the endpoints the bot uses with Fabro's semantics (status buckets, sort
with id-descending tiebreak, clamped paging, plain-text 400s for bad query values,
the two 401 shapes), records every request, and lets a test inject latency,
failures and hangs.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.core.keys import AlertKey
from tests.fakes.contract import Contract, check_event
from tests.fakes.loopback import serve

BUCKETS = ["pending", "runnable", "initializing", "running", "blocked", "succeeded", "failed", "archived", "removing"]
SORT_KEYS = ["created_at", "updated_at", "status", "elapsed", "repo", "title", "workflow", "changes", "size"]
KIND_BUCKET = {
    "submitted": "pending",
    "pending": "pending",
    "runnable": "runnable",
    "starting": "initializing",
    "running": "running",
    "paused": "running",
    "blocked": "blocked",
    "succeeded": "succeeded",
    "failed": "failed",
    "dead": "failed",
    "removing": "removing",
}
TERMINAL = {"succeeded", "failed", "dead"}
SIZE_ORDER = {"XS": 0, "S": 1, "M": 2, "L": 3, "XL": 4}
REQUEST_ID = web.RequestKey("request_id", str)
# Events the global /attach stream never carries (API.md: only what the server executes).
OFF_THE_GLOBAL_STREAM = frozenset({"run.created", "run.pending", "run.approved", "run.denied"})


def display_answer(answer: dict[str, Any], question: dict[str, Any]) -> str:
    """What Fabro puts in `interview.completed.answer`: a display string, not the tagged body."""
    labels: dict[str, str] = {o["key"]: o.get("label") or o["key"] for o in question.get("options") or []}
    kind = answer.get("kind")
    if kind in ("yes", "no"):
        return str(kind)
    if kind == "selected":
        return labels.get(str(answer.get("option_key")), str(answer.get("option_key")))
    if kind == "multi_selected":
        return ", ".join(labels.get(k, k) for k in answer.get("option_keys") or [])
    return str(answer.get("text") or "")


def bucket(run: dict[str, Any]) -> str:
    kind: str = run["lifecycle"]["status"]["kind"]
    if run["lifecycle"].get("archived") and kind in TERMINAL:
        return "archived"
    return KIND_BUCKET.get(kind, kind)


# A development token acts as the user `dev` (API.md, Transport): everything the bot does is theirs.
TOKEN_ACTOR = {
    "kind": "user",
    "identity": {"issuer": "fabro:dev", "subject": "dev"},
    "login": "dev",
    "auth_method": "dev_token",
}
USER_ACTOR = {
    "kind": "user",
    "identity": {"issuer": "https://github.com", "subject": "583231"},
    "login": "grace",
    "auth_method": "github",
}
# Kinds a run has not been executed by this server process in: its events stay off the global stream.
NOT_STARTED = frozenset({"submitted", "pending", "runnable"})


def provenance(user_agent: str) -> dict[str, Any]:
    """A `run.created` event's properties as Fabro writes them: the creating request's raw `User-Agent`
    under `provenance.client` (`handler/runs.rs` `run_provenance`), the token's user as subject."""
    name, _, version = user_agent.partition("/")
    known = name in ("fabro-cli", "fabro-web")
    client = {"user_agent": user_agent, "name": name if known else None, "version": version if known else None}
    return {"provenance": {"server": {"version": "0.333.0"}, "client": client, "subject": TOKEN_ACTOR}}


def _iso_ms(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass
class Recorded:
    method: str
    path: str
    query: list[tuple[str, str]]
    body: Any
    headers: dict[str, str]
    request_id: str = ""  # the id Fabro issued for it (it ignores the client's)


@dataclass
class Fault:
    status: int | None = None  # answer with this status…
    text: str | None = None  # …and this plain-text body (else Fabro's JSON error shape)
    hang: float | None = None  # or sleep this long before answering normally
    path_prefix: str = "/api/v1"
    raw: bytes | None = None  # or answer `status` with exactly these bytes and `headers`
    code: str | None = None  # Fabro's error `code` for a JSON error
    detail: str | None = None  # Fabro's error `detail` for a JSON error
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeFabro:
    token: str = "fabro_dev_" + "ab" * 32
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    questions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    latency: float = 0.0
    cancel_converges: bool = False  # cancel answers 202 (requested) instead of 200 (done)
    streams: list[asyncio.Queue[dict[str, Any] | None]] = field(default_factory=list)  # open /attach readers
    stream_connections: int = 0
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _asked: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Pull requests: live GitHub state per run, creations being written, and GitHub's availability.
    pull_requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    creations: dict[str, dict[str, Any]] = field(default_factory=dict)
    creation_polls: int = 2  # pending answers before a creation ends
    creation_error: str | None = None  # when set, creations fail with this
    auth_me_login: str | None = None  # GET /auth/me answers with this login (None: 404, no web UI)
    # The user Fabro takes the bot's token for: by default a development token's `dev`.
    token_actor: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(TOKEN_ACTOR))
    creation_location: str | None = None  # the Location a creation names (None: Fabro's root-relative path)
    github_down: bool = False
    automations: list[dict[str, Any]] = field(default_factory=list)
    # The agent of each run: None (a steerable session is active) or the 409/503 code it answers with.
    agent_trouble: dict[str, str] = field(default_factory=dict)
    stage_list: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # run id -> its stages
    run_streams: dict[str, list[asyncio.Queue[dict[str, Any] | None]]] = field(default_factory=dict)
    run_stream_connections: int = 0
    # What runs produced and used (GET /files, /commits, /billing, /logs, /graph; POST /preview).
    changed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # run id -> FileDiff objects
    files_meta: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id -> meta overrides
    commit_list: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    bills: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id -> RunBilling
    logs: dict[str, bytes] = field(default_factory=dict)
    graphs: dict[str, str] = field(default_factory=dict)  # run id -> DOT source
    previews: list[dict[str, Any]] = field(default_factory=list)  # links handed out
    # Ask Fabro: sessions, and how the next turns answer.
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    turn_inputs: list[tuple[str, str]] = field(default_factory=list)  # (session id, input), in order
    transcripts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # session id -> its messages
    answer_deltas: list[str] = field(default_factory=lambda: ["The run ", "failed because ", "the tests failed."])
    delta_pause: float = 0.0  # seconds between two deltas
    turn_failure: str | None = None  # a `run.session.turn.failed` code for the next turns ("interrupted": interrupted)
    turn_gate: asyncio.Event | None = None  # when set, turns wait for it before answering
    deltas_written: list[float] = field(default_factory=list)  # perf_counter() as each delta left
    # Runs created from a manifest: the server's variables, the manifests accepted, each run's User-Agent.
    variables: dict[str, str] = field(default_factory=dict)
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)
    user_agents: dict[str, str] = field(default_factory=dict)
    start_fails: str | None = None  # when set, POST /runs/{id}/start answers 409 with this
    started: set[str] = field(default_factory=set)  # runs this server process has executed
    forwarders: dict[str, int] = field(default_factory=dict)  # runs resumed in place: 2
    checkpoints: dict[str, int] = field(default_factory=dict)  # run id -> checkpoints written
    engine_running: set[str] = field(default_factory=set)  # runs whose engine process has not exited
    pause_undeliverable: bool = False  # the next pause (or unpause) cannot reach the worker: 503 without code
    retry_after: str = "0"  # Fabro sends 1; tests do not wait
    # What broke Fabro's contract (tests/fakes/contract.py): requests the bot sent off the spec, and
    # answers (or events) the fake gave off it. A test that feeds the bot a broken Fabro on purpose
    # sets `breaks_contract`: its answers are then not held to the spec, the bot's requests still are.
    bad_requests: list[str] = field(default_factory=list)
    bad_answers: list[str] = field(default_factory=list)
    breaks_contract: bool = False
    contract: Contract = field(default_factory=Contract.load)
    create_refusal: str | None = None  # when set, POST /runs answers 400 with this (a server setting says no)

    # -- test controls -------------------------------------------------------------

    @property
    def violations(self) -> list[str]:
        """Everything off Fabro's contract that the test did not ask for, without repeats."""
        found = self.bad_requests + ([] if self.breaks_contract else self.bad_answers)
        return list(dict.fromkeys(found))

    def add(self, *runs: dict[str, Any]) -> None:
        for run in runs:
            self.runs[run["id"]] = run
            if run["lifecycle"]["status"]["kind"] not in NOT_STARTED:
                self.started.add(run["id"])  # a test's running or finished run was executed here

    # -- what happens to runs: each change appends its event and moves updated_at, as Fabro does --

    def emit(
        self,
        run_id: str,
        event: str,
        properties: dict[str, Any] | None = None,
        *,
        actor: dict[str, Any] | None = None,
        **envelope_fields: Any,
    ) -> dict[str, Any]:
        log = self.events.setdefault(run_id, [])
        now = datetime.now(UTC)
        envelope: dict[str, Any] = {
            "seq": (log[-1]["seq"] + 1) if log else 1,
            "id": f"evt_{uuid.uuid4().hex[:12]}",
            "ts": _iso_ms(now),
            "run_id": run_id,
            "event": event,
            "properties": properties or {},
        }
        if actor is not None:
            envelope["actor"] = actor
        envelope.update(envelope_fields)  # stage events name their stage here: node_id, node_label, stage_id
        self.bad_answers += check_event(self.contract, envelope)
        log.append(envelope)
        self.runs[run_id]["timestamps"]["last_event_at"] = envelope["ts"]
        # The global stream carries the events of runs this process executes, from their start on;
        # a run resumed in place gets a second forwarder, so its later events arrive twice.
        if self._executed(run_id) and event not in OFF_THE_GLOBAL_STREAM:
            for _ in range(self.forwarders.get(run_id, 1)):
                for queue in self.streams:
                    queue.put_nowait(envelope)
        for queue in self.run_streams.get(run_id, []):
            queue.put_nowait(envelope)
        return envelope

    def _executed(self, run_id: str) -> bool:
        return run_id in self.started

    def drop_streams(self) -> None:
        """Close every open /attach connection (global and per run), as a Fabro restart would."""
        for queue in [*self.streams, *(q for queues in self.run_streams.values() for q in queues)]:
            queue.put_nowait(None)

    def _set_status(self, run_id: str, kind: str, **status: Any) -> dict[str, Any]:
        run = self.runs[run_id]
        if kind in ("starting", "running", "blocked", "paused"):
            self.started.add(run_id)  # executed by this process: its events reach the global stream now
        run["lifecycle"]["status"] = {"kind": kind, **status}
        if kind in TERMINAL:
            run["timestamps"]["completed_at"] = _iso_ms(datetime.now(UTC))
        return run

    def fail(
        self, run_id: str, message: str = "Stage `test` exited with status 1", *, reason: str = "workflow_error"
    ) -> None:
        self._set_status(run_id, "failed", reason=reason)
        self.emit(
            run_id,
            "run.failed",
            {"failure": {"reason": reason, "detail": {"message": message, "category": "workflow"}}},
        )

    def failed_key(self, run_id: str) -> str:
        """The key of the alert about the run's current failure: `failed:<run>:<when it ended>`."""
        ended = _ts(self.runs[run_id]["timestamps"].get("completed_at"))
        return str(AlertKey.failed(run_id, ended))

    def resume(self, run_id: str) -> None:
        """Someone resumed the failed run in place from Fabro's UI or CLI (as `POST /start {resume}` does)."""
        run = self.runs[run_id]
        run["timestamps"]["completed_at"] = None
        self.emit(run_id, "run.start_requested", {"resume": True}, actor=USER_ACTOR)
        self._set_status(run_id, "runnable")
        self.emit(run_id, "run.runnable", {"source": "start"})
        if run_id in self.started:
            self.forwarders[run_id] = self.forwarders.get(run_id, 1) + 1

    def ask(self, run_id: str, question: dict[str, Any]) -> None:
        for key, default in (("stage", "review"), ("options", []), ("allow_freeform", False)):
            question.setdefault(key, default)  # the server always sends these
        self.questions.setdefault(run_id, []).append(question)
        self._asked.setdefault(run_id, []).append(question)
        run = self._set_status(run_id, "blocked", blocked_reason="human_input_required")
        run["current_question"] = self.questions[run_id][0]
        asked = {
            "question_id": question["id"],
            "question": question.get("text") or "",
            "stage": question.get("stage") or "",
            "question_type": question.get("question_type") or "freeform",
            "allow_freeform": bool(question.get("allow_freeform")),
        }
        if question.get("options"):
            asked["options"] = question["options"]
        for optional in ("timeout_seconds", "context_display", "review_target"):
            if question.get(optional) is not None:
                asked[optional] = question[optional]
        self.emit(run_id, "interview.started", asked)
        self.emit(run_id, "run.blocked", {"blocked_reason": "human_input_required"})

    def answer(
        self, run_id: str, question_id: str, answer: dict[str, Any], *, actor: dict[str, Any] | None = None
    ) -> None:
        pending = [q for q in self.questions.get(run_id, []) if q["id"] != question_id]
        asked = next((q for q in self.questions.get(run_id, []) if q["id"] == question_id), None)
        asked = asked or next((q for q in self._asked.get(run_id, []) if q["id"] == question_id), {})
        self.questions[run_id] = pending
        run = self.runs[run_id]
        run["current_question"] = pending[0] if pending else None
        self.emit(
            run_id,
            "interview.completed",
            {
                "question_id": question_id,
                "question": asked.get("text") or "",
                "answer": display_answer(answer, asked),
                "duration_ms": 1200,
            },
            actor=actor or USER_ACTOR,
        )
        if not pending:
            self._set_status(run_id, "running")
            self.emit(run_id, "run.unblocked", {})

    def request_approval(self, run_id: str) -> None:
        run = self._set_status(run_id, "pending", reason="approval_required")
        run["lifecycle"]["approval"] = {
            "state": "pending",
            "requested_at": _iso_ms(datetime.now(UTC)),
            "decided_at": None,
            "denial_reason": None,
        }
        self.emit(run_id, "run.pending", {"reason": "approval_required"})

    def decide(
        self, run_id: str, approved: bool, *, reason: str | None = None, actor: dict[str, Any] | None = None
    ) -> None:
        run = self.runs[run_id]
        run["lifecycle"]["approval"].update(
            state="approved" if approved else "denied",
            decided_at=_iso_ms(datetime.now(UTC)),
            denial_reason=reason,
        )
        if approved:
            self._set_status(run_id, "runnable")
            self.emit(run_id, "run.approved", {}, actor=actor or USER_ACTOR)
        else:
            self._set_status(run_id, "failed", reason="approval_denied")
            self.emit(run_id, "run.denied", {"reason": reason} if reason else {}, actor=actor or USER_ACTOR)
            failure = {
                "reason": "approval_denied",
                "detail": {"message": reason or "Not approved for execution", "category": "user"},
            }
            self.emit(run_id, "run.failed", {"failure": failure}, actor=actor or USER_ACTOR)

    def retry(self, run_id: str, new_run: dict[str, Any], *, user_agent: str = "") -> dict[str, Any]:
        """A new run from a terminal one; the source is left unchanged, as Fabro leaves it."""
        new_run["retried_from"] = run_id
        self.add(new_run)
        self.emit(new_run["id"], "run.created", provenance(user_agent))
        return new_run

    def archive(self, run_id: str, *, actor: dict[str, Any] | None = None) -> None:
        run = self.runs[run_id]
        run["lifecycle"]["archived"] = True
        run["lifecycle"]["archived_at"] = _iso_ms(datetime.now(UTC))
        self.emit(run_id, "run.archived", {}, actor=actor or USER_ACTOR)

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        text: str | None = None,
        path_prefix: str = "/api/v1",
        code: str | None = None,
        detail: str | None = None,
    ) -> None:
        """The next `count` matching requests fail with `status`: Fabro's JSON error (with `detail`
        and `code`), or a plain-text body when `text` is given."""
        fault = Fault(status=status, text=text, path_prefix=path_prefix, code=code, detail=detail)
        self.faults += [dataclasses.replace(fault) for _ in range(count)]

    def answer_next(
        self, status: int, raw: bytes, headers: dict[str, str] | None = None, *, path_prefix: str = "/api/v1"
    ) -> None:
        """The next matching request gets exactly this answer: a proxy's page, a redirect, a broken body."""
        self.faults.append(Fault(status=status, raw=raw, headers=headers or {}, path_prefix=path_prefix))

    def hang_next(self, seconds: float, count: int = 1, *, path_prefix: str = "/api/v1") -> None:
        self.faults += [Fault(hang=seconds, path_prefix=path_prefix) for _ in range(count)]

    def calls(self, path: str | None = None, method: str = "GET") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and (path is None or r.path == path)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- server ------------------------------------------------------------------------

    async def start(self) -> FakeFabro:
        app = web.Application(middlewares=[self._middleware])
        app.add_routes(
            [
                web.get("/health", self._health),
                web.get("/api/v1/user", self._user),
                web.get("/api/v1/runs", self._list),
                web.get("/api/v1/runs/resolve", self._resolve),
                web.get("/api/v1/runs/{id}", self._get),
                web.get("/api/v1/runs/{id}/events", self._events),
                web.get("/api/v1/runs/{id}/questions", self._questions),
                web.get("/api/v1/attach", self._attach),
                web.post("/api/v1/runs/{id}/questions/{qid}/answer", self._answer),
                web.post("/api/v1/runs/{id}/approve", self._approve),
                web.post("/api/v1/runs/{id}/deny", self._deny),
                web.post("/api/v1/runs/{id}/cancel", self._cancel),
                web.post("/api/v1/runs/{id}/retry", self._retry),
                web.post("/api/v1/runs/{id}/start", self._start),
                web.get("/api/v1/runs/{id}/timeline", self._timeline),
                web.get("/api/v1/runs/{id}/stages", self._stages),
                web.get("/api/v1/runs/{id}/attach", self._attach_run),
                web.post("/api/v1/runs/{id}/steer", self._steer),
                web.post("/api/v1/runs/{id}/interrupt", self._interrupt),
                web.post("/api/v1/runs/{id}/pause", self._pause),
                web.post("/api/v1/runs/{id}/unpause", self._unpause),
                web.get("/api/v1/automations", self._automations),
                web.post("/api/v1/automations/{id}/runs", self._start_automation),
                web.post("/api/v1/runs", self._create_run),
                web.post("/api/v1/validate", self._validate),
                web.post("/api/v1/runs/{id}/pull_request", self._create_pr),
                web.get("/api/v1/runs/{id}/pull_request", self._get_pr),
                web.get("/api/v1/runs/{id}/pull_request/creation", self._creation),
                web.get("/api/v1/auth/me", self._auth_me),
                web.post("/api/v1/runs/{id}/pull_request/merge", self._merge_pr),
                web.post("/api/v1/runs/{id}/pull_request/close", self._close_pr),
                web.get("/api/v1/runs/{id}/files", self._files),
                web.get("/api/v1/runs/{id}/commits", self._commits),
                web.get("/api/v1/runs/{id}/billing", self._billing),
                web.get("/api/v1/runs/{id}/logs", self._logs),
                web.get("/api/v1/runs/{id}/graph", self._graph),
                web.get("/api/v1/runs/{id}/graph/source", self._graph_source),
                web.post("/api/v1/runs/{id}/preview", self._preview),
                web.post("/api/v1/runs/{id}/sessions", self._create_session),
                web.post("/api/v1/sessions/{sid}/turns", self._turn),
                web.get("/api/v1/sessions/{sid}", self._get_session),
            ]
        )
        self._runner, self.port = await serve(app)
        from tests.fakes.manifests import warm

        await asyncio.to_thread(warm)  # Fabro's spec is large: read once, before any request waits on it
        return self

    async def stop(self) -> None:
        self.drop_streams()
        if self._runner:
            await self._runner.cleanup()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        # Fabro ignores an x-request-id the client sends and issues its own.
        request_id = f"req_{uuid.uuid4().hex[:20]}"
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                list(request.query.items()),
                body,
                {k.lower(): v for k, v in request.headers.items()},
                request_id,
            )
        )
        request[REQUEST_ID] = request_id
        if self.latency:
            await asyncio.sleep(self.latency)
        if request.path.startswith("/api/v1") or request.path == "/health":
            self.bad_requests += self.contract.check_request(
                request.method, request.path, request.query.items(), request.headers.get("Content-Type", ""), raw
            )
        fault = next((f for f in self.faults if request.path.startswith(f.path_prefix)), None)
        if fault is not None:
            # An injected failure stands for a proxy, a restart or a broken network: not Fabro's answer.
            self.faults.remove(fault)
            if fault.hang is not None:
                await asyncio.sleep(fault.hang)
            elif fault.raw is not None:
                return web.Response(status=fault.status or 200, body=fault.raw, headers=fault.headers)
            elif fault.status is not None:
                return self._error(
                    fault.status,
                    fault.text or fault.detail or "Injected failure.",
                    request_id,
                    plain=fault.text is not None,
                    code=fault.code,
                )
        if request.path.startswith("/api/v1"):
            denied = None if request.path == "/api/v1/user" else self._authenticate(request, request_id)
            if denied is not None:
                self._check_response(request, denied)
                return denied
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            return web.Response(status=exc.status, text=exc.text, headers={"x-request-id": request_id})
        response.headers["x-request-id"] = request_id
        self._check_response(request, response)
        return response

    def _check_response(self, request: web.Request, response: web.StreamResponse) -> None:
        body = response.body if isinstance(response, web.Response) else None
        self.bad_answers += self.contract.check_response(
            request.method,
            request.path,
            response.status,
            response.headers.get("Content-Type", ""),
            body if isinstance(body, bytes) or body is None else b"?",
        )

    def _authenticate(self, request: web.Request, request_id: str) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        if not auth:
            return self._error(401, "Authentication required.", request_id)
        if auth != f"Bearer {self.token}":
            return self._error(401, "Invalid access token.", request_id, code="access_token_invalid")
        return None

    @staticmethod
    def _error(
        status: int, detail: str, request_id: str, *, plain: bool = False, code: str | None = None
    ) -> web.Response:
        headers = {"x-request-id": request_id}
        if plain:
            return web.Response(status=status, text=detail, headers=headers, content_type="text/plain")
        titles = {
            400: "Bad Request",
            401: "Unauthorized",
            404: "Not Found",
            409: "Conflict",
            503: "Service Unavailable",
        }
        entry: dict[str, Any] = {
            "status": str(status),
            "title": titles.get(status, "Error"),
            "detail": detail,
            "request_id": request_id,
        }
        if code:
            entry["code"] = code
        return web.json_response({"errors": [entry], "request_id": request_id}, status=status, headers=headers)

    def _bad_query(self, message: str) -> web.Response:
        # Fabro's query extractor rejects bad values before the handler, as plain text.
        return web.Response(
            status=400, text=f"Failed to deserialize query string: {message}", content_type="text/plain"
        )

    # -- endpoints -------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _user(self, request: web.Request) -> web.Response:
        # The spec lists it, but no server route serves it: 404 with an empty body, whatever the token.
        return web.Response(status=404)

    async def _list(self, request: web.Request) -> web.Response:
        query = request.query
        statuses = query.getall("status", [])
        for s in statuses:
            if s not in BUCKETS:
                return self._bad_query(f"status: unknown variant `{s}`, expected one of {', '.join(BUCKETS)}")
        sort = query.get("sort", "created_at")
        if sort not in SORT_KEYS:
            return self._bad_query(f"sort: unknown variant `{sort}`")
        direction = query.get("direction", "desc")
        if direction not in ("asc", "desc"):
            return self._bad_query(f"direction: unknown variant `{direction}`")
        try:
            limit = min(max(int(query.get("page[limit]", "20")), 1), 100)
            offset = int(query.get("page[offset]", "0"))
            if offset < 0:
                raise ValueError
        except ValueError:
            return self._bad_query("page: invalid digit found in string")
        include_archived = query.get("include_archived", "false")
        if include_archived not in ("true", "false"):
            return self._bad_query("include_archived: provided string was not `true` or `false`")

        runs = list(self.runs.values())
        if statuses:
            runs = [r for r in runs if bucket(r) in statuses]
        else:
            hidden = {"removing"} | (set() if include_archived == "true" else {"archived"})
            runs = [r for r in runs if bucket(r) not in hidden]
        parent = query.get("parent_id")
        if parent is not None and not re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", parent):
            return self._bad_query(f"parent_id: invalid run id `{parent}`")
        if parent:
            runs = [r for r in runs if r.get("parent_id") == parent]
        now = datetime.now(UTC)
        # Ties break by id descending in both directions: sort by id first; both later
        # sorts (reverse included) are stable, so equal keys keep that order.
        runs.sort(key=lambda r: str(r["id"]), reverse=True)
        runs.sort(key=lambda r: self._key(sort, r, now), reverse=direction == "desc")
        page = runs[offset : offset + limit]
        return web.json_response(
            {"data": page, "meta": {"has_more": offset + len(page) < len(runs), "total": len(runs)}}
        )

    @staticmethod
    def _key(sort: str, run: dict[str, Any], now: datetime) -> Any:
        ts = run["timestamps"]
        if sort == "created_at":
            return _ts(ts["created_at"])
        if sort == "updated_at":
            # The server sorts the last event time in milliseconds, while JSON carries more.
            when = _ts(ts.get("last_event_at") or ts["created_at"])
            return when.replace(microsecond=when.microsecond // 1000 * 1000) if when else None
        if sort == "status":
            b = bucket(run)
            return BUCKETS.index(b) if b in BUCKETS else 99
        if sort == "elapsed":
            end = _ts(ts.get("completed_at")) if run["lifecycle"]["status"]["kind"] in TERMINAL else None
            start = _ts(ts.get("started_at")) or _ts(ts["created_at"])
            assert start is not None, "a run always has created_at"
            return ((end or now) - start).total_seconds()
        if sort == "repo":
            return (run["repository"].get("name") or "").lower()
        if sort == "title":
            return (run.get("title") or "").lower()
        if sort == "workflow":
            w = run["workflow"]
            return (w.get("name") or w.get("graph_name") or w.get("slug") or "").lower()
        if sort == "changes":
            d = run.get("diff") or {}
            return (d.get("additions") or 0) + (d.get("deletions") or 0)
        if sort == "size":
            return SIZE_ORDER.get(run.get("size") or "XS", 0)
        raise AssertionError(sort)

    async def _resolve(self, request: web.Request) -> web.Response:
        selector = request.query.get("selector", "")
        if not selector:
            return self._bad_query("missing field `selector`")
        matches = [r for r in self.runs.values() if r["id"].startswith(selector.upper()) or r["id"] == selector]
        rid = request[REQUEST_ID]
        if not matches:
            # The server falls back to a workflow name, and answers that workflow's newest run.
            named = [
                r for r in self.runs.values() if selector in (r["workflow"].get("slug"), r["workflow"].get("name"))
            ]
            if named:
                return web.json_response(max(named, key=lambda r: r["timestamps"]["created_at"]))
            return self._error(404, f"No run matches selector '{selector}'.", rid)
        if len(matches) > 1:
            return self._error(400, f"Selector '{selector}' is ambiguous: {len(matches)} runs match.", rid)
        return web.json_response(matches[0])

    async def _get(self, request: web.Request) -> web.Response:
        run = self.runs.get(request.match_info["id"])
        if run is None:
            return self._error(404, "Run not found.", request[REQUEST_ID])
        return web.json_response(run)

    async def _events(self, request: web.Request) -> web.Response:
        run_id = request.match_info["id"]
        if run_id not in self.runs:
            return self._error(404, "Run not found.", request[REQUEST_ID])
        order = request.query.get("order", "asc")
        limit = int(request.query.get("limit", "100"))
        if not 1 <= limit <= 1000:
            return self._bad_query("limit out of range")
        events = sorted(self.events.get(run_id, []), key=lambda e: e["seq"], reverse=order == "desc")
        if "since_seq" in request.query:
            events = [e for e in events if e["seq"] >= int(request.query["since_seq"])]
        if "before_seq" in request.query:
            events = [e for e in events if e["seq"] < int(request.query["before_seq"])]
        return web.json_response({"data": events[:limit], "meta": {"has_more": len(events) > limit}})

    async def _attach(self, request: web.Request) -> web.StreamResponse:
        """`GET /api/v1/attach`: SSE, `data:` frames only, live only (no replay)."""
        wanted = set(filter(None, request.query.get("run_id", "").split(",")))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.streams.append(queue)
        self.stream_connections += 1
        try:
            while (envelope := await queue.get()) is not None:
                if not wanted or envelope["run_id"] in wanted:
                    await response.write(f"data: {json.dumps(envelope)}\n\n".encode())
        except ConnectionResetError:
            pass
        finally:
            self.streams.remove(queue)
        return response

    async def _questions(self, request: web.Request) -> web.Response:
        run_id = request.match_info["id"]
        if run_id not in self.runs:
            return self._error(404, "Run not found.", request[REQUEST_ID])
        return web.json_response({"data": self.questions.get(run_id, []), "meta": {"has_more": False}})

    # -- actions: Fabro's rules and answers, as in shared/fabro/API.md -----------------------

    async def _body(self, request: web.Request) -> tuple[Any, web.Response | None]:
        raw = await request.read()
        if not raw:
            return {}, None
        if "json" not in request.headers.get("Content-Type", ""):
            return None, web.Response(
                status=415, text="Expected request with `Content-Type: application/json`", content_type="text/plain"
            )
        try:
            return json.loads(raw), None
        except ValueError:
            return None, web.Response(
                status=400, text="Failed to parse the request body as JSON", content_type="text/plain"
            )

    def _missing(self, request: web.Request) -> web.Response:
        return self._error(404, "Run not found.", request[REQUEST_ID])

    def _conflict(self, request: web.Request, detail: str) -> web.Response:
        return self._error(409, detail, request[REQUEST_ID])

    async def _answer(self, request: web.Request) -> web.Response:
        run = self.runs.get(request.match_info["id"])
        if run is None:
            return self._missing(request)
        body, bad = await self._body(request)
        if bad is not None:
            return bad
        kinds = {"yes", "no", "selected", "multi_selected", "text"}
        if not isinstance(body, dict) or body.get("kind") not in kinds:
            return web.Response(
                status=422,
                text="Failed to deserialize the JSON body into the target type: missing field `kind`",
                content_type="text/plain",
            )
        rid = request[REQUEST_ID]
        if run["lifecycle"].get("archived"):
            return self._conflict(request, "Run is archived.")
        question = next((q for q in self.questions.get(run["id"], []) if q["id"] == request.match_info["qid"]), None)
        if question is None:
            return self._conflict(request, "Question is no longer pending.")
        qtype, kind = question["question_type"], body["kind"]
        keys = [o["key"] for o in question.get("options") or []]
        allowed = {
            "yes_no": {"yes", "no"},
            "confirmation": {"yes", "no"},
            "multiple_choice": {"selected"},
            "multi_select": {"multi_selected"},
            "freeform": {"text"},
        }.get(qtype, set())
        if question.get("allow_freeform"):
            allowed = allowed | {"text"}
        if kind not in allowed:
            return self._error(400, f"Answer kind `{kind}` is not valid for a {qtype} question.", rid)
        if kind == "selected" and body.get("option_key") not in keys:
            return self._error(400, f"Unknown option key `{body.get('option_key')}`.", rid)
        if kind == "multi_selected":
            chosen = body.get("option_keys")
            if not isinstance(chosen, list) or not chosen or any(k not in keys for k in chosen):
                return self._error(400, "Every option key must exist.", rid)
        if kind == "text" and not str(body.get("text") or "").strip():
            return self._error(400, "Answer text must not be blank.", rid)
        self.answer(run["id"], question["id"], body, actor=self.token_actor)
        return web.Response(status=204)

    def _pending_approval(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        run = self.runs.get(request.match_info["id"])
        if run is None:
            return {}, self._missing(request)
        approval = run["lifecycle"].get("approval") or {}
        if run["lifecycle"]["status"]["kind"] != "pending" or approval.get("state") != "pending":
            return run, self._conflict(request, "Run is not pending approval.")
        return run, None

    async def _approve(self, request: web.Request) -> web.Response:
        run, refused = self._pending_approval(request)
        if refused is not None:
            return refused
        self.decide(run["id"], True, actor=self.token_actor)
        return web.json_response(run)

    async def _deny(self, request: web.Request) -> web.Response:
        body, bad = await self._body(request)
        if bad is not None:
            return bad
        run, refused = self._pending_approval(request)
        if refused is not None:
            return refused
        self.decide(run["id"], False, reason=(body or {}).get("reason"), actor=self.token_actor)
        return web.json_response(run)

    async def _cancel(self, request: web.Request) -> web.Response:
        run = self.runs.get(request.match_info["id"])
        if run is None:
            return self._missing(request)
        if run["lifecycle"]["status"]["kind"] in TERMINAL or run["lifecycle"].get("archived"):
            return self._conflict(request, "Run is already terminal.")
        if self.cancel_converges:
            run["lifecycle"]["pending_control"] = "cancel"
            self.emit(run["id"], "run.cancel.requested", {"action": "cancel"}, actor=self.token_actor)
            return web.json_response(run, status=202)
        self._set_status(run["id"], "failed", reason="cancelled")
        run["current_question"] = None
        self.questions[run["id"]] = []
        self.emit(
            run["id"],
            "run.failed",
            {"failure": {"reason": "cancelled", "detail": {"message": "Pipeline cancelled", "category": "canceled"}}},
            actor=self.token_actor,
        )
        return web.json_response(run)

    async def _retry(self, request: web.Request) -> web.Response:
        run = self.runs.get(request.match_info["id"])
        if run is None:
            return self._missing(request)
        if run["lifecycle"].get("archived"):
            return self._archived(request, run)
        kind = run["lifecycle"]["status"]["kind"]
        if kind not in TERMINAL:
            return self._conflict(request, f"run {run['id']} cannot be retried from status {kind}; expected terminal")
        from tests.fakes.runs import make_run  # the new run is shaped like any other

        # A new run: created by the token's user, with its own timestamps, already runnable (no
        # approval); title, settings, labels, automation and parent copied; no PR, no question.
        new = make_run("runnable", title=run.get("title") or "Retry", created=datetime.now(UTC))
        new["timestamps"].update(started_at=None, last_event_at=None, completed_at=None)
        new["timing"] = new["billing"] = None
        for copied in ("repository", "workflow", "labels", "automation", "goal"):
            new[copied] = copy.deepcopy(run[copied])
        if run.get("parent_id"):
            new["parent_id"] = run["parent_id"]
        new["created_by"] = copy.deepcopy(self.token_actor)
        self.retry(run["id"], new, user_agent=request.headers.get("User-Agent", ""))
        return web.json_response(new, status=201)

    def _archived(self, request: web.Request, run: dict[str, Any]) -> web.Response:
        return self._conflict(request, f"run {run['id']} is archived; run `fabro unarchive {run['id']}` first")

    # -- resuming in place ---------------------------------------------------------------------

    def checkpoint(self, run_id: str, count: int = 1) -> None:
        """The run wrote `count` checkpoints (one per finished stage): it can be resumed from the last."""
        self.checkpoints[run_id] = self.checkpoints.get(run_id, 0) + count

    async def _timeline(self, request: web.Request) -> web.Response:
        run_id = request.match_info["id"]
        if run_id not in self.runs:
            return self._missing(request)
        entries = [
            {"ordinal": i, "node_name": f"stage-{i}", "visit": 1, "checkpoint_seq": i, "run_commit_sha": None}
            for i in range(1, self.checkpoints.get(run_id, 0) + 1)
        ]
        return web.json_response(entries)

    async def _start(self, request: web.Request) -> web.Response:
        """`POST /runs/{id}/start {"resume": true}`: a failed run runs again in place, from its last checkpoint."""
        run = self.runs.get(request.match_info["id"])
        if run is None:
            return self._missing(request)
        body, bad = await self._body(request)
        if bad is not None:
            return bad
        if run["lifecycle"].get("archived"):
            return self._archived(request, run)
        kind = run["lifecycle"]["status"]["kind"]
        if not (isinstance(body, dict) and body.get("resume")):
            return await self._start_run(request)
        if kind != "failed":
            return self._conflict(request, f"run {run['id']} cannot be resumed from status {kind}")
        if run["id"] in self.engine_running:
            return self._conflict(request, "an engine process is still running for this run — cannot resume")
        if not self.checkpoints.get(run["id"]):
            return self._conflict(request, "no checkpoint to resume from")
        run["timestamps"]["completed_at"] = None
        self.emit(run["id"], "run.start_requested", {"resume": True}, actor=self.token_actor)
        self._set_status(run["id"], "runnable")
        self.emit(run["id"], "run.runnable", {"source": "start"})
        if run["id"] in self.started:
            self.forwarders[run["id"]] = self.forwarders.get(run["id"], 1) + 1
        return web.json_response(run)

    # -- pull requests -----------------------------------------------------------------------

    def open_pull_request(self, run_id: str, number: int = 7, **details: Any) -> None:
        """The run has a pull request on GitHub, open unless `details` say otherwise (a draft when
        Fabro opened it: `draft=True`)."""
        run = self.runs[run_id]
        run["pull_request"] = {
            "owner": "demo",
            "repo": "api",
            "number": number,
            "html_url": f"https://github.com/demo/api/pull/{number}",
        }
        now = _iso_ms(datetime.now(UTC))
        self.pull_requests[run_id] = {
            "title": f"{run.get('title')}",
            "body": None,
            "state": "open",
            "draft": False,
            "merged": False,
            "merged_at": None,
            "mergeable": True,
            "additions": 120,
            "deletions": 30,
            "changed_files": 4,
            "author": {"login": "fabro-app"},
            "head_branch": f"fabro/run/{run_id}",
            "base_branch": "main",
            "timestamps": {"created_at": now, "updated_at": now},
            **details,
        }

    def _pr_error(self, request: web.Request, status: int, detail: str, code: str | None = None) -> web.Response:
        return self._error(status, detail, request[REQUEST_ID], code=code)

    async def _create_pr(self, request: web.Request) -> web.Response:
        run = self.runs.get(request.match_info["id"])
        if run is None:
            return self._missing(request)
        body, bad = await self._body(request)
        if bad is not None:
            return bad
        if not isinstance(body, dict) or not isinstance(body.get("force"), bool):
            return web.Response(
                status=422, text="Failed to deserialize the JSON body: missing field `force`", content_type="text/plain"
            )
        creation = self.creations.get(run["id"])
        if creation is None or creation["status"] != "pending":
            refused = self._pr_refusal(request, run, force=body["force"])
            if refused is not None:
                return refused
            now = _iso_ms(datetime.now(UTC))
            creation = {
                "id": f"prc_{uuid.uuid4().hex[:20]}",
                "status": "pending",
                "model": "claude-sonnet-4-6",
                "force": body["force"],
                "requested_at": now,
                "updated_at": now,
                "pull_request": None,
                "error": None,
                "_polls": self.creation_polls,
            }
            self.creations[run["id"]] = creation
            self.emit(
                run["id"],
                "pull_request.creation_requested",
                {"creation_id": creation["id"], "model": creation["model"], "force": creation["force"]},
                actor=self.token_actor,
            )
        # A root-relative path: the client joins it to the server's origin and any path prefix.
        location = self.creation_location or f"/api/v1/runs/{run['id']}/pull_request/creation"
        headers = {"Location": location, "Retry-After": self.retry_after}
        return web.json_response(self._public(creation), status=202, headers=headers)

    def _pr_refusal(self, request: web.Request, run: dict[str, Any], *, force: bool) -> web.Response | None:
        """Fabro's 400/409/503 for a pull request it cannot open, in its order."""
        if run.get("pull_request"):
            return self._pr_error(request, 409, "A pull request already exists for this run.", "pull_request_exists")
        kind = run["lifecycle"]["status"]["kind"]
        reason = run["lifecycle"]["status"].get("reason")
        if not force and not (kind == "succeeded" and reason in ("completed", "partial_success")):
            return self._pr_error(request, 400, "Run did not succeed.", "run_not_successful")
        repository = run.get("repository") or {}
        if not repository.get("origin_url"):
            return self._pr_error(request, 400, "Run has no repository origin.", "missing_repo_origin")
        if repository.get("provider") != "github":
            return self._pr_error(request, 400, "Only github.com repositories are supported.", "unsupported_host")
        diff = run.get("diff") or {}
        if kind not in TERMINAL or not (diff.get("additions") or diff.get("deletions") or diff.get("files_changed")):
            return self._pr_error(request, 400, "Run has no changes to open a pull request for.", "empty_diff")
        if self.github_down:
            return self._pr_error(request, 503, "GitHub integration is unavailable.", "integration_unavailable")
        return None

    async def _auth_me(self, request: web.Request) -> web.Response:
        if self.auth_me_login is None:
            return web.Response(status=404, body=b"")  # the web UI is off: the route does not exist
        login = self.auth_me_login
        user = {"login": login, "name": login, "email": f"{login}@example.com", "avatarUrl": "", "userUrl": ""}
        return web.json_response({"user": user, "provider": "github", "demoMode": False})

    @staticmethod
    def _public(creation: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in creation.items() if not k.startswith("_")}

    async def _creation(self, request: web.Request) -> web.Response:
        run_id = request.match_info["id"]
        creation = self.creations.get(run_id)
        if creation is None:
            return self._pr_error(request, 404, "No pull request creation for this run.", "no_pull_request_creation")
        if creation["status"] == "pending":
            creation["_polls"] -= 1
            if creation["_polls"] < 0:
                creation["updated_at"] = _iso_ms(datetime.now(UTC))
                if self.creation_error:
                    creation.update(status="failed", error=self.creation_error)
                    failed = {"creation_id": creation["id"], "error": self.creation_error}
                    self.emit(run_id, "pull_request.failed", failed)
                else:
                    self.open_pull_request(run_id, draft=True)  # Fabro opens every PR it is asked for as a draft
                    creation.update(status="succeeded", pull_request=self.runs[run_id]["pull_request"])
                    self.emit(run_id, "pull_request.created", self.created_event(run_id))
        headers = {"Retry-After": self.retry_after} if creation["status"] == "pending" else {}
        return web.json_response(self._public(creation), headers=headers)

    def created_event(self, run_id: str) -> dict[str, Any]:
        """The flat properties of `pull_request.created` for the run's pull request."""
        link, live = self.runs[run_id]["pull_request"], self.pull_requests[run_id]
        return {
            "pr_url": link["html_url"],
            "pr_number": link["number"],
            "owner": link["owner"],
            "repo": link["repo"],
            "base_branch": live["base_branch"],
            "head_branch": live["head_branch"],
            "title": live["title"],
            "draft": live["draft"],
        }

    def _no_record(self, request: web.Request) -> web.Response:
        return self._pr_error(request, 404, "Run or stored pull request record not found.", "no_stored_record")

    async def _get_pr(self, request: web.Request) -> web.Response:
        run = self.runs.get(request.match_info["id"])
        if run is None or not run.get("pull_request"):
            return self._no_record(request)
        details = None if self.github_down else self.pull_requests.get(run["id"])
        data: dict[str, Any] = {"link": run["pull_request"]}
        meta: dict[str, Any] = {"details_status": "available"}
        if details is not None:
            data["details"] = details  # GitHub trouble only omits it: never a 503
        else:
            meta = {"details_status": "unavailable", "details_unavailable_reason": "integration_unavailable"}
        return web.json_response({"data": data, "meta": meta})

    def _ship_refusal(self, request: web.Request, verb: str) -> tuple[dict[str, Any], web.Response | None]:
        """What GitHub refuses comes back as a 502 without `code`, in GitHub's words."""
        run = self.runs.get(request.match_info["id"])
        if run is None or not run.get("pull_request"):
            return {}, self._no_record(request)
        if self.github_down:
            return run, self._pr_error(request, 503, "GitHub integration is unavailable.", "integration_unavailable")
        live = self.pull_requests.get(run["id"])
        number = run["pull_request"]["number"]
        if live is None:
            return run, self._pr_error(request, 502, f"Pull request #{number} not found on GitHub.", "github_not_found")
        if verb == "merge" and (live["draft"] or live["merged"] or live["state"] != "open"):
            return run, self._error(
                502, f"Pull request #{number} is not mergeable (method may not be allowed)", request[REQUEST_ID]
            )
        if verb == "merge" and live.get("mergeable") is False:
            return run, self._error(502, f"Pull request #{number} has a merge conflict", request[REQUEST_ID])
        if verb == "close" and live["merged"]:
            return run, self._error(502, f"Pull request #{number} is merged and cannot be closed", request[REQUEST_ID])
        return run, None

    async def _merge_pr(self, request: web.Request) -> web.Response:
        body, bad = await self._body(request)
        if bad is not None:
            return bad
        if not isinstance(body, dict) or body.get("method") not in ("merge", "squash", "rebase"):
            return web.Response(status=422, text="unknown variant in `method`", content_type="text/plain")
        run, refused = self._ship_refusal(request, "merge")
        if refused is not None:
            return refused
        self.pull_requests[run["id"]].update(merged=True, state="closed", merged_at=_iso_ms(datetime.now(UTC)))
        pr = run["pull_request"]
        return web.json_response({"number": pr["number"], "html_url": pr["html_url"], "method": body["method"]})

    async def _close_pr(self, request: web.Request) -> web.Response:
        run, refused = self._ship_refusal(request, "close")
        if refused is not None:
            return refused
        self.pull_requests[run["id"]].update(state="closed")
        pr = run["pull_request"]
        return web.json_response({"number": pr["number"], "html_url": pr["html_url"]})

    # -- automations ---------------------------------------------------------------------------

    def add_automation(self, automation_id: str, name: str, *, api: bool = True, **target: str) -> dict[str, Any]:
        """An automation with a schedule and, when `api`, an enabled API trigger (listed only when enabled)."""
        triggers: list[dict[str, Any]] = [
            {"type": "schedule", "id": "nightly", "enabled": True, "expression": "0 9 * * *"}
        ]
        if api:
            triggers.insert(0, {"type": "api", "id": "manual", "enabled": True})
        automation = {
            "id": automation_id,
            "revision": hashlib.sha256(automation_id.encode()).hexdigest(),
            "name": name,
            "description": f"{name}, on demand",
            "target": {"repository": "demo/api-server", "ref": "main", "workflow": "implement", **target},
            "triggers": triggers,
        }
        self.automations.append(automation)
        return automation

    async def _automations(self, request: web.Request) -> web.Response:
        return web.json_response({"data": self.automations, "meta": {"total": len(self.automations)}})

    async def _start_automation(self, request: web.Request) -> web.Response:
        automation = next((a for a in self.automations if a["id"] == request.match_info["id"]), None)
        if automation is None:
            return self._error(404, f"automation not found: {request.match_info['id']}", request[REQUEST_ID])
        if not any(t["type"] == "api" and t["enabled"] for t in automation["triggers"]):
            return self._error(
                409,
                "The automation's api trigger is disabled.",
                request[REQUEST_ID],
                code="automation_api_trigger_disabled",
            )
        if automation["target"]["repository"] == "gone/repo":
            return self._error(422, "The target repository could not be materialised.", request[REQUEST_ID])
        from tests.fakes.runs import make_run

        run = make_run("submitted", title=f"{automation['name']} run", created=datetime.now(UTC))
        run["timestamps"].update(started_at=None, last_event_at=None)
        run["automation"] = {"id": automation["id"], "name": automation["name"], "trigger_id": "manual"}
        run["created_by"] = copy.deepcopy(self.token_actor)  # the caller
        self.add(run)
        self.emit(run["id"], "run.created", provenance(request.headers.get("User-Agent", "")))
        return web.json_response(run, status=201)

    # -- runs from a manifest (shared/fabro/CREATE-RUN.md) -----------------------------------------

    async def _create_run(self, request: web.Request) -> web.Response:
        from tests.fakes.manifests import Refused, check_manifest
        from tests.fakes.runs import make_run

        raw = await request.read()  # parsed with serde from raw bytes: no Content-Type check
        try:
            body = json.loads(raw)
        except ValueError:
            return self._error(400, "expected value at line 1 column 1", request[REQUEST_ID])
        try:
            checked = check_manifest(body, self.variables, for_create=True)
        except Refused as refused:
            return self._error(refused.status, refused.detail, request[REQUEST_ID])
        if self.create_refusal is not None:
            return self._error(400, self.create_refusal, request[REQUEST_ID])
        slug = body["target"]["path"].split("/")[-2] if "/" in body["target"]["path"] else "workflow"
        origin = (body.get("git") or {}).get("origin_url", "")
        run = make_run(
            "submitted",
            title=checked.title or (checked.goal or "Untitled")[:100],
            created=datetime.now(UTC),
            goal=checked.goal,
            labels=checked.labels,
        )
        graph = checked.graph
        run["workflow"] = {
            "slug": slug,
            "name": graph.name,
            "graph_name": graph.name,
            "node_count": len(graph.nodes),
            "edge_count": len(graph.edges),
        }
        # Always an object: `owner/repo` from the origin, else the source directory's name, else "unknown".
        github = origin.startswith("https://github.com/")
        run["repository"] = {
            "name": origin.removeprefix("https://github.com/").removesuffix(".git") or "unknown",
            "origin_url": origin or None,
            "provider": "github" if github else "git" if origin else "unknown",
        }
        run["created_by"] = copy.deepcopy(self.token_actor)
        run["automation"] = None
        self.add(run)
        self.manifests[run["id"]] = body
        self.user_agents[run["id"]] = request.headers.get("User-Agent", "")
        self.emit(run["id"], "run.created", provenance(self.user_agents[run["id"]]))
        return web.json_response(run, status=201)

    async def _start_run(self, request: web.Request) -> web.Response:
        run = self.runs.get(request.match_info["id"])
        if run is None:
            return self._missing(request)
        kind = run["lifecycle"]["status"]["kind"]
        if self.start_fails is not None:
            return self._conflict(request, self.start_fails)
        if kind != "submitted":
            return self._conflict(request, f"cannot start run: status is {kind}, expected submitted")
        self._set_status(run["id"], "runnable")
        self.emit(run["id"], "run.runnable", {})
        return web.json_response(run)

    async def _validate(self, request: web.Request) -> web.Response:
        from tests.fakes.manifests import Refused, check_manifest

        body, bad = await self._body(request)  # axum's Json extractor: Content-Type is required
        if bad is not None:
            return bad
        try:
            checked = check_manifest(body, self.variables, for_create=False)
        except Refused as refused:
            return self._error(refused.status, refused.detail, request[REQUEST_ID])
        graph = checked.graph
        errors = [d for d in checked.diagnostics if d["severity"] == "error"]
        summary = {
            "name": graph.name,
            "nodes": len(graph.nodes),
            "edges": len(graph.edges),
            "goal": checked.goal or "",
            "diagnostics": checked.diagnostics,
        }
        return web.json_response({"ok": not errors, "workflow": summary})

    def schedule_automation(self, automation_id: str) -> dict[str, Any]:
        """The automation's schedule fired: a run created by Fabro's engine, owned by no person."""
        from tests.fakes.runs import make_run, system_principal

        automation = next(a for a in self.automations if a["id"] == automation_id)
        run = make_run("running", title=f"{automation['name']} run", created_by=system_principal())
        run["automation"] = {"id": automation["id"], "name": automation["name"], "trigger_id": "nightly"}
        self.add(run)
        return run

    # -- working with a running agent ------------------------------------------------------------

    def _agent_refusal(
        self, request: web.Request, run: dict[str, Any] | None, *, interrupting: bool, steering: bool
    ) -> web.Response | None:
        """Fabro's answers to steer and interrupt by run state (API.md, Steer / interrupt)."""
        if run is None:
            return self._missing(request)
        if run["lifecycle"].get("archived"):
            return self._archived(request, run)
        kind = run["lifecycle"]["status"]["kind"]
        rid = request[REQUEST_ID]
        if kind == "blocked":
            return self._error(409, "Run is waiting for an answer.", rid, code="use_answer_endpoint")
        if kind in TERMINAL or kind == "removing":
            code = "run_not_interruptible" if interrupting and not steering else "run_not_steerable"
            return self._error(409, "Run is not active.", rid, code=code)
        if kind != "running":  # submitted, pending, runnable, starting, paused
            return self._error(409, "Run is not steerable now.", rid, code="run_not_steerable")
        trouble = self.agent_trouble.get(run["id"])
        if trouble == "worker_control_unavailable":
            return self._error(503, "Worker control is unavailable.", rid, code=trouble)
        if trouble == "no_active_steerable_session" and not interrupting:
            return None  # buffered for the next session
        if trouble:
            return self._error(409, "The agent cannot take that now.", rid, code=trouble)
        return None

    async def _steer(self, request: web.Request) -> web.Response:
        run = self.runs.get(request.match_info["id"])
        body, bad = await self._body(request)
        if bad is not None:
            return bad
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not 1 <= len(text) <= 8192:
            return web.Response(status=422, text="text: length must be 1..8192", content_type="text/plain")
        if not text.strip():
            return self._error(400, "Steer text must not be empty.", request[REQUEST_ID])
        interrupting = bool(body.get("interrupt"))
        refused = self._agent_refusal(request, run, interrupting=interrupting, steering=True)
        if refused is not None:
            return refused
        assert run is not None
        if interrupting:
            self.emit(run["id"], "run.interrupt", {}, actor=self.token_actor)
        self.emit(run["id"], "run.steer", {"text": text}, actor=self.token_actor)
        return web.Response(status=202)

    async def _interrupt(self, request: web.Request) -> web.Response:
        run = self.runs.get(request.match_info["id"])
        refused = self._agent_refusal(request, run, interrupting=True, steering=False)
        if refused is not None:
            return refused
        assert run is not None
        self.emit(run["id"], "run.interrupt", {}, actor=self.token_actor)
        return web.Response(status=202)

    async def _pause(self, request: web.Request) -> web.Response:
        run = self.runs.get(request.match_info["id"])
        if run is None:
            return self._missing(request)
        if run["lifecycle"].get("archived"):
            return self._archived(request, run)
        kind = run["lifecycle"]["status"]["kind"]
        if kind not in ("running", "blocked"):
            return self._conflict(request, "Run is not pausable.")
        if run["lifecycle"].get("pending_control"):
            return self._conflict(request, "Run control request is already pending.")
        if kind == "blocked":  # immediate: the question stays pending
            self._set_status(run["id"], "paused", prior_block="human_input_required")
            self.emit(run["id"], "run.paused", {})
            return web.json_response(run)
        run["lifecycle"]["pending_control"] = "pause"
        self.emit(run["id"], "run.pause.requested", {"action": "pause"}, actor=self.token_actor)
        if self.pause_undeliverable:
            self.pause_undeliverable = False
            return self._error(503, "Failed to deliver pause request to the active run.", request[REQUEST_ID])
        return web.json_response(run)

    async def _unpause(self, request: web.Request) -> web.Response:
        run = self.runs.get(request.match_info["id"])
        if run is None:
            return self._missing(request)
        if run["lifecycle"].get("archived"):
            return self._archived(request, run)
        status = run["lifecycle"]["status"]
        if status["kind"] != "paused":
            return self._conflict(request, "Run is not paused.")
        if run["lifecycle"].get("pending_control"):
            return self._conflict(request, "Run control request is already pending.")
        if status.get("prior_block") == "human_input_required":  # back to waiting for its answer, at once
            self._set_status(run["id"], "blocked", blocked_reason="human_input_required")
            self.emit(run["id"], "run.unpaused", {})
            return web.json_response(run)
        run["lifecycle"]["pending_control"] = "unpause"
        self.emit(run["id"], "run.unpause.requested", {"action": "unpause"}, actor=self.token_actor)
        if self.pause_undeliverable:
            self.pause_undeliverable = False
            return self._error(503, "Failed to deliver unpause request to the active run.", request[REQUEST_ID])
        return web.json_response(run)

    # -- stages and one run's stream -------------------------------------------------------------

    def stage(self, run_id: str, name: str, status: str, **event: Any) -> None:
        """A stage starts, fails, retries or ends: its list entry moves, and its event is emitted."""
        stages = self.stage_list.setdefault(run_id, [])
        entry = next((s for s in stages if s["node_id"] == name), None)
        if entry is None:
            entry = {
                "id": f"{name}@1",
                "name": name,
                "handler": "agent",
                "status": status,
                "node_id": name,
                "visit": 1,
                "started_at": _iso_ms(datetime.now(UTC)),
                "billing": {
                    "input_tokens": 0,
                    "output_tokens": 0,
                    "total_tokens": 0,
                    "reasoning_tokens": 0,
                    "cache_read_tokens": 0,
                    "cache_write_tokens": 0,
                },
            }
            stages.append(entry)
        entry["status"] = status
        kind = {"running": "stage.started", "failed": "stage.failed", "retrying": "stage.retrying"}.get(
            status, "stage.completed"
        )
        properties: dict[str, Any] = {"index": stages.index(entry)}
        if kind in ("stage.started", "stage.completed", "stage.retrying"):
            properties.update(attempt=1, max_attempts=1)
        if kind == "stage.started":
            properties["handler_type"] = "agent"
        elif kind == "stage.completed":
            properties["status"] = status
        elif kind == "stage.failed":
            properties["will_retry"] = False
        elif kind == "stage.retrying":
            properties.update(attempt=2, max_attempts=3, delay_ms=1000)
        if "wall_time_ms" in event:  # the list entry's; the event carries it in its timing
            entry["wall_time_ms"] = event.pop("wall_time_ms")
            properties["timing"] = {"wall_time_ms": entry["wall_time_ms"]}
        properties.update(event)
        self.emit(run_id, kind, properties, node_id=name, node_label=name, stage_id=entry["id"])

    def finish(self, run_id: str) -> None:
        self._set_status(run_id, "succeeded", reason="completed")
        self.emit(run_id, "run.completed", {"reason": "completed"})
        for queue in self.run_streams.get(run_id, []):
            queue.put_nowait(None)  # the stream closes after the run ends

    async def _stages(self, request: web.Request) -> web.Response:
        run_id = request.match_info["id"]
        if run_id not in self.runs:
            return self._missing(request)
        return web.json_response({"data": self.stage_list.get(run_id, []), "meta": {"has_more": False}})

    async def _attach_run(self, request: web.Request) -> web.StreamResponse:
        """SSE of one run: events with `seq >= since_seq` replayed, then live; closed once the run has ended."""
        run_id = request.match_info["id"]
        if run_id not in self.runs:
            return self._missing(request)
        since = int(request.query.get("since_seq", "0") or 0)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.run_streams.setdefault(run_id, []).append(queue)
        self.run_stream_connections += 1
        try:
            for envelope in self.events.get(run_id, []):
                if envelope["seq"] >= since:
                    await response.write(f"data: {json.dumps(envelope)}\n\n".encode())
            if self.runs[run_id]["lifecycle"]["status"]["kind"] not in TERMINAL:
                while (live := await queue.get()) is not None:
                    if live["seq"] >= since:
                        await response.write(f"data: {json.dumps(live)}\n\n".encode())
        except ConnectionResetError:
            pass
        finally:
            self.run_streams[run_id].remove(queue)
        return response

    # -- what a run produced and used ---------------------------------------------------------------

    def sandbox_ready(self, run_id: str, *, ask: bool = True) -> None:
        """The run's sandbox exists (and, with `ask`, an LLM is configured): Ask Fabro is available."""
        run = self.runs[run_id]
        runtime = {
            "id": "sbx-1",
            "working_directory": "/workspace",
            "repo_cloned": True,
            "clone_origin_url": None,
            "clone_branch": None,
        }
        run["sandbox"] = {
            "kind": "ready",
            "plan": {"provider": "daytona", "image": None, "snapshot": None},
            "instance": {"provider": "daytona", "image": None, "snapshot": None, "runtime": runtime},
            "failure": None,
        }
        run["ask_fabro"] = {
            "available": ask,
            "unavailable_reason": None if ask else "llm_unconfigured",
            "default_model": "claude-sonnet-4-5" if ask else None,
        }

    def change(self, run_id: str, path: str, added: int = 3, removed: int = 1, **flags: Any) -> dict[str, Any]:
        """One changed file, its unified patch made of `added` and `removed` lines (as Fabro sends it)."""
        kind = flags.pop("change_kind", "modified")
        hunk = [f"@@ -1,{removed} +1,{added} @@"] + [f"-old {i}" for i in range(removed)]
        hunk += [f"+new {i}" for i in range(added)]
        patch = f"--- a/{path}\n+++ b/{path}\n" + "\n".join(hunk) + "\n"
        placeholder = flags.get("binary") or flags.get("sensitive") or flags.get("truncated")
        entry: dict[str, Any] = {
            "old_file": {"name": path, "contents": "" if placeholder else "old"},
            "new_file": {"name": path, "contents": "" if placeholder else "new"},
            "change_kind": kind,
            **flags,
        }
        if not placeholder:
            entry["unified_patch"] = patch
        self.changed.setdefault(run_id, []).append(entry)
        return entry

    async def _files(self, request: web.Request) -> web.Response:
        run = self.runs.get(request.match_info["id"])
        if run is None:
            return self._missing(request)
        files = self.changed.get(run["id"], [])
        additions = deletions = 0
        for f in files:
            for line in (f.get("unified_patch") or "").splitlines():
                if line.startswith("+") and not line.startswith("+++"):
                    additions += 1
                elif line.startswith("-") and not line.startswith("---"):
                    deletions += 1
        meta: dict[str, Any] = {
            "source": "sandbox",
            "scope": "committed",
            "stats": {"additions": additions, "deletions": deletions},
            "truncated": len(files) > 200 or any(f.get("truncated") for f in files),
            "total_changed": len(files),
        }
        meta.update(self.files_meta.get(run["id"], {}))
        return web.json_response({"data": files[:200], "meta": meta})

    def commit(self, run_id: str, subject: str, *, author: str = "Fabro Agent") -> dict[str, Any]:
        sha = uuid.uuid4().hex + uuid.uuid4().hex[:8]
        commits = self.commit_list.setdefault(run_id, [])
        person = {"name": author, "email": "agent@fabro.local", "date": _iso_ms(datetime.now(UTC))}
        entry = {
            "sha": sha,
            "short_sha": sha[:7],
            "parents": [{"sha": commits[-1]["sha"], "short_sha": commits[-1]["short_sha"]}] if commits else [],
            "author": person,
            "committer": person,
            "subject": subject,
            "body": None,
            "message": subject,
            "trailers": {},
            "tree_sha": uuid.uuid4().hex + uuid.uuid4().hex[:8],
        }
        commits.append(entry)
        return entry

    async def _commits(self, request: web.Request) -> web.Response:
        run = self.runs.get(request.match_info["id"])
        if run is None:
            return self._missing(request)
        if run["lifecycle"]["status"]["kind"] in ("submitted", "pending", "runnable"):
            return self._conflict(request, "Run has no base SHA.")
        commits = self.commit_list.get(run["id"], [])
        meta = {
            "source": "sandbox",
            "base_sha": "0" * 40,
            "head_sha": commits[-1]["sha"] if commits else "0" * 40,
            "limit": 100,
            "total_returned": min(len(commits), 100),
            "truncated": len(commits) > 100,
        }
        return web.json_response({"data": commits[:100], "meta": meta})

    def bill(self, run_id: str, stages: list[tuple[str, str | None, int | None, int]]) -> dict[str, Any]:
        """Billing per node: (node id, model id or None, micro-dollars or None, tokens), as `GET /billing` sums it."""

        def tokens(total: int, usd: int | None) -> dict[str, Any]:
            counts: dict[str, Any] = {
                "input_tokens": total * 3 // 4,
                "output_tokens": total - total * 3 // 4,
                "total_tokens": total,
                "reasoning_tokens": 0,
                "cache_read_tokens": 0,
                "cache_write_tokens": 0,
            }
            if usd is not None:
                counts["total_usd_micros"] = usd
            return counts

        rows: list[dict[str, Any]] = []
        models: dict[str, dict[str, Any]] = {}
        for node, model, usd, total in stages:
            rows.append(
                {
                    "stage": {"id": node, "name": node},
                    "model": {"provider": "anthropic", "model_id": model} if model else None,
                    "billing": tokens(total, usd),
                    "timing": {"wall_time_ms": 60_000, "inference_time_ms": 0, "tool_time_ms": 0, "active_time_ms": 0},
                    "started_at": _iso_ms(datetime.now(UTC)),
                    "state": "succeeded",
                }
            )
            if model:
                seen = models.setdefault(model, {"usd": None, "tokens": 0, "stages": 0})
                seen["usd"] = (seen["usd"] or 0) + usd if usd is not None else seen["usd"]
                seen["tokens"] += total
                seen["stages"] += 1
        priced = [u for _, _, u, _ in stages if u is not None]
        totals = tokens(sum(t for *_, t in stages), sum(priced) if priced else None)
        totals["timing"] = {
            "wall_time_ms": 60_000 * len(stages),
            "inference_time_ms": 0,
            "tool_time_ms": 0,
            "active_time_ms": 0,
        }
        bill = {
            "stages": rows,
            "totals": totals,
            "by_model": [
                {
                    "model": {"provider": "anthropic", "model_id": m},
                    "stages": v["stages"],
                    "billing": tokens(v["tokens"], v["usd"]),
                }
                for m, v in models.items()
            ],
        }
        self.bills[run_id] = bill
        return bill

    async def _billing(self, request: web.Request) -> web.Response:
        run = self.runs.get(request.match_info["id"])
        if run is None:
            return self._missing(request)
        empty: dict[str, Any] = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "reasoning_tokens": 0}
        timing = {"wall_time_ms": 0, "inference_time_ms": 0, "tool_time_ms": 0, "active_time_ms": 0}
        empty |= {"cache_read_tokens": 0, "cache_write_tokens": 0, "timing": timing}
        return web.json_response(self.bills.get(run["id"], {"stages": [], "totals": empty, "by_model": []}))

    async def _logs(self, request: web.Request) -> web.Response:
        run = self.runs.get(request.match_info["id"])
        if run is None:
            return self._missing(request)
        log = self.logs.get(run["id"])
        if log is None:
            return self._error(404, "Run log not available.", request[REQUEST_ID])
        return web.Response(body=log, content_type="text/plain", charset="utf-8")

    async def _graph_source(self, request: web.Request) -> web.Response:
        run = self.runs.get(request.match_info["id"])
        if run is None or run["id"] not in self.graphs:
            return self._error(404, "Graph not found.", request[REQUEST_ID])
        return web.Response(text=self.graphs[run["id"]], content_type="text/vnd.graphviz")

    async def _graph(self, request: web.Request) -> web.Response:
        """Graphviz's SVG, as the server post-processes it: one `<g class="node">` per node, its id in `<title>`."""
        run = self.runs.get(request.match_info["id"])
        if run is None or run["id"] not in self.graphs:
            return self._error(404, "Graph not found.", request[REQUEST_ID])
        nodes = list(dict.fromkeys(re.findall(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*[\[;]", self.graphs[run["id"]], re.M)))
        parts = [
            '<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
            f'<svg xmlns="http://www.w3.org/2000/svg" width="200pt" height="{60 * len(nodes) + 20}pt"'
            f' viewBox="0 0 200 {60 * len(nodes) + 20}">',
            '<g id="graph0" class="graph"><title>workflow</title>',
        ]
        for i, node in enumerate(nodes):
            y = 40 + 60 * i
            parts.append(
                f'<g id="node{i + 1}" class="node"><title>{node}</title>'
                f'<ellipse fill="none" stroke="black" cx="100" cy="{y}" rx="80" ry="18"/>'
                f'<text text-anchor="middle" x="100" y="{y + 4}" font-family="Times,serif" font-size="14.00">'
                f"{node}</text></g>"
            )
        parts.append("</g></svg>")
        return web.Response(text="\n".join(parts), content_type="image/svg+xml")

    async def _preview(self, request: web.Request) -> web.Response:
        run = self.runs.get(request.match_info["id"])
        if run is None:
            return self._missing(request)
        body, bad = await self._body(request)
        if bad is not None:
            return bad
        port, ttl = (body or {}).get("port"), (body or {}).get("expires_in_secs")
        if not isinstance(port, int) or not isinstance(ttl, int):
            return web.Response(status=422, text="missing field `port`", content_type="text/plain")
        if not 0 < port < 65536:
            return self._error(400, "Port must fit in a u16.", request[REQUEST_ID])
        if not 1 <= ttl <= 86400:
            return web.Response(status=422, text="expires_in_secs: out of range", content_type="text/plain")
        if (run.get("sandbox") or {}).get("kind") != "ready":
            return self._conflict(request, "Run has no active sandbox.")
        secret = uuid.uuid4().hex
        url = f"https://{port}-sbx-{run['id'][-6:].lower()}.preview.example/?tkn={secret}"
        self.previews.append({"run_id": run["id"], "port": port, "ttl": ttl, "url": url, "signed": body.get("signed")})
        answer: dict[str, Any] = {"url": url}
        if not body.get("signed"):
            answer["token"] = secret
        return web.json_response(answer, status=201)

    # -- Ask Fabro ---------------------------------------------------------------------------------

    async def _create_session(self, request: web.Request) -> web.Response:
        run = self.runs.get(request.match_info["id"])
        if run is None:
            return self._missing(request)
        body, bad = await self._body(request)
        if bad is not None:
            return bad
        now = _iso_ms(datetime.now(UTC))
        session = {
            "id": f"01SE{uuid.uuid4().hex[:22].upper()}",
            "run_id": run["id"],
            "title": (body or {}).get("title"),
            "status": "idle",
            "model": "claude-sonnet-4-5",
            "provider": "anthropic",
            "active_turn": None,
            "created_at": now,
            "updated_at": now,
        }
        self.sessions[session["id"]] = session
        self.transcripts[session["id"]] = []
        return web.json_response(session, status=201)

    async def _get_session(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["sid"])
        if session is None:
            return self._error(404, "Session not found.", request[REQUEST_ID])
        seqs = [e["seq"] for e in self.events.get(session["run_id"], []) if e.get("session_id") == session["id"]]
        detail = {**session, "messages": self.transcripts.get(session["id"], []), "last_seq": max(seqs, default=0)}
        return web.json_response(detail)

    async def _turn(self, request: web.Request) -> web.StreamResponse:
        session = self.sessions.get(request.match_info["sid"])
        if session is None:
            return self._error(404, "Session not found.", request[REQUEST_ID])
        body, bad = await self._body(request)
        if bad is not None:
            return bad
        if not isinstance(body, dict) or not isinstance(body.get("input"), str):
            return web.Response(status=422, text="missing field `input`", content_type="text/plain")
        if session["active_turn"] is not None:
            return web.json_response(
                {
                    "errors": [
                        {
                            "status": "409",
                            "title": "Conflict",
                            "detail": "Session already has an active turn.",
                            "code": "session_active_turn",
                            "request_id": request[REQUEST_ID],
                        }
                    ],
                    "request_id": request[REQUEST_ID],
                },
                status=409,
                headers={"x-fabro-active-turn-id": session["active_turn"]["id"]},
            )
        turn_id = f"01TU{uuid.uuid4().hex[:22].upper()}"
        started = _iso_ms(datetime.now(UTC))
        session["active_turn"] = {"id": turn_id, "started_at": started, "input": body["input"]}
        session["status"] = "running"
        self.turn_inputs.append((session["id"], body["input"]))
        run_id = session["run_id"]
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "x-fabro-turn-id": turn_id}
        )
        await response.prepare(request)

        gone = False

        async def frame(event: str, properties: dict[str, Any]) -> None:
            # The turn goes on when the client goes away, as Fabro's does: its answer is kept in the transcript.
            nonlocal gone
            envelope = self.emit(run_id, event, {"turn_id": turn_id, **properties}, session_id=session["id"])
            if gone:
                return
            try:
                await response.write(
                    f"id: {envelope['seq']}\nevent: {event}\ndata: {json.dumps(envelope)}\n\n".encode()
                )
            except (ConnectionResetError, RuntimeError):
                gone = True

        transcript = self.transcripts.setdefault(session["id"], [])
        stamp = _iso_ms(datetime.now(UTC))
        transcript.append({"kind": "user", "content": body["input"], "timestamp": stamp})
        try:
            await frame("run.session.turn.started", {"input": body["input"]})
            await frame("run.session.user_message", {"text": body["input"]})
            if self.turn_gate is not None:
                await self.turn_gate.wait()
            ask = self.runs[run_id].get("ask_fabro") or {}
            code = self.turn_failure or (
                None if ask.get("available") else ask.get("unavailable_reason") or "no_sandbox"
            )
            if code == "sandbox_not_ready":
                code = "sandbox_unavailable"
            if code == "interrupted":  # not a failure code: the turn was interrupted
                await frame("run.session.turn.interrupted", {"error": "Turn interrupted."})
            elif code is not None:
                failure = {"error": f"Turn failed: {code}", "code": code, "retryable": code == "sandbox_unavailable"}
                await frame("run.session.turn.failed", failure)
            else:
                for delta in self.answer_deltas:
                    if self.delta_pause:
                        await asyncio.sleep(self.delta_pause)
                    await frame("run.session.assistant_delta", {"delta": delta})
                    self.deltas_written.append(time.perf_counter())
                text = "".join(self.answer_deltas)
                transcript.append({"kind": "assistant", "content": text, "timestamp": _iso_ms(datetime.now(UTC))})
                usage = {"input_tokens": 10, "output_tokens": 20}
                await frame("run.session.assistant_message", {"text": text, "model": session["model"], "usage": usage})
                await frame("run.session.turn.succeeded", {"output": text})
        except ConnectionResetError:
            pass
        finally:
            session["active_turn"] = None
            session["status"] = "idle"
        return response
