"""Tiny Block Kit constructors that clip to Slack's limits as they build.  [pure]

Text passed here must already be safe mrkdwn (escaped where it came from Fabro);
plain_text arguments are shown literally by Slack and need no escaping.
"""

from __future__ import annotations

from typing import Any

from bot.blocks.limits import BUTTON_TEXT, FIELD_TEXT, HEADER_TEXT, MAX_FIELDS, SECTION_TEXT, TOTAL_BLOCK_TEXT
from bot.blocks.text import clip, safe_url

__all__ = ["actions", "button", "context", "divider", "header", "mrkdwn", "plain", "section", "within_budget"]

Block = dict[str, Any]


def mrkdwn(text: str, limit: int = SECTION_TEXT) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text, limit) or " "}


def plain(text: str, limit: int = SECTION_TEXT) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit) or " ", "emoji": True}


def section(
    text: str | None = None,
    *,
    fields: list[str] | None = None,
    block_id: str | None = None,
    accessory: Block | None = None,
) -> Block:
    block: Block = {"type": "section"}
    if text is not None:
        block["text"] = mrkdwn(text)
    if fields:
        block["fields"] = [mrkdwn(f, FIELD_TEXT) for f in fields[:MAX_FIELDS]]
    if block_id:
        block["block_id"] = block_id[:255]
    if accessory:
        block["accessory"] = accessory
    return block


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, HEADER_TEXT)}


def context(*texts: str, block_id: str | None = None) -> Block:
    block: Block = {"type": "context", "elements": [mrkdwn(t) for t in texts[:10] if t]}
    if block_id:
        block["block_id"] = block_id[:255]
    return block


def divider() -> Block:
    return {"type": "divider"}


def button(
    text: str,
    action_id: str,
    *,
    url: str | None = None,
    value: str | None = None,
    style: str | None = None,
) -> Block | None:
    """A button; a link button whose URL is not a safe http(s) URL is left out (None)."""
    element: Block = {"type": "button", "text": plain(text, BUTTON_TEXT), "action_id": action_id}
    if url is not None:
        target = safe_url(url)
        if target is None:
            return None
        element["url"] = target
    if value is not None:
        element["value"] = value[:2000]
    if style:
        element["style"] = style
    return element


def actions(*elements: Block | None, block_id: str | None = None) -> Block | None:
    present = [e for e in elements if e]
    if not present:
        return None
    block: Block = {"type": "actions", "elements": present[:25]}
    if block_id:
        block["block_id"] = block_id[:255]
    return block


def within_budget(blocks: list[Block], budget: int = TOTAL_BLOCK_TEXT - 500) -> list[Block]:
    """Shorten the longest section texts until all the blocks' text fits one message's budget.

    Each field is already within its own limit; this keeps their sum under what Slack takes
    for a whole message, cutting the longest text first (a goal, a failure), never a line of ids.
    """
    sections = [b["text"] for b in blocks if b.get("type") == "section" and isinstance(b.get("text"), dict)]
    excess = _text_size(blocks) - budget
    while excess > 0 and sections:
        longest = max(sections, key=lambda t: len(t["text"]))
        if len(longest["text"]) <= 200:
            break
        keep = max(200, len(longest["text"]) - excess)
        shortened = clip(longest["text"], keep)
        excess -= len(longest["text"]) - len(shortened)
        longest["text"] = shortened
    return blocks


def _text_size(blocks: list[Block]) -> int:
    size = 0
    for block in blocks:
        size += len((block.get("text") or {}).get("text", ""))
        size += sum(len(f.get("text", "")) for f in block.get("fields") or [])
        size += sum(len(e.get("text", "")) for e in block.get("elements") or [] if isinstance(e.get("text"), str))
    return size
