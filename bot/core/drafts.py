"""Work asked for in a conversation: the draft a person confirms, and the goal built from it.  [pure]

A draft is everything the confirmation shows and Start sends: the goal (the person's words, with
the thread's earlier messages as context), a title, and where the work happens (repository,
branch, workflow). It travels in the confirmation's buttons and in the action record, so a
restart can finish what a click began.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from bot.fabro.manifest import MAX_TITLE, as_written, clean_title

__all__ = ["MAX_CONTEXT", "MAX_GOAL", "Draft", "Said", "compose_goal", "first_line"]

MAX_GOAL = 3000  # characters of the request itself (Slack's window input takes no more)
MAX_CONTEXT = 6000  # characters of earlier messages kept as context, the newest first


@dataclass(frozen=True)
class Said:
    """One earlier message of the thread, already in plain text: who said it and what."""

    name: str
    text: str


@dataclass(frozen=True)
class Draft:
    request: str  # what the person asked, plain text
    title: str
    repository: str
    branch: str | None
    workflow: str
    channel: str
    thread_ts: str | None  # the thread it was asked in (the mention itself when at the top level)
    context: tuple[Said, ...] = ()

    def __post_init__(self) -> None:
        # No branch is the default branch, and no thread is the top level: one spelling for each.
        for name in ("branch", "thread_ts"):
            if not getattr(self, name):
                object.__setattr__(self, name, None)

    @property
    def goal(self) -> str:
        return compose_goal(self.request, self.context)

    def labels(self, user_id: str, intent: str) -> dict[str, str]:
        labels = {"source": "slack", "slack_user": user_id, "slack_channel": self.channel}
        if self.thread_ts:
            labels["slack_thread"] = self.thread_ts
        return labels | {"slack_intent": intent}

    def dump(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def load(cls, text: str | None) -> Draft | None:
        """A draft from its JSON, or None for anything that is not one (stale or forged)."""
        try:
            data: Any = json.loads(text or "")
            said = tuple(Said(str(s["name"]), str(s["text"])) for s in data.get("context") or [])
            branch, thread = data.get("branch"), data.get("thread_ts")
            return cls(
                request=str(data["request"]),
                title=str(data["title"]),
                repository=str(data["repository"]),
                branch=str(branch) if branch else None,
                workflow=str(data["workflow"]),
                channel=str(data["channel"]),
                thread_ts=str(thread) if thread else None,
                context=said,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def edited(self, *, request: str, title: str, branch: str | None, workflow: str) -> Draft:
        return replace(
            self,
            request=request.strip()[:MAX_GOAL],
            title=clean_title(title or first_line(request)),
            branch=branch or None,
            workflow=workflow,
        )


def first_line(text: str) -> str:
    """A title from the request: its first line, cut to what Fabro takes."""
    line = next((ln for ln in as_written(text).splitlines() if ln.strip()), "")
    return clean_title(line[: MAX_TITLE * 2])


def compose_goal(request: str, context: tuple[Said, ...]) -> str:
    """The request, then the thread's earlier messages (as many of the newest as fit in MAX_CONTEXT)."""
    goal = request.strip()
    kept: list[str] = []
    room = MAX_CONTEXT
    for said in reversed(context):
        line = f"- {said.name}: {' '.join(said.text.split())}"
        if len(line) > room:
            break
        kept.insert(0, line)
        room -= len(line) + 1
    if not kept:
        return goal
    dropped = len(context) - len(kept)
    head = "Earlier in the Slack thread" + (f" ({dropped} older messages left out)" if dropped else "") + ":"
    return goal + "\n\n" + head + "\n" + "\n".join(kept)
