"""The one error boundary: whatever goes wrong doing something for a person becomes a message they can read.

Typed errors (`bot.core.errors`, `bot.fabro.errors`) are expected and rendered by
`bot.blocks.replies`; anything else is a bug, logged with its traceback under a
reference the person also sees. Listeners and the CLI call `attempt` and never catch
exceptions themselves.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.asking.dispatch import Caller, Commands, Reply
from bot.blocks.replies import error_message, internal_error_message
from bot.core.errors import BotError, Settled
from bot.core.query import Parsed
from bot.fabro.errors import FabroError

__all__ = ["Failed", "answer_command", "attempt", "new_reference"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def new_reference() -> str:
    """A short id a person can quote and an operator can find in the logs."""
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class Failed:
    """What to tell the person, how to count it, and the card's new state when that is known."""

    message: dict[str, Any]
    status: str
    settled: Settled | None = None


async def attempt(work: Awaitable[T], *, what: str, command: str = "/runs", selector: str | None = None) -> T | Failed:
    try:
        return await work
    except BotError as exc:
        log.info("%s: %s (%s)", what, exc.status, exc)
        return Failed(error_message(exc, command=command), exc.status, exc.settled)
    except FabroError as exc:
        log.info("%s: fabro error %r", what, exc)
        return Failed(error_message(exc, command=command, selector=selector), "fabro_error")
    except Exception:
        reference = new_reference()
        log.exception("%s failed, reference %s", what, reference)
        return Failed(internal_error_message(reference), "error")


async def answer_command(commands: Commands, parsed: Parsed, caller: Caller) -> Reply:
    """A `/runs` command's reply, or what went wrong in words: the command's error boundary."""
    result = await attempt(
        commands.reply(parsed, caller),
        what=f"{commands.command} command",
        command=commands.command,
        selector=commands.selector_of(parsed),
    )
    if isinstance(result, Failed):
        return Reply(result.message, status=result.status)
    return result
