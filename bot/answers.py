"""From a parsed `/runs` request to the message that answers it, through Fabro.

Independent of Slack's transport, so the listeners, `preview` and tests share it.
This is the one error boundary for commands: Fabro's typed errors become friendly
messages; anything unexpected is logged with a reference the user also sees.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.blocks.replies import error_message, internal_error_message
from bot.blocks.runs import run_detail_message, run_list_message
from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroError
from bot.query import RunLookup, RunQuery

__all__ = ["Answer", "Answerer"]

log = logging.getLogger(__name__)

Message = dict[str, Any]


@dataclass(frozen=True)
class Answer:
    message: Message
    failed: bool = False


@dataclass
class Answerer:
    fabro: FabroClient
    clock: Callable[[], datetime]
    web_base: str | None = None
    command: str = "/runs"

    async def query(self, query: RunQuery) -> Answer:
        return await self._safely(lambda: self._list(query))

    async def lookup(self, lookup: RunLookup) -> Answer:
        return await self._safely(lambda: self._detail(lookup), selector=lookup.selector)

    async def _list(self, query: RunQuery) -> Message:
        page = await self.fabro.list_runs(query.params())
        return run_list_message(query, page, now=self.clock(), web_base=self.web_base, command=self.command)

    async def _detail(self, lookup: RunLookup) -> Message:
        run = await self.fabro.find_run(lookup.selector)
        failure = None
        if run.status.kind in ("failed", "dead"):
            try:
                failure = await self.fabro.latest_failure(run.id)
            except FabroError as exc:
                # The card is still worth showing without the failure message.
                log.warning("could not read run.failed for %s: %r", run.id, exc)
        return run_detail_message(run, now=self.clock(), failure=failure, web_base=self.web_base)

    async def _safely(
        self, build: Callable[[], Awaitable[Message]], *, selector: str | None = None
    ) -> Answer:
        try:
            return Answer(await build())
        except FabroError as exc:
            log.info("fabro error answering %s: %r", self.command, exc)
            return Answer(error_message(exc, command=self.command, selector=selector), failed=True)
        except Exception:
            reference = uuid.uuid4().hex[:12]
            log.exception("unexpected error answering %s, reference %s", self.command, reference)
            return Answer(internal_error_message(reference), failed=True)
