"""Looking into one run: its changes, cost, log, graph and a preview link, for a person who asked.

Independent of Slack's transport. What is asked from a run's card in a channel is answered in
that card's thread, through the outbox (`Delivery.reply_once`: one post per intent, exactly once
across a crash); what is asked privately (a `/runs` command, an ephemeral card) is answered to
the asker alone: a message for them, and files in their direct messages with the bot. Fabro's
typed errors propagate to the caller's boundary.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.exposure import kept_inside
from bot.blocks.inspect import (
    changes_message,
    cost_message,
    failed_lines,
    graph_comment,
    log_comment,
    mark_stage,
    patch_file,
    preview_message,
)
from bot.blocks.replies import notice
from bot.blocks.text import clip, escape
from bot.core.errors import NothingToShow, NotPosted
from bot.core.keys import AlertKey, AlertKind
from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroConflict, FabroError, FabroNotFound, FabroUnavailable
from bot.fabro.models import Run, RunEvent
from bot.fabro.outputs import RunCommits, RunFiles
from bot.people.permissions import ActionClass, Permissions, owner_lookup
from bot.slack.webapi import slack_error
from bot.store.base import Store
from bot.telling.delivery import Delivery

__all__ = ["DEFAULT_LOG_MAX_BYTES", "PREVIEW_SECONDS", "Inspector", "Look", "Thread", "svg_to_png"]

log = logging.getLogger(__name__)

Message = dict[str, Any]
DEFAULT_LOG_MAX_BYTES = 5 * 1024 * 1024
PREVIEW_SECONDS = 3600  # how long a preview link works
_PREVIEWING = "open a preview of a run's sandbox"


class Look(enum.Enum):
    """What a person can look at in a run."""

    CHANGES = "changes"
    COST = "cost"
    LOGS = "logs"
    GRAPH = "graph"
    PATCH = "patch"


@dataclass(frozen=True)
class Thread:
    """A run's thread in a channel: where what a person asked from its card is answered."""

    channel: str
    ts: str


_ROOT = re.compile(r"<svg\b[^>]*>", re.S)
_POINTS = re.compile(r'\b(width|height)="([0-9.]+)pt"')


def svg_to_png(svg: str) -> bytes:
    """An SVG drawn as PNG with resvg (a Rust renderer bundled in its wheel: no system library).

    Graphviz sizes its drawing in points, which this binding refuses: they become pixels (4/3 each)."""
    import resvg_py

    def pixels(match: re.Match[str]) -> str:
        return f'{match.group(1)}="{float(match.group(2)) * 4 / 3:.2f}"'

    root = _ROOT.search(svg)
    if root is not None:
        svg = svg[: root.start()] + _POINTS.sub(pixels, root.group(0)) + svg[root.end() :]
    return bytes(resvg_py.svg_to_bytes(svg_string=svg, background="#ffffff", zoom=1.5))


async def _never_external(_: str) -> bool:
    return False


@dataclass
class Inspector:
    fabro: FabroClient
    store: Store
    slack: AsyncWebClient
    clock: Callable[[], datetime]
    outbox: Delivery  # each reply and upload once, in the run's thread
    # Who may open a preview: `ALLOW_OPERATE`, as its link lets anyone into the run's sandbox.
    permissions: Permissions | None = None
    owner_of: Callable[[Run], Awaitable[str | None]] | None = None  # for a rule naming `owner`
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES
    # A channel shared with another organisation under EXTERNAL_CHANNELS=minimal: nothing of the run is posted there.
    external: Callable[[str], Awaitable[bool]] = _never_external
    command: str = "/runs"  # where a refused look is offered privately
    render_png: Callable[[str], bytes] | None = svg_to_png

    # -- messages, for whoever asked ---------------------------------------------------------

    async def changes(self, selector: str, *, with_patch: bool = True) -> Message:
        run = await self.fabro.find_run(selector)
        files, commits_read = await asyncio.gather(self._files(run.id), self._commits(run.id))
        commits, problem = commits_read
        return changes_message(run, files, commits, commits_problem=problem, with_patch=with_patch)

    async def cost(self, selector: str) -> Message:
        run = await self.fabro.find_run(selector)
        try:
            billing = await self.fabro.run_billing(run.id)
        except FabroNotFound as exc:
            raise NothingToShow(f"Fabro has no cost of this run to show ({_detail_of(exc)}).") from exc
        return cost_message(run, billing)

    async def _files(self, run_id: str) -> RunFiles:
        """The changed files; a run whose sandbox never was, or cannot be read just now, is said so."""
        try:
            return await self.fabro.run_files(run_id)
        except FabroNotFound as exc:
            raise NothingToShow(f"Fabro has no changes of this run to show ({_detail_of(exc)}).") from exc
        except FabroUnavailable as exc:
            if exc.status != 503 or exc.ours:
                raise
            said = f"Fabro could not read this run's sandbox just now ({_detail_of(exc)}): try again in a minute."
            raise NothingToShow(said) from exc

    async def preview(self, selector: str, port: int, user_id: str | None) -> Message:
        """A signed link to a port of the run's sandbox, for the asker alone. It is a secret: it is
        returned to be shown ephemerally, and never logged."""
        run = await self.fabro.find_run(selector)
        if self.permissions is not None:
            if user_id is None:
                raise self.permissions.refusal(ActionClass.OPERATE, _PREVIEWING)
            owner = owner_lookup(self.fabro.get_run, self.owner_of, run.id)
            await self.permissions.check(ActionClass.OPERATE, user_id, owner, what=_PREVIEWING)
        try:
            url = await self.fabro.preview_url(run.id, port, PREVIEW_SECONDS)
        except (FabroConflict, FabroNotFound) as exc:
            said = f"Fabro has no preview for port {port} of this run: {exc.detail}"
            return notice(said.rstrip(".") + ".", icon=":warning:")
        log.info("gave user=%s a preview link to port %s of run %s", user_id, port, run.id)
        return preview_message(run, port, url, self.clock() + timedelta(seconds=PREVIEW_SECONDS))

    async def _commits(self, run_id: str) -> tuple[RunCommits | None, str | None]:
        """The commits, or why there are none to show: the sandbox may be gone while the patch is kept."""
        try:
            return await self.fabro.run_commits(run_id), None
        except (FabroConflict, FabroNotFound) as exc:
            return None, exc.detail
        except FabroError as exc:
            return None, f"Fabro could not read them ({exc.detail})"

    # -- in a run's thread, once per intent ----------------------------------------------------

    async def reply(self, look: Look, run_id: str, thread: Thread, intent: str) -> None:
        """Answer `look` in the run's thread; a repeat of the same intent posts nothing. What Slack
        refuses (the bot is not in the channel…) is told to the asker as `NotPosted`."""
        try:
            await self._reply(look, run_id, thread, intent)
        except SlackApiError as exc:
            raise NotPosted(slack_error(exc)) from exc

    async def _reply(self, look: Look, run_id: str, thread: Thread, intent: str) -> None:
        key = AlertKey(AlertKind.REPLY, run_id, f"{look.value}.{intent}")
        if await self.external(thread.channel):
            refused = kept_inside(look.value, run_id=run_id, command=self.command)
            await self.outbox.reply_once(key, thread.channel, refused, thread_ts=thread.ts)
            return
        if look in (Look.CHANGES, Look.COST):
            message = await (self.changes(run_id) if look is Look.CHANGES else self.cost(run_id))
            await self.outbox.reply_once(key, thread.channel, message, thread_ts=thread.ts)
            return
        await self.send_file(look, run_id, thread.channel, thread.ts, intent)

    async def send_file(self, look: Look, run_id: str, channel: str, thread_ts: str | None, intent: str) -> None:
        """The run's log, patch or graph as a file in `channel` (a thread, or a direct message)."""
        run = await self.fabro.get_run(run_id)
        key = AlertKey(AlertKind.REPLY, run_id, f"{look.value}.{intent}")
        filename, content, title, comment = await self._file(look, run)
        # The name carries the intent: after a crash, the file is found again by its name.
        filename = f"{run.id[:10].lower()}-{intent[:8]}-{filename}"
        await self.outbox.upload_once(
            key,
            channel,
            filename=filename,
            content=content,
            title=title,
            comment=comment,
            thread_ts=thread_ts,
        )

    async def privately(self, look: Look, selector: str, user_id: str, intent: str) -> Message:
        """A file asked for privately goes to the asker's direct messages; the message says so."""
        run = await self.fabro.find_run(selector)
        try:
            opened = await self.slack.conversations_open(users=user_id)
            channel = str((opened.get("channel") or {}).get("id") or "")
            await self.send_file(look, run.id, channel, None, intent)
        except SlackApiError as exc:
            raise NotPosted(slack_error(exc)) from exc
        return notice(f"The run's {_noun(look)} is in your direct messages with me.")

    async def _file(self, look: Look, run: Run) -> tuple[str, bytes, str, str]:
        if look is Look.LOGS:
            return await self._log(run)
        if look is Look.PATCH:
            files = await self._files(run.id)
            comment = f"The full patch of *{_escaped_title(run)}* ({len(files.data)} files)."
            return "changes.patch", patch_file(run, files).encode(), "Patch", comment
        return await self._graph(run)

    async def _log(self, run: Run) -> tuple[str, bytes, str, str]:
        try:
            tail, size = await self.fabro.run_log(run.id, self.log_max_bytes)
        except FabroNotFound as exc:
            raise NothingToShow(f"Fabro has no log of this run ({_detail_of(exc)}).") from exc
        stage, lines = None, None
        if run.bucket == "failed":
            stage, lines = await self._failed_stage(run.id)
        comment = log_comment(run, size=size, kept=len(tail), stage=stage, tail=lines)
        return "run.log", tail, "Run log", comment

    async def _failed_stage(self, run_id: str) -> tuple[str | None, str | None]:
        """The failed stage and its last lines, from the run's latest `run.failed` and `stage.failed`."""
        try:
            events = await self.fabro.recent_events(run_id)
        except FabroError as exc:
            log.info("could not read the events of %s for its failed stage: %r", run_id, exc)
            return None, None
        failed = next((e for e in events if e.event == "run.failed"), None)
        stage_failed = next((e for e in events if e.event == "stage.failed"), None)
        stage = stage_failed.node_label or stage_failed.node_id if stage_failed else None
        said = _exec_tail(failed) or _exec_tail(stage_failed) or _message(stage_failed) or _message(failed)
        return stage, said

    async def _graph(self, run: Run) -> tuple[str, bytes, str, str]:
        current = await self._current_stage(run.id)
        why_not: str | None = None
        try:
            svg: str | None = await self.fabro.run_graph(run.id)
        except FabroNotFound as exc:
            raise NothingToShow(f"Fabro has no graph of this run ({_detail_of(exc)}).") from exc
        except FabroError as exc:
            svg, why_not = None, f"Fabro could not draw it: {exc.detail}"
        if svg is not None and self.render_png is not None:
            marked_svg, marked = mark_stage(svg, current)
            try:
                png = await asyncio.to_thread(self.render_png, marked_svg)
                comment = graph_comment(run, current, marked=marked, as_image=True)
                return "graph.png", png, "Workflow graph", comment
            except (ValueError, OSError) as exc:
                why_not = f"the SVG could not be drawn: {type(exc).__name__}"
        elif svg is not None:
            why_not = "no image renderer is installed"
        try:
            dot = await self.fabro.graph_source(run.id)
        except FabroNotFound as exc:
            raise NothingToShow(f"Fabro has no graph of this run ({_detail_of(exc)}).") from exc
        comment = graph_comment(run, current, marked=False, as_image=False, why_not=why_not)
        return "graph.dot", dot.encode(), "Workflow graph (DOT)", comment

    async def _current_stage(self, run_id: str) -> str | None:
        try:
            stages = await self.fabro.stages(run_id)
        except FabroError:
            return None
        active = [s for s in stages if s.status in ("running", "retrying")]
        failed = [s for s in stages if s.status == "failed"]
        chosen = (active or failed or stages[-1:])[-1:]
        return (chosen[0].node_id or chosen[0].name) if chosen else None


def _detail_of(error: FabroError) -> str:
    """Fabro's own words for a failure, as a clause (at most a line, without its closing stop), and
    the request id to look it up by."""
    said = clip(error.detail.strip().splitlines()[0] if error.detail.strip() else "no reason given", 200).rstrip(".")
    return f"{said}; request id {error.request_id}" if error.request_id else said


def _noun(look: Look) -> str:
    return {Look.LOGS: "log", Look.PATCH: "patch", Look.GRAPH: "graph"}.get(look, look.value)


def _escaped_title(run: Run) -> str:
    return clip(escape(run.title or run.id), 150)


def _detail(event: RunEvent | None) -> dict[str, Any]:
    """A failure's detail: `run.failed` nests it under `failure.detail`, `stage.failed` has it in `failure`."""
    failure = event.properties.get("failure") if event is not None else None
    if not isinstance(failure, dict):
        return {}
    detail = failure.get("detail")
    return detail if isinstance(detail, dict) else failure


def _exec_tail(event: RunEvent | None) -> str | None:
    """The last lines of the failed command's output (`exec_output_tail`, stdout then stderr)."""
    tail = _detail(event).get("exec_output_tail")
    if not isinstance(tail, dict):
        return None
    return failed_lines("\n".join(str(tail[k]) for k in ("stdout", "stderr") if isinstance(tail.get(k), str)))


def _message(event: RunEvent | None) -> str | None:
    message = _detail(event).get("message")
    return failed_lines(message) if isinstance(message, str) else None
