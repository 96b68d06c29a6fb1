"""How the bot's messages point back at things: one value, made once from the settings.  [pure]"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Presentation"]


@dataclass(frozen=True)
class Presentation:
    """What every renderer may need to know beyond the data it shows.

    `web_base`: Fabro's web UI, for links to runs (None: no links, only ids). `command`: the slash
    command's name as installed, for hints ("`/runs failed` lists them").
    """

    web_base: str | None = None
    command: str = "/runs"
