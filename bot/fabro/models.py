"""Pydantic models of what Fabro sends: runs, list envelopes, questions, events, errors.

Fabro adds fields and status kinds between releases, so every model ignores unknown
keys, every field that can be null or omitted has a default, and enumerations that
grow (status kinds, reasons, question types) are plain strings: a value this code has
never seen must still render, never crash.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "ACTIVE_BUCKETS",
    "BUCKETS",
    "Approval",
    "AskFabro",
    "AutomationPreset",
    "Billing",
    "CreatedBy",
    "Diff",
    "ErrorEntry",
    "ErrorResponse",
    "Failure",
    "Lifecycle",
    "PullRequest",
    "PullRequestCreation",
    "PullRequestDetails",
    "PullRequestOpened",
    "PullRequestState",
    "Question",
    "QuestionOption",
    "Run",
    "RunEvent",
    "RunList",
    "RunStatus",
    "Stage",
    "Validation",
    "bucket_of",
]

# The `status=` values of GET /api/v1/runs, in Fabro's sort order.
BUCKETS: tuple[str, ...] = (
    "pending",
    "runnable",
    "initializing",
    "running",
    "blocked",
    "succeeded",
    "failed",
    "archived",
    "removing",
)
ACTIVE_BUCKETS: tuple[str, ...] = ("pending", "runnable", "initializing", "running", "blocked")
TERMINAL_KINDS = frozenset({"succeeded", "failed", "dead"})

_KIND_TO_BUCKET = {
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


log = logging.getLogger(__name__)


class _Model(BaseModel):
    """Reads what it can: a field Fabro sent as null or in a shape this code cannot read falls
    back to its default, with one WARNING naming the object and the field. Only a missing or
    unreadable required field (an id) makes the object unreadable."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @model_validator(mode="wrap")
    @classmethod
    def _salvage(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if v is not None or _nullable(cls, k)}
        try:
            return handler(data)
        except ValidationError as exc:
            if not isinstance(data, dict):
                raise
            bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            if any(cls.model_fields[name].is_required() for name in bad if name in cls.model_fields):
                raise
            what = f"{cls.__name__} {data.get('id')}" if isinstance(data.get("id"), str) else cls.__name__
            log.warning("%s from Fabro: ignored unreadable %s", what, ", ".join(sorted(bad)))
            return handler({k: v for k, v in data.items() if k not in bad})


def _nullable(model: type[BaseModel], name: str) -> bool:
    """Whether a null is a value of the field (its default is None), rather than a missing one."""
    field = model.model_fields.get(name)
    return field is None or (not field.is_required() and field.default is None)


class RunStatus(_Model):
    kind: str = "unknown"
    reason: str | None = None
    blocked_reason: str | None = None
    prior_block: str | None = None


class Approval(_Model):
    state: str | None = None
    requested_at: datetime | None = None
    decided_at: datetime | None = None
    denial_reason: str | None = None


class Lifecycle(_Model):
    status: RunStatus = Field(default_factory=RunStatus)
    approval: Approval | None = None
    pending_control: str | None = None
    archived: bool = False
    archived_at: datetime | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status_may_be_null(cls, value: Any) -> Any:
        return value if value is not None else {}


class Workflow(_Model):
    slug: str | None = None
    name: str | None = None
    graph_name: str | None = None
    node_count: int | None = None
    edge_count: int | None = None

    @property
    def display_name(self) -> str | None:
        """Fabro's own rule: `name`, else `graph_name`, else `slug`."""
        return self.name or self.graph_name or self.slug


class Repository(_Model):
    name: str | None = None
    origin_url: str | None = None
    provider: str | None = None


class CreatedBy(_Model):
    """Who started a run; tagged by `kind` (user, worker, webhook, slack, agent, system)."""

    kind: str = "unknown"
    login: str | None = None
    user_id: str | None = None
    user_name: str | None = None
    team_id: str | None = None
    run_id: str | None = None
    delivery_id: str | None = None
    system_kind: str | None = None
    session_id: str | None = None  # agent
    model: str | None = None  # agent


class Timestamps(_Model):
    created_at: datetime | None = None
    started_at: datetime | None = None
    last_event_at: datetime | None = None
    completed_at: datetime | None = None


class Timing(_Model):
    wall_time_ms: int | None = None
    active_time_ms: int | None = None
    inference_time_ms: int | None = None
    tool_time_ms: int | None = None


class Billing(_Model):
    total_usd_micros: int | None = None


class Diff(_Model):
    files_changed: int | None = None
    additions: int | None = None
    deletions: int | None = None


class PullRequest(_Model):
    owner: str | None = None
    repo: str | None = None
    number: int | None = None
    html_url: str | None = None


class PullRequestDetails(_Model):
    """Live GitHub fields of a run's pull request (when Fabro could read them)."""

    title: str = ""
    state: str = "unknown"  # GitHub's: open | closed
    merged: bool = False
    draft: bool = False
    mergeable: bool | None = None  # None while GitHub is still computing it
    additions: int | None = None
    deletions: int | None = None
    changed_files: int | None = None
    head_branch: str | None = None
    base_branch: str | None = None


class PullRequestOpened(_Model):
    """What a `pull_request.created` event says (flat fields), or a `pull_request.linked` one (a nested
    link); read from the events' payload models by `bot.fabro.events.pull_request_opened`."""

    number: int | None = None
    html_url: str | None = None
    owner: str | None = None
    repo: str | None = None
    title: str | None = None
    base_branch: str | None = None
    head_branch: str | None = None
    draft: bool | None = None
    linked: bool = False  # linked to an existing pull request rather than opened by the run


class PullRequestState(_Model):
    """`GET /runs/{id}/pull_request`: the stored link and, when GitHub answered, its live state
    (`details` is left out when GitHub could not be asked; `unavailable` then says why)."""

    link: PullRequest = Field(default_factory=PullRequest)
    details: PullRequestDetails | None = None
    unavailable: str | None = None  # integration_unavailable | not_found | fetch_failed

    @property
    def draft(self) -> bool:
        return self.details is not None and self.details.draft and not self.details.merged

    @property
    def finished(self) -> str | None:
        """`merged` or `closed` when the pull request can no longer be merged or closed."""
        if self.details is None:
            return None
        if self.details.merged:
            return "merged"
        return "closed" if self.details.state == "closed" else None


class PullRequestCreation(_Model):
    """The latest pull request creation of a run; poll it until it is no longer `pending`."""

    id: str
    status: str = "pending"  # pending | succeeded | failed
    pull_request: PullRequest | None = None
    error: str | None = None


class AutomationTarget(_Model):
    repository: str | None = None  # owner/repo
    ref: str | None = None
    workflow: str | None = None


class AutomationTrigger(_Model):
    id: str | None = None
    type: str = "unknown"  # api | schedule
    enabled: bool = False


class AutomationPreset(_Model):
    """A preset a run can be started from (`GET /api/v1/automations`)."""

    id: str
    revision: str | None = None  # a sha256, in hex
    name: str = ""
    description: str | None = None
    target: AutomationTarget = Field(default_factory=AutomationTarget)
    triggers: list[AutomationTrigger] = Field(default_factory=list)

    @property
    def startable(self) -> bool:
        """Whether `POST /automations/{id}/runs` can start it: it has an enabled `api` trigger."""
        return any(t.type == "api" and t.enabled for t in self.triggers)

    @property
    def where(self) -> str:
        """`owner/repo@ref`, as much of it as is known."""
        repo = self.target.repository or "?"
        return f"{repo}@{self.target.ref}" if self.target.ref else repo


class Stage(_Model):
    """One visit of one node of the workflow graph (`GET /runs/{id}/stages`)."""

    id: str  # node@visit
    name: str | None = None
    handler: str | None = None
    # pending | running | retrying | succeeded | partially_succeeded | failed | skipped | cancelled
    status: str = "pending"
    node_id: str | None = None
    visit: int | None = None
    wall_time_ms: int | None = None
    started_at: datetime | None = None


class Model(_Model):
    provider: str | None = None
    name: str | None = None


class Sandbox(_Model):
    kind: str | None = None  # planned | initializing | ready | failed
    failure: dict[str, Any] | None = None


class Automation(_Model):
    id: str | None = None
    name: str | None = None
    trigger_id: str | None = None


class Links(_Model):
    web: str | None = None


class AskFabro(_Model):
    """Whether a run can be asked about now (its sandbox exists and an LLM is configured)."""

    available: bool = False
    unavailable_reason: str | None = None  # no_sandbox | sandbox_not_ready | llm_unconfigured
    default_model: str | None = None


class QuestionOption(_Model):
    key: str
    label: str | None = None
    description: str | None = None
    preview: str | None = None


class ReviewTarget(_Model):
    label: str | None = None
    url: str | None = None
    kind: str | None = None


class Question(_Model):
    id: str
    text: str = ""
    stage: str | None = None
    question_type: str = "freeform"
    options: list[QuestionOption] = Field(default_factory=list)
    allow_freeform: bool = False
    timeout_seconds: float | None = None
    context_display: str | None = None
    review_target: ReviewTarget | None = None

    @field_validator("options", mode="before")
    @classmethod
    def _options_may_be_null(cls, value: Any) -> Any:
        return value if value is not None else []


class Run(_Model):
    id: str
    parent_id: str | None = None
    children_count: int = 0
    title: str | None = None
    goal: str | None = None
    workflow: Workflow = Field(default_factory=Workflow)
    automation: Automation | None = None
    repository: Repository = Field(default_factory=Repository)
    created_by: CreatedBy | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    sandbox: Sandbox | None = None
    models: list[Model] = Field(default_factory=list)
    timestamps: Timestamps = Field(default_factory=Timestamps)
    timing: Timing | None = None
    billing: Billing | None = None
    size: str | None = None
    diff: Diff | None = None
    pull_request: PullRequest | None = None
    current_question: Question | None = None
    superseded_by: str | None = None
    retried_from: str | None = None
    links: Links = Field(default_factory=Links)
    ask_fabro: AskFabro | None = None

    @field_validator("workflow", "repository", "lifecycle", "timestamps", "links", mode="before")
    @classmethod
    def _objects_may_be_null(cls, value: Any) -> Any:
        return value if value is not None else {}

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_as_text(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return {}
        return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}

    @field_validator("models", mode="before")
    @classmethod
    def _models_may_be_null(cls, value: Any) -> Any:
        return value if value is not None else []

    @property
    def status(self) -> RunStatus:
        return self.lifecycle.status

    @property
    def bucket(self) -> str:
        return bucket_of(self)

    @property
    def is_terminal(self) -> bool:
        return self.status.kind in TERMINAL_KINDS

    @property
    def updated_at(self) -> datetime | None:
        """What Fabro sorts `updated_at` by: the last event, else the creation time."""
        return self.timestamps.last_event_at or self.timestamps.created_at

    def web_url(self, web_base: str | None) -> str | None:
        """The run in Fabro's web UI: `links.web`, else built from `FABRO_WEB_URL` (the UI may be off)."""
        if self.links.web:
            return self.links.web
        return f"{web_base.rstrip('/')}/runs/{self.id}" if web_base else None

    @property
    def awaits_approval(self) -> bool:
        approval = self.lifecycle.approval
        return self.status.kind == "pending" and approval is not None and approval.state == "pending"


def bucket_of(run: Run) -> str:
    """The list bucket Fabro files this run under; an unknown kind is its own bucket."""
    kind = run.status.kind
    if run.lifecycle.archived and kind in TERMINAL_KINDS:
        return "archived"
    return _KIND_TO_BUCKET.get(kind, kind)


class ListMeta(_Model):
    has_more: bool = False
    total: int | None = None

    @field_validator("total", mode="before")
    @classmethod
    def _total_is_a_count(cls, value: Any) -> Any:
        # The published reference once rendered `total` as a boolean; only counts count.
        return value if isinstance(value, int) and not isinstance(value, bool) else None


class RunList(_Model):
    """One page of runs. `unreadable` counts list items that were not runs at all."""

    data: list[Run] = Field(default_factory=list)
    meta: ListMeta = Field(default_factory=ListMeta)
    unreadable: int = 0


class RunEvent(_Model):
    seq: int | None = None
    id: str | None = None
    ts: datetime | None = None
    run_id: str | None = None
    node_id: str | None = None  # stage events name their stage in the envelope
    node_label: str | None = None
    stage_id: str | None = None
    event: str = ""
    actor: dict[str, Any] | None = None
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("properties", mode="before")
    @classmethod
    def _properties_may_be_null(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else {}

    @field_validator("actor", mode="before")
    @classmethod
    def _actor_is_an_object(cls, value: Any) -> Any:
        if value is None or isinstance(value, dict):
            return value
        return {"name": str(value)}


class ErrorEntry(_Model):
    status: str | None = None
    title: str | None = None
    detail: str | None = None
    code: str | None = None
    request_id: str | None = None


class ErrorResponse(_Model):
    errors: list[ErrorEntry] = Field(default_factory=list)
    request_id: str | None = None


class Failure(_Model):
    """Why a run failed, from the `failure` of its latest `run.failed` event."""

    reason: str | None = None
    message: str | None = None
    category: str | None = None
    causes: list[str] = Field(default_factory=list)

    @classmethod
    def from_event(cls, event: RunEvent) -> Failure:
        failure = event.properties.get("failure")
        failure = failure if isinstance(failure, dict) else {}
        detail = failure.get("detail")
        detail = detail if isinstance(detail, dict) else {"message": detail} if detail else {}
        causes = detail.get("causes")
        return cls(
            reason=_text_or_none(failure.get("reason")),
            message=_text_or_none(detail.get("message")),
            category=_text_or_none(detail.get("category")),
            causes=[str(c) for c in causes] if isinstance(causes, list) else [],
        )


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


class Diagnostic(_Model):
    """One finding of Fabro's workflow validator."""

    rule: str = ""
    severity: str = "error"
    message: str = ""
    node_id: str | None = None


class ValidatedWorkflow(_Model):
    name: str = ""
    diagnostics: list[Diagnostic] = Field(default_factory=list)


class Validation(_Model):
    """`POST /validate`: whether the workflow would compile, and why not.

    Fabro's create promotes `template_undefined_variable` to an error where validate only warns,
    so it counts as an error here too, as Fabro's CLI does."""

    ok: bool = False
    workflow: ValidatedWorkflow = Field(default_factory=ValidatedWorkflow)

    @property
    def errors(self) -> list[Diagnostic]:
        return [
            d for d in self.workflow.diagnostics if d.severity == "error" or d.rule == "template_undefined_variable"
        ]

    @property
    def passed(self) -> bool:
        return self.ok and not self.errors
