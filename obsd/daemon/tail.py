"""`tail`: replay from disk, a caught_up marker, then live events; no gaps, no duplicates.

The subscription is taken before the replay, so nothing appended meanwhile can be missed;
every line carries its seq, so anything already sent is skipped. A reader too slow for the
live queue loses the queue (the appender never waits) and goes back to the disk, which
holds everything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from obsd.adapters.eventlog import EventLog
from obsd.core.protocol import CaughtUp, encode_line
from obsd.daemon.journal import Journal, Subscription

Send = Callable[[bytes], Awaitable[None]]

# What a tail reads from disk at a time. A client that stops reading holds the chunk being
# sent (beyond what its socket buffer took) for as long as it stalls: small, so that
# hundreds of stalled tails cost a few MiB, not one 256 KiB read each.
TAIL_CHUNK_BYTES: Final = 8 * 1024


async def stream_tail(
    journal: Journal, send: Send, after_seq: int, *, follow: bool, log_id: str | None
) -> None:
    """Send every event after `after_seq`, the caught_up marker, then (with follow) live ones."""
    subscription = journal.subscribe() if follow else None
    try:
        cursor = await _replay(journal.log, send, after_seq, subscription)
        await send(encode_line(CaughtUp(after_seq=cursor, log_id=log_id)))
        while subscription is not None:
            while (lines := await subscription.take(cursor)) is not None:
                await send(b"".join(line for _, line in lines))
                cursor = lines[-1][0]
            cursor = await _replay(journal.log, send, cursor, subscription)
    finally:
        if subscription is not None:
            journal.unsubscribe(subscription)


async def _replay(log: EventLog, send: Send, cursor: int, subscription: Subscription | None) -> int:
    """Send from disk up to the head; return the last seq sent."""
    if subscription is not None:
        # Lines queued from here on are newer than what the disk read below may miss.
        subscription.restart()
    while cursor < log.head_seq:
        chunk = await log.read_after(cursor, TAIL_CHUNK_BYTES)
        await send(chunk)
        cursor += chunk.count(b"\n")
    return cursor
