"""OBS's answer body becomes per-CRN results; anything else is refused clearly."""

import msgspec
import pytest

from obsd.core.obs_answer import (
    Reading,
    UnreadableAnswer,
    read_answer,
    read_response,
    registration_body,
)
from obsd.sim.app import IIS_503_PAGE


def body(ecrn: list[dict[str, object]], scrn: list[dict[str, object]]) -> bytes:
    return msgspec.json.encode({"ecrnResultList": ecrn, "scrnResultList": scrn})


def item(crn: str, code: str, status: int = 1, data: object = None) -> dict[str, object]:
    return {
        "crn": crn,
        "operationFinished": True,
        "statusCode": status,
        "resultCode": code,
        "resultData": data,
    }


def test_the_request_body_has_both_lists() -> None:
    assert msgspec.json.decode(registration_body(["11111"], [])) == {"ECRN": ["11111"], "SCRN": []}


def test_results_follow_the_plan_order_and_kind() -> None:
    answer = body(
        [item("22222", "VAL06"), item("11111", "successResult", 0)],
        [item("33333", "successResult", 0)],
    )
    results = read_answer(answer, ["11111", "22222"], ["33333"])
    assert [(r.crn, r.kind, r.state) for r in results] == [
        ("11111", "ecrn", "success"),
        ("22222", "ecrn", "full"),
        ("33333", "scrn", "success"),
    ]
    assert results[2].message == "dropped"


def test_result_data_is_kept_for_the_user() -> None:
    answer = body([item("11111", "VAL11", data={"uyulmayanOnsartlar": "MAT 103"})], [])
    (result,) = read_answer(answer, ["11111"], [])
    assert result.result_data == {"uyulmayanOnsartlar": "MAT 103"}
    assert "MAT 103" in result.message


def test_a_crn_missing_from_the_answer_stays_pending() -> None:
    (result,) = read_answer(body([], []), ["11111"], [])
    assert result.state == "pending" and "did not mention" in result.message


def test_crns_not_sent_are_ignored() -> None:
    assert read_answer(body([item("99999", "VAL03")], []), [], []) == []


@pytest.mark.parametrize(
    "raw", [b"<html>502 Bad Gateway</html>", b'{"ecrnResultList": 5}', b"[]", b""]
)
def test_unreadable_answers_are_refused(raw: bytes) -> None:
    with pytest.raises(UnreadableAnswer):
        read_answer(raw, ["11111"], [])


def test_an_http_answer_is_read_as_an_outcome() -> None:
    assert read_response(401, b"", ["12345"], []) == Reading(
        "unauthorized", [], "OBS answered 401: the token is expired or invalid"
    )
    # IIS's overload page at the opening: not OBS's answer, whatever the status says.
    assert read_response(503, IIS_503_PAGE, ["12345"], []) == Reading(
        "http_error",
        [],
        "OBS answered HTTP 503 with an HTML page (Service Unavailable): its web server, not "
        "the registration service",
    )
    assert read_response(503, b"<html>busy</html>", ["12345"], []).detail == (
        "OBS answered HTTP 503 with an HTML page (no title): its web server, not the "
        "registration service"
    )
    assert read_response(503, b'{"message": "Server Error"}', ["12345"], []) == Reading(
        "http_error", [], "OBS answered HTTP 503"
    )
    unreadable = read_response(200, b"<html>", ["12345"], [])
    assert unreadable.outcome == "http_error" and unreadable.results == []
    assert unreadable.detail is not None and unreadable.detail.startswith("OBS sent an unreadable")
    answered = read_response(
        200, b'{"ecrnResultList": [{"crn": "12345", "statusCode": 0}]}', ["12345"], []
    )
    assert answered.outcome == "answered" and answered.results[0].state == "success"
