"""From a parsed `/runs` request to the message that answers it, through Fabro.

Independent of Slack's transport, so the slash command, the paging buttons and `preview`
share it. Fabro's typed errors propagate to the caller's boundary (`bot.listeners.boundary`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bot.blocks.runs import run_detail_message, run_list_message
from bot.core.query import RunLookup, RunQuery
from bot.fabro.client import ULID_LENGTH, FabroClient
from bot.fabro.errors import FabroError

__all__ = ["Answerer"]

log = logging.getLogger(__name__)

Message = dict[str, Any]


@dataclass
class Answerer:
    fabro: FabroClient
    clock: Callable[[], datetime]
    web_base: str | None = None
    command: str = "/runs"

    async def listing(self, query: RunQuery) -> Message:
        if query.parent_id and len(query.parent_id) != ULID_LENGTH:
            # Fabro's parent_id takes a full run id only: a prefix is resolved first, as /runs <id> does.
            parent = await self.fabro.find_run(query.parent_id)
            query = replace(query, parent_id=parent.id)
        page = await self.fabro.list_runs(query)
        return run_list_message(query, page, now=self.clock(), web_base=self.web_base, command=self.command)

    async def detail(self, lookup: RunLookup) -> Message:
        run = await self.fabro.find_run(lookup.selector)
        failure = None
        if run.status.kind in ("failed", "dead"):
            try:
                failure = await self.fabro.latest_failure(run.id)
            except FabroError as exc:
                # The card is still worth showing without the failure message.
                log.warning("could not read run.failed for %s: %r", run.id, exc)
        return run_detail_message(run, now=self.clock(), failure=failure, web_base=self.web_base)
