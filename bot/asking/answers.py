"""From a parsed `/runs` request to the message that answers it, through Fabro.

Independent of Slack's transport, so the slash command, the paging buttons and `preview`
share it. Fabro's typed errors propagate to the caller's boundary (`bot.listeners.boundary`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bot.blocks.presentation import Presentation
from bot.blocks.replies import notice
from bot.blocks.runs import Scanned, run_detail_message, run_list_message
from bot.core.query import MAX_OFFSET, RunLookup, RunQuery
from bot.fabro.client import ULID_LENGTH, FabroClient
from bot.fabro.errors import FabroError, FabroNotFound
from bot.fabro.filters import RunFilter
from bot.fabro.models import ListMeta, Run, RunList
from bot.people.identity import Linker
from bot.people.mine import my_runs

__all__ = ["MINE_NEEDS_SLACK", "NOTHING_OF_YOURS", "NOT_LINKED", "SCAN_PAGE", "SCAN_PAGES", "Answerer"]

log = logging.getLogger(__name__)

Message = dict[str, Any]

SCAN_PAGE = 100  # Fabro's largest page
SCAN_PAGES = 3  # a filtered listing reads at most this many pages before it shows what it found
MINE_NEEDS_SLACK = "Runs are yours by your Slack account: run `{command} {words}` in Slack."
NOT_LINKED = (
    "You are not linked to a Fabro login, so runs you start in Fabro are not known to be yours:"
    " link your GitHub login with `{command} link <login>`."
)
NOTHING_OF_YOURS = (
    "No runs of yours seen yet. Runs you start or retry from Slack are yours;"
    " so are runs started in Fabro by your linked login (`{command} whoami` shows it)."
)


@dataclass
class Answerer:
    fabro: FabroClient
    clock: Callable[[], datetime]
    presentation: Presentation = field(default_factory=Presentation)
    linker: Linker | None = None  # whose runs are whose; None where there is no Slack account (the CLI)

    async def listing(self, query: RunQuery, user_id: str | None = None) -> Message:
        """One page of the listing; `user_id` (the person asking) is needed for `mine` and `by:me`."""
        if query.parent_id and len(query.parent_id) != ULID_LENGTH:
            # Fabro's parent_id takes a full run id only: a prefix is resolved first, as /runs <id> does.
            parent = await self.fabro.find_run(query.parent_id)
            query = replace(query, parent_id=parent.id)
        narrow = query.narrow
        logins: list[str] = []
        if narrow.mine or narrow.by_me:
            if self.linker is None or user_id is None:
                return notice(MINE_NEEDS_SLACK.format(command=self.presentation.command, words=query.text()))
            pinned, linked = await self.linker.logins_of(user_id)
            logins = pinned + linked
            if narrow.by_me and not logins:
                return notice(NOT_LINKED.format(command=self.presentation.command))
        if narrow.mine:
            assert self.linker is not None and user_id is not None
            return await self._mine(query, user_id, logins)
        if narrow.filters:
            return await self._scan(query, frozenset(logins))
        page = await self.fabro.list_runs(query)
        return self._message(query, page)

    def _message(
        self, query: RunQuery, page: RunList, *, scanned: Scanned | None = None, note: str | None = None
    ) -> Message:
        return run_list_message(
            query,
            page,
            now=self.clock(),
            web_base=self.presentation.web_base,
            command=self.presentation.command,
            scanned=scanned,
            note=note,
        )

    async def _scan(self, query: RunQuery, logins: frozenset[str]) -> Message:
        """Read Fabro's pages from the query's offset and keep the runs the bot's own filters accept,
        until a page's worth is found or `SCAN_PAGES` pages were read (a rare match must not read all of Fabro)."""
        kept: list[Run] = []
        ends: list[int] = []
        offset, read, unreadable = query.offset, 0, 0
        next_offset: int | None = offset
        for _ in range(SCAN_PAGES):
            page = await self.fabro.list_runs(_fabro_part(query, offset))
            unreadable += page.unreadable
            consumed = 0
            for run in page.data:
                consumed += 1
                if query.narrow.accepts(run, logins):
                    kept.append(run)
                    # Runs Fabro sent that could not be read are not counted: a later page may repeat
                    # one run, never skip one.
                    ends.append(offset + consumed)
                    if len(kept) == query.limit:
                        break
            read += consumed
            if len(kept) == query.limit:
                rest = consumed < len(page.data) or page.meta.has_more
                next_offset = offset + consumed if rest else None
                break
            offset += len(page.data) + page.unreadable
            next_offset = offset
            if not page.meta.has_more or not page.data:
                next_offset = None
                break
        if next_offset is not None and next_offset > MAX_OFFSET:
            next_offset = None
        scanned = Scanned(read=read, ends=tuple(ends), next_offset=next_offset)
        return self._message(query, RunList(data=kept, unreadable=unreadable), scanned=scanned)

    async def _mine(self, query: RunQuery, user_id: str, logins: list[str]) -> Message:
        """The caller's runs from the bot's index (the owner rule), each read fresh from Fabro for its card."""
        assert self.linker is not None
        mine = await my_runs(
            self.linker.store,
            user_id,
            logins,
            limit=query.limit,
            offset=query.offset,
            statuses=query.statuses,
            include_archived=query.include_archived,
            order=query.sort or "updated_at",
            ascending=query.direction == "asc",
        )
        note = None if logins else NOT_LINKED.format(command=self.presentation.command)
        if not mine.entries and query.offset == 0 and not query.statuses:
            said = NOTHING_OF_YOURS.format(command=self.presentation.command)
            return notice(f"{said}\n{note}" if note else said)
        runs = await self._read_runs([e.run_id for e in mine.entries])
        gone = len(mine.entries) - len(runs)
        if gone:
            note = " ".join(filter(None, [note, f"{gone} run(s) the bot knew of are no longer in Fabro."]))
        if query.narrow.filters:
            kept = [(i, r) for i, r in enumerate(runs) if query.narrow.accepts(r, frozenset(logins))]
            last = query.offset + len(mine.entries)
            scanned = Scanned(
                read=len(mine.entries),
                ends=tuple(query.offset + i + 1 for i, _ in kept),
                next_offset=last if last < mine.total else None,
            )
            page = RunList(data=[r for _, r in kept])
            return self._message(query, page, scanned=scanned, note=note)
        has_more = query.offset + len(mine.entries) < mine.total
        page = RunList(data=runs, meta=ListMeta(has_more=has_more, total=mine.total))
        return self._message(query, page, note=note)

    async def _read_runs(self, run_ids: list[str]) -> list[Run]:
        """The runs, in the order given; one Fabro no longer has is left out (a deleted run costs only itself)."""
        gate = asyncio.Semaphore(8)

        async def one(run_id: str) -> Run | None:
            async with gate:
                try:
                    return await self.fabro.get_run(run_id)
                except FabroNotFound:
                    return None

        found = await asyncio.gather(*(one(run_id) for run_id in run_ids))
        return [run for run in found if run is not None]

    async def detail(self, lookup: RunLookup) -> Message:
        run = await self.fabro.find_run(lookup.selector)
        failure, retried_as = None, None
        if run.status.kind in ("failed", "dead"):
            try:
                failure = await self.fabro.latest_failure(run.id)
                # Retry is offered only where Fabro shows no retry of it yet; else the card says where it is.
                retried_as = next(iter(await self.fabro.successors(run)), None)
            except FabroError as exc:
                # The card is still worth showing without the failure message.
                log.warning("could not read run.failed or the retries of %s: %r", run.id, exc)
        web_base = self.presentation.web_base
        return run_detail_message(run, now=self.clock(), failure=failure, web_base=web_base, retried_as=retried_as)


def _fabro_part(query: RunQuery, offset: int) -> RunFilter:
    """What Fabro is asked for a filtered listing: the same statuses and order, a whole page at `offset`."""
    return RunFilter(
        statuses=query.statuses,
        sort=query.sort,
        direction=query.direction,
        limit=SCAN_PAGE,
        offset=offset,
        parent_id=query.parent_id,
        include_archived=query.include_archived,
    )
