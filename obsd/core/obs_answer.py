"""Reading OBS's answer to a registration POST into per-CRN results (pure)."""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

from obsd.core.events import CrnResult
from obsd.core.results import CrnKind, CrnState, Outcome, classify

REGISTRATION_PATH: Final = "/api/ders-kayit/v21"
TOKEN_CHECK_PATH: Final = "/api/ogrenci/OgrenciYetkiListesi"


class _Item(msgspec.Struct):
    crn: str
    statusCode: int | None = None
    resultCode: str | None = None
    resultData: Any = None
    operationFinished: bool | None = None


class _Answer(msgspec.Struct):
    ecrnResultList: list[_Item] | None = None
    scrnResultList: list[_Item] | None = None


_decoder: Final = msgspec.json.Decoder(_Answer)


class UnreadableAnswer(ValueError):
    """The body is not the registration answer OBS sends."""


def registration_body(ecrn: list[str], scrn: list[str]) -> bytes:
    """The POST body OBS expects: both lists in one request."""
    return msgspec.json.encode({"ECRN": ecrn, "SCRN": scrn})


def read_answer(body: bytes, ecrn: list[str], scrn: list[str]) -> list[CrnResult]:
    """Per-CRN results for the CRNs that were sent; a CRN OBS did not mention stays pending."""
    try:
        answer = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise UnreadableAnswer(f"OBS sent an unreadable answer: {exc}") from None
    results = []
    for kind, sent, items in (
        (CrnKind.ECRN, ecrn, answer.ecrnResultList or []),
        (CrnKind.SCRN, scrn, answer.scrnResultList or []),
    ):
        by_crn = {item.crn: item for item in items}
        for crn in sent:
            item = by_crn.get(crn)
            if item is None:
                results.append(
                    CrnResult(
                        crn=crn,
                        kind=kind,
                        state=CrnState.PENDING,
                        code=None,
                        message="OBS's answer did not mention this CRN",
                    )
                )
                continue
            classified = classify(
                item.statusCode, item.resultCode, item.resultData, is_drop=kind == CrnKind.SCRN
            )
            results.append(
                CrnResult(
                    crn=crn,
                    kind=kind,
                    state=classified.state,
                    code=item.resultCode,
                    message=classified.message,
                    result_data=item.resultData,
                )
            )
    return results


_TITLE: Final = re.compile(rb"<title>\s*([^<]{1,80}?)\s*</title>", re.IGNORECASE)


def _page(body: bytes) -> str:
    """An HTML error page named by its title (IIS's busy page), so the log says what it was."""
    if b"<html" not in body[:512].lower():
        return ""
    title = _TITLE.search(body[:2048])
    name = title[1].decode("ascii", "replace") if title else "no title"
    return f" with an HTML page ({name}): its web server, not the registration service"


class Reading(msgspec.Struct, frozen=True):
    """What an HTTP answer to a POST means: its outcome, per-CRN results, or why there are none.

    Never `Outcome.UNKNOWN`: that there was no answer at all is the driver's to say.
    """

    outcome: Outcome
    results: list[CrnResult]
    detail: str | None = None


def read_response(http_status: int, body: bytes, ecrn: list[str], scrn: list[str]) -> Reading:
    """Classify OBS's answer to a registration POST."""
    if http_status == 401:
        return Reading(
            Outcome.UNAUTHORIZED, [], "OBS answered 401: the token is expired or invalid"
        )
    if http_status != 200:
        return Reading(Outcome.HTTP_ERROR, [], f"OBS answered HTTP {http_status}{_page(body)}")
    try:
        return Reading(Outcome.ANSWERED, read_answer(body, ecrn, scrn))
    except UnreadableAnswer as exc:
        return Reading(Outcome.HTTP_ERROR, [], str(exc))
