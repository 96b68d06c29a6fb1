"""Looking into a run from its thread: changes, cost, logs, preview, graph, and Fabro's answers.  [pure]

Everything shown here came from Fabro (paths, commit subjects, model names, answers written by a
model) and is escaped; every message holds Slack's limits whatever Fabro sent, and says what it
left out ("and 12 more files") rather than dropping it silently.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from bot.blocks import kit
from bot.blocks.limits import FALLBACK_TEXT, MAX_BLOCKS, SECTION_TEXT, TOTAL_BLOCK_TEXT
from bot.blocks.routing import ASK_MODAL, Target, control_block_id, steer_action_id
from bot.blocks.text import clip, dollars, escape, slack_date
from bot.fabro.models import Run
from bot.fabro.outputs import BilledTokens, ChangedFile, RunBilling, RunCommits, RunFiles

__all__ = [
    "ANSWER_CHUNK",
    "ASK_FAILURES",
    "ASK_INPUT",
    "ASK_UNAVAILABLE",
    "answer_chunks",
    "answer_message",
    "ask_failure_text",
    "ask_modal",
    "ask_unavailable_text",
    "changes_message",
    "cost_message",
    "failed_lines",
    "graph_comment",
    "inspect_controls",
    "log_comment",
    "mark_stage",
    "patch_file",
    "preview_message",
]

Message = dict[str, Any]

_FILES_SHOWN = 40  # files listed by name; the rest are counted
_COMMITS_SHOWN = 10
_SECTION = 2800  # characters of lines per section, under Slack's 3,000
_PATH = 180
ANSWER_CHUNK = 2900  # characters of an answer per message (one section each)
ASK_INPUT = "ask_question"

ASK_UNAVAILABLE = {
    "no_sandbox": "this run has no sandbox to read (it never started one, or it was removed)",
    "sandbox_not_ready": "this run's sandbox is not ready yet; ask again in a minute",
    "llm_unconfigured": "no language model is configured on the Fabro server",
}
ASK_FAILURES = {
    "no_sandbox": "Fabro could not answer: this run has no sandbox to read.",
    "sandbox_unavailable": "Fabro could not reach this run's sandbox just now; ask again in a minute.",
    "llm_unconfigured": "Fabro could not answer: no language model is configured on the server.",
    "model_unavailable": "Fabro could not answer: its language model is unavailable right now.",
    "tool_denied": "Fabro stopped: it was not allowed to use a tool it needed to answer.",
    "agent_error": "Fabro's agent failed while answering; ask again, perhaps in other words.",
    "interrupted": "The answer was interrupted before it was finished.",
    "busy": "Fabro is already answering another question in this thread; ask again when it is done.",
    "broken": "The connection to Fabro broke while it was answering; ask again.",
    "lost": "The answer was lost when the bot restarted, and Fabro kept none: ask again.",
}


def ask_unavailable_text(reason: str | None) -> str:
    return "Ask Fabro is unavailable: " + ASK_UNAVAILABLE.get(reason or "", "Fabro says it cannot answer now") + "."


def ask_failure_text(code: str | None) -> str:
    """One sentence for a failed turn, not yet escaped; an unknown code still reads as a sentence."""
    if code in ASK_FAILURES:
        return ASK_FAILURES[code]
    return f"Fabro could not answer ({code or 'no reason given'})."


# -- the buttons on a run's cards ---------------------------------------------------------------


def inspect_controls(run: Run, *, private: bool = False) -> list[dict[str, Any]]:
    """Changes, Cost, Logs, Graph and Ask… for a run that has started. A card only its reader sees
    (`private`) has no thread for Fabro to answer in: it says where to ask instead. (A card in a channel
    shared with another organisation has none of them: `blocks.exposure` reduces it.)"""
    if run.bucket in ("pending", "runnable", "removing"):
        return []
    elements = [
        kit.button("Changes", steer_action_id("changes"), value="changes"),
        kit.button("Cost", steer_action_id("cost"), value="cost"),
    ]
    elements += [
        kit.button("Logs", steer_action_id("logs"), value="logs"),
        kit.button("Graph", steer_action_id("graph"), value="graph"),
    ]
    ask = run.ask_fabro
    if not private and ask is not None and ask.available:
        elements.append(kit.button("Ask…", steer_action_id("ask"), value="ask"))
    block = kit.actions(*elements, block_id=control_block_id("inspect", Target(run.id)))
    blocks = [block] if block else []
    if private and ask is not None and ask.available:
        where = (
            "Ask Fabro about this run by mentioning me in the thread of its alert or live card (*Follow* posts one)."
        )
        blocks.append(kit.context(where, block_id=f"ask:{run.id}"))
    if ask is not None and not ask.available and ask.unavailable_reason:
        blocks.append(kit.context(ask_unavailable_text(ask.unavailable_reason), block_id=f"ask:{run.id}"))
    return blocks


def _title(run: Run) -> str:
    return clip(escape(run.title or run.goal or run.id), 150)


def _sections(lines: list[str], prefix: str, budget: int) -> tuple[list[dict[str, Any]], int]:
    """Lines packed into sections of at most `_SECTION` characters, within `budget` in all;
    returns the sections and how many lines fit."""
    sections: list[list[str]] = [[]]
    used = fitted = 0
    for line in lines:
        if used + len(line) + 1 > budget:
            break
        if sum(len(x) + 1 for x in sections[-1]) + len(line) > _SECTION:
            sections.append([])
        sections[-1].append(line)
        used, fitted = used + len(line) + 1, fitted + 1
    blocks = [kit.section("\n".join(chunk), block_id=f"{prefix}:{i}") for i, chunk in enumerate(sections) if chunk]
    return blocks, fitted


def ask_modal(run: Run, *, metadata: str) -> dict[str, Any]:
    """A question about the run; Fabro answers it in the card's thread."""
    return {
        "type": "modal",
        "callback_id": ASK_MODAL,
        "private_metadata": metadata,
        "title": kit.plain("Ask Fabro", 24),
        "submit": kit.plain("Ask", 24),
        "close": kit.plain("Cancel", 24),
        "blocks": [
            kit.section(
                f"Ask about *{_title(run)}*: why it did something, what it changed, where it stands."
                " Fabro reads the run's sandbox and events, and answers in the thread."
            ),
            {
                "type": "input",
                "block_id": ASK_INPUT,
                "label": kit.plain("Question", 2000),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ASK_INPUT,
                    "multiline": True,
                    "max_length": 3000,
                },
            },
        ],
    }


# -- Changes ------------------------------------------------------------------------------------


def _file_line(f: ChangedFile) -> str:
    added, removed = f.counts
    path = f"`{clip(escape(f.path), _PATH)}`"
    notes = []
    if f.change_kind in ("added", "deleted", "symlink", "submodule"):
        notes.append(f.change_kind)
    if f.change_kind == "renamed" and f.old_file.name and f.old_file.name != f.new_file.name:
        notes.append(f"renamed from `{clip(escape(f.old_file.name), _PATH)}`")
    if f.binary:
        notes.append("binary: not shown")
    if f.sensitive:
        notes.append("sensitive: contents withheld")
    if f.truncated:
        why = {"file_too_large": "too large to show", "budget_exhausted": "past Fabro's size budget"}
        notes.append("truncated: " + why.get(f.truncation_reason or "", "not shown in full"))
    counts = f"+{added} −{removed}"
    tail = f" _({', '.join(notes)})_" if notes else ""
    return f"`{counts}` {path}{tail}"


def changes_message(
    run: Run,
    files: RunFiles,
    commits: RunCommits | None,
    *,
    commits_problem: str | None = None,
    with_patch: bool = True,
) -> Message:
    """The run's changed files, largest first, with totals and commits, and a button for the patch."""
    meta = files.meta
    # Largest first; a file too large (or too binary) to count lines of is counted among the largest.
    ordered = sorted(files.data, key=lambda f: (not (f.truncated or f.binary), -sum(f.counts), f.path))
    total = max(meta.total_changed or 0, len(files.data))
    head = (
        f"*Changes of {_title(run)}*: {total} file{'' if total == 1 else 's'},"
        f" +{meta.stats.additions:,} −{meta.stats.deletions:,}"
    )
    blocks: list[dict[str, Any]] = [kit.section(head, block_id=f"changes:{run.id}")]
    if not files.data:
        blocks.append(kit.context("No changed files: the run has not changed anything (yet)."))
    lines = [_file_line(f) for f in ordered[:_FILES_SHOWN]]
    shown, fitted = _sections(lines, "files", TOTAL_BLOCK_TEXT // 2)
    blocks += shown
    notes = []
    if total > fitted:
        notes.append(f"…and {total - fitted} more file{'' if total - fitted == 1 else 's'}.")
    if meta.truncated:
        notes.append("Fabro capped this list (200 files, 5 MiB of patches).")
    if files.unreadable:
        notes.append(f"{files.unreadable} file(s) Fabro sent could not be read and are left out.")
    if meta.degraded or meta.source == "final_patch":
        notes.append("The sandbox is gone: this is the run's final patch.")
    if notes:
        blocks.append(kit.context(*notes, block_id=f"changes:notes:{run.id}"))
    blocks += _commit_blocks(run, commits, commits_problem)
    if with_patch and any(f.unified_patch for f in files.data):
        patch = kit.actions(
            kit.button("Full patch as a file", steer_action_id("patch"), value="patch"),
            block_id=control_block_id("inspect", Target(run.id)),
        )
        if patch:
            blocks.append(patch)
    text = f"Changes of {run.title or run.id}: {total} files, +{meta.stats.additions} −{meta.stats.deletions}"
    return {"text": clip(escape(text), FALLBACK_TEXT), "blocks": kit.within_budget(blocks[:MAX_BLOCKS])}


def _commit_blocks(run: Run, commits: RunCommits | None, problem: str | None) -> list[dict[str, Any]]:
    if commits is None:
        return [kit.context(f"Commits: {escape(problem or 'not available')}", block_id=f"commits:{run.id}")]
    if not commits.data:
        return [kit.context("No commits on the run's branch yet.", block_id=f"commits:{run.id}")]
    newest = list(reversed(commits.data))  # Fabro lists them oldest first
    lines = [
        f"`{escape((c.short_sha or c.sha)[:12])}` {clip(escape(c.subject), 150)}"
        + (f" — {clip(escape(c.author.name), 60)}" if c.author.name else "")
        for c in newest[:_COMMITS_SHOWN]
    ]
    count = len(commits.data)
    more = count - len(lines)
    body = f"*Commits* ({count}{'+' if commits.meta.truncated else ''}, newest first)\n" + "\n".join(lines)
    if more > 0:
        body += f"\n…and {more} more."
    return [kit.section(clip(body, SECTION_TEXT), block_id=f"commits:{run.id}")]


def patch_file(run: Run, files: RunFiles) -> str:
    """The whole patch as one text file; files Fabro did not send a patch for are named, with why."""
    parts = [f"# Changes of run {run.id}: {run.title or ''}".rstrip()]
    for f in sorted(files.data, key=lambda f: f.path):
        if f.unified_patch:
            parts.append(f.unified_patch.rstrip("\n"))
        else:
            why = (
                "binary"
                if f.binary
                else "sensitive, withheld"
                if f.sensitive
                else "truncated by Fabro"
                if f.truncated
                else "no patch"
            )
            parts.append(f"# {f.path}: {why}")
    return "\n".join(parts) + "\n"


# -- Cost ---------------------------------------------------------------------------------------


def _cost(billing: BilledTokens) -> str:
    return dollars(billing.total_usd_micros) or "price unknown"


def cost_message(run: Run, bill: RunBilling) -> Message:
    """Cost and tokens per stage and per model, the run's total, and the stage that cost most."""
    totals = bill.totals
    head = f"*Cost of {_title(run)}*: {_cost(totals)} · {totals.total_tokens:,} tokens"
    head += f" ({totals.input_tokens:,} in, {totals.output_tokens:,} out)"
    blocks: list[dict[str, Any]] = [kit.section(head, block_id=f"cost:{run.id}")]
    stages = sorted(bill.stages, key=lambda s: (-(s.billing.total_usd_micros or 0), -s.billing.total_tokens))
    if not stages:
        blocks.append(kit.context("Fabro has recorded no usage for this run yet."))
    priced = [s for s in stages if s.billing.total_usd_micros]
    if priced:
        top = priced[0]
        share = ""
        if totals.total_usd_micros:
            share = f", {100 * (top.billing.total_usd_micros or 0) / totals.total_usd_micros:.0f}% of the run"
        blocks.append(
            kit.section(
                f":moneybag: Most expensive stage: `{clip(escape(top.name), 100)}` ({_cost(top.billing)}{share})",
                block_id=f"cost:top:{run.id}",
            )
        )
    stage_lines = [
        f"`{clip(escape(s.name), 80)}` · {_cost(s.billing)} · {s.billing.total_tokens:,} tokens"
        + (f" · {clip(escape(s.model.label), 60)}" if s.model else "")
        for s in stages
    ]
    if stage_lines:
        shown, fitted = _sections(["*Per stage*", *stage_lines], "cost:stages", 5000)
        blocks += shown
        if fitted - 1 < len(stage_lines):
            blocks.append(kit.context(f"…and {len(stage_lines) - fitted + 1} more stages."))
    models = sorted(bill.by_model, key=lambda m: -(m.billing.total_usd_micros or 0))
    model_lines = [
        f"{clip(escape(m.model.label), 80)} · {_cost(m.billing)} · {m.billing.total_tokens:,} tokens"
        f" · {m.stages} stage visit{'' if m.stages == 1 else 's'}"
        for m in models
    ]
    if model_lines:
        shown, fitted = _sections(["*Per model*", *model_lines], "cost:models", 3000)
        blocks += shown
        if fitted - 1 < len(model_lines):
            blocks.append(kit.context(f"…and {len(model_lines) - fitted + 1} more models."))
    if stages and not priced:
        blocks.append(kit.context("Fabro knows no price for these models: tokens only."))
    text = f"Cost of {run.title or run.id}: {_cost(totals)}, {totals.total_tokens} tokens"
    return {"text": clip(escape(text), FALLBACK_TEXT), "blocks": kit.within_budget(blocks[:MAX_BLOCKS])}


# -- Logs ---------------------------------------------------------------------------------------


def failed_lines(text: str | None, *, lines: int = 15) -> str | None:
    """The last lines of a failed stage's output, for quoting."""
    if not text or not text.strip():
        return None
    kept = [line.rstrip() for line in text.rstrip().splitlines()[-lines:]]
    return "\n".join(kept)


def log_comment(run: Run, *, size: int, kept: int, stage: str | None, tail: str | None) -> str:
    """What goes with the uploaded log: its size, what was kept, and a failed stage's last lines."""
    said = f"Log of *{_title(run)}* ({_size(size)})"
    if kept < size:
        said += f": the last {_size(kept)} kept (`LOG_MAX_BYTES`)"
    said += "."
    if tail:
        where = f" of stage `{clip(escape(stage), 80)}`" if stage else ""
        quoted = clip(escape(tail).replace("```", "'''"), 2500)
        said += f"\nThe last lines{where}:\n```{quoted}```"
    return clip(said, 3900)


def _size(n: int) -> str:
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} bytes"


# -- Preview -------------------------------------------------------------------------------------


def preview_message(run: Run, port: int, url: str, expires: datetime) -> Message:
    """The signed link, for the asker alone: it lets anyone who has it into the sandbox's port."""
    label = f"Open port {port} of {run.title or run.id}"
    text = (
        f":eyes: *Preview of port {port}* of {_title(run)}: <{url}|{escape(clip(label, 60))}>\n"
        f"The link works until {slack_date(expires)}. It is shown only to you: anyone with it can open"
        " the preview, so share it with care."
    )
    block = kit.section(text, block_id=f"preview:{run.id}")
    if len(text) > SECTION_TEXT:  # an absurdly long link: show it whole rather than cut it
        block = kit.section(f"Preview of port {port}: {url[:2900]}", block_id=f"preview:{run.id}")
    return {"text": f"Preview of port {port} of {clip(escape(run.title or run.id), 200)}", "blocks": [block]}


# -- Graph ---------------------------------------------------------------------------------------

_NODE = re.compile(r'(<g\b[^>]*class="node"[^>]*>\s*<title>)(.*?)(</title>)(.*?)(</g>)', re.S)


def mark_stage(svg: str, stage: str | None) -> tuple[str, bool]:
    """The SVG with `stage`'s node filled and outlined; and whether the node was found."""
    if not stage:
        return svg, False
    wanted = xml_escape(stage)
    found = False

    def paint(match: re.Match[str]) -> str:
        nonlocal found
        if match.group(2).strip() != wanted:
            return match.group(0)
        found = True
        shapes = re.sub(r'fill="[^"]*"', 'fill="#ffe082"', match.group(4))
        shapes = re.sub(r'stroke="[^"]*"', 'stroke="#d84315" stroke-width="3"', shapes)
        return match.group(1) + match.group(2) + match.group(3) + shapes + match.group(5)

    return _NODE.sub(paint, svg), found


def graph_comment(run: Run, stage: str | None, *, marked: bool, as_image: bool, why_not: str | None = None) -> str:
    said = f"Workflow graph of *{_title(run)}*"
    if stage and marked:
        said += f"; the current stage `{clip(escape(stage), 80)}` is marked"
    elif stage:
        said += f"; the current stage is `{clip(escape(stage), 80)}`"
    said += "."
    if not as_image:
        said += f"\nThe graph could not be drawn as an image ({escape(why_not or 'no renderer')}): its DOT source."
    return clip(said, 3000)


# -- Fabro's answers -----------------------------------------------------------------------------


def answer_chunks(text: str, limit: int = ANSWER_CHUNK) -> list[str]:
    """An answer, escaped, in pieces of at most `limit` characters, cut between paragraphs or lines
    (or words) and never inside an escape: nothing is lost, whatever its length."""
    rest = escape(text.strip()) or "_(Fabro answered with nothing.)_"
    chunks = []
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), window.rfind("\n"))
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut < limit // 2:
            cut = limit
            amp = window.rfind("&")
            if amp != -1 and ";" not in window[amp:]:
                cut = amp
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    chunks.append(rest)
    return [c for c in chunks if c] or [rest]


def answer_message(
    chunk: str,
    *,
    run_id: str,
    part: int = 1,
    parts: int = 1,
    writing: bool = False,
    note: str | None = None,
) -> Message:
    """One message of Fabro's answer: `chunk` is already escaped and within `ANSWER_CHUNK`."""
    blocks: list[dict[str, Any]] = [kit.section(chunk or "…", block_id=f"answer:{run_id}:{part}")]
    footer = []
    if writing:
        footer.append(":hourglass_flowing_sand: Fabro is writing…")
    elif parts > 1:
        footer.append(f"Fabro's answer, part {part} of {parts}")
    else:
        footer.append(":robot_face: Fabro's answer, from the run's sandbox and events")
    if note:
        footer.append(note)
    blocks.append(kit.context(*footer, block_id=f"answer:{run_id}:{part}:foot"))
    # The fallback text is read as mrkdwn in notifications too: it stays escaped.
    return {"text": clip(chunk or "Fabro is writing…", FALLBACK_TEXT), "blocks": blocks}
