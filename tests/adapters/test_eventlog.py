"""The on-disk log: durable writes, faithful replay, torn tails repaired, damage surfaced."""

import errno
import os
import time
from pathlib import Path

import msgspec
import pytest

from obsd.adapters import eventlog
from obsd.adapters.eventlog import EventLog, LogDamaged
from obsd.core.events import (
    DaemonStoppedPayload,
    Event,
    LogCreated,
    LogRepaired,
    event_decoder,
    make_event,
)
from obsd.core.logformat import segment_name


async def append(log: EventLog, payload: msgspec.Struct, *, durable: bool = True) -> Event:
    """Write the next event as the journal does (without folding it), synced if asked."""
    event = make_event(payload, log.head_seq + 1, time.time_ns())
    log.write(event)
    if durable:
        await log.sync()
    return event


def open_log(directory: Path, **options: int) -> tuple[EventLog, list[Event]]:
    seen: list[Event] = []
    return EventLog.open(directory, seen.append, **options), seen


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.jsonl"))


def disk_events(directory: Path) -> list[Event]:
    return [
        event_decoder.decode(line)
        for path in segment_files(directory)
        for line in path.read_bytes().splitlines()
    ]


async def test_a_new_log_starts_with_its_lineage(tmp_path: Path) -> None:
    log, seen = open_log(tmp_path)
    assert [type(e) for e in seen] == [LogCreated]
    assert seen[0].seq == 1 and log.head_seq == log.durable_seq == 1
    assert (tmp_path / segment_name(1)).stat().st_mode & 0o777 == 0o600
    log.close()


async def test_appends_are_replayed_in_order_with_gap_free_seqs(tmp_path: Path) -> None:
    log, _ = open_log(tmp_path)
    for n in range(50):
        await append(log, DaemonStoppedPayload(reason=f"r{n}"), durable=n % 10 == 0)
    await log.sync()
    assert log.durable_seq == log.head_seq == 51
    log.close()
    reopened, seen = open_log(tmp_path)
    assert [e.seq for e in seen] == list(range(1, 52))
    assert [e.payload.reason for e in seen[1:]] == [f"r{n}" for n in range(50)]  # type: ignore[attr-defined]
    event = await append(reopened, DaemonStoppedPayload(reason="after"))
    assert event.seq == 52
    reopened.close()


async def test_the_visitor_sees_the_replay_and_the_lineage_not_later_writes(tmp_path: Path) -> None:
    log, seen = open_log(tmp_path)
    line = log.write(make_event(DaemonStoppedPayload(reason="x"), log.head_seq + 1, 0))
    assert [type(e) for e in seen] == [LogCreated], "folding is the journal's job"
    assert line == await log.read_after(1)
    log.close()


async def test_a_write_out_of_seq_is_refused(tmp_path: Path) -> None:
    log, _ = open_log(tmp_path)
    with pytest.raises(ValueError, match="seq 5 written where 2 is next"):
        log.write(make_event(DaemonStoppedPayload(reason="x"), 5, 0))
    log.close()


async def test_a_lineage_survives_reopening(tmp_path: Path) -> None:
    log, first = open_log(tmp_path)
    log.close()
    _, second = open_log(tmp_path)
    assert first[0] == second[0]


async def test_segments_rotate_by_size_and_replay_across_them(tmp_path: Path) -> None:
    log, _ = open_log(tmp_path, segment_bytes=4096)
    for n in range(200):
        await append(log, DaemonStoppedPayload(reason=f"{n:04d}" * 10), durable=False)
    await log.sync()
    log.close()
    files = segment_files(tmp_path)
    assert len(files) > 3
    assert all(path.stat().st_size < 4096 + 200 for path in files)
    _, seen = open_log(tmp_path)
    assert [e.seq for e in seen] == list(range(1, 202))
    assert [e.seq for e in disk_events(tmp_path)] == list(range(1, 202))


async def test_read_after_returns_whole_lines_from_any_seq(tmp_path: Path) -> None:
    log, _ = open_log(tmp_path, segment_bytes=4096)
    for n in range(100):
        await append(log, DaemonStoppedPayload(reason=str(n)), durable=False)
    for after in (0, 1, 37, 99, 100):
        collected = b""
        cursor = after
        while cursor < log.head_seq:
            chunk = await log.read_after(cursor, max_bytes=700)
            assert chunk.endswith(b"\n")
            collected += chunk
            cursor += chunk.count(b"\n")
        seqs = [event_decoder.decode(line).seq for line in collected.splitlines()]
        assert seqs == list(range(after + 1, 102))
    assert await log.read_after(101) == b""
    log.close()


async def test_read_after_returns_a_record_larger_than_the_chunk_whole(tmp_path: Path) -> None:
    log, _ = open_log(tmp_path)
    await append(log, DaemonStoppedPayload(reason="x" * 5000))
    chunk = await log.read_after(1, max_bytes=100)
    assert event_decoder.decode(chunk).seq == 2
    log.close()


async def _log_with_records(directory: Path, count: int) -> bytes:
    log, _ = open_log(directory)
    for n in range(count):
        await append(log, DaemonStoppedPayload(reason=f"record {n}"))
    log.close()
    return (directory / segment_name(1)).read_bytes()


async def test_a_torn_last_record_is_repaired_at_every_byte_offset(tmp_path: Path) -> None:
    pristine = await _log_with_records(tmp_path / "pristine", 3)  # seqs 1-4
    last_start = pristine.rstrip(b"\n").rfind(b"\n") + 1
    for cut in range(last_start + 1, len(pristine)):
        directory = tmp_path / f"cut{cut}"
        directory.mkdir()
        (directory / segment_name(1)).write_bytes(pristine[:cut])
        log, seen = open_log(directory)
        # Records 1-3 survive; the torn 4th is cut and the repair itself becomes seq 4.
        assert [e.seq for e in seen] == [1, 2, 3, 4], f"cut at {cut}"
        repaired = seen[-1]
        assert isinstance(repaired, LogRepaired)
        assert repaired.payload.truncated_at == last_start
        assert repaired.payload.removed_bytes == cut - last_start
        broken = directory / repaired.payload.broken_copy
        assert broken.read_bytes() == pristine[:cut], "the original must be kept"
        log.close()
        assert [e.seq for e in disk_events(directory)] == [1, 2, 3, 4]


async def test_a_complete_log_is_not_repaired(tmp_path: Path) -> None:
    await _log_with_records(tmp_path, 3)
    _, seen = open_log(tmp_path)
    assert not any(isinstance(e, LogRepaired) for e in seen)
    assert not list(tmp_path.glob("*.broken*"))


async def test_a_zero_filled_tail_is_repaired(tmp_path: Path) -> None:
    pristine = await _log_with_records(tmp_path, 3)
    (tmp_path / segment_name(1)).write_bytes(pristine + b"\x00" * 4096)
    log, seen = open_log(tmp_path)
    assert isinstance(seen[-1], LogRepaired) and seen[-1].payload.removed_bytes == 4096
    assert log.damage is None
    log.close()


async def test_damage_in_the_middle_is_surfaced_and_blocks_appends(tmp_path: Path) -> None:
    pristine = await _log_with_records(tmp_path, 4)
    records = pristine.splitlines(keepends=True)
    records[2] = b'{"type":"daemon_stopped","seq":3,"timestamp":"x"' + b" " * 10 + b"\n"
    damaged = b"".join(records)
    (tmp_path / segment_name(1)).write_bytes(damaged)
    log, seen = open_log(tmp_path)
    assert [e.seq for e in seen] == [1, 2], "replay stops at the damage, never skips it"
    assert log.damage is not None
    assert (log.damage.line, log.damage.offset) == (3, len(records[0]) + len(records[1]))
    with pytest.raises(LogDamaged):
        await append(log, DaemonStoppedPayload(reason="must not land"))
    log.close()
    assert (tmp_path / segment_name(1)).read_bytes() == damaged, "nothing appended or cut"


async def test_a_torn_tail_in_an_earlier_segment_is_damage_not_repair(tmp_path: Path) -> None:
    log, _ = open_log(tmp_path, segment_bytes=4096)
    for n in range(100):
        await append(log, DaemonStoppedPayload(reason=f"{n:04d}" * 10), durable=False)
    log.close()
    first = segment_files(tmp_path)[0]
    first.write_bytes(first.read_bytes()[:-5])
    reopened, _ = open_log(tmp_path, segment_bytes=4096)
    assert reopened.damage is not None and reopened.damage.segment == first.name
    reopened.close()


async def test_a_missing_segment_is_damage(tmp_path: Path) -> None:
    log, _ = open_log(tmp_path, segment_bytes=4096)
    for n in range(100):
        await append(log, DaemonStoppedPayload(reason=f"{n:04d}" * 10), durable=False)
    log.close()
    segment_files(tmp_path)[1].unlink()
    reopened, _ = open_log(tmp_path, segment_bytes=4096)
    assert reopened.damage is not None and "starts at seq" in reopened.damage.reason
    reopened.close()


async def test_reserved_room_is_allocated_without_growing_the_segment(tmp_path: Path) -> None:
    log, _ = open_log(tmp_path, segment_bytes=4096)
    await append(log, DaemonStoppedPayload(reason="before"))
    (segment,) = segment_files(tmp_path)
    size = segment.stat().st_size
    assert not log.holds_reservation
    log.reserve(64 * 1024)
    assert log.holds_reservation
    assert segment.stat().st_size == size, "a replay sees only what was written"
    assert segment.stat().st_blocks * 512 >= size + 64 * 1024, "the blocks are there already"
    # Rotations go on, each taking what is left of the room along; the old room is trimmed.
    for n in range(100):
        await append(log, DaemonStoppedPayload(reason=f"{n:04d}" * 10), durable=False)
    await log.sync()
    *old, newest = segment_files(tmp_path)
    assert old and segment.stat().st_blocks * 512 < size + 64 * 1024
    assert newest.stat().st_blocks * 512 >= 32 * 1024, "the rest of the room moved along"
    log.close()
    _, seen = open_log(tmp_path)
    assert len(seen) == 102 and not any(isinstance(e, LogRepaired) for e in seen)


async def test_a_full_disk_keeps_the_log_in_the_segment_with_the_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, _ = open_log(tmp_path, segment_bytes=4096)
    log.reserve(64 * 1024)

    def no_room(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(eventlog, "reserve_space", no_room)
    for n in range(100):
        await append(log, DaemonStoppedPayload(reason=f"{n:04d}" * 10), durable=False)
    await log.sync()
    (segment,) = segment_files(tmp_path)
    assert segment.stat().st_size > 4096, "no new segment: it would have needed new space"
    assert log.holds_reservation
    # The run ended: the room is let go, and rotation needs none.
    log.release_reservation()
    assert not log.holds_reservation
    await append(log, DaemonStoppedPayload(reason="after"))
    assert len(segment_files(tmp_path)) == 2
    log.close()
