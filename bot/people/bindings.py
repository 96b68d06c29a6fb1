"""Windows and confirmations bound on the server: each is opened for one person and one thing.

Opening a window (Answer…, Deny…, Merge…, Steer…, Ask…, the start picker) or showing a start
confirmation (of an automation, or of work asked for in a conversation, whose Edit… window shares
it) stores a nonce with who it is for, what it acts on, and until when. The window carries the
nonce back in its metadata (a confirmation's button in its intent); a submission or a confirm
click is only acted on when its nonce is live and names the same person and the same thing. A
payload shaped right but made up, one replayed by someone else, or one from a window left open too
long reaches nothing.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.core.records import Binding
from bot.store.base import Bindings as BindingStore

__all__ = ["PICKER", "WINDOW_LIFE", "WORK", "Bindings", "start_purpose"]

log = logging.getLogger(__name__)

PICKER = "start"  # what the start picker window is opened for (any automation it lists)
WORK = "work"  # what a confirmation of work is shown for: its draft, which its nonce (the intent) names


def start_purpose(automation_id: str) -> str:
    """What a start confirmation is shown for: starting that automation."""
    return f"start:{automation_id}"


# How long an opened window or a confirmation may be submitted: a person may take a while to write.
WINDOW_LIFE = timedelta(hours=1)


@dataclass
class Bindings:
    store: BindingStore
    clock: Callable[[], datetime]
    life: timedelta = WINDOW_LIFE

    async def issue(self, user_id: str, what: str, *, nonce: str | None = None) -> str:
        """Record that `user_id` was shown a window or confirmation for `what`; returns its nonce."""
        nonce = nonce or secrets.token_hex(16)
        await self.store.add_binding(Binding(nonce, user_id, what, self.clock() + self.life))
        return nonce

    async def holds(self, nonce: str | None, user_id: str | None, what: str) -> bool:
        """Whether a submission by `user_id` carrying `nonce` is one the bot opened for them, for `what`, still live."""
        binding = await self.store.binding(nonce) if nonce else None
        if binding is None:
            log.warning("a submission for %s by user=%s carries no window the bot opened", what, user_id)
            return False
        if binding.user_id != user_id or binding.what != what:
            log.warning("a submission for %s by user=%s was opened for someone or something else", what, user_id)
            return False
        if binding.until < self.clock():
            log.info("a submission for %s by user=%s came after its window expired", what, user_id)
            return False
        return True
