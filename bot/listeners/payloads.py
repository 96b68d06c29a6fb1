"""Reading Slack's interaction payloads without trusting their shape.  [pure]

Signed does not mean well-formed: any field may be missing, null, a string where an
object belongs, or a list where a string does. Each reader returns a safe empty value
instead of raising, so a malformed payload ends as "that control no longer works".
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["first_action", "obj", "picked", "text", "user_of", "view_input", "where_clicked"]

_CHANNEL = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_TS = re.compile(r"^\d{1,12}\.\d{1,9}$")


def obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def first_action(body: dict[str, Any]) -> dict[str, Any]:
    actions = body.get("actions")
    return obj(actions[0]) if isinstance(actions, list) and actions else {}


def user_of(body: dict[str, Any]) -> str | None:
    return text(obj(body.get("user")).get("id"))


def where_clicked(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """The channel of the card clicked, and its ts when it is a message the bot can edit (not ephemeral)."""
    container = obj(body.get("container"))
    channel = text(container.get("channel_id")) or text(obj(body.get("channel")).get("id"))
    editable = container.get("type") == "message" and container.get("is_ephemeral") is not True
    ts = text(container.get("message_ts")) if editable else None
    return (channel if channel and _CHANNEL.match(channel) else None), (ts if ts and _TS.match(ts) else None)


def view_input(view: dict[str, Any], block: str) -> str:
    """The text typed into a modal's input whose block id and action id are both `block`."""
    value = obj(obj(obj(obj(view.get("state")).get("values")).get(block)).get(block)).get("value")
    return value if isinstance(value, str) else ""


def picked(body: dict[str, Any], block_id: str | None) -> list[str]:
    """The ticked options of the checkboxes (or multi-select) beside a Submit button."""
    values = obj(obj(obj(body.get("state")).get("values")).get(block_id or ""))
    for element in values.values():
        options = obj(element).get("selected_options")
        if isinstance(options, list):
            return [
                o["value"] for o in options if isinstance(o, dict) and isinstance(o.get("value"), str) and o["value"]
            ]
    return []
