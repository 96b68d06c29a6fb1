"""How much of a run a conversation may see: everything, or what stays safe with another organisation.  [pure]"""

from __future__ import annotations

import enum

__all__ = ["Exposure", "ExternalChannels"]


class ExternalChannels(enum.StrEnum):
    """`EXTERNAL_CHANNELS`: what the bot shows in a channel shared with another organisation."""

    MINIMAL = "minimal"  # status, title and link only
    FULL = "full"  # the same as anywhere else


class Exposure(enum.StrEnum):
    """What one message may show, decided once per conversation and passed down to the renderer.

    `FULL`: everything (an internal channel, a direct message, a reply only its asker sees).
    `MINIMAL`: a channel shared with another organisation under `EXTERNAL_CHANNELS=minimal`: a run's
    status, title and link, and nothing a person or an agent wrote (questions, failures, steering,
    answers, changes, logs, costs).
    """

    FULL = "full"
    MINIMAL = "minimal"

    @property
    def minimal(self) -> bool:
        return self is Exposure.MINIMAL
