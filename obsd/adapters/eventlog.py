"""The event log on disk: append-only JSON Lines segments, replay, repair, durable writes.

Storage only: the daemon's Journal decides what is written and folds it. A write puts the whole
line in the file at once (readers see it from then on); durability is a separate,
group-committed `fdatasync` run in a worker thread, so many writes share one sync and the event
loop never blocks on the disk.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import shutil
import time
import uuid
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import anyio
import msgspec

from obsd import __version__
from obsd.adapters.files import fsync_dir, reserve_space
from obsd.core.events import (
    Event,
    LogCreatedPayload,
    LogRepairedPayload,
    encode_event,
    make_event,
)
from obsd.core.logformat import (
    Damage,
    SegmentDamage,
    scan_segment,
    segment_first_seq,
    segment_name,
)

# Segments rotate at this size so that no file grows without bound and a damaged file
# costs only its own records; large enough that rotation is rare (about 100k events).
DEFAULT_SEGMENT_BYTES: Final = 16 * 1024 * 1024
# Tail and `events` read the disk in chunks of this size: large enough for throughput,
# small enough that one read never holds the event loop noticeably.
READ_CHUNK_BYTES: Final = 256 * 1024


class LogUnavailable(Exception):
    """The log refuses appends: it is damaged in the middle, or a write or sync failed."""


class LogDamaged(LogUnavailable):
    """A record in the middle of the log is bad; nothing may be appended after it."""


class StorageFailed(LogUnavailable):
    """A write or fdatasync failed; its data may be lost, so it is never retried."""


@dataclass(slots=True)
class _Segment:
    first_seq: int
    path: Path
    offsets: array[int] = field(default_factory=lambda: array("q"))
    size: int = 0


class EventLog:
    """An open, replayed log directory; use `EventLog.open`."""

    def __init__(
        self,
        directory: Path,
        segments: list[_Segment],
        head_seq: int,
        damage: SegmentDamage | None,
        visit: Callable[[Event], None],
        segment_bytes: int,
        now_ns: Callable[[], int],
    ) -> None:
        self.directory = directory
        # Sees the log's own lineage events (log_created, log_repaired) as they are written.
        self._visit = visit
        self._segments = segments
        self._first_seqs = [s.first_seq for s in segments]
        self.head_seq = head_seq
        self.durable_seq = head_seq
        self.damage = damage
        self.failure: str | None = None
        # How many events were read back from disk when the log was opened.
        self.replayed = head_seq
        self._segment_bytes = segment_bytes
        # The current segment holds allocated room up to here (see reserve).
        self._reserved_until = 0
        self._now_ns = now_ns
        self._fd = -1
        if damage is None:
            self._fd = _open_append(segments[-1].path)
        # Descriptors of rotated-out segments, synced and closed by the next group commit.
        self._retired_fds: list[int] = []
        self._dir_sync_due = False
        self._sync_lock = anyio.Lock()

    # -- opening and replay -------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path,
        visit: Callable[[Event], None],
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> EventLog:
        """Replay every segment into `visit`, repair a torn tail, create the log if new.

        `visit` also sees the lineage events the log writes itself here. A record `visit`
        refuses (RecordRefused) is damage, like an undecodable one, and is never cut off.
        """
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Anything named like a segment counts: a directory or a link in its place is damage,
        # never a segment to skip (its records would be lost without a word).
        entries = sorted(
            (first, entry)
            for entry in os.scandir(directory)
            if (first := segment_first_seq(entry.name)) is not None
        )
        segments: list[_Segment] = []
        expected = 1
        damage: SegmentDamage | None = None
        repair: LogRepairedPayload | None = None
        for index, (first, entry) in enumerate(entries):
            name = entry.name
            path = directory / name
            if first != expected:
                damage = SegmentDamage(
                    segment=name,
                    offset=0,
                    line=1,
                    reason=f"segment starts at seq {first}, not {expected}",
                )
                break
            if not entry.is_file(follow_symlinks=False):
                damage = SegmentDamage(
                    segment=name,
                    offset=0,
                    line=1,
                    reason=f"{_kind(entry)} where a segment file belongs",
                )
                break
            with _mapped(path) as data:
                scan = scan_segment(data, expected, visit)
                size = len(data)
            segments.append(_Segment(first, path, scan.offsets, scan.valid_end))
            expected += len(scan.offsets)
            if scan.damage is None:
                continue
            is_last = index == len(entries) - 1
            if is_last and not scan.damage.valid_after and not scan.damage.refused:
                repair = _repair_torn_tail(path, size, scan.damage)
            else:
                damage = _located(name, scan.damage)
            break
        head = expected - 1
        if not segments:
            segments.append(_Segment(1, directory / segment_name(1)))
        log = cls(directory, segments, head, damage, visit, segment_bytes, now_ns)
        log.replayed = head
        if head == 0 and damage is None:
            log._write_own(LogCreatedPayload(log_id=str(uuid.uuid4()), server=__version__))
            log._dir_sync_due = True
        if repair is not None:
            log._write_own(repair)
        if log.head_seq != head:
            log._sync_now()
        return log

    # -- writing ------------------------------------------------------------------------

    def write(self, event: Event) -> bytes:
        """Append `event` (the next seq) to the file and return its line; not yet durable."""
        self.check_writable()
        if event.seq != self.head_seq + 1:
            raise ValueError(f"seq {event.seq} written where {self.head_seq + 1} is next")
        size = self._segments[-1].size
        if size >= self._segment_bytes:
            self._rotate(max(0, self._reserved_until - size))
        line = encode_event(event)
        segment = self._segments[-1]
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            # The file may now end in a partial line; appending more would bury it.
            self._fail(f"write to {segment.path} failed: {exc}")
        segment.offsets.append(segment.size)
        segment.size += len(line)
        self.head_seq = event.seq
        return line

    def reserve(self, nbytes: int) -> None:
        """Allocate room for the next `nbytes` of appends now (OSError: ENOSPC, or unsupported).

        The room is in the current segment; a rotation takes what is left of it along to the
        next one, or, if the disk cannot give it there, does not happen.
        """
        self.check_writable()
        size = self._segments[-1].size
        try:
            reserve_space(self._fd, size, nbytes)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.ENOSYS):
                return  # This file system cannot; the spare record is what is left.
            raise
        self._reserved_until = size + nbytes

    @property
    def holds_reservation(self) -> bool:
        """Whether room reserved for coming appends is still left in the current segment."""
        return self._reserved_until > self._segments[-1].size

    def release_reservation(self) -> None:
        """The reserved room is not needed any more: the segment may rotate again."""
        self._reserved_until = 0

    def _write_own(self, payload: msgspec.Struct) -> None:
        event = make_event(payload, self.head_seq + 1, self._now_ns())
        self.write(event)
        self._visit(event)

    def _rotate(self, reserved: int) -> None:
        """Start the next segment, taking `reserved` bytes of room along; if the room cannot
        move (a full disk), stay in this segment, whose room is still there."""
        first = self.head_seq + 1
        segment = _Segment(first, self.directory / segment_name(first))
        try:
            fd = _open_append(segment.path)
        except OSError as exc:
            if reserved:
                return
            self._fail(f"cannot create segment {segment.path}: {exc}")
        if reserved:
            try:
                reserve_space(fd, 0, reserved)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS):
                    os.close(fd)
                    with contextlib.suppress(OSError):
                        segment.path.unlink()
                    return
        # Room reserved and never used is given back with the segment it was in.
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, self._segments[-1].size)
        self._retired_fds.append(self._fd)
        self._fd = fd
        self._reserved_until = reserved
        self._segments.append(segment)
        self._first_seqs.append(first)
        self._dir_sync_due = True

    async def sync(self) -> None:
        """Make every event written so far durable; concurrent callers share one fdatasync."""
        target = self.head_seq
        async with self._sync_lock:
            if self.durable_seq >= target:
                return
            self.check_writable()
            upto = self.head_seq
            await anyio.to_thread.run_sync(self._sync_files, *self._take_sync_work())
            self.durable_seq = max(self.durable_seq, upto)

    def _sync_now(self) -> None:
        upto = self.head_seq
        self._sync_files(*self._take_sync_work())
        self.durable_seq = upto

    def _take_sync_work(self) -> tuple[list[int], int, bool]:
        # Taken on the event loop, so a rotation during the sync cannot change what is synced.
        retired, self._retired_fds = self._retired_fds, []
        dir_sync, self._dir_sync_due = self._dir_sync_due, False
        return retired, self._fd, dir_sync

    def _sync_files(self, retired: list[int], fd: int, dir_sync: bool) -> None:
        try:
            for old in retired:
                os.fdatasync(old)
                os.close(old)
            os.fdatasync(fd)
            if dir_sync:
                fsync_dir(self.directory)
        except OSError as exc:
            # After a failed fsync the kernel may have dropped the dirty pages: retrying
            # could report success for data that is gone. Stop instead.
            self._fail(f"syncing the log in {self.directory} failed: {exc}")

    def _fail(self, message: str) -> None:
        self.failure = message
        raise StorageFailed(message)

    def check_writable(self) -> None:
        """Raise LogUnavailable if an append would be refused."""
        if self.failure is not None:
            raise StorageFailed(self.failure)
        if self.damage is not None:
            raise LogDamaged(
                f"log damaged at {self.damage.segment} line {self.damage.line}: "
                f"{self.damage.reason}"
            )

    # -- reading ------------------------------------------------------------------------

    async def read_after(self, after_seq: int, max_bytes: int = READ_CHUNK_BYTES) -> bytes:
        """Complete lines from seq `after_seq + 1` on, about `max_bytes` of them, up to the head."""
        if after_seq >= self.head_seq:
            return b""
        index = bisect_right(self._first_seqs, after_seq + 1) - 1
        segment = self._segments[index]
        start = segment.offsets[after_seq + 1 - segment.first_seq]
        # Read whole records only, and never past what has been written.
        last = min(segment.first_seq + len(segment.offsets) - 1, self.head_seq)
        stop_seq = last + 1 - segment.first_seq
        end = segment.offsets[stop_seq] if stop_seq < len(segment.offsets) else segment.size
        end = min(end, start + max_bytes)
        data = await anyio.to_thread.run_sync(_pread, segment.path, start, end - start)
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            # One record larger than max_bytes: read it whole.
            next_index = after_seq + 2 - segment.first_seq
            record_end = (
                segment.offsets[next_index] if next_index < len(segment.offsets) else segment.size
            )
            return await anyio.to_thread.run_sync(_pread, segment.path, start, record_end - start)
        return data[:cut]

    @property
    def segment_count(self) -> int:
        """How many segment files the log has."""
        return len(self._segments)

    def close(self) -> None:
        """Sync and close the files (synchronously; call at shutdown)."""
        if self._fd >= 0:
            if self.failure is None and self.durable_seq < self.head_seq:
                self._sync_now()
            for fd in (*self._retired_fds, self._fd):
                os.close(fd)
            self._retired_fds = []
            self._fd = -1


def _kind(entry: os.DirEntry[str]) -> str:
    if entry.is_symlink():
        return "a symbolic link"
    return "a directory" if entry.is_dir(follow_symlinks=False) else "a special file"


def _open_append(path: Path) -> int:
    return os.open(
        path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
    )


def _pread(path: Path, offset: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def _located(name: str, damage: Damage) -> SegmentDamage:
    return SegmentDamage(segment=name, offset=damage.offset, line=damage.line, reason=damage.reason)


@contextlib.contextmanager
def _mapped(path: Path) -> Iterator[bytes | mmap.mmap]:
    """The file's bytes, mapped rather than read, so replay never holds a segment in memory."""
    with open(os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW), "rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            yield b""
            return
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            yield mapped


def _repair_torn_tail(path: Path, size: int, damage: Damage) -> LogRepairedPayload:
    """Cut a torn last record off, keeping the whole original file beside it."""
    broken = path.with_name(path.name + ".broken")
    suffix = 1
    while os.path.lexists(broken):
        suffix += 1
        broken = path.with_name(f"{path.name}.broken.{suffix}")
    shutil.copyfile(path, broken)
    with open(broken, "rb+") as copy:
        os.fsync(copy.fileno())
    with open(path, "rb+") as original:
        original.truncate(damage.offset)
        os.fsync(original.fileno())
    fsync_dir(path.parent)
    return LogRepairedPayload(
        segment=path.name,
        truncated_at=damage.offset,
        removed_bytes=size - damage.offset,
        broken_copy=broken.name,
    )
