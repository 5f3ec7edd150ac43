"""Saying a repeated failure once, with a count, instead of once per retry.

A struggling daemon retries: accept() under fd exhaustion every 100 ms, a keep-alive probe to an
unreachable OBS every 5 s, an NTP re-check every 10 minutes. A line per retry buries the journal
and the tail, so a failure is said when it starts, again only when its count reaches 10, 100,
1000, ... (a storm of any length costs a handful of lines), and once more when it ends.
"""

from __future__ import annotations

from typing import Final

from obsd.core.status_text import duration_text
from obsd.core.timing import NS

# Counts at which a failure that goes on is said again: each power of ten.
_SAY_AGAIN_BASE: Final = 10


class RepeatedFailure:
    """The lines worth logging about one thing that keeps failing (sans-I/O: pass the time)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0
        self._since_ns = 0
        self._next_said = 1

    def failed(self, detail: str, now_ns: int) -> str | None:
        """Count a failure; return the line to log, or None when it only repeats."""
        if self.count == 0:
            self._since_ns = now_ns
        self.count += 1
        if self.count < self._next_said:
            return None
        self._next_said *= _SAY_AGAIN_BASE
        if self.count == 1:
            return f"{self.what} failed: {detail}"
        return (
            f"{self.what} failed {self.count} times in {self._lasted(now_ns)} (said again "
            f"at {self._next_said}); last: {detail}"
        )

    def succeeded(self, now_ns: int) -> str | None:
        """Note a success; return the line to log if it ends a run of failures."""
        if self.count == 0:
            return None
        failures = "1 failure" if self.count == 1 else f"{self.count} failures"
        line = f"{self.what} works again after {failures} in {self._lasted(now_ns)}"
        self.count = 0
        self._next_said = 1
        return line

    def _lasted(self, now_ns: int) -> str:
        return duration_text((now_ns - self._since_ns) / NS)
