"""The control protocol's messages: requests, the response envelope, the greeting, error codes.

Requests are a msgspec tagged union on `op`, decoded strictly; every problem becomes a
`ProtocolError` whose message names the offending field.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Final, Literal, cast

import msgspec

from obsd.core.config import CRN_LENGTH, CRN_PATTERN, MAX_CRNS, ConfigPatch, Crn
from obsd.core.login import MAX_IDENTITY, MAX_PASSWORD, MAX_USERNAME, NO_CONTROL
from obsd.core.phases import Phase
from obsd.core.schedule_page import BRANCH_PATTERN
from obsd.core.watch import POLL_FLOOR_S

PROTOCOL_VERSION: Final = 1
RequestId = int | str
Seq = Annotated[int, msgspec.Meta(ge=0)]
# One page of `events` is one response line (up to ~0.5 MB at this size); clients that read
# responses with a line limit should ask for smaller pages.
MAX_EVENTS_PAGE: Final = 1000


class ErrorCode(StrEnum):
    """Every `error.code` the daemon sends."""

    BAD_JSON = "BAD_JSON"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    UNKNOWN_OP = "UNKNOWN_OP"
    LINE_TOO_LONG = "LINE_TOO_LONG"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"
    ALREADY_TAILING = "ALREADY_TAILING"
    LOG_ID_MISMATCH = "LOG_ID_MISMATCH"
    RUN_IN_PROGRESS = "RUN_IN_PROGRESS"
    NO_ACTIVE_RUN = "NO_ACTIVE_RUN"
    RUN_NOT_FOUND = "RUN_NOT_FOUND"
    NOT_READY = "NOT_READY"
    TOKEN_MISSING = "TOKEN_MISSING"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    LOGIN_MISSING = "LOGIN_MISSING"
    LOG_DAMAGED = "LOG_DAMAGED"
    STORAGE_FAILED = "STORAGE_FAILED"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class Access(StrEnum):
    """What a connection may do: read-only peers are refused every mutating op."""

    RW = "rw"
    RO = "ro"


class Request(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="op", forbid_unknown_fields=True
):
    """Common request fields; subclasses fix `op`."""

    id: RequestId

    # Ops that change state need `rw` access and are acknowledged only once durable.
    mutating = False


class Ping(Request, frozen=True, tag="ping"):
    """Liveness check; answers `{"pong": true}`."""


class Status(Request, frozen=True, tag="status"):
    """Daemon state, current phase, active run, log head."""


class GetConfig(Request, frozen=True, tag="config"):
    """The current configuration, with the token shown only as a fingerprint and its `exp`."""


class Configure(Request, frozen=True, tag="configure"):
    """Change some configuration fields; answered once the change is durable."""

    config: ConfigPatch
    mutating = True


class Tail(Request, frozen=True, tag="tail"):
    """Stream events after `after_seq` (default: the head), then live ones if `follow`.

    A client resuming after a reconnect passes the `log_id` it saw, so that a replaced log
    is refused (LOG_ID_MISMATCH) rather than silently read from the wrong place.
    """

    after_seq: Seq | None = None
    follow: bool = False
    log_id: str | None = None


class Events(Request, frozen=True, tag="events"):
    """One page of the history, in seq order, starting after `after_seq`."""

    after_seq: Seq = 0
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_EVENTS_PAGE)] = 100
    types: list[str] | None = None


class Health(Request, frozen=True, tag="health"):
    """Whether the log store is writable, disk space, clock status."""


class Schema(Request, frozen=True, tag="schema"):
    """The JSON Schema of requests, responses and events."""


class TestToken(Request, frozen=True, tag="test_token"):
    """Check the token: its claims, and OBS's cheap GET (never a registration POST)."""

    mutating = True


class Login(Request, frozen=True, tag="login"):
    """Keep the İTÜ credentials the daemon logs in with (0600 in the state dir)."""

    # No control characters: the credentials file is one field per line.
    username: Annotated[
        str, msgspec.Meta(min_length=1, max_length=MAX_USERNAME, pattern=NO_CONTROL)
    ]
    password: Annotated[
        str, msgspec.Meta(min_length=1, max_length=MAX_PASSWORD, pattern=NO_CONTROL)
    ]
    # For a double major: the identity whose name contains this; default the first offered.
    identity: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_IDENTITY, pattern=NO_CONTROL)]
        | None
    ) = None
    mutating = True


class Logout(Request, frozen=True, tag="logout"):
    """Remove the İTÜ credentials kept by `login`."""

    mutating = True


class TestLogin(Request, frozen=True, tag="test_login"):
    """Log in once with the kept credentials and test the token (it is not kept)."""

    mutating = True


class Calibrate(Request, frozen=True, tag="calibrate"):
    """Measure NTP offset, RTT to OBS and our send delay now; plan the fire instant."""

    mutating = True


class Start(Request, frozen=True, tag="start"):
    """Create a run from the current configuration and drive it to the end."""

    mutating = True


class WatchSeat(Request, frozen=True, tag="watch_seat"):
    """Create a watch run: read the public schedule for a free seat in `crn`, and take it."""

    crn: Crn
    branch: Annotated[str, msgspec.Meta(pattern=BRANCH_PATTERN)]
    drop: Annotated[list[Crn], msgspec.Meta(max_length=MAX_CRNS - 1)] = []
    # A drop is applied even when the add fails; it is refused unless this says it is understood.
    accept_drop_risk: bool = False
    every: Annotated[float, msgspec.Meta(ge=POLL_FLOOR_S, le=24 * 3600)] = POLL_FLOOR_S
    until: str | None = None  # ISO-8601 with a UTC offset; none: until cancelled
    mutating = True


class Cancel(Request, frozen=True, tag="cancel"):
    """Stop a run at once, in whatever phase it is: the one named, else the timed run."""

    run_id: str | None = None
    mutating = True


class Runs(Request, frozen=True, tag="runs"):
    """One page of the run history."""

    page: Annotated[int, msgspec.Meta(ge=1)] = 1
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20
    status: Phase | None = None
    sort: Literal["created_desc", "created_asc"] = "created_desc"


class GetRun(Request, frozen=True, tag="run"):
    """One run in full: configuration snapshot, calibration, every request, every CRN."""

    run_id: str


class DeleteRun(Request, frozen=True, tag="delete_run"):
    """Drop a finished run from the history (refused while it is in progress)."""

    run_id: str
    mutating = True


AnyRequest = (
    Ping
    | Status
    | GetConfig
    | Configure
    | Tail
    | Events
    | Health
    | Schema
    | TestToken
    | Calibrate
    | Start
    | WatchSeat
    | Cancel
    | Runs
    | GetRun
    | DeleteRun
    | Login
    | Logout
    | TestLogin
)
REQUEST_CLASSES: Final[tuple[type[Request], ...]] = AnyRequest.__args__
OPS: Final[frozenset[str]] = frozenset(str(c.__struct_config__.tag) for c in REQUEST_CLASSES)


class Error(msgspec.Struct, frozen=True):
    """What went wrong, as a stable code and a message for people."""

    code: ErrorCode
    message: str


class Response(msgspec.Struct, frozen=True):
    """The envelope of every answer, and of the greeting (whose `id` is null)."""

    id: RequestId | None
    success: bool
    data: Any = None
    error: Error | None = None


class Greeting(msgspec.Struct, frozen=True, kw_only=True):
    """The server's first line on every connection."""

    protocol: int
    server: str
    log_id: str | None
    head_seq: int
    access: Access


class CaughtUp(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="caught_up"):
    """Marks the end of a tail's replay from disk: what follows is live."""

    after_seq: int
    log_id: str | None


class ProtocolError(Exception):
    """A request that cannot be served; carries the id when one could be read."""

    def __init__(self, code: ErrorCode, message: str, request_id: RequestId | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id

    def response(self) -> Response:
        """The error envelope for this failure."""
        return error_response(self.request_id, self.code, self.message)


_JSON_TYPES: Final[dict[type, str]] = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}
# msgspec names the regex or the length; people know the rule as "a 5-digit CRN".
_CRN_MESSAGES: Final = (
    f"Expected `str` matching regex {CRN_PATTERN!r}",
    f"Expected `str` of length <= {CRN_LENGTH}",
)
_request_decoder: Final = msgspec.json.Decoder(AnyRequest)
_any_decoder: Final = msgspec.json.Decoder()
_encoder: Final = msgspec.json.Encoder()


def decode_request(line: bytes) -> AnyRequest:
    """Decode one request line, or raise ProtocolError saying exactly what was wrong."""
    try:
        return _request_decoder.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        pass  # Diagnose below on the slow path: the fast path serves every valid request.
    try:
        raw = _any_decoder.decode(line)
    except msgspec.DecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise ProtocolError(ErrorCode.BAD_JSON, "not valid JSON: a string is not UTF-8") from None
    except RecursionError:
        # msgspec recurses per nesting level; no request is nested more than a few deep.
        raise ProtocolError(ErrorCode.BAD_JSON, "JSON nested too deeply") from None
    if not isinstance(raw, dict):
        raise ProtocolError(
            ErrorCode.VALIDATION_ERROR,
            f"a request must be a JSON object, got {_JSON_TYPES.get(type(raw), 'a value')}",
        )
    request_id = raw.get("id")
    if not isinstance(request_id, int | str) or isinstance(request_id, bool):
        request_id = None
    op = raw.get("op")
    if isinstance(op, str) and op not in OPS:
        raise ProtocolError(
            ErrorCode.UNKNOWN_OP,
            f"unknown op {op!r}; known ops: {', '.join(sorted(OPS))}",
            request_id,
        )
    try:
        return cast(AnyRequest, msgspec.convert(raw, AnyRequest))
    except msgspec.ValidationError as exc:
        message = str(exc)
        for crn_message in _CRN_MESSAGES:
            message = message.replace(crn_message, "Expected a 5-digit CRN string")
        raise ProtocolError(ErrorCode.VALIDATION_ERROR, message, request_id) from None


def encode_line(message: msgspec.Struct) -> bytes:
    """A protocol message as one newline-terminated JSON line."""
    return _encoder.encode(message) + b"\n"


def error_response(request_id: RequestId | None, code: ErrorCode, message: str) -> Response:
    """A failure envelope."""
    return Response(request_id, False, None, Error(code, message))
