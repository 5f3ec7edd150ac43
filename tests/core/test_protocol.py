"""Request decoding: valid requests become typed values; every bad input a typed error."""

import msgspec
import pytest

from obsd.core.events import EVENT_TYPES
from obsd.core.protocol import (
    OPS,
    Configure,
    ErrorCode,
    Events,
    Ping,
    ProtocolError,
    Tail,
    decode_request,
    encode_line,
    error_response,
)
from obsd.core.schema import schema


def refused(line: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        decode_request(line)
    return caught.value


def test_valid_requests_decode_to_their_types() -> None:
    assert decode_request(b'{"id": 1, "op": "ping"}') == Ping(id=1)
    assert decode_request(b'{"id": "a", "op": "tail", "after_seq": 5, "follow": true}') == Tail(
        id="a", after_seq=5, follow=True
    )
    events = decode_request(b'{"id": 2, "op": "events"}')
    assert isinstance(events, Events) and (events.after_seq, events.limit) == (0, 100)
    configure = decode_request(b'{"id": 3, "op": "configure", "config": {"ecrn": ["12345"]}}')
    assert isinstance(configure, Configure) and configure.config.changed_fields() == ["ecrn"]


@pytest.mark.parametrize(
    "line",
    [b"{", b"not json", b"\xff\xfe\x00garbage", b'{"id": 1,}', b'{"id": "\xff", "op": "ping"}'],
)
def test_malformed_json_is_bad_json(line: bytes) -> None:
    assert refused(line).code is ErrorCode.BAD_JSON


@pytest.mark.parametrize("line", [b"[1, 2]", b'"ping"', b"42", b"null"])
def test_a_non_object_is_refused_by_name(line: bytes) -> None:
    error = refused(line)
    assert error.code is ErrorCode.VALIDATION_ERROR
    assert "must be a JSON object" in error.message
    assert "NoneType" not in error.message and "list" not in error.message


def test_a_bad_crn_is_explained_in_the_words_students_use() -> None:
    error = refused(b'{"id": 1, "op": "configure", "config": {"scrn": ["12345", "9"]}}')
    assert error.message == "Expected a 5-digit CRN string - at `$.config.scrn[1]`"


def test_unknown_op_names_itself_and_keeps_the_id() -> None:
    error = refused(b'{"id": 7, "op": "launch_missiles"}')
    assert (error.code, error.request_id) == (ErrorCode.UNKNOWN_OP, 7)
    assert "launch_missiles" in error.message and "ping" in error.message


@pytest.mark.parametrize(
    ("line", "field"),
    [
        (b'{"id": 1, "op": "tail", "after_seq": "ten"}', "$.after_seq"),
        (b'{"id": 1, "op": "tail", "follow": 1}', "$.follow"),
        (b'{"id": 1, "op": "events", "limit": 100000}', "$.limit"),
        (b'{"id": 1, "op": "events", "after_seq": -1}', "$.after_seq"),
        (b'{"id": 1, "op": "configure", "config": {"max_attempts": 0}}', "$.config.max_attempts"),
        (b'{"id": 1, "op": "configure", "config": {"ecrn": ["1234"]}}', "$.config.ecrn[0]"),
        (
            b'{"id": 1, "op": "configure", "config": {"retry_interval": "fast"}}',
            "$.config.retry_interval",
        ),
        (b'{"id": 1, "op": "configure"}', "config"),
    ],
)
def test_wrong_types_and_ranges_name_the_field(line: bytes, field: str) -> None:
    error = refused(line)
    assert (error.code, error.request_id) == (ErrorCode.VALIDATION_ERROR, 1)
    assert field in error.message


@pytest.mark.parametrize(
    ("line", "field"),
    [
        (b'{"id": 1, "op": "ping", "force": true}', "force"),
        (b'{"id": 1, "op": "configure", "config": {"kayit_saati": "14:00:00"}}', "kayit_saati"),
    ],
)
def test_unknown_fields_are_refused_by_name(line: bytes, field: str) -> None:
    error = refused(line)
    assert error.code is ErrorCode.VALIDATION_ERROR
    assert f"unknown field `{field}`" in error.message


@pytest.mark.parametrize(
    "line",
    [
        b'{"op": "ping"}',
        b'{"id": null, "op": "ping"}',
        b'{"id": 1.5, "op": "ping"}',
        b'{"id": true, "op": "ping"}',
    ],
)
def test_a_missing_or_unusable_id_is_refused_with_a_null_id(line: bytes) -> None:
    error = refused(line)
    assert (error.code, error.request_id) == (ErrorCode.VALIDATION_ERROR, None)


def test_a_missing_op_is_a_validation_error() -> None:
    error = refused(b'{"id": 3}')
    assert (error.code, error.request_id) == (ErrorCode.VALIDATION_ERROR, 3)
    assert "op" in error.message


def test_error_envelope_shape() -> None:
    line = encode_line(error_response(4, ErrorCode.UNKNOWN_OP, "nope"))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert msgspec.json.decode(line) == {
        "id": 4,
        "success": False,
        "data": None,
        "error": {"code": "UNKNOWN_OP", "message": "nope"},
    }


def test_schema_covers_every_op_and_event_type() -> None:
    document = msgspec.json.decode(msgspec.json.encode(schema()))
    text = msgspec.json.encode(document).decode()
    for op in OPS:
        assert f'"{op}"' in text
    for event_type in EVENT_TYPES:
        assert f'"{event_type}"' in text
    assert set(document) >= {"request", "response", "replies", "greeting", "event", "$defs"}
    assert set(document["replies"]) == OPS, "a reply type for every op"
