"""Every OBS result code lands in the right per-CRN state."""

import pytest

from obsd.core.results import FINAL_STATES, CrnState, classify


@pytest.mark.parametrize(
    ("code", "state"),
    [
        ("VAL01", CrnState.TRANSIENT),
        ("VAL02", CrnState.NOT_OPEN),
        ("VAL03", CrnState.ALREADY),
        ("VAL04", CrnState.REJECTED),
        ("VAL05", CrnState.REJECTED),
        ("VAL06", CrnState.FULL),
        ("VAL07", CrnState.REJECTED),
        ("VAL08", CrnState.REJECTED),
        ("VAL09", CrnState.CONFLICT),
        ("VAL10", CrnState.REJECTED),
        ("VAL11", CrnState.PREREQUISITE),
        ("VAL12", CrnState.REJECTED),
        ("VAL13", CrnState.TRANSIENT),
        ("VAL14", CrnState.TRANSIENT),
        ("VAL15", CrnState.REJECTED),
        ("VAL16", CrnState.DEBOUNCE),
        ("VAL17", CrnState.TRANSIENT),
        ("VAL18", CrnState.REJECTED),
        ("VAL19", CrnState.REJECTED),
        ("VAL20", CrnState.REJECTED),
        ("VAL21", CrnState.RATE_LIMITED),
        ("VAL22", CrnState.UPGRADE),
        ("CRNListEmpty", CrnState.NOT_FOUND),
        ("CRNNotFound", CrnState.NOT_FOUND),
        ("ERRLoad", CrnState.TRANSIENT),
    ],
)
def test_each_known_code(code: str, state: CrnState) -> None:
    result = classify(1, code, None, is_drop=False)
    assert result.state is state and result.message.startswith(code)


def test_success_by_status_code_or_result_code() -> None:
    assert classify(0, "successResult", None, is_drop=False).message == "added"
    assert classify(0, None, None, is_drop=True).message == "dropped"
    assert classify(None, "successResult", None, is_drop=False).state is CrnState.SUCCESS


def test_prerequisite_and_upgrade_details_are_shown() -> None:
    prerequisite = classify(1, "VAL11", {"uyulmayanOnsartlar": "MAT 103 MIN DD"}, is_drop=False)
    assert prerequisite.message.endswith("MAT 103 MIN DD")
    upgrade = classify(1, "VAL22", {"yukseltmeyeAlinanDers": "FIZ 101"}, is_drop=False)
    assert "FIZ 101" in upgrade.message


def test_unknown_codes_keep_obs_text_and_data() -> None:
    result = classify(1, "VAL99", {"aciklama": "yeni kural"}, is_drop=False)
    assert result.state is CrnState.ERROR
    assert "VAL99" in result.message and "yeni kural" in result.message
    assert classify(1, None, None, is_drop=False).state is CrnState.ERROR


def test_already_registered_is_no_answer_to_a_drop() -> None:
    assert classify(1, "VAL03", None, is_drop=True).state is CrnState.ERROR


def test_retryable_states_are_not_final() -> None:
    for state in (
        CrnState.PENDING,
        CrnState.NOT_OPEN,
        CrnState.DEBOUNCE,
        CrnState.TRANSIENT,
        CrnState.FULL,
        CrnState.RATE_LIMITED,
    ):
        assert state not in FINAL_STATES
