"""Durations as people write them in settings (`90s`, `30m`, `2h`, `1d`) and read them in messages.  [pure]"""

from __future__ import annotations

from datetime import timedelta

__all__ = ["parse_duration", "waited"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str | None) -> timedelta | None:
    """`90s`, `30m`, `2h`, `1d` → a duration; `off` (or empty) → None. Raises ValueError otherwise."""
    text = (value or "").strip().lower()
    if text in ("", "off", "none", "0"):
        return None
    number, unit = text[:-1], text[-1:]
    if unit not in _UNITS or not number.isascii() or not number.isdigit() or int(number) <= 0:
        raise ValueError(f"must be a duration like 90s, 30m, 2h or 1d, or off; not {value!r}")
    return timedelta(seconds=int(number) * _UNITS[unit])


def waited(delta: timedelta) -> str:
    """How long, in words a person reads at a glance: `45 min`, `2 h 5 min`, `3 days`."""
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return f"{max(1, minutes)} min"
    if minutes < 48 * 60:
        hours, rest = divmod(minutes, 60)
        return f"{hours} h" + (f" {rest} min" if rest else "")
    return f"{minutes // (24 * 60)} days"
