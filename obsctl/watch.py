"""`obsctl watch`: the daemon and its run on one screen, redrawn a few times a second.

It costs the daemon what a tail costs: two one-shot reads at the start (`status`, and `events`
filtered to `run_created`, to find where the latest run begins), then one follow-tail from
that run's first event, from which obsctl/watch_screen.py folds the view. Between events the
client redraws on its own clock, so the countdown moves without asking the daemon anything.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sys
import threading
import time
from types import FrameType, TracebackType
from typing import Any, BinaryIO, Final

import msgspec

from obsctl.client import Client, ClientError
from obsctl.time_view import clock_rows
from obsctl.watch_screen import ClockReading, WatchState, screen
from obsd.core.protocol import MAX_EVENTS_PAGE
from obsd.core.replies import ClockHealth

# Often enough for a countdown in tenths to look smooth, seldom enough to cost nothing over SSH.
TICK_S: Final = 0.25
FALLBACK_SIZE: Final = (80, 24)

ENTER: Final = "\x1b[?1049h\x1b[?25l"  # the alternate screen, cursor hidden
LEAVE: Final = "\x1b[?25h\x1b[?1049l"  # cursor shown, the shell's screen back as it was
HOME: Final = "\x1b[H"
CLEAR_LINE: Final = "\x1b[2K"
CLEAR_BELOW: Final = "\x1b[J"


def _data(reply: dict[str, Any], op: str) -> Any:
    if not reply.get("success"):
        raise ClientError(f"{op}: {(reply.get('error') or {}).get('message', reply)}")
    return reply["data"]


def tail_start(client: Client) -> int:
    """The seq to tail after: just before the latest timed run's `run_created`, else the head.

    The active timed run, if any, is the latest created (one starts only when none is
    active); watch runs, which go on beside it, are passed over. The daemon filters the log
    itself: one page, unless the log holds over 1000 runs.
    """
    after, latest, head = 0, None, int(client.greeting["head_seq"])
    while True:
        page = _data(
            client.request("events", after_seq=after, limit=MAX_EVENTS_PAGE, types=["run_created"]),
            "events",
        )
        timed = [item for item in page["items"] if not item["payload"].get("watch")]
        if timed:
            latest = int(timed[-1]["seq"])
        head = int(page["head_seq"])
        if not page["has_more"]:
            break
        after = int(page["next_after_seq"])
    return head if latest is None else latest - 1


def initial_state(client: Client) -> WatchState:
    """The view before any event: the daemon's name, and the clock as `status` judges it."""
    status = _data(client.request("status"), "status")
    state = WatchState(
        server=str(client.greeting.get("server", "?")),
        instance=status.get("daemon", {}).get("instance"),
        clock=_reading(),
    )
    try:
        clock = msgspec.convert(status["clock"], ClockHealth)
    except (KeyError, msgspec.ValidationError):
        return state  # A daemon of another version: the first calibration event will tell.
    state.time_verdict = clock_rows(clock)[0][1]
    state.sources = list(clock.sources)
    if clock.ntp_offset_ms is not None:
        state.offset_ns = round(clock.ntp_offset_ms * 1e6)
    return state


def _reading() -> ClockReading:
    return ClockReading(time.monotonic(), time.time_ns())


def _read_lines(client: Client, lines: queue.Queue[bytes | ClientError]) -> None:
    """Hand every line of the tail to the main thread, then the error that ended it.

    A thread, not select() on the socket: Client keeps lines it has already received in its
    own buffer, where select() would not see them.
    """
    try:
        for line in client.stream():
            lines.put(line)
    except ClientError as exc:
        lines.put(exc)


class Terminal:
    """The alternate screen while watching; the terminal as it was on the way out, however."""

    def __init__(self, out: BinaryIO, fd: int, encoding: str) -> None:
        self._out, self._fd, self._encoding = out, fd, encoding

    def __enter__(self) -> Terminal:
        self._previous = signal.signal(signal.SIGTERM, _terminated)
        self._write(ENTER)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # An OSError: the terminal is gone (the SSH session dropped), nothing to restore.
        with contextlib.suppress(OSError):
            self._write(LEAVE)
        signal.signal(signal.SIGTERM, self._previous)

    def size(self) -> tuple[int, int]:
        """Columns and rows now: read at each redraw, so that a resized window is filled."""
        try:
            columns, rows = os.get_terminal_size(self._fd)
        except OSError:
            return FALLBACK_SIZE
        return (columns or FALLBACK_SIZE[0], rows or FALLBACK_SIZE[1])

    def draw(self, lines: list[str]) -> None:
        """Paint `lines` from the top-left corner, clearing whatever the last frame left."""
        _, rows = self.size()
        # Each line is cleared before it is written: clearing after a line that fills the
        # last column would erase that column's character.
        frame = HOME + "\r\n".join(CLEAR_LINE + line for line in lines)
        if len(lines) < rows:
            frame += "\r\n" + CLEAR_BELOW
        self._write(frame)

    def _write(self, text: str) -> None:
        self._out.write(text.encode(self._encoding, "replace"))
        self._out.flush()


def _terminated(signum: int, frame: FrameType | None) -> None:
    # `kill` is a way to stop a watch left running: leave the terminal as it was found.
    raise SystemExit(128 + signum)


def watch(client: Client, after_seq: int, state: WatchState) -> int:
    """Follow the log after `after_seq` on a full screen until Ctrl-C (or the daemon goes)."""
    _data(client.request("tail", after_seq=after_seq, follow=True), "tail")
    lines: queue.Queue[bytes | ClientError] = queue.Queue()
    threading.Thread(target=_read_lines, args=(client, lines), daemon=True).start()
    stdout = sys.stdout
    with Terminal(stdout.buffer, stdout.fileno(), stdout.encoding or "utf-8") as terminal:
        draw_at = 0.0
        while True:
            try:
                item: bytes | ClientError | None = lines.get(
                    timeout=max(0.0, draw_at - time.monotonic())
                )
            except queue.Empty:
                item = None
            if isinstance(item, ClientError):
                raise item  # The terminal is restored first, then cli prints the one line.
            if item is not None:
                state.apply(_decode(item), _reading())
            now = time.monotonic()
            # A replay comes in a burst: fold it all and draw at the ticks; a live event is
            # drawn at once, when nothing else is waiting behind it.
            if now >= draw_at or (item is not None and state.caught_up and lines.empty()):
                columns, rows = terminal.size()
                terminal.draw(screen(state, now, columns, rows))
                draw_at = now + TICK_S


def _decode(line: bytes) -> dict[str, Any]:
    try:
        message = msgspec.json.decode(line)
    except msgspec.DecodeError:
        raise ClientError(f"obsd sent a line that is not JSON: {line[:80]!r}") from None
    return message if isinstance(message, dict) else {}
