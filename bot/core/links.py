"""Which links in a message are runs in Fabro's web UI, by host and path.  [pure]"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

__all__ = ["MAX_UNFURLS", "hosts_of", "runs_linked"]

MAX_UNFURLS = 5  # per message
_RUN_PATH = re.compile(r"/runs/([0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26})(?:[/?#]|$)")


def hosts_of(*urls: str | None) -> frozenset[str]:
    """The hosts (with port, lowercased) of the given base URLs."""
    return frozenset(urlsplit(u).netloc.lower() for u in urls if u and urlsplit(u).netloc)


def runs_linked(links: Iterable[Any], hosts: frozenset[str]) -> list[tuple[str, str]]:
    """(url exactly as Slack sent it, run id) for each link to a run on one of `hosts`, at most five,
    each url once. Anything else (another host, another page, a malformed entry) is left alone."""
    found: list[tuple[str, str]] = []
    for link in links:
        url = link.get("url") if isinstance(link, dict) else None
        if not isinstance(url, str) or len(url) > 3000 or any(u == url for u, _ in found):
            continue
        try:
            parts = urlsplit(url)
        except ValueError:
            continue
        match = _RUN_PATH.search(parts.path + ("?" if parts.query else ""))
        if parts.scheme in ("http", "https") and parts.netloc.lower() in hosts and match:
            found.append((url, match.group(1).upper()))
        if len(found) == MAX_UNFURLS:
            break
    return found
