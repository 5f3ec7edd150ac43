"""Newline framing with a hard line limit, fed with bytes (sans-I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# No request needs more; the daemon enforces it itself, whatever the transport buffers.
MAX_LINE_BYTES: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class OversizedLine:
    """A line exceeded the limit; its bytes were discarded up to the next newline."""

    limit: int


class LineFramer:
    """Split a byte stream into lines; an over-long line yields one OversizedLine instead."""

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._max_line = max_line
        self._buffer = bytearray()
        self._discarding = False

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held so far."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes | OversizedLine]:
        """Add received bytes; return the complete lines (without the newline) they finish."""
        out: list[bytes | OversizedLine] = []
        start = 0
        while True:
            newline = data.find(b"\n", start)
            if newline == -1:
                break
            if self._discarding:
                self._discarding = False
            elif len(self._buffer) + newline - start > self._max_line:
                self._buffer.clear()
                out.append(OversizedLine(self._max_line))
            elif self._buffer:
                self._buffer += data[start:newline]
                out.append(bytes(self._buffer))
                self._buffer.clear()
            else:
                out.append(data[start:newline])
            start = newline + 1
        rest = len(data) - start
        if self._discarding or rest == 0:
            return out
        if len(self._buffer) + rest > self._max_line:
            self._buffer.clear()
            self._discarding = True
            out.append(OversizedLine(self._max_line))
        else:
            self._buffer += data[start:]
        return out
