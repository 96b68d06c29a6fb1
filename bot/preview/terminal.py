"""A Slack message drawn in a terminal, the way Slack lays it out.  [pure]

Sections, fields in two columns, headers, context lines, dividers, and the controls of
actions blocks (`[ Retry ]`, menus, checkboxes); mrkdwn becomes styles (bold, italics,
code), links show their text and their URL, emoji shortcodes become emoji, and Slack's
escapes are undone. With no terminal (a pipe, a file) the same text comes out plain.
"""

from __future__ import annotations

import html
import re
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.emoji import Emoji, NoEmoji
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

__all__ = ["console", "render_message", "render_mrkdwn"]

_TOKEN = re.compile(
    r"```(?P<pre>.*?)```"
    r"|`(?P<code>[^`\n]+)`"
    r"|<(?P<link>[^<>|]+)(?:\|(?P<label>[^<>]*))?>"
    r"|(?<![\w*])\*(?P<bold>[^*\n]+)\*(?![\w*])"
    r"|(?<![\w_])_(?P<italic>[^_\n]+)_(?![\w_])"
    r"|(?<![\w~])~(?P<strike>[^~\n]+)~(?![\w~])"
    r"|:(?P<emoji>[a-z0-9_+-]+):",
    re.DOTALL,
)


def _emoji(name: str) -> str:
    try:
        return str(Emoji(name))
    except NoEmoji:
        return f":{name}:"


def _link(target: str, label: str | None) -> tuple[str, str]:
    """What a `<…>` shows, and its style: a date's fallback, a mention, or a link's text and URL."""
    if target.startswith("!date^"):
        return html.unescape(label or target), ""
    if target.startswith(("@", "#", "!")):
        return html.unescape(label or target), "bold"
    shown = html.unescape(label) if label else ""
    url = html.unescape(target)
    return (f"{shown} ({url})" if shown and shown != url else url), "underline"


def render_mrkdwn(text: str, base_style: str = "") -> Text:
    """Slack mrkdwn as styled text."""
    out = Text(style=base_style)
    position = 0
    for match in _TOKEN.finditer(text):
        out.append(html.unescape(text[position : match.start()]))
        position = match.end()
        kind = match.lastgroup
        value = match.group(kind or 0)
        if kind == "pre":
            out.append(html.unescape(value.strip("\n")), style="cyan")
        elif kind == "code":
            out.append(html.unescape(value), style="bold cyan")
        elif kind in ("link", "label"):
            shown, style = _link(match.group("link"), match.group("label"))
            out.append(shown, style=style)
        elif kind == "bold":
            out.append_text(render_mrkdwn(value, "bold"))
        elif kind == "italic":
            out.append_text(render_mrkdwn(value, "italic"))
        elif kind == "strike":
            out.append(html.unescape(value), style="strike")
        elif kind == "emoji":
            out.append(_emoji(value))
    out.append(html.unescape(text[position:]))
    return out


def _text_of(obj: Any) -> Text:
    if not isinstance(obj, dict):
        return Text("")
    if obj.get("type") == "mrkdwn":
        return render_mrkdwn(str(obj.get("text", "")))
    return Text(str(obj.get("text", "")))


def _element(element: dict[str, Any]) -> Text:
    kind = element.get("type")
    label = _text_of(element.get("text")).plain if element.get("text") else ""
    if kind == "button":
        style = {"primary": "bold green", "danger": "bold red"}.get(str(element.get("style")), "bold")
        return Text(f"[ {label} ]", style=style)
    if kind in ("static_select", "external_select", "multi_static_select", "users_select", "conversations_select"):
        placeholder = _text_of(element.get("placeholder")).plain or "Choose"
        return Text(f"[ {placeholder} ▾ ]", style="bold")
    if kind in ("checkboxes", "radio_buttons"):
        box = "☐" if kind == "checkboxes" else "○"
        return Text("\n".join(f"{box} {_text_of(o.get('text')).plain}" for o in element.get("options") or []))
    if kind == "overflow":
        return Text("[ ⋯ ]", style="bold")
    return Text(f"[ {kind} ]", style="dim")


def _block(block: dict[str, Any]) -> RenderableType | None:
    kind = block.get("type")
    if kind == "header":
        return Text(_text_of(block.get("text")).plain, style="bold underline")
    if kind == "divider":
        return Rule(style="dim")
    if kind == "context":
        line = Text(style="dim")
        for i, element in enumerate(block.get("elements") or []):
            if i:
                line.append("  ")
            line.append_text(_text_of(element))
        return line
    if kind == "actions":
        row = Text()
        for i, element in enumerate(block.get("elements") or []):
            if i:
                row.append("  ")
            row.append_text(_element(element))
        return row
    if kind == "section":
        parts: list[RenderableType] = []
        if block.get("text"):
            parts.append(_text_of(block["text"]))
        fields = block.get("fields") or []
        if fields:
            grid = Table.grid(padding=(0, 4))
            grid.add_column()
            grid.add_column()
            cells = [_text_of(f) for f in fields]
            for i in range(0, len(cells), 2):
                grid.add_row(*cells[i : i + 2])
            parts.append(grid)
        if isinstance(block.get("accessory"), dict):
            parts.append(_element(block["accessory"]))
        return Group(*parts)
    if kind == "input":
        label = _text_of(block.get("label")).plain
        return Text(f"{label}\n[ ______________________ ]")
    return None


def render_message(message: dict[str, Any], *, title: str | None = None) -> RenderableType:
    """The message as Slack would show it, inside a frame (the fallback text when it has no blocks)."""
    drawn = [r for b in message.get("blocks") or [] if isinstance(b, dict) and (r := _block(b)) is not None]
    if not drawn:
        drawn = [render_mrkdwn(str(message.get("text", "")))]
    spaced: list[RenderableType] = []
    for i, renderable in enumerate(drawn):
        if i:
            spaced.append(Text(""))
        spaced.append(renderable)
    return Panel(Group(*spaced), title=title, title_align="left", border_style="dim", expand=False, width=100)


def console() -> Console:
    """A console for previews: no automatic highlighting, so the message shows as Slack would draw it."""
    return Console(highlight=False)
