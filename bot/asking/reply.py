"""What a `/runs` command answers: the message, who sees it, and how it counts in /metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Reply"]


@dataclass(frozen=True)
class Reply:
    message: dict[str, Any]
    public: bool = False  # posted for the whole channel (a change to where alerts go), not only the caller
    status: str = "ok"  # for /metrics: ok, help, usage_error, fabro_error, not_allowed, error…
