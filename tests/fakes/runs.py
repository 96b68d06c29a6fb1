"""Fabro-shaped run objects for tests, built from the real examples in shared/fabro."""

from __future__ import annotations

import copy
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
_SHARED = Path(__file__).resolve().parents[3] / "shared" / "fabro"

_counter = itertools.count(1)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def run_examples() -> list[dict[str, Any]]:
    """The real-shaped runs (copied into tests/fixtures so tests do not depend on shared/)."""
    data = json.loads((FIXTURES / "run-examples.json").read_text())
    return [copy.deepcopy(e["run"]) for e in data["examples"]]


def question_examples() -> list[dict[str, Any]]:
    data = json.loads((FIXTURES / "question-examples.json").read_text())
    return [copy.deepcopy(q["question"]) for q in data["questions"]]


def new_id(when: datetime | None = None) -> str:
    """A 26-character ULID-shaped id; later calls sort after earlier ones."""
    when = when or datetime.now(UTC)
    millis = int(when.timestamp() * 1000)
    head = ""
    for _ in range(10):
        head = _CROCKFORD[millis % 32] + head
        millis //= 32
    n = next(_counter)
    tail = ""
    for _ in range(16):
        tail = _CROCKFORD[n % 32] + tail
        n //= 32
    return head + tail


def user_principal(login: str = "ada", github_id: int = 1) -> dict[str, Any]:
    """A person who created a run through Fabro's API, signed in with GitHub."""
    return {
        "kind": "user",
        "identity": {"issuer": "https://github.com", "subject": str(github_id)},
        "login": login,
        "auth_method": "github",
    }


def worker_principal(parent_id: str) -> dict[str, Any]:
    """A child run created by the agent of run `parent_id`: it belongs to the parent's owner."""
    return {"kind": "worker", "run_id": parent_id}


def system_principal() -> dict[str, Any]:
    """A run an automation's schedule created: it belongs to no person."""
    return {"kind": "system", "system_kind": "engine"}


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_run(
    kind: str = "running",
    *,
    reason: str | None = None,
    run_id: str | None = None,
    title: str = "Add rate limiting to auth endpoints",
    created: datetime | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A run in Fabro's exact wire shape: nulls where unset, parent_id omitted unless given."""
    created = created or datetime.now(UTC) - timedelta(minutes=30)
    run_id = run_id or new_id(created)
    status: dict[str, Any] = {"kind": kind}
    if kind in ("failed", "succeeded", "pending"):
        status["reason"] = (
            reason or {"failed": "workflow_error", "succeeded": "completed", "pending": "approval_required"}[kind]
        )
    elif kind == "blocked":
        status["blocked_reason"] = reason or "human_input_required"
    elif kind == "paused":
        status["prior_block"] = reason
    elif reason:
        status["reason"] = reason
    run: dict[str, Any] = {
        "id": run_id,
        "children_count": 0,
        "title": title,
        "goal": title,
        "workflow": {"slug": "implement", "name": "Implement", "graph_name": None, "node_count": 5, "edge_count": 6},
        "automation": None,
        "repository": {
            "name": "demo/api-server",
            "origin_url": "https://github.com/demo/api-server.git",
            "provider": "github",
        },
        "created_by": {
            "kind": "user",
            "identity": {"issuer": "fabro:test", "subject": "ada"},
            "login": "ada",
            "auth_method": "dev_token",
        },
        "origin": {"kind": "api"},
        "labels": {"team": "platform"},
        "lifecycle": {
            "status": status,
            "approval": None,
            "pending_control": None,
            "queue_position": None,
            "error": None,
            "archived": False,
            "archived_at": None,
        },
        "sandbox": None,
        "models": [],
        "source_directory": "/work/api-server",
        "timestamps": {
            "created_at": iso(created),
            "started_at": iso(created),
            # A run's last event is at or after its completion, as in Fabro.
            "last_event_at": iso(created + timedelta(minutes=7))
            if kind in ("failed", "succeeded", "dead")
            else iso(created),
            "completed_at": iso(created + timedelta(minutes=7)) if kind in ("failed", "succeeded", "dead") else None,
        },
        "timing": {"wall_time_ms": 420000, "inference_time_ms": 1000, "tool_time_ms": 1000, "active_time_ms": 2000},
        "billing": {"total_usd_micros": 720000},
        "size": "XS",
        "ask_fabro": {"available": False, "unavailable_reason": None, "default_model": None},
        "diff": None,
        "pull_request": None,
        "current_question": None,
        "superseded_by": None,
        "retried_from": None,
        "links": {"web": None},
    }
    if kind == "pending" and (reason or "approval_required") == "approval_required":
        run["lifecycle"]["approval"] = {
            "state": "pending",
            "requested_at": iso(created),
            "decided_at": None,
            "denial_reason": None,
        }
    for key, value in overrides.items():
        run[key] = value
    return run


def failed_event(run_id: str, message: str, *, reason: str = "workflow_error", seq: int = 40) -> dict[str, Any]:
    return {
        "seq": seq,
        "id": f"evt_{run_id}_{seq}",
        "ts": iso(datetime.now(UTC)),
        "run_id": run_id,
        "event": "run.failed",
        "properties": {"failure": {"reason": reason, "detail": {"message": message, "category": "workflow"}}},
    }
