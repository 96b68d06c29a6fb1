"""Keeping secrets out of everything a person or a log can read.  [pure]

The bot's own secrets are replaced wherever they appear; so are credentials by their
shape (a bearer token, a Slack or Fabro token, a URL's `user:password@`), because an
error page that echoes a request, or a proxy's, can carry someone else's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

__all__ = ["REDACTED", "public_url", "redact", "single_line", "url_passwords"]

REDACTED = "[redacted]"
_SHAPES = re.compile(
    r"(?i)(?<=bearer )[^\s\"'<>]+"  # an Authorization header echoed back
    r"|\bfabro_[a-z]+_[0-9a-z]{8,}"  # Fabro tokens
    r"|\bxox[abposr]-[0-9A-Za-z-]{6,}"  # Slack tokens
    r"|\bxapp-[0-9A-Za-z-]{6,}"
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"  # a URL's user:password
    r"|(?<=[?&;]password=)[^&\s#]+"  # a connection string's ?password=…
    r"|(?<=[?&;]sslpassword=)[^&\s#]+"
)

# Query parameters that carry a password in a database URL (libpq's names; any case).
_PASSWORD_PARAMS = frozenset({"password", "sslpassword"})


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if len(secret) >= 6:
            text = text.replace(secret, REDACTED)
    return _SHAPES.sub(REDACTED, text)


def public_url(url: str) -> str:
    """A URL as it may be shown: every password left out, in the user part or in the query
    (`?password=`, `sslpassword=`); the user name stays, it says which account."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return redact(url)
    netloc = parts.netloc
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if parts.password is None and not any(name.lower() in _PASSWORD_PARAMS for name, _ in pairs):
        return redact(url)  # nothing to take out (and rebuilding would change sqlite:/// URLs)
    if parts.password is not None:
        host = parts.hostname or ""
        netloc = f"{host}:{port}" if port else host
        netloc = f"{parts.username}@{netloc}" if parts.username else netloc
    query = parts.query
    if any(name.lower() in _PASSWORD_PARAMS for name, _ in pairs):
        query = urlencode([(n, v) for n, v in pairs if n.lower() not in _PASSWORD_PARAMS])
    return redact(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def url_passwords(url: str) -> list[str]:
    """Every password a URL carries (user part and query), decoded, so logs can be scrubbed of them."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = [unquote(parts.password)] if parts.password else []
    found += [v for n, v in parse_qsl(parts.query, keep_blank_values=True) if n.lower() in _PASSWORD_PARAMS and v]
    return found


def single_line(text: str, limit: int = 500) -> str:
    """A value from outside, fit for one log line: control characters shown escaped, length bounded."""
    escaped = text.encode("unicode_escape", errors="backslashreplace").decode("ascii", errors="replace")
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"
