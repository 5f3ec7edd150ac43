"""What each OBS result code means for one CRN: its state, whether it is final, when to retry.

The codes and their handling follow obs-facts.md. Unknown codes are kept verbatim, with OBS's
`resultData`, so the user sees exactly what OBS said.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

import msgspec


class CrnState(StrEnum):
    """Where one CRN of a run stands."""

    PENDING = "pending"  # not sent yet, or sent with no answer known
    SUCCESS = "success"  # added (ECRN) or dropped (SCRN)
    ALREADY = "already"  # already registered: as good as success for an add
    FULL = "full"  # quota full
    CONFLICT = "conflict"  # time conflict
    UPGRADE = "upgrade"  # cannot retake for grade improvement
    PREREQUISITE = "prerequisite"  # prerequisites not met
    DEBOUNCE = "debounce"  # "ongoing transaction": sent too soon after the last POST
    NOT_OPEN = "not_open"  # registration not open yet
    TRANSIENT = "transient"  # OBS could not process it now; worth a bounded retry
    RATE_LIMITED = "rate_limited"  # request-volume ban
    NOT_FOUND = "not_found"  # no such CRN this term
    REJECTED = "rejected"  # refused for a reason that retrying cannot change
    ERROR = "error"  # an unknown code, or a drop/add that failed oddly


class CrnKind(StrEnum):
    """Which list of the POST a CRN goes in."""

    ECRN = "ecrn"  # to add
    SCRN = "scrn"  # to drop


class Outcome(StrEnum):
    """What came back for one POST."""

    ANSWERED = "answered"  # OBS's answer, with per-CRN results
    UNKNOWN = "unknown"  # no answer (timeout, reset): it may have been processed
    UNAUTHORIZED = "unauthorized"  # 401: the token is expired or invalid
    HTTP_ERROR = "http_error"  # another status, or a body that is not OBS's answer


# States that end a CRN's story: nothing in the run will send it again.
FINAL_STATES: Final = frozenset(
    {
        CrnState.SUCCESS,
        CrnState.ALREADY,
        CrnState.CONFLICT,
        CrnState.UPGRADE,
        CrnState.PREREQUISITE,
        CrnState.NOT_FOUND,
        CrnState.REJECTED,
        CrnState.ERROR,
    }
)
# The codes the engine's rules name, beside the table below that classifies all of them.
SUCCESS_CODE: Final = "successResult"
# "Ongoing transaction": the next POST waits at least 5 s (policy.DEBOUNCE_SPACING_S).
DEBOUNCE_CODE: Final = "VAL16"
# "Not registered in this CRN": after a drop whose answer was lost, proof that it worked.
LOST_DROP_CODE: Final = "VAL10"
# "Quota full": for a watch, the seat it saw went to someone else first.
FULL_CODE: Final = "VAL06"
# The request-volume ban: per token, so it holds back every run of the token.
BAN_CODE: Final = "VAL21"


class Classified(msgspec.Struct, frozen=True):
    """One CRN's result as the engine sees it."""

    state: CrnState
    message: str


# code -> (state, what it means, in the words a student would use)
_CODES: Final[dict[str, tuple[CrnState, str]]] = {
    "VAL01": (CrnState.TRANSIENT, "could not be processed (or an enrollment hold)"),
    "VAL02": (CrnState.NOT_OPEN, "registration is not open yet"),
    "VAL03": (CrnState.ALREADY, "already registered in this course"),
    "VAL04": (CrnState.REJECTED, "not in your course plan"),
    "VAL05": (CrnState.REJECTED, "credit limit exceeded"),
    "VAL06": (CrnState.FULL, "quota is full"),
    "VAL07": (CrnState.REJECTED, "already passed with AA"),
    "VAL08": (CrnState.REJECTED, "your program is not eligible for this section"),
    "VAL09": (CrnState.CONFLICT, "time conflict with another course"),
    "VAL10": (CrnState.REJECTED, "not registered in this CRN, so there is nothing to drop"),
    "VAL11": (CrnState.PREREQUISITE, "prerequisites not met"),
    "VAL12": (CrnState.REJECTED, "section not offered this term"),
    "VAL13": (CrnState.TRANSIENT, "section temporarily disabled"),
    "VAL14": (CrnState.TRANSIENT, "system temporarily unavailable"),
    "VAL15": (CrnState.REJECTED, "more than 12 CRNs in one request"),
    "VAL16": (CrnState.DEBOUNCE, "another transaction was in progress (sent too soon)"),
    "VAL17": (CrnState.TRANSIENT, "system under maintenance"),
    "VAL18": (CrnState.REJECTED, "an attribute hold blocks registration"),
    "VAL19": (CrnState.REJECTED, "undergraduate/associate restriction"),
    "VAL20": (CrnState.REJECTED, "only one course may be dropped per term"),
    "VAL21": (CrnState.RATE_LIMITED, "request-volume limit hit: temporarily banned"),
    "VAL22": (CrnState.UPGRADE, "cannot retake this course for grade improvement"),
    "CRNListEmpty": (CrnState.NOT_FOUND, "no such CRN this term"),
    "CRNNotFound": (CrnState.NOT_FOUND, "no such CRN this term"),
    "ERRLoad": (CrnState.TRANSIENT, "service temporarily unavailable"),
}
# resultData keys whose text OBS fills for a code, shown to the user as they are.
_DETAIL_KEYS: Final = ("uyulmayanOnsartlar", "yukseltmeyeAlinanDers")


def _detail(result_data: Any) -> str:
    if not isinstance(result_data, dict) or not result_data:
        return ""
    for key in _DETAIL_KEYS:
        if result_data.get(key):
            return f": {result_data[key]}"
    return f": {msgspec.json.encode(result_data).decode()}"


def classify(
    status_code: int | None, result_code: str | None, result_data: Any, *, is_drop: bool
) -> Classified:
    """Classify one entry of `ecrnResultList` / `scrnResultList`."""
    if status_code == 0 or result_code == SUCCESS_CODE:
        return Classified(CrnState.SUCCESS, "dropped" if is_drop else "added")
    code = result_code or "(no code)"
    known = _CODES.get(code)
    if known is None:
        return Classified(CrnState.ERROR, f"OBS answered {code}{_detail(result_data)}")
    state, meaning = known
    if state == CrnState.ALREADY and is_drop:
        state = CrnState.ERROR  # "already registered" answers no drop; show it as it is.
    return Classified(state, f"{code}: {meaning}{_detail(result_data)}")
