"""The `properties` of the run events the bot reads, typed as Fabro 0.333 sends them.

Event payloads are not in Fabro's OpenAPI spec; these models mirror the server's event types as
shared/fabro/API.md lists them (`types/run_event/`). The bot reads events through `payload_of`,
and the test fake builds its events through the same models, so both speak one shape.

Reading is forgiving, as everywhere else: unknown keys are ignored, and a payload that cannot be
read costs that one event (`payload_of` answers None, with a WARNING), never the stream.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.fabro.models import PullRequest, PullRequestOpened, QuestionOption, ReviewTarget, RunEvent

__all__ = [
    "NOTICE_LEVELS",
    "PAYLOADS",
    "EventPayload",
    "ExecOutputTail",
    "FailureDetail",
    "InterviewCompleted",
    "InterviewInterrupted",
    "InterviewStarted",
    "InterviewTimeout",
    "PullRequestCreated",
    "PullRequestCreationRequested",
    "PullRequestFailed",
    "PullRequestLinked",
    "RunBlocked",
    "RunCompleted",
    "RunControlRequested",
    "RunDenied",
    "RunFailed",
    "RunFailure",
    "RunNotice",
    "RunPending",
    "RunStartRequested",
    "RunSteer",
    "RunSupersededBy",
    "RunTitleUpdated",
    "StageCompleted",
    "StageFailed",
    "StageFailure",
    "StageRetrying",
    "StageStarted",
    "payload_of",
    "pull_request_opened",
]

log = logging.getLogger(__name__)

NOTICE_LEVELS = ("info", "warn", "error")  # `warn`, not `warning`


class EventPayload(BaseModel):
    """The properties of one kind of event; keys this code does not know are ignored."""

    model_config = ConfigDict(extra="ignore")


class _Empty(EventPayload):
    """An event that carries no properties (`{}`)."""


class ExecOutputTail(EventPayload):
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False


class FailureDetail(EventPayload):
    message: str
    category: str
    causes: list[str] = Field(default_factory=list)
    exec_output_tail: ExecOutputTail | None = None


class RunFailure(EventPayload):
    reason: str  # workflow_error, cancelled, approval_denied, … (grows between releases)
    detail: FailureDetail


class RunFailed(EventPayload):
    failure: RunFailure
    final_git_commit_sha: str | None = None


class RunCompleted(EventPayload):
    reason: str | None = None  # completed | partial_success
    final_git_commit_sha: str | None = None


class RunNotice(EventPayload):
    level: str  # info | warn | error
    code: str  # git_push_failed, pull_request_failed, sandbox_preserved, …
    message: str
    exec_output_tail: ExecOutputTail | None = None


class RunDenied(EventPayload):
    reason: str | None = None


class RunPending(EventPayload):
    reason: str  # approval_required


class RunBlocked(EventPayload):
    blocked_reason: str  # human_input_required


class RunStartRequested(EventPayload):
    resume: bool


class RunTitleUpdated(EventPayload):
    title: str


class RunSteer(EventPayload):
    text: str


class RunControlRequested(EventPayload):
    action: str  # cancel | pause | unpause


class RunSupersededBy(EventPayload):
    new_run_id: str
    target_checkpoint_ordinal: int
    target_node_id: str
    target_visit: int


class InterviewStarted(EventPayload):
    """A question was asked; its properties mirror the question."""

    question_id: str = ""
    question: str
    stage: str = ""
    question_type: str
    options: list[QuestionOption] = Field(default_factory=list)
    allow_freeform: bool = False
    timeout_seconds: float | None = None
    context_display: str | None = None
    review_target: ReviewTarget | None = None


class InterviewCompleted(EventPayload):
    question_id: str = ""
    question: str
    answer: str  # a display string: option labels joined with ", ", yes/no, or the text
    duration_ms: int


class InterviewTimeout(EventPayload):
    question_id: str = ""
    question: str
    stage: str = ""
    duration_ms: int


class InterviewInterrupted(InterviewTimeout):
    reason: str


class PullRequestCreationRequested(EventPayload):
    creation_id: str
    model: str
    force: bool


class PullRequestCreated(EventPayload):
    """Flat, with no nested `pull_request`. `draft` is always true for a PR created through the API."""

    pr_url: str
    pr_number: int
    owner: str
    repo: str
    base_branch: str
    head_branch: str
    head_sha: str | None = None
    title: str
    draft: bool


class PullRequestFailed(EventPayload):
    creation_id: str | None = None  # absent when a workflow's publish stage failed
    error: str


class PullRequestLinked(EventPayload):
    pull_request: PullRequest


class StageFailure(EventPayload):
    message: str
    category: str | None = None
    causes: list[str] = Field(default_factory=list)


class StageStarted(EventPayload):
    index: int
    handler_type: str | None = None
    attempt: int
    max_attempts: int


class StageCompleted(EventPayload):
    index: int
    timing: dict[str, Any] | None = None
    status: str  # succeeded | partially_succeeded | failed | skipped
    attempt: int
    max_attempts: int
    failure: StageFailure | None = None
    billing: dict[str, Any] | None = None


class StageFailed(EventPayload):
    index: int
    failure: StageFailure | None = None
    will_retry: bool
    timing: dict[str, Any] | None = None


class StageRetrying(EventPayload):
    index: int
    attempt: int
    max_attempts: int
    delay_ms: int


PAYLOADS: dict[str, type[EventPayload]] = {
    "run.failed": RunFailed,
    "run.completed": RunCompleted,
    "run.notice": RunNotice,
    "run.pending": RunPending,
    "run.approved": _Empty,
    "run.denied": RunDenied,
    "run.blocked": RunBlocked,
    "run.unblocked": _Empty,
    "run.start_requested": RunStartRequested,
    "run.title.updated": RunTitleUpdated,
    "run.steer": RunSteer,
    "run.interrupt": _Empty,
    "run.cancel.requested": RunControlRequested,
    "run.pause.requested": RunControlRequested,
    "run.unpause.requested": RunControlRequested,
    "run.paused": _Empty,
    "run.unpaused": _Empty,
    "run.archived": _Empty,
    "run.superseded_by": RunSupersededBy,
    "interview.started": InterviewStarted,
    "interview.completed": InterviewCompleted,
    "interview.timeout": InterviewTimeout,
    "interview.interrupted": InterviewInterrupted,
    "pull_request.creation_requested": PullRequestCreationRequested,
    "pull_request.created": PullRequestCreated,
    "pull_request.failed": PullRequestFailed,
    "pull_request.linked": PullRequestLinked,
    "pull_request.unlinked": PullRequestLinked,
    "stage.started": StageStarted,
    "stage.completed": StageCompleted,
    "stage.failed": StageFailed,
    "stage.retrying": StageRetrying,
}


def payload_of(event: RunEvent) -> EventPayload | None:
    """The event's properties, typed; None for an event the bot does not read or cannot read."""
    model = PAYLOADS.get(event.event)
    if model is None:
        return None
    try:
        return model.model_validate(event.properties)
    except ValidationError as exc:
        fields = ", ".join(sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})) or "?"
        log.warning("%s event %s of run %s: unreadable %s", event.event, event.seq, event.run_id, fields)
        return None


def pull_request_opened(event: RunEvent) -> PullRequestOpened | None:
    """The pull request a `pull_request.created` (flat) or `pull_request.linked` (nested) event names;
    None for other events, or one that cannot be read."""
    payload = payload_of(event)
    if isinstance(payload, PullRequestCreated):
        return PullRequestOpened(
            number=payload.pr_number,
            html_url=payload.pr_url,
            owner=payload.owner,
            repo=payload.repo,
            title=payload.title,
            base_branch=payload.base_branch,
            head_branch=payload.head_branch,
            draft=payload.draft,
        )
    if isinstance(payload, PullRequestLinked):
        return PullRequestOpened.model_validate({**payload.pull_request.model_dump(), "linked": True})
    return None
