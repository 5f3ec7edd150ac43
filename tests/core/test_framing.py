"""Line framing: complete lines out, partial lines held, over-long lines refused once."""

from obsd.core.framing import LineFramer, OversizedLine


def test_splits_lines_and_holds_the_unfinished_one() -> None:
    framer = LineFramer(max_line=100)
    assert framer.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert framer.pending == 4
    assert framer.feed(b":2}\n\n") == [b'{"b":2}', b""]
    assert framer.pending == 0


def test_line_split_across_many_chunks_is_reassembled() -> None:
    framer = LineFramer(max_line=100)
    line = b'{"id": 1, "op": "ping"}'
    out: list[bytes | OversizedLine] = []
    for byte in line + b"\n":
        out += framer.feed(bytes([byte]))
    assert out == [line]


def test_over_long_line_in_one_chunk_yields_one_marker_and_framing_recovers() -> None:
    framer = LineFramer(max_line=10)
    assert framer.feed(b"x" * 11 + b"\nok\n") == [OversizedLine(10), b"ok"]


def test_over_long_line_across_chunks_is_discarded_up_to_its_newline() -> None:
    framer = LineFramer(max_line=10)
    assert framer.feed(b"x" * 8) == []
    assert framer.feed(b"x" * 8) == [OversizedLine(10)]
    assert framer.pending == 0
    assert framer.feed(b"y" * 1000) == []
    assert framer.pending == 0, "discarded bytes must not be buffered"
    assert framer.feed(b"tail\nnext\n") == [b"next"]


def test_line_of_exactly_the_limit_is_accepted() -> None:
    framer = LineFramer(max_line=10)
    assert framer.feed(b"x" * 10 + b"\n") == [b"x" * 10]
    assert framer.feed(b"y" * 5) == []
    assert framer.feed(b"y" * 5 + b"\n") == [b"y" * 10]
