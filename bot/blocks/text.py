"""Safe text for Slack: escaping, clipping, links, and human numbers and times.  [pure]"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit

__all__ = ["BOT_MENTION", "ago", "clip", "dollars", "duration", "escape", "link", "safe_url", "slack_date"]

# How people mention the bot: its user's display name in manifest.yml (a test keeps them equal).
BOT_MENTION = "@fabro-runs"


def escape(text: object) -> str:
    """Neutralise Slack's three control characters so text renders literally.

    `<!channel>`, `<@U123>` and `<https://evil|x>` all become inert: nobody is notified
    and nothing becomes a link. `&` goes first so the other two are not double-escaped.
    """
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int, *, marker: str = "…") -> str:
    """At most `limit` characters, marking the cut; never ends inside an `&…;` escape."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - len(marker))]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + marker


def safe_url(url: str | None) -> str | None:
    """An http(s) URL fit to sit inside `<url|label>` or a button, else None."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    safe = quote(url, safe="/:?#[]@!$&'()*+,;=%~-._")
    return safe if len(safe) <= 3000 else None


def link(url: str | None, label: str) -> str:
    """A mrkdwn link with an escaped label, or just the escaped label when the URL is unsafe."""
    target = safe_url(url)
    shown = escape(label)
    return f"<{target}|{shown}>" if target else shown


def duration(delta: timedelta | float | None) -> str | None:
    """'7m', '2h 5m', '3d 4h' — the two largest units, enough to compare runs at a glance."""
    if delta is None:
        return None
    seconds = int(delta.total_seconds() if isinstance(delta, timedelta) else delta)
    if seconds < 0:
        return None
    if seconds < 60:
        return f"{seconds}s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def ago(when: datetime | None, now: datetime) -> str | None:
    if when is None:
        return None
    delta = now - when
    if delta.total_seconds() < 60:
        return "just now"
    return f"{duration(delta)} ago"


def dollars(micros: int | None) -> str | None:
    if micros is None:
        return None
    amount = micros / 1_000_000
    if 0 < amount < 0.01:
        return "under $0.01"
    return f"${amount:,.2f}"


def slack_date(when: datetime) -> str:
    """A date Slack shows in each reader's own time zone, with a UTC fallback."""
    epoch = int(when.timestamp())
    fallback = when.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{fallback}>"
