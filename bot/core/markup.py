"""Slack's message markup turned back into what the person typed, for the agent's eyes.  [pure]

Slack delivers a message's text escaped (`&amp; &lt; &gt;`) and with its links and mentions
rewritten (`<https://x|label>`, `<@U123>`, `<#C123|ops>`, `<!here>`). An agent given that text
reads noise; it is given the words as they appeared on the person's screen instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

__all__ = ["mentioned_users", "plain_text"]

_ANGLE = re.compile(r"<([^<>]*)>")
_USER = re.compile(r"^@([UW][A-Z0-9]+)(?:\|(.*))?$", re.DOTALL)
_CHANNEL = re.compile(r"^#([CGD][A-Z0-9]+)(?:\|(.*))?$", re.DOTALL)
_SPECIAL = re.compile(r"^!([a-z]+)(?:\^([^|]*))?(?:\|(.*))?$", re.DOTALL)
_MENTIONED = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^<>]*)?>")


def _unescape(text: str) -> str:
    # `&amp;` last: `&amp;lt;` is what a person typed as `&lt;`.
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def mentioned_users(markup: str) -> list[str]:
    """The user ids mentioned in `markup`, each once, in order (to look their names up)."""
    return list(dict.fromkeys(_MENTIONED.findall(markup)))


def plain_text(markup: str, names: Mapping[str, str] | None = None) -> str:
    """`markup` as the person saw it: entities unescaped, `<url|label>` → `label (url)`,
    `<@U…>` → `@display name` (from `names`, else the id), `<#C…|name>` → `#name`,
    `<!here>` → `@here`. Text outside the angle brackets is only unescaped."""
    names = names or {}

    def one(match: re.Match[str]) -> str:
        inner = match.group(1)
        if user := _USER.match(inner):
            label = names.get(user.group(1)) or _unescape(user.group(2) or "") or user.group(1)
            return "@" + label.lstrip("@")
        if channel := _CHANNEL.match(inner):
            return "#" + (_unescape(channel.group(2) or "") or channel.group(1)).lstrip("#")
        if special := _SPECIAL.match(inner):
            word, label = special.group(1), special.group(3)
            if label:  # <!subteam^S123|@team>, <!date^…|fallback>
                return _unescape(label)
            if word in ("here", "channel", "everyone"):
                return "@" + word
            return _unescape(inner)
        url, _, label = inner.partition("|")
        url, label = _unescape(url), _unescape(label)
        if not label or label == url or _without_scheme(url) == label:
            return label or _without_mailto(url)
        return f"{label} ({url})"

    return _unescape_between(markup, one)


def _unescape_between(markup: str, one: Callable[[re.Match[str]], str]) -> str:
    parts: list[str] = []
    at = 0
    for match in _ANGLE.finditer(markup):
        parts.append(_unescape(markup[at : match.start()]))
        parts.append(one(match))
        at = match.end()
    parts.append(_unescape(markup[at:]))
    return "".join(parts)


def _without_scheme(url: str) -> str:
    for scheme in ("mailto:", "https://", "http://", "tel:"):
        if url.startswith(scheme):
            return url[len(scheme) :]
    return url


def _without_mailto(url: str) -> str:
    return url[len("mailto:") :] if url.startswith("mailto:") else url
