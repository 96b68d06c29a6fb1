"""Built-in sample runs served through the real client, so `preview --demo` needs no Fabro.

The sample data is Fabro's real run shape (see demo_runs.json); an in-process httpx
transport answers the handful of read endpoints `/runs` uses, with Fabro's bucket,
sort and paging semantics, so the preview shows exactly what a real answer looks like.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

import httpx

from bot.fabro.models import BUCKETS, Run, bucket_of

__all__ = ["DEMO_FABRO_URL", "demo_transport"]

DEMO_FABRO_URL = "https://fabro.demo.invalid"
_TIME_KEYS = ("created_at", "started_at", "last_event_at", "completed_at", "requested_at", "decided_at", "archived_at", "ts")


def _load(now: datetime) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    raw = json.loads(resources.files("bot").joinpath("demo_runs.json").read_text("utf-8"))
    runs, events = copy.deepcopy(raw["runs"]), copy.deepcopy(raw["events"])
    newest = max(_parse(r["timestamps"]["created_at"]) for r in runs)
    shift = now - timedelta(minutes=4) - newest
    _shift(runs, shift)
    _shift(events, shift)
    return runs, events


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _shift(value: Any, shift: timedelta) -> None:
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in list(items):
        if key in _TIME_KEYS and isinstance(item, str):
            value[key] = (_parse(item) + shift).strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            _shift(item, shift)


def _sort_key(key: str, run: Run, now: datetime) -> Any:
    ts = run.timestamps
    if key == "updated_at":
        return ts.last_event_at or ts.created_at
    if key == "status":
        bucket = bucket_of(run)
        return BUCKETS.index(bucket) if bucket in BUCKETS else len(BUCKETS)
    if key == "elapsed":
        start = ts.started_at or ts.created_at or now
        end = ts.completed_at if run.is_terminal and ts.completed_at else now
        return (end - start).total_seconds()
    if key in ("repo", "title", "workflow"):
        text = {"repo": run.repository.name, "title": run.title, "workflow": run.workflow.display_name}[key]
        return (text or "").lower()
    if key == "changes":
        return (run.diff.additions or 0) + (run.diff.deletions or 0) if run.diff else 0
    if key == "size":
        return run.billing.total_usd_micros or 0 if run.billing else 0
    return ts.created_at


def demo_transport(now: datetime) -> httpx.MockTransport:
    runs, events = _load(now)
    by_id = {r["id"]: r for r in runs}

    def found(body: Any) -> httpx.Response:
        return httpx.Response(200, json=body, headers={"x-request-id": "demo"})

    def missing() -> httpx.Response:
        error = {"status": "404", "title": "Not Found", "detail": "Run not found."}
        return httpx.Response(404, json={"errors": [error]}, headers={"x-request-id": "demo"})

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        params = request.url.params
        if path == "/runs":
            return found(_list(runs, params, now))
        if path == "/runs/resolve":
            selector = params.get("selector", "")
            matches = [r for r in runs if r["id"].startswith(selector.upper())]
            return found(matches[0]) if len(matches) == 1 else missing()
        parts = path.strip("/").split("/")
        if len(parts) >= 2 and parts[0] == "runs" and parts[1] in by_id:
            run_id = parts[1]
            if len(parts) == 2:
                return found(by_id[run_id])
            if parts[2:] == ["events"]:
                return found({"data": list(reversed(events.get(run_id, []))), "meta": {"has_more": False}})
            if parts[2:] == ["questions"]:
                question = by_id[run_id].get("current_question")
                return found({"data": [question] if question else [], "meta": {"has_more": False}})
        return missing()

    return httpx.MockTransport(handler)


def _list(runs: list[dict[str, Any]], params: httpx.QueryParams, now: datetime) -> dict[str, Any]:
    statuses = params.get_list("status")
    parsed = [Run.model_validate(r) for r in runs]
    if statuses:
        chosen = [r for r in parsed if bucket_of(r) in statuses]
    else:
        hidden = {"removing"} | (set() if params.get("include_archived") == "true" else {"archived"})
        chosen = [r for r in parsed if bucket_of(r) not in hidden]
    if params.get("parent_id"):
        chosen = [r for r in chosen if r.parent_id == params["parent_id"]]
    key = params.get("sort", "created_at")
    chosen.sort(key=lambda r: r.id, reverse=True)  # ties break by id, descending, either way
    chosen.sort(key=lambda r: _sort_key(key, r, now), reverse=params.get("direction", "desc") == "desc")
    limit = min(max(int(params.get("page[limit]", 20)), 1), 100)
    offset = max(int(params.get("page[offset]", 0)), 0)
    page = chosen[offset : offset + limit]
    by_id = {r["id"]: r for r in runs}
    return {
        "data": [by_id[r.id] for r in page],
        "meta": {"has_more": offset + limit < len(chosen), "total": len(chosen)},
    }
