"""Built-in sample runs, answered through the real client, so `preview --demo` needs no Fabro.

An `httpx.MockTransport` over `demo_runs.json` (Fabro's real run shape) answers the few
read endpoints `/runs` uses. It filters by bucket and parent and pages, and orders by the
keys people sort by most; it is a window onto sample data, not a second Fabro.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

import httpx

from bot.fabro.client import FabroClient
from bot.fabro.models import Run, RunEvent, bucket_of

__all__ = ["DEMO_FABRO_URL", "demo_client", "demo_data"]

DEMO_FABRO_URL = "https://fabro.demo.invalid"
_TIME_KEYS = frozenset(
    {"created_at", "started_at", "last_event_at", "completed_at", "requested_at", "decided_at", "archived_at", "ts"}
)
_SORTS: dict[str, Any] = {
    "updated_at": lambda r: r.updated_at,
    "elapsed": lambda r: r.timing.wall_time_ms if r.timing and r.timing.wall_time_ms else 0,
    "size": lambda r: r.billing.total_usd_micros or 0 if r.billing else 0,
    "title": lambda r: (r.title or "").lower(),
    "repo": lambda r: (r.repository.name or "").lower(),
    "workflow": lambda r: (r.workflow.display_name or "").lower(),
    "changes": lambda r: (r.diff.additions or 0) + (r.diff.deletions or 0) if r.diff else 0,
}


def demo_client(now: datetime) -> FabroClient:
    """A Fabro client whose server is the sample data, shifted so the newest run started minutes ago."""
    runs, events = _shifted(now)
    return FabroClient(DEMO_FABRO_URL, "demo", transport=httpx.MockTransport(_Handler(runs, events)))


def demo_data(now: datetime) -> tuple[list[Run], dict[str, list[RunEvent]]]:
    """The same sample runs and their events as `demo_client` serves, every time in them shifted
    alike (approvals and events included), for pictures that must agree with the preview."""
    runs, events = _shifted(now)
    return (
        [Run.model_validate(r) for r in runs],
        {run_id: [RunEvent.model_validate(e) for e in items] for run_id, items in events.items()},
    )


def _shifted(now: datetime) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    raw = json.loads(resources.files("bot.fabro").joinpath("demo_runs.json").read_text("utf-8"))
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


class _Handler:
    def __init__(self, runs: list[dict[str, Any]], events: dict[str, list[dict[str, Any]]]) -> None:
        self.raw = {r["id"]: r for r in runs}
        self.runs = [Run.model_validate(r) for r in runs]
        self.events = events

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1").strip("/").split("/")
        params = request.url.params
        match path:
            case ["runs"]:
                return _ok(self._list(params))
            case ["runs", "resolve"]:
                selector = params.get("selector", "").upper()
                matches = [r for r in self.runs if r.id.startswith(selector)]
                if len(matches) > 1:  # as Fabro answers an ambiguous prefix
                    detail = f"Selector '{selector}' is ambiguous: {len(matches)} runs match."
                    error = {"status": "400", "title": "Bad Request", "detail": detail}
                    return httpx.Response(400, json={"errors": [error]}, headers={"x-request-id": "demo"})
                return _ok(self.raw[matches[0].id]) if matches else _missing()
            case ["runs", run_id] if run_id in self.raw:
                return _ok(self.raw[run_id])
            case ["runs", run_id, "events"] if run_id in self.raw:
                return _ok({"data": list(reversed(self.events.get(run_id, []))), "meta": {"has_more": False}})
            case ["runs", run_id, "questions"] if run_id in self.raw:
                question = self.raw[run_id].get("current_question")
                return _ok({"data": [question] if question else [], "meta": {"has_more": False}})
        return _missing()

    def _list(self, params: httpx.QueryParams) -> dict[str, Any]:
        statuses = params.get_list("status")
        hidden = {"removing"} | (set() if params.get("include_archived") == "true" else {"archived"})
        chosen = [r for r in self.runs if (bucket_of(r) in statuses if statuses else bucket_of(r) not in hidden)]
        if params.get("parent_id"):
            chosen = [r for r in chosen if r.parent_id == params["parent_id"]]
        key = _SORTS.get(params.get("sort", ""), lambda r: r.timestamps.created_at)
        chosen.sort(key=lambda r: r.id, reverse=True)  # ties break by id, descending, either way
        chosen.sort(key=key, reverse=params.get("direction", "desc") == "desc")
        limit, offset = int(params.get("page[limit]", 20)), int(params.get("page[offset]", 0))
        page = chosen[offset : offset + limit]
        return {
            "data": [self.raw[r.id] for r in page],
            "meta": {"has_more": offset + limit < len(chosen), "total": len(chosen)},
        }


def _ok(body: Any) -> httpx.Response:
    return httpx.Response(200, json=body, headers={"x-request-id": "demo"})


def _missing() -> httpx.Response:
    error = {"status": "404", "title": "Not Found", "detail": "Run not found."}
    return httpx.Response(404, json={"errors": [error]}, headers={"x-request-id": "demo"})
