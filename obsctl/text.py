"""Small formatting rules shared by every human-readable view."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def local_time(timestamp: str) -> str:
    """An ISO-8601 instant as local HH:MM:SS.mmm (the operator's own clock face)."""
    try:
        return datetime.fromisoformat(timestamp).astimezone().strftime("%H:%M:%S.%f")[:-3]
    except ValueError:
        return timestamp


def value(item: Any) -> str:
    """A JSON value compactly: lists comma-joined, objects as {k=v}, null as '-'."""
    if isinstance(item, list):
        return ",".join(value(v) for v in item) or "-"
    if isinstance(item, dict):
        return "{" + " ".join(f"{k}={value(v)}" for k, v in item.items()) + "}"
    return "-" if item is None else str(item)


def rows(pairs: list[tuple[str, Any]]) -> str:
    """Aligned `name  value` lines."""
    width = max(len(name) for name, _ in pairs)
    return "\n".join(f"{name:<{width}}  {value(item)}" for name, item in pairs)
