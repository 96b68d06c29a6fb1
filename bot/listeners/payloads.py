"""Reading Slack's interaction payloads without trusting their shape.  [pure]

Signed does not mean well-formed: any field may be missing, null, a string where an
object belongs, or a list where a string does. Each reader returns a safe empty value
instead of raising, so a malformed payload ends as "that control no longer works".
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "first_action",
    "foreign",
    "obj",
    "payload_problem",
    "picked",
    "picked_in",
    "text",
    "user_of",
    "view_input",
    "where_clicked",
]

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


def picked_in(view: dict[str, Any], block: str) -> list[str]:
    """The ticked options of a modal's checkboxes input whose block id and action id are both `block`."""
    element = obj(obj(obj(obj(view.get("state")).get("values")).get(block)).get(block))
    options = element.get("selected_options")
    return [str(o.get("value")) for o in options if isinstance(o, dict)] if isinstance(options, list) else []


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


_OBJECTS = ("user", "team", "channel", "container", "view", "message", "event", "state", "enterprise")
_TEXTS = ("type", "response_url", "trigger_id", "token", "api_app_id", "callback_id", "event_id")
_ACTION_TEXTS = ("action_id", "block_id", "value", "type", "action_ts")
_VIEW_TEXTS = ("callback_id", "private_metadata", "id", "type", "hash")
_EVENT_TEXTS = ("type", "user", "channel", "text", "ts", "thread_ts", "event_ts")


def _wrong(value: Any, kinds: tuple[type, ...]) -> bool:
    return value is not None and not isinstance(value, kinds)


def payload_problem(body: Any) -> str | None:
    """Why a payload (already verified as Slack's) cannot be read, or None when its shape is sound.

    Checks every field that Bolt or the listeners read, before either of them does.
    """
    if not isinstance(body, dict):
        return f"the payload is a {type(body).__name__}, not an object"
    for name in _OBJECTS:
        if _wrong(body.get(name), (dict,)):
            return f"`{name}` is not an object"
    for name in _TEXTS:
        if _wrong(body.get(name), (str,)):
            return f"`{name}` is not text"
    actions = body.get("actions")
    if _wrong(actions, (list,)):
        return "`actions` is not a list"
    for action in actions or []:
        if not isinstance(action, dict):
            return "an action is not an object"
        if any(_wrong(action.get(name), (str,)) for name in _ACTION_TEXTS):
            return "an action's ids or value are not text"
        if _wrong(action.get("selected_option"), (dict,)) or _wrong(action.get("selected_options"), (list,)):
            return "an action's selection has the wrong shape"
    view = obj(body.get("view"))
    if any(_wrong(view.get(name), (str,)) for name in _VIEW_TEXTS) or _wrong(view.get("state"), (dict,)):
        return "the view has the wrong shape"
    event = obj(body.get("event"))
    if any(_wrong(event.get(name), (str,)) for name in _EVENT_TEXTS):
        return "the event has the wrong shape"
    return None


def foreign(body: dict[str, Any], *, team_id: str | None, app_id: str | None) -> str | None:
    """Why a (signed) payload is not for this app: another app's or another workspace's, or None.

    An id the payload does not carry is not held against it (Slack's URL check has none; an
    organisation-wide install names its enterprise, not a team)."""
    app = text(body.get("api_app_id")) or text(obj(body.get("view")).get("app_id"))
    if app_id and app and app != app_id:
        return "it is for another app"
    team = text(body.get("team_id")) or text(obj(body.get("team")).get("id"))
    if team_id and team and team != team_id and body.get("is_enterprise_install") not in (True, "true"):
        return "it is from another workspace"
    return None
