"""Pydantic models of what a run produced and used: changed files, commits, billing, Ask Fabro
sessions and their events, preview links.

As in `bot.fabro.models`, unknown keys are ignored, everything that may be null or omitted has
a default, and growing enumerations (change kinds, failure codes) are plain strings.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import Field, ValidationError, field_validator

from bot.fabro.models import _Model

log = logging.getLogger(__name__)

__all__ = [
    "BilledTokens",
    "BillingByModel",
    "BillingStage",
    "ChangedFile",
    "Commit",
    "FilesMeta",
    "RunBilling",
    "RunCommits",
    "RunFiles",
    "Session",
    "SessionDetail",
    "SessionMessage",
    "TurnEvent",
]


def _readable(model: type[_Model], value: Any) -> list[Any]:
    """The items of a list that can be read: one Fabro sent in a shape not understood costs itself only."""
    kept = []
    for item in value if isinstance(value, list) else []:
        try:
            kept.append(model.model_validate(item))
        except ValidationError:
            log.warning("skipped one %s Fabro sent that cannot be read", model.__name__)
    return kept


class DiffSide(_Model):
    name: str | None = None
    contents: str | None = None


class ChangedFile(_Model):
    """One file of `GET /runs/{id}/files`: a before/after pair, its unified patch when Fabro has one."""

    old_file: DiffSide = Field(default_factory=DiffSide)
    new_file: DiffSide = Field(default_factory=DiffSide)
    change_kind: str | None = None  # added | modified | deleted | renamed | symlink | submodule
    truncated: bool = False
    truncation_reason: str | None = None  # file_too_large | budget_exhausted
    binary: bool = False
    sensitive: bool = False
    unified_patch: str | None = None

    @property
    def path(self) -> str:
        return self.new_file.name or self.old_file.name or "(unnamed)"

    @property
    def counts(self) -> tuple[int, int]:
        """Lines added and removed, counted from the patch (Fabro sends no per-file numbers)."""
        patch = self.unified_patch
        if patch is None and self.old_file.contents is not None and self.new_file.contents is not None:
            return _count_contents(self.old_file.contents, self.new_file.contents, self.change_kind)
        added = removed = 0
        for line in (patch or "").splitlines():
            if line.startswith("+") and not line.startswith("+++"):
                added += 1
            elif line.startswith("-") and not line.startswith("---"):
                removed += 1
        return added, removed


def _count_contents(old: str, new: str, kind: str | None) -> tuple[int, int]:
    """Whole-file counts for an added or deleted file whose patch Fabro left out; 0/0 otherwise."""
    if kind == "added":
        return len(new.splitlines()), 0
    if kind == "deleted":
        return 0, len(old.splitlines())
    return 0, 0


class DiffStats(_Model):
    additions: int = 0
    deletions: int = 0


class FilesMeta(_Model):
    source: str | None = None  # sandbox | final_patch
    scope: str | None = None
    stats: DiffStats = Field(default_factory=DiffStats)
    truncated: bool = False
    total_changed: int | None = None
    files_omitted_by_budget: int | None = None
    to_sha: str | None = None
    degraded: bool = False
    degraded_reason: str | None = None


class RunFiles(_Model):
    data: list[ChangedFile] = Field(default_factory=list)
    meta: FilesMeta = Field(default_factory=FilesMeta)
    unreadable: int = 0


class CommitPerson(_Model):
    name: str | None = None
    email: str | None = None
    date: datetime | None = None


class Commit(_Model):
    sha: str
    short_sha: str | None = None
    subject: str = ""
    author: CommitPerson = Field(default_factory=CommitPerson)


class CommitsMeta(_Model):
    base_sha: str | None = None
    head_sha: str | None = None
    truncated: bool = False


class RunCommits(_Model):
    data: list[Commit] = Field(default_factory=list)
    meta: CommitsMeta = Field(default_factory=CommitsMeta)


class BilledTokens(_Model):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    total_usd_micros: int | None = None


class StageRef(_Model):
    id: str | None = None
    name: str | None = None


class ModelRef(_Model):
    provider: str | None = None
    model_id: str | None = None

    @property
    def label(self) -> str:
        return self.model_id or self.provider or "unknown model"


class StageTiming(_Model):
    wall_time_ms: int | None = None


class BillingStage(_Model):
    stage: StageRef = Field(default_factory=StageRef)
    model: ModelRef | None = None
    billing: BilledTokens = Field(default_factory=BilledTokens)
    timing: StageTiming = Field(default_factory=StageTiming)
    state: str | None = None

    @property
    def name(self) -> str:
        return self.stage.name or self.stage.id or "(unnamed stage)"


class BillingByModel(_Model):
    model: ModelRef = Field(default_factory=ModelRef)
    stages: int = 0
    billing: BilledTokens = Field(default_factory=BilledTokens)


class RunBilling(_Model):
    """`GET /runs/{id}/billing`: one row per node (all its visits summed), totals, and per model."""

    stages: list[BillingStage] = Field(default_factory=list)
    totals: BilledTokens = Field(default_factory=BilledTokens)
    by_model: list[BillingByModel] = Field(default_factory=list)

    @field_validator("stages", mode="before")
    @classmethod
    def _readable_stages(cls, value: Any) -> Any:
        return _readable(BillingStage, value)

    @field_validator("by_model", mode="before")
    @classmethod
    def _readable_models(cls, value: Any) -> Any:
        return _readable(BillingByModel, value)


class Session(_Model):
    id: str
    run_id: str | None = None
    status: str | None = None  # idle | running | failed
    model: str | None = None
    active_turn: dict[str, Any] | None = None  # the turn being answered, if any


class SessionMessage(_Model):
    kind: str = "unknown"  # user | assistant | tool_results | system | steering
    content: str | None = None


class SessionDetail(Session):
    """`GET /sessions/{sid}`: the session and its transcript."""

    messages: list[SessionMessage] = Field(default_factory=list)

    @field_validator("messages", mode="before")
    @classmethod
    def _readable_messages(cls, value: Any) -> Any:
        return _readable(SessionMessage, value)

    def answer_to(self, question: str) -> str | None:
        """The assistant's last words after the last time `question` was asked, if it answered."""
        asked = [i for i, m in enumerate(self.messages) if m.kind == "user" and m.content == question]
        if not asked:
            return None
        said = [m.content for m in self.messages[asked[-1] + 1 :] if m.kind == "assistant" and m.content]
        return said[-1] if said else None


class TurnEvent(_Model):
    """One frame of a turn's stream: `event` is the name, `properties` what it carries."""

    seq: int | None = None
    event: str = ""
    session_id: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("properties", mode="before")
    @classmethod
    def _properties_are_an_object(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else {}
