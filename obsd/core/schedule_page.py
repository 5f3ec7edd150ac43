"""Reading OBS's public course schedule (pure): the branches, and each section's seats.

No login is needed for it (obs-facts.md, "Public course schedule"): a JSON list of branches
(`BLG` -> its id), and per branch an HTML table whose rows hold, among others, the CRN (cell
0), the quota (Kontenjan, cell 9) and the students enrolled (Yazılan, cell 10). A seat is free
when the quota exceeds the enrolled count. A page that does not read that way is a
`SchedulePageError` naming what was missing, never a guess.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Final

import msgspec

BRANCHES_PATH: Final = "/public/DersProgram/SearchBransKoduByProgramSeviye"
SCHEDULE_PATH: Final = "/public/DersProgram/DersProgramSearch"
# Undergraduate ("lisans"): the level every branch id below belongs to.
LEVEL: Final = "LS"
TABLE_ID: Final = "dersProgramContainer"
CRN_CELL: Final = 0
CODE_CELL: Final = 1
QUOTA_CELL: Final = 9
ENROLLED_CELL: Final = 10
# A branch is the letters of a course code: BLG, MAT, EHB (Turkish capitals included).
BRANCH_PATTERN: Final = r"^[A-ZÇĞİÖŞÜ]{2,4}$"
_BRANCH: Final = re.compile(BRANCH_PATTERN)


class SchedulePageError(ValueError):
    """A schedule page is not what it should be; the message says what."""


class Branch(msgspec.Struct, frozen=True, rename="camel"):
    """One entry of the branch list (other fields are ignored)."""

    ders_brans_kodu: str
    brans_kodu_id: int


class Seats(msgspec.Struct, frozen=True):
    """One section's seats as the page shows them."""

    crn: str
    course: str
    quota: int
    enrolled: int

    @property
    def free(self) -> int:
        """Seats left (never below 0: a section can be over-filled by hand)."""
        return max(0, self.quota - self.enrolled)


def branch_of(course_code: str) -> str:
    """The branch of a course code: `BLG 102E` -> `BLG`."""
    branch = course_code.strip().split(" ")[0].upper()
    if not _BRANCH.fullmatch(branch):
        raise SchedulePageError(f"{course_code!r} is not a course code such as 'BLG 102E'")
    return branch


def branch_ids(body: bytes) -> dict[str, int]:
    """The branch list's ids by branch code."""
    try:
        branches = msgspec.json.decode(body, type=list[Branch])
    except msgspec.DecodeError as exc:
        raise SchedulePageError(f"the branch list is not what it was: {exc}") from None
    return {b.ders_brans_kodu.strip().upper(): b.brans_kodu_id for b in branches}


class _Rows(HTMLParser):
    """The cells of each row of the schedule's table body, as text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found_table = False
        self.rows: list[list[str]] = []
        self._depth = 0  # inside the table: how many tables deep
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            if self._depth or dict(attrs).get("id") == TABLE_ID:
                self._depth += 1
                self.found_table = True
        elif self._depth == 1 and tag == "tbody":
            self._in_body = True
        elif self._depth == 1 and self._in_body and tag == "tr":
            self.rows.append([])
        elif self._depth == 1 and self._in_body and tag == "td" and self.rows:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._depth:
            self._depth -= 1
        elif tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def seats(page: str) -> dict[str, Seats]:
    """Every section of a branch's schedule page by CRN."""
    rows = _Rows()
    try:
        rows.feed(page)
        rows.close()
    except Exception as exc:  # html.parser asserts on some malformed markup.
        raise SchedulePageError(f"the schedule page is not readable HTML ({exc!r})") from None
    if not rows.found_table:
        raise SchedulePageError(f"the schedule page has no table #{TABLE_ID}")
    found: dict[str, Seats] = {}
    for cells in rows.rows:
        if len(cells) <= ENROLLED_CELL:
            continue  # A header or note row, not a section.
        try:
            quota, enrolled = int(cells[QUOTA_CELL]), int(cells[ENROLLED_CELL])
        except ValueError:
            raise SchedulePageError(
                f"CRN {cells[CRN_CELL]}: quota {cells[QUOTA_CELL]!r} and enrolled "
                f"{cells[ENROLLED_CELL]!r} are not numbers; the page's columns have changed"
            ) from None
        found[cells[CRN_CELL]] = Seats(cells[CRN_CELL], cells[CODE_CELL], quota, enrolled)
    return found
