"""What deserves an alert, which subscriptions want it, and when it is over.  [pure]"""

from __future__ import annotations

from dataclasses import dataclass

from bot.fabro.models import Question, Run
from bot.store.base import Subscription

__all__ = [
    "KIND_OF_SUBSCRIPTION",
    "SUBSCRIPTION_KINDS",
    "Wanted",
    "channels_for",
    "matches",
    "wanted_alerts",
]

# Subscription words (what people type) and the alert kind each one asks for.
KIND_OF_SUBSCRIPTION = {"failed": "failed", "questions": "question", "approvals": "approval"}
SUBSCRIPTION_KINDS = frozenset(KIND_OF_SUBSCRIPTION)


@dataclass(frozen=True)
class Wanted:
    """One alert a run deserves right now, keyed so it is posted once per channel."""

    key: str
    kind: str
    run: Run
    question: Question | None = None


def wanted_alerts(run: Run, questions: list[Question] | None = None) -> list[Wanted]:
    """The alerts `run` deserves in its current state.

    `questions` are the run's pending questions when they were fetched; otherwise the
    run's own `current_question` (the earliest pending one) stands for them.
    """
    wanted: list[Wanted] = []
    if run.bucket == "failed":
        wanted.append(Wanted(f"failed:{run.id}", "failed", run))
    pending = questions if questions is not None else ([run.current_question] if run.current_question else [])
    for question in pending:
        wanted.append(Wanted(f"question:{run.id}:{question.id}", "question", run, question))
    if run.awaits_approval:
        wanted.append(Wanted(f"approval:{run.id}", "approval", run))
    return wanted


def matches(sub: Subscription, run: Run, kind: str) -> bool:
    """Whether `sub` asked for alerts of `kind` about `run`."""
    if not any(KIND_OF_SUBSCRIPTION.get(k) == kind for k in sub.kinds):
        return False
    if sub.repo and (run.repository.name or "").lower() != sub.repo.lower():
        return False
    if sub.workflow:
        names = {n.lower() for n in (run.workflow.name, run.workflow.graph_name, run.workflow.slug) if n}
        if sub.workflow.lower() not in names:
            return False
    return all(run.labels.get(k) == v for k, v in sub.labels.items())


def channels_for(subs: list[Subscription], run: Run, kind: str) -> list[str]:
    """Each channel once, however many of its subscriptions match, in subscription order."""
    return list(dict.fromkeys(s.channel for s in subs if matches(s, run, kind)))
