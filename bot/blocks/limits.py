"""Slack's message limits, and a check of a finished message against all of them.  [pure]

slack_sdk's models validate most per-element limits on `to_dict()`; the ones it does
not (blocks per message, per-field length, fallback text, total block text) are
enforced by our builders and verified here, by the tests and by the fake Slack.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BUTTON_TEXT",
    "FALLBACK_TEXT",
    "FIELD_TEXT",
    "MAX_BLOCKS",
    "MAX_FIELDS",
    "SECTION_TEXT",
    "TOTAL_BLOCK_TEXT",
    "problems",
]

MAX_BLOCKS = 50
SECTION_TEXT = 3000
FIELD_TEXT = 2000
MAX_FIELDS = 10
BUTTON_TEXT = 75
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10
FALLBACK_TEXT = 4000
# Slack rejects messages whose blocks carry much more than ~13k characters in all
# (msg_blocks_too_long); stay clearly under it.
TOTAL_BLOCK_TEXT = 12_000


def problems(message: dict[str, Any]) -> list[str]:
    """Every way `message` breaks a Slack limit; empty when it is fine to send."""
    found: list[str] = []
    text = message.get("text")
    if not isinstance(text, str) or not text.strip():
        found.append("fallback text is missing")
    elif len(text) > FALLBACK_TEXT:
        found.append(f"fallback text has {len(text)} > {FALLBACK_TEXT} characters")
    blocks = message.get("blocks") or []
    if len(blocks) > MAX_BLOCKS:
        found.append(f"{len(blocks)} blocks > {MAX_BLOCKS}")
    total = 0
    ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"block {i} ({block.get('type')})"
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in ids:
                found.append(f"{where}: block_id {block_id!r} repeated")
            ids.add(block_id)
        total += _check_block(block, where, found)
    if total > TOTAL_BLOCK_TEXT:
        found.append(f"blocks carry {total} > {TOTAL_BLOCK_TEXT} characters of text")
    return found


def _check_block(block: dict[str, Any], where: str, found: list[str]) -> int:
    """Problems of one block go into `found`; returns how much text it carries."""
    check = _BLOCK_CHECKS.get(str(block.get("type")))
    return check(block, where, found) if check else 0


def _check_section(block: dict[str, Any], where: str, found: list[str]) -> int:
    total = 0
    text = (block.get("text") or {}).get("text")
    fields = block.get("fields") or []
    if text is None and not fields:
        found.append(f"{where}: needs text or fields")
    if text is not None:
        total += _length(text, SECTION_TEXT, f"{where} text", found)
    if len(fields) > MAX_FIELDS:
        found.append(f"{where}: {len(fields)} fields > {MAX_FIELDS}")
    for j, f in enumerate(fields):
        total += _length(f.get("text", ""), FIELD_TEXT, f"{where} field {j}", found)
    if block.get("accessory"):
        _check_element(block["accessory"], where, found)
    return total


def _check_header(block: dict[str, Any], where: str, found: list[str]) -> int:
    if block["text"].get("type") != "plain_text":
        found.append(f"{where}: header text must be plain_text")
    return _length(block["text"]["text"], HEADER_TEXT, f"{where} text", found)


def _check_context(block: dict[str, Any], where: str, found: list[str]) -> int:
    elements = block.get("elements") or []
    if len(elements) > CONTEXT_ELEMENTS:
        found.append(f"{where}: {len(elements)} elements > {CONTEXT_ELEMENTS}")
    return sum(_length(e.get("text", ""), SECTION_TEXT, f"{where} element", found) for e in elements)


def _check_actions(block: dict[str, Any], where: str, found: list[str]) -> int:
    elements = block.get("elements") or []
    if not elements or len(elements) > 25:
        found.append(f"{where}: {len(elements)} elements (1..25)")
    seen: set[str] = set()
    for e in elements:
        action_id = e.get("action_id")
        if action_id in seen:
            found.append(f"{where}: action_id {action_id!r} repeated")
        seen.add(action_id)
        _check_element(e, where, found)
    return 0


_BLOCK_CHECKS = {
    "section": _check_section,
    "header": _check_header,
    "context": _check_context,
    "actions": _check_actions,
}


def _check_element(element: dict[str, Any], where: str, found: list[str]) -> None:
    if element.get("type") == "button":
        text = element.get("text") or {}
        if text.get("type") != "plain_text":
            found.append(f"{where}: button text must be plain_text")
        _length(text.get("text", ""), BUTTON_TEXT, f"{where} button", found)
        if len(element.get("value") or "") > 2000:
            found.append(f"{where}: button value over 2000")
        if len(element.get("url") or "") > 3000:
            found.append(f"{where}: button url over 3000")


def _length(text: str, limit: int, where: str, found: list[str]) -> int:
    if not text:
        found.append(f"{where}: empty text")
    elif len(text) > limit:
        found.append(f"{where}: {len(text)} > {limit} characters")
    return len(text)
