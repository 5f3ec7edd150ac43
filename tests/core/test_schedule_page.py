"""Reading the public course schedule (pure): branch ids, and each section's quota and enrolled
count from the table's cells 9 and 10, whatever else the rows hold."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from obsd.core.schedule_page import SchedulePageError, branch_ids, branch_of, seats


def row(crn: str, quota: str, enrolled: str) -> str:
    cells = [
        crn,
        "BLG 102E",
        "Intro <b>C</b>",
        "Yüz Yüze",
        "Dr. X",
        "EEB",
        "Pazartesi",
        "08:30/11:29",
        "5202",
        quota,
        enrolled,
        "",
        "",
        "Yok/None",
        "",
    ]
    return "<tr>" + "".join(f"<td>\n  {c}\n</td>" for c in cells) + "</tr>"


PAGE = (
    '<html><table id="other"><tbody><tr><td>99999</td></tr></tbody></table>'
    '<table id="dersProgramContainer"><thead><tr><th>CRN</th></tr></thead><tbody>'
    f"{row('21234', '40', '40')}{row('21235', '45', '41')}"
    '<tr><td colspan="15">Açıklama / Note</td></tr>'
    "</tbody></table></html>"
)


def test_each_section_s_seats_come_from_the_quota_and_enrolled_cells() -> None:
    found = seats(PAGE)
    assert set(found) == {"21234", "21235"}
    assert (found["21234"].free, found["21235"].free) == (0, 4)
    assert found["21235"].course == "BLG 102E"


def test_a_page_that_changed_says_how() -> None:
    with pytest.raises(SchedulePageError, match="no table #dersProgramContainer"):
        seats("<html><body>Bakım / Maintenance</body></html>")
    with pytest.raises(SchedulePageError, match="are not numbers"):
        seats(PAGE.replace(">\n  45\n<", ">\n  Kontenjan\n<"))


def test_branches_and_their_ids() -> None:
    body = b'[{"bransKoduId": 3, "dersBransKodu": "BLG", "dersBransKoduAdi": "x"}]'
    assert branch_ids(body) == {"BLG": 3}
    assert branch_of("BLG 102E") == "BLG" and branch_of("itb 111") == "ITB"
    with pytest.raises(SchedulePageError):
        branch_ids(b"<html>")
    with pytest.raises(SchedulePageError):
        branch_of("102")


@given(
    st.text(max_size=300)
    | st.sampled_from(
        ["<![foo[ x ]]>", "<table id='dersProgramContainer'><tbody><tr>" + "<td>1</td>" * 11]
    )
)
def test_any_page_reads_or_is_a_schedule_page_error(page: str) -> None:
    # Whatever OBS (or something in front of it) serves, the watch gets seats or a reason.
    try:
        found = seats(page)
    except SchedulePageError:
        return
    assert all(isinstance(s.quota, int) for s in found.values())
