"""The sans-I/O HTTP/1.1 parser: framing, first-byte stamps, limits, garbage."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obsd.sim.http11 import (
    MAX_BODY_BYTES,
    MAX_HEAD_BYTES,
    BadRequest,
    HttpRequest,
    RequestParser,
    render_response,
)

POST = (
    b"POST /api/ders-kayit/v21?x=1 HTTP/1.1\r\nHost: obs\r\nAuthorization: Bearer t\r\n"
    b'Content-Length: 13\r\n\r\n{"ECRN": []}\n'
)


def requests(items: list[HttpRequest | BadRequest]) -> list[HttpRequest]:
    assert all(isinstance(item, HttpRequest) for item in items), items
    return [item for item in items if isinstance(item, HttpRequest)]


def test_a_request_in_one_chunk() -> None:
    [request] = requests(RequestParser().feed(POST, 7))
    assert (request.method, request.target, request.path) == (
        "POST",
        "/api/ders-kayit/v21?x=1",
        "/api/ders-kayit/v21",
    )
    assert request.headers["authorization"] == "Bearer t"
    assert request.body == b'{"ECRN": []}\n'
    assert request.keep_alive and request.received_ns == 7


def test_byte_by_byte_keeps_the_first_byte_instant() -> None:
    parser = RequestParser()
    out: list[HttpRequest | BadRequest] = []
    for index in range(len(POST)):
        out += parser.feed(POST[index : index + 1], 1000 + index)
    [request] = requests(out)
    assert request.received_ns == 1000 and request.body == b'{"ECRN": []}\n'


def test_pipelined_requests_are_stamped_by_the_chunk_holding_their_first_byte() -> None:
    parser = RequestParser()
    first = requests(parser.feed(POST + POST[:10], 1))
    second = requests(parser.feed(POST[10:] + POST, 2))
    assert [r.received_ns for r in first + second] == [1, 1, 2]


def test_a_new_request_after_a_pause_gets_its_own_instant() -> None:
    parser = RequestParser()
    requests(parser.feed(POST, 1))
    [later] = requests(parser.feed(POST, 5))
    assert later.received_ns == 5


def test_empty_lines_before_a_request_are_ignored() -> None:
    assert len(requests(RequestParser().feed(b"\r\n\r\n" + POST, 1))) == 1


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        ("1.1", "", True),
        ("1.1", "Connection: close\r\n", False),
        ("1.1", "Connection: Keep-Alive, Close\r\n", False),
        ("1.0", "", False),
        ("1.0", "Connection: keep-alive\r\n", True),
    ],
)
def test_keep_alive_follows_version_and_connection(
    version: str, connection: str, keep_alive: bool
) -> None:
    raw = f"HEAD / HTTP/{version}\r\n{connection}\r\n".encode()
    [request] = requests(RequestParser().feed(raw, 0))
    assert request.keep_alive is keep_alive


def test_repeated_headers_are_joined() -> None:
    [request] = requests(RequestParser().feed(b"GET / HTTP/1.1\r\nA: 1\r\na: 2\r\n\r\n", 0))
    assert request.headers["a"] == "1, 2"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 400),
        (b"get / HTTP/1.1\r\n\r\n", 400),
        (b"GET http://obs/ HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nNo colon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad name: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (f"POST / HTTP/1.1\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode(), 413),
        (b"GET / HTTP/1.1\r\n" + b"A: 1\r\n" * 101 + b"\r\n", 431),
    ],
)
def test_garbage_gives_one_bad_request_and_stops(raw: bytes, status: int) -> None:
    parser = RequestParser()
    [error] = parser.feed(raw, 3)
    assert isinstance(error, BadRequest) and error.status == status and error.received_ns == 3
    assert parser.feed(POST, 4) == []


def test_an_endless_head_is_cut_at_the_limit() -> None:
    parser = RequestParser()
    assert parser.feed(b"GET / HTTP/1.1\r\nA: ", 0) == []
    [error] = parser.feed(b"x" * MAX_HEAD_BYTES, 1)
    assert isinstance(error, BadRequest) and error.status == 431


def test_a_partial_body_waits_for_the_rest() -> None:
    parser = RequestParser()
    assert parser.feed(POST[:-3], 0) == []
    assert len(requests(parser.feed(POST[-3:], 1))) == 1


def test_render_response() -> None:
    raw = render_response(
        405,
        b"{}",
        date="Tue, 03 Feb 2026 12:00:00 GMT",
        keep_alive=True,
        extra_headers=(("Allow", "POST"),),
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 405 Method Not Allowed" and body == b"{}"
    assert {
        "Date: Tue, 03 Feb 2026 12:00:00 GMT",
        "Content-Length: 2",
        "Allow: POST",
        "Connection: keep-alive",
    } <= set(lines)


@settings(max_examples=300)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=64),
            st.sampled_from(
                [POST, b"\r\n", b"\r\n\r\n", b"Content-Length: 3\r\n", b"GET / HTTP/1.1\r\n"]
            ),
        ),
        max_size=12,
    )
)
def test_any_bytes_in_any_chunks_never_raise(chunks: list[bytes]) -> None:
    parser = RequestParser()
    out: list[HttpRequest | BadRequest] = []
    for index, chunk in enumerate(chunks):
        out += parser.feed(chunk, index)
    assert all(isinstance(item, HttpRequest) for item in out[:-1])
