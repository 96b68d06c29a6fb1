"""What deserves an alert, which subscriptions want it, and when it is over.  [pure]"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.keys import AlertKey, AlertKind
from bot.core.records import Subscription
from bot.fabro.models import Question, Run

__all__ = [
    "DEFAULT_KINDS",
    "KIND_OF_SUBSCRIPTION",
    "SUBSCRIPTION_KINDS",
    "Wanted",
    "channels_for",
    "matches",
    "wanted_alerts",
]

# Subscription words (what people type) and the alert kind each one asks for.
KIND_OF_SUBSCRIPTION = {
    "failed": AlertKind.FAILED,
    "questions": AlertKind.QUESTION,
    "approvals": AlertKind.APPROVAL,
    "cancelled": AlertKind.CANCELLED,
    "succeeded": AlertKind.SUCCEEDED,
    "pr": AlertKind.PR,
    "cost": AlertKind.COST,
}
SUBSCRIPTION_KINDS = frozenset(KIND_OF_SUBSCRIPTION)
# What a subscription gets when it names no kind, and what ALERT_CHANNEL gets.
DEFAULT_KINDS = frozenset({"failed", "questions", "approvals"})


@dataclass(frozen=True)
class Wanted:
    """One alert a run deserves right now, keyed so it is posted once per channel."""

    key: AlertKey
    run: Run
    question: Question | None = None

    @property
    def kind(self) -> AlertKind:
        return self.key.kind


def wanted_alerts(
    run: Run, questions: list[Question] | None = None, *, cost_over_usd: float | None = None
) -> list[Wanted]:
    """The alerts `run` deserves in its current state.

    `questions` are the run's pending questions when they were fetched; otherwise the
    run's own `current_question` (the earliest pending one) stands for them.
    """
    wanted: list[Wanted] = []
    if run.bucket == "failed":
        # Cancelling and denying end a run as `failed` too, but they are decisions, not failures:
        # a cancellation is its own kind (asked for by name), a denial is told on its approval alert.
        reason = run.status.reason
        if reason == "cancelled":
            wanted.append(Wanted(AlertKey(AlertKind.CANCELLED, run.id), run))
        elif reason != "approval_denied":
            # Named by when it ended: a run resumed in place that fails again deserves a new alert.
            wanted.append(Wanted(AlertKey.failed(run.id, run.timestamps.completed_at), run))
    if run.bucket == "succeeded":
        wanted.append(Wanted(AlertKey(AlertKind.SUCCEEDED, run.id), run))  # only for those who asked
    cost = run.billing.total_usd_micros if run.billing is not None else None
    if cost_over_usd is not None and cost is not None and cost > cost_over_usd * 1_000_000:
        wanted.append(Wanted(AlertKey(AlertKind.COST, run.id), run))  # once crossed, it stays crossed
    pr = run.pull_request
    if pr is not None and pr.number is not None:
        # One alert per pull request: linking another one later is news again.
        wanted.append(Wanted(AlertKey(AlertKind.PR, run.id, str(pr.number)), run))
    pending = questions if questions is not None else ([run.current_question] if run.current_question else [])
    for question in pending:
        wanted.append(Wanted(AlertKey(AlertKind.QUESTION, run.id, question.id), run, question))
    if run.awaits_approval:
        wanted.append(Wanted(AlertKey(AlertKind.APPROVAL, run.id), run))
    return wanted


def matches(sub: Subscription, run: Run, kind: AlertKind) -> bool:
    """Whether `sub` asked for alerts of `kind` about `run`."""
    if not any(KIND_OF_SUBSCRIPTION.get(k) == kind for k in sub.kinds):
        return False
    if not sub.narrow.accepts(run):
        return False
    return all(run.labels.get(k) == v for k, v in sub.labels.items())


def channels_for(subs: list[Subscription], run: Run, kind: AlertKind) -> list[str]:
    """Each channel once, however many of its subscriptions match, in subscription order."""
    return list(dict.fromkeys(s.channel for s in subs if matches(s, run, kind)))
