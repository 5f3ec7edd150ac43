"""Words for people: how long things take, as a countdown or a log line shows them."""

from __future__ import annotations


def duration_text(seconds: float) -> str:
    """A duration as people read it: 42 s, 12 min 03 s, 3 h 10 min, 2 d 4 h."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
