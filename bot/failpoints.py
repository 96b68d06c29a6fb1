"""Named points where a test can have the process killed, to prove crash safety.

`FABRO_SLACK_BOT_CRASH_AT=alert.posted` makes the process SIGKILL itself the first time
it reaches `crash_point("alert.posted")`: no cleanup, no flush, exactly like `kill -9`.
Unset (always, outside tests) it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

__all__ = ["CRASH_AT_ENV", "crash_point"]

CRASH_AT_ENV = "FABRO_SLACK_BOT_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
