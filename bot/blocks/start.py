"""Starting a run from an automation: the picker window, the confirmation card, the announcement.  [pure]"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.blocks import kit
from bot.blocks.routing import START_ACTION, START_MODAL, START_PICK, encode_start
from bot.blocks.runs import run_summary
from bot.blocks.text import clip, escape, link
from bot.fabro.models import AutomationPreset, Run

__all__ = [
    "MAX_STATIC_OPTIONS",
    "picker_options",
    "start_announcement",
    "start_card",
    "start_picker",
    "unknown_automation",
]

Message = dict[str, Any]
MAX_STATIC_OPTIONS = 100  # a static menu holds this many; past it the picker searches (external select)


def _option(preset: AutomationPreset) -> dict[str, Any]:
    option: dict[str, Any] = {"text": kit.plain(preset.name or preset.id, 75), "value": preset.id[:150]}
    about = preset.description or f"{preset.where} · {preset.target.workflow or 'workflow ?'}"
    option["description"] = kit.plain(about, 75)
    return option


def picker_options(presets: list[AutomationPreset], typed: str = "") -> list[dict[str, Any]]:
    """The startable automations matching what was typed (name, id or repository), at most 100."""
    needle = typed.strip().lower()
    chosen = [
        p
        for p in presets
        if p.startable and (not needle or any(needle in (s or "").lower() for s in (p.name, p.id, p.target.repository)))
    ]
    return [_option(p) for p in chosen[:MAX_STATIC_OPTIONS]]


def start_picker(
    presets: list[AutomationPreset] | None, *, metadata: str, problem: str | None = None
) -> dict[str, Any]:
    """The window `/runs start` opens: loading (None), the automations to pick from, or why there are none."""
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": START_MODAL,
        "private_metadata": metadata,
        "title": kit.plain("Start a run", 24),
        "close": kit.plain("Cancel", 24),
    }
    if problem is not None:
        return view | {"blocks": [kit.section(f":warning: {problem}")]}
    if presets is None:
        return view | {"blocks": [kit.section(":hourglass_flowing_sand: Asking Fabro for its automations…")]}
    startable = [p for p in presets if p.startable]
    if not startable:
        text = "Fabro has no automation with an enabled `api` trigger: add one there, then try again."
        return view | {"blocks": [kit.section(text)]}
    if len(startable) <= MAX_STATIC_OPTIONS:
        element: dict[str, Any] = {
            "type": "static_select",
            "action_id": START_PICK,
            "options": picker_options(startable),
            "placeholder": kit.plain("Choose an automation", 150),
        }
    else:
        element = {
            "type": "external_select",
            "action_id": START_PICK,
            "min_query_length": 0,
            "placeholder": kit.plain(f"Search {len(startable)} automations", 150),
        }
    return view | {
        "submit": kit.plain("Start", 24),
        "blocks": [
            kit.section("Pick an automation to start a run from. It starts as soon as you press *Start*."),
            {"type": "input", "block_id": START_PICK, "label": kit.plain("Automation", 2000), "element": element},
        ],
    }


def start_card(preset: AutomationPreset, *, intent: str, channel: str | None) -> Message:
    """`/runs start <id>`: what would start, with Start and Cancel (seen by the asker alone)."""
    facts = [
        f"*Automation*\n{escape(preset.name or preset.id)}",
        f"*Repository*\n{escape(preset.target.repository or '—')}",
        f"*Ref*\n{escape(preset.target.ref or '—')}",
        f"*Workflow*\n{escape(preset.target.workflow or '—')}",
    ]
    blocks = [kit.section(f"Start a run from *{escape(preset.name or preset.id)}*?", block_id="start:ask")]
    if preset.description:
        blocks.append(kit.context(clip(escape(preset.description), 500)))
    blocks.append(kit.section(fields=facts, block_id="start:facts"))
    value = encode_start(preset.id, intent, channel)
    buttons = kit.actions(
        kit.button("Start", f"{START_ACTION}:go", value=value, style="primary"),
        kit.button("Cancel", f"{START_ACTION}:cancel", value=value),
        block_id="start:buttons",
    )
    if buttons:
        blocks.append(buttons)
    return {"text": clip(f"Start a run from {escape(preset.name or preset.id)}?", 3000), "blocks": blocks}


def unknown_automation(typed: str, suggestions: list[str], command: str) -> Message:
    close = f" Did you mean {', '.join(f'`{escape(s)}`' for s in suggestions)}?" if suggestions else ""
    text = f"Fabro has no automation `{escape(clip(typed, 100))}` that can be started.{close}"
    hint = f"`{escape(command)} start` lists the ones there are."
    return {"text": text.replace("`", ""), "blocks": [kit.section(f":warning: {text}"), kit.context(hint)]}


def start_announcement(run: Run, *, user_id: str, automation: str, now: datetime, web_base: str | None) -> Message:
    """In the channel, for everyone: who started which run from what, with the run's card."""
    head = f"<@{user_id}> started {link(run.web_url(web_base), run.title or run.id)} from *{escape(automation)}*"
    blocks = [kit.section(head, block_id="started"), kit.section(run_summary(run, now), block_id=f"run:{run.id}")]
    return {"text": clip(f"Started a run from {escape(automation)}", 3000), "blocks": blocks}
