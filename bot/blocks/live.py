"""A followed run: its live card (edited in place as it moves) and the replies in its thread.  [pure]"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.blocks import kit
from bot.blocks.controls import DRAFT_NOTE, approval_controls, question_controls, run_controls
from bot.blocks.inspect import inspect_controls
from bot.blocks.limits import FALLBACK_TEXT
from bot.blocks.runs import link_buttons, run_summary
from bot.blocks.text import clip, duration, escape, link
from bot.fabro.events import InterviewStarted, PullRequestCreated, PullRequestFailed, RunNotice, payload_of
from bot.fabro.models import Question, Run, RunEvent, Stage

__all__ = ["MAX_STAGES_SHOWN", "live_card", "update_reply"]

Message = dict[str, Any]
MAX_STAGES_SHOWN = 20
STAGE_EMOJI = {
    "pending": ":white_circle:",
    "running": ":arrows_counterclockwise:",
    "retrying": ":repeat:",
    "succeeded": ":white_check_mark:",
    "partially_succeeded": ":large_yellow_circle:",
    "failed": ":x:",
    "skipped": ":fast_forward:",
    "cancelled": ":no_entry_sign:",
}


def _stage(stage: Stage) -> str:
    took = duration(stage.wall_time_ms / 1000) if stage.wall_time_ms is not None else None
    name = escape(clip(stage.name or stage.node_id or stage.id, 40))
    return f"{STAGE_EMOJI.get(stage.status, ':grey_question:')} {name}" + (f" {took}" if took else "")


def live_card(run: Run, stages: list[Stage], *, now: datetime, web_base: str | None) -> Message:
    """Status, current stage, the stages and their state, time, cost, the PR, and the controls that apply."""
    blocks: list[dict[str, Any]] = [kit.section(run_summary(run, now), block_id=f"live:{run.id}")]
    current = next((s for s in reversed(stages) if s.status in ("running", "retrying")), None)
    if current is not None:
        blocks.append(kit.context(f"Now: *{escape(current.name or current.node_id or current.id)}* ({current.status})"))
    if stages:
        shown = [_stage(s) for s in stages[-MAX_STAGES_SHOWN:]]
        earlier = len(stages) - len(shown)
        line = (f"… {earlier} earlier · " if earlier else "") + " · ".join(shown)
        blocks.append(kit.section(clip(line, 2900), block_id=f"stages:{run.id}"))
    if run.current_question is not None:
        blocks += question_controls(run, run.current_question)
    if run.awaits_approval:
        blocks += approval_controls(run)
    blocks += run_controls(run)
    blocks += inspect_controls(run)
    links = kit.actions(*link_buttons(run, web_base, follow=False), block_id=f"links:{run.id}")
    if links:
        blocks.append(links)
    state = "followed here: what matters is told in the thread" if not run.is_terminal else "finished"
    blocks.append(kit.context(f":eyes: {state}"))
    text = clip(f"{escape(run.title or run.id)} — {escape(run.status.kind)}", FALLBACK_TEXT)
    return {"text": text, "blocks": kit.within_budget(blocks)}


def _failure_text(properties: dict[str, Any]) -> str:
    failure = _obj(properties.get("failure"))
    message = _obj(failure.get("detail")).get("message") or failure.get("message")
    return clip(escape(str(message)), 1500) if message else ""


def _output_tail(properties: dict[str, Any]) -> str:
    """The end of the failing command's output, when Fabro sends it."""
    tail = _obj(_obj(_obj(properties.get("failure")).get("detail")).get("exec_output_tail"))
    out = str(tail.get("stderr") or tail.get("stdout") or "")[-1200:]
    return f"\n```{escape(out)}```" if out.strip() else ""


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _asked(event: RunEvent, run: Run, with_controls: bool) -> tuple[str, list[dict[str, Any]]] | None:
    """The reply to a question asked: its text and, when it can be answered from here, its controls."""
    started = payload_of(event)
    if not isinstance(started, InterviewStarted):
        return None
    question = Question(
        id=started.question_id or "?",
        text=started.question,
        stage=started.stage or None,
        question_type=started.question_type,
        options=started.options,
        allow_freeform=started.allow_freeform,
        context_display=started.context_display,
        review_target=started.review_target,
    )
    text = f":question: The agent asks: *{clip(escape(question.text or 'a question'), 1500)}*"
    return text, question_controls(run, question) if with_controls and question.id != "?" else []


def update_reply(
    event: RunEvent, run: Run, *, now: datetime, web_base: str | None, with_controls: bool = True
) -> Message | None:
    """The thread reply an event deserves, or None: stage failures and retries, warnings, questions,
    the pull request, and the end. Not every event: forty stages do not write eighty replies."""
    props, stage = event.properties, escape(event.node_label or event.node_id or "a stage")
    blocks: list[dict[str, Any]] = []
    match event.event:
        case "stage.failed":
            retry = " — retrying" if props.get("will_retry") else ""
            message = _failure_text(props)
            text = f":x: Stage *{stage}* failed{retry}" + (f": {message}" if message else "")
        case "stage.retrying":
            attempt = f"attempt {props.get('attempt', '?')} of {props.get('max_attempts', '?')}"
            text = f":repeat: Stage *{stage}* retrying ({escape(attempt)})"
        case "run.notice":
            notice = payload_of(event)
            if not isinstance(notice, RunNotice) or notice.level not in ("warn", "error"):
                return None  # `info` is not worth a reply; an unreadable notice costs itself
            icon = ":warning:" if notice.level == "warn" else ":rotating_light:"
            text = f"{icon} {clip(escape(notice.message or notice.code), 1500)}"
        case "interview.started":
            asked = _asked(event, run, with_controls)
            if asked is None:
                return None  # an unreadable question costs its reply; the card still shows the run
            text, blocks = asked
        case "pull_request.created":
            created = payload_of(event)
            if not isinstance(created, PullRequestCreated):
                return None
            label = f"#{created.pr_number}"
            text = f":twisted_rightwards_arrows: Pull request {link(created.pr_url, label)} opened"
            if created.draft:
                text += f" as a draft: {DRAFT_NOTE}"
        case "pull_request.failed":
            failed = payload_of(event)
            if not isinstance(failed, PullRequestFailed):
                return None
            text = f":x: The pull request was not opened: {clip(escape(failed.error), 1500)}"
        case "run.completed":
            text = f":white_check_mark: Succeeded · {run_summary(run, now).splitlines()[-1]}"
        case "run.failed":
            reason = _obj(props.get("failure")).get("reason")
            if reason == "cancelled":
                text = ":no_entry_sign: Cancelled"
            else:
                message = _failure_text(props)
                text = f":x: Failed ({escape(str(reason or 'failed'))})" + (f": {message}" if message else "")
                text += _output_tail(props)
        case _:
            return None
    return {"text": clip(text.replace("*", ""), FALLBACK_TEXT), "blocks": [kit.section(clip(text, 2900)), *blocks]}
