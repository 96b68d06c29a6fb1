"""Keeping secrets out of everything a person or a log can read.  [pure]

The bot's own secrets are replaced wherever they appear; so are credentials by their
shape (a bearer token, a Slack or Fabro token, a URL's `user:password@`), because an
error page that echoes a request, or a proxy's, can carry someone else's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = ["REDACTED", "public_url", "redact", "single_line"]

REDACTED = "[redacted]"
_SHAPES = re.compile(
    r"(?i)(?<=bearer )[^\s\"'<>]+"  # an Authorization header echoed back
    r"|\bfabro_[a-z]+_[0-9a-z]{8,}"  # Fabro tokens
    r"|\bxox[abposr]-[0-9A-Za-z-]{6,}"  # Slack tokens
    r"|\bxapp-[0-9A-Za-z-]{6,}"
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"  # a URL's user:password
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if len(secret) >= 6:
            text = text.replace(secret, REDACTED)
    return _SHAPES.sub(REDACTED, text)


def public_url(url: str) -> str:
    """A URL as it may be shown: its password left out (the user name stays, it says which account)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return redact(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{port}" if port else host
    netloc = f"{parts.username}@{netloc}" if parts.username else netloc
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def single_line(text: str, limit: int = 500) -> str:
    """A value from outside, fit for one log line: control characters shown escaped, length bounded."""
    escaped = text.encode("unicode_escape", errors="backslashreplace").decode("ascii", errors="replace")
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"
