"""Prometheus metrics, one registry per bot (so several bots in one process never collide).

Names and what they mean are listed in docs/operations.md.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.commands = Counter(
            "fabro_bot_commands",
            "Slash commands served, by outcome (ok, help, usage_error, fabro_error, error).",
            ["outcome"],
            registry=r,
        )
        self.command_seconds = Histogram(
            "fabro_bot_command_seconds",
            "Time from receiving a slash command to its answer being sent.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10),
            registry=r,
        )
        self.actions = Counter(
            "fabro_bot_actions",
            "Actions taken from Slack, by action and result (done, refused, failed, not_allowed, duplicate).",
            ["action", "result"],
            registry=r,
        )
        self.alerts = Counter(
            "fabro_bot_alerts",
            "Alert deliveries by event: posted, digested, updated,"
            " deduplicated (found already posted after a crash), failed.",
            ["event"],
            registry=r,
        )
        self.fabro_calls = Counter(
            "fabro_bot_fabro_requests",
            "Requests to Fabro by method, route and status ('none' when no answer came).",
            ["method", "route", "status"],
            registry=r,
        )
        self.slack_calls = Counter(
            "fabro_bot_slack_calls",
            "Slack Web API calls by method and result ('ok' or Slack's error code).",
            ["method", "result"],
            registry=r,
        )
        self.leader = Gauge("fabro_bot_scheduler_leader", "1 while this replica runs the alert scheduler.", registry=r)
        self.fabro_up = Gauge(
            "fabro_bot_fabro_reachable", "1 while Fabro answers as its API documents (last five calls).", registry=r
        )
        self.stream = Gauge(
            "fabro_bot_event_stream_connected", "1 while Fabro's event stream is connected.", registry=r
        )
        self.cycles = Counter(
            "fabro_bot_alert_cycles",
            "Alert cycles by result (done, skipped_fabro, not_leader).",
            ["result"],
            registry=r,
        )

    def fabro(self, method: str, route: str, status: int | None) -> None:
        self.fabro_calls.labels(method, route, str(status) if status is not None else "none").inc()

    def slack(self, method: str, result: str) -> None:
        self.slack_calls.labels(method, result).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
