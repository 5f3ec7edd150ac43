"""Reading a log segment's bytes: the valid records, and where and how it is damaged."""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Final, Protocol, overload

import msgspec

from obsd.core.events import Event, event_decoder


class SegmentBytes(Protocol):
    """A segment's bytes: `bytes`, or the memory map replay scans without reading the file."""

    def __len__(self) -> int: ...

    def find(self, sub: bytes, start: int = ..., /) -> int: ...

    @overload
    def __getitem__(self, index: int, /) -> int: ...

    @overload
    def __getitem__(self, index: slice, /) -> bytes: ...


SEGMENT_SUFFIX: Final = ".jsonl"
# Segment files are named by their first seq, zero-padded so that names sort as numbers.
SEGMENT_NAME_DIGITS: Final = 20


def segment_name(first_seq: int) -> str:
    """The file name of the segment whose first record has `first_seq`."""
    return f"{first_seq:0{SEGMENT_NAME_DIGITS}d}{SEGMENT_SUFFIX}"


def segment_first_seq(name: str) -> int | None:
    """The first seq a segment file name declares, or None if it is not a segment name."""
    stem = name.removesuffix(SEGMENT_SUFFIX)
    if stem == name or len(stem) != SEGMENT_NAME_DIGITS or not stem.isdigit():
        return None
    return int(stem)


class RecordRefused(ValueError):
    """A decodable record the replay refuses (an event the fold does not allow): damage."""


class Damage(msgspec.Struct, frozen=True, kw_only=True):
    """The first bad record of a segment."""

    offset: int
    line: int
    reason: str
    # A valid record follows the bad one: the damage is in the middle, not a torn tail.
    valid_after: bool
    # A whole record that was refused (out of seq, or by the fold): never a torn write, so
    # never cut off.
    refused: bool = False


class SegmentDamage(msgspec.Struct, frozen=True, kw_only=True):
    """Where the log is damaged, for `status` and `health`."""

    segment: str
    offset: int
    line: int
    reason: str

    def __str__(self) -> str:
        return f"log damaged at {self.segment} line {self.line}: {self.reason}"


class SegmentScan(msgspec.Struct, kw_only=True):
    """The valid prefix of a segment: its records' byte offsets, and where it ends."""

    offsets: array[int]
    valid_end: int
    damage: Damage | None


def scan_segment(
    data: SegmentBytes, expected_seq: int, visit: Callable[[Event], None]
) -> SegmentScan:
    """Decode records from the start of `data` until the end or the first bad record.

    Each valid event is handed to `visit` as it is read, so replaying a large log never
    holds all of its events at once.
    """
    offsets = array("q")
    decode = event_decoder.decode
    pos = 0
    end = len(data)
    damage_reason: str | None = None
    refused = False
    while pos < end:
        newline = data.find(b"\n", pos)
        if newline == -1:
            damage_reason = "incomplete record (no newline)"
            break
        try:
            event = decode(data[pos:newline])
        except msgspec.DecodeError as exc:
            damage_reason = f"undecodable record: {exc}"
            # Whole JSON with its newline is no torn write (an unknown phase, a field of the
            # wrong type, a newer event): damage, never cut off.
            refused = _is_json(data[pos:newline])
            break
        if event.seq != expected_seq:
            # A whole record, so no torn write: damage, never to be cut off as one.
            damage_reason, refused = f"seq {event.seq} where {expected_seq} was expected", True
            break
        try:
            visit(event)
        except RecordRefused as exc:
            damage_reason, refused = f"refused record: {exc}", True
            break
        offsets.append(pos)
        expected_seq += 1
        pos = newline + 1
    damage = None
    if damage_reason is not None:
        damage = Damage(
            offset=pos,
            line=len(offsets) + 1,
            reason=damage_reason,
            valid_after=_has_valid_record(data, data.find(b"\n", pos) + 1),
            refused=refused,
        )
    return SegmentScan(offsets=offsets, valid_end=pos, damage=damage)


def _is_json(line: bytes) -> bool:
    try:
        msgspec.json.decode(line)
    except msgspec.DecodeError:
        return False
    return True


def _has_valid_record(data: SegmentBytes, pos: int) -> bool:
    if pos <= 0:
        return False
    for line in data[pos:].split(b"\n"):
        try:
            event_decoder.decode(line)
        except msgspec.DecodeError:
            continue
        return True
    return False
