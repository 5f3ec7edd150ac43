"""Scanning a segment: valid records, torn tails and damage in the middle."""

from obsd.core.events import DaemonStoppedPayload, Event, encode_event, make_event
from obsd.core.logformat import scan_segment, segment_first_seq, segment_name


def lines(first: int, count: int) -> list[bytes]:
    return [
        encode_event(make_event(DaemonStoppedPayload(reason=f"r{seq}"), seq, 10**18))
        for seq in range(first, first + count)
    ]


def scan(data: bytes, expected: int = 1) -> tuple[list[int], object]:
    seen: list[Event] = []
    result = scan_segment(data, expected, seen.append)
    assert len(seen) == len(result.offsets)
    return [event.seq for event in seen], result


def test_segment_names_sort_as_numbers_and_round_trip() -> None:
    names = [segment_name(n) for n in (1, 9, 10, 100_000)]
    assert names == sorted(names)
    assert [segment_first_seq(n) for n in names] == [1, 9, 10, 100_000]
    assert segment_first_seq("00000000000000000001.jsonl.broken") is None
    assert segment_first_seq("notes.jsonl") is None


def test_clean_segment_yields_every_record_with_its_offset() -> None:
    records = lines(1, 3)
    seqs, result = scan(b"".join(records))
    assert seqs == [1, 2, 3]
    assert list(result.offsets) == [0, len(records[0]), len(records[0]) + len(records[1])]
    assert result.damage is None and result.valid_end == sum(map(len, records))


def test_truncated_last_record_is_a_torn_tail() -> None:
    records = lines(1, 3)
    data = b"".join(records)[:-7]
    seqs, result = scan(data)
    assert seqs == [1, 2]
    assert result.damage is not None and not result.damage.valid_after
    assert result.valid_end == len(records[0]) + len(records[1])


def test_zero_filled_tail_is_a_torn_tail() -> None:
    data = b"".join(lines(1, 2)) + b"\x00" * 300
    seqs, result = scan(data)
    assert seqs == [1, 2] and result.damage is not None and not result.damage.valid_after


def test_bad_record_followed_by_a_valid_one_is_middle_damage() -> None:
    records = lines(1, 3)
    data = records[0] + b'{"type": "garbage"\n' + records[2]
    seqs, result = scan(data)
    assert seqs == [1]
    assert result.damage is not None and result.damage.valid_after
    assert (result.damage.line, result.damage.offset) == (2, len(records[0]))


def test_a_seq_gap_is_damage() -> None:
    records = lines(1, 3)
    seqs, result = scan(records[0] + records[2])
    assert seqs == [1]
    assert result.damage is not None and "seq 3 where 2" in result.damage.reason


def test_scanning_starts_at_the_expected_seq() -> None:
    seqs, result = scan(b"".join(lines(5, 2)), expected=5)
    assert seqs == [5, 6] and result.damage is None


def test_a_whole_record_that_does_not_validate_is_damage_even_at_the_end() -> None:
    records = lines(1, 2)
    state = b'{"type":"state","seq":3,"timestamp":"t","payload":{"run_id":"r","phase":"flying"}}\n'
    seqs, result = scan(b"".join(records) + state)
    assert seqs == [1, 2]
    assert result.damage is not None and not result.damage.valid_after
    assert result.damage.refused, "a complete record is never cut off as a torn write"
    assert "flying" in result.damage.reason or "phase" in result.damage.reason


def test_a_torn_record_is_still_a_torn_tail_not_refused() -> None:
    records = lines(1, 2)
    seqs, result = scan(records[0] + records[1][:-9] + b"\n")
    assert seqs == [1]
    assert result.damage is not None and not result.damage.refused
