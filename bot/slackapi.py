"""Reading Slack Web API failures, whatever shape their answer has.  [pure]"""

from __future__ import annotations

from slack_sdk.errors import SlackApiError

__all__ = ["retry_after", "slack_error"]


def slack_error(exc: SlackApiError) -> str:
    """Slack's error code (`not_in_channel`…), or `http_<status>` when the answer was not Slack's JSON
    (an HTML page from a proxy, a 405): an ordinary failure, counted and retried like any other."""
    data = getattr(exc.response, "data", None)
    if isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"]:
        return str(data["error"])
    return f"http_{getattr(exc.response, 'status_code', 'unknown')}"


def retry_after(exc: SlackApiError, default: int = 30) -> int:
    """Seconds Slack asked to wait before trying again (at least one)."""
    headers = getattr(exc.response, "headers", None) or {}
    value = str(headers.get("Retry-After") or headers.get("retry-after") or "")
    return max(1, int(value)) if value.isascii() and value.isdigit() and len(value) < 6 else default
