"""A minimal HTTP/1.1 request parser and response writer, fed with bytes (sans-I/O).

Only what OBS's clients send is accepted: origin-form targets and Content-Length bodies.
Anything else, or anything over the limits, yields one BadRequest and the parser stops: the
connection is answered and closed, never left half-parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

# Far beyond a browser's or httpx's request head, small enough to bound a hostile client.
MAX_HEAD_BYTES: Final = 16 * 1024
MAX_HEADERS: Final = 100
# A 12-CRN registration body is ~200 bytes.
MAX_BODY_BYTES: Final = 64 * 1024

_REQUEST_LINE: Final = re.compile(rb"^([A-Z]{1,16}) (/[!-~]*) HTTP/1\.([01])$")
_HEADER_NAME: Final = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One complete request; `received_ns` is when its first byte arrived."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    received_ns: int

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.partition("?")[0]


@dataclass(frozen=True, slots=True)
class BadRequest:
    """The bytes could not be parsed; answer `status` and close."""

    status: int
    reason: str
    received_ns: int


class RequestParser:
    """Split a connection's bytes into requests, timestamped by their first byte."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._start_ns = 0
        self._failed = False

    def feed(self, data: bytes, now_ns: int) -> list[HttpRequest | BadRequest]:
        """Add bytes that arrived at `now_ns`; return the requests they complete."""
        if self._failed:
            return []
        if not self._buffer:
            self._start_ns = now_ns
        self._buffer += data
        out: list[HttpRequest | BadRequest] = []
        while self._buffer:
            item = self._next()
            if item is None:
                break
            out.append(item)
            if isinstance(item, BadRequest):
                self._failed = True
                self._buffer.clear()
                break
            # Bytes already buffered behind a request arrived with the chunk that held them.
            self._start_ns = now_ns
        return out

    def _next(self) -> HttpRequest | BadRequest | None:
        # RFC 9112 §2.2: ignore empty lines before a request line.
        while self._buffer[:2] == b"\r\n":
            del self._buffer[:2]
        end = self._buffer.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES)
        if end == -1:
            if len(self._buffer) >= MAX_HEAD_BYTES:
                return self._bad(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "head too large")
            return None
        lines = bytes(self._buffer[:end]).split(b"\r\n")
        match = _REQUEST_LINE.match(lines[0])
        if match is None:
            return self._bad(HTTPStatus.BAD_REQUEST, "malformed request line")
        if len(lines) - 1 > MAX_HEADERS:
            return self._bad(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many headers")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not _HEADER_NAME.match(name):
                return self._bad(HTTPStatus.BAD_REQUEST, "malformed header line")
            key = name.decode("ascii").lower()
            text = value.strip(b" \t").decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        if "transfer-encoding" in headers:
            return self._bad(HTTPStatus.NOT_IMPLEMENTED, "only Content-Length bodies")
        length_text = headers.get("content-length", "0")
        if not length_text.isdigit() or not length_text.isascii():
            return self._bad(HTTPStatus.BAD_REQUEST, "bad Content-Length")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            return self._bad(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
        body_start = end + 4
        if len(self._buffer) < body_start + length:
            return None
        body = bytes(self._buffer[body_start : body_start + length])
        del self._buffer[: body_start + length]
        method, target, minor = (part.decode("ascii") for part in match.groups())
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        keep_alive = "keep-alive" in tokens if minor == "0" else "close" not in tokens
        return HttpRequest(method, target, headers, body, keep_alive, self._start_ns)

    def _bad(self, status: HTTPStatus, reason: str) -> BadRequest:
        return BadRequest(int(status), reason, self._start_ns)


JSON_CONTENT_TYPE: Final = "application/json; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Reply:
    """What the server must do with one request."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = JSON_CONTENT_TYPE
    # Seconds to wait before answering (response delay, slow fault).
    hold_s: float = 0.0
    # Abort the connection (RST) instead of answering.
    reset: bool = False


def render_response(
    status: int,
    body: bytes,
    *,
    date: str,
    keep_alive: bool,
    content_type: str = JSON_CONTENT_TYPE,
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """The bytes of one response."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [
        f"HTTP/1.1 {status} {phrase}",
        f"Date: {date}",
        "Server: obsd-sim",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        *(f"{name}: {value}" for name, value in extra_headers),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body
