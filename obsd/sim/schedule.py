"""OBS's public course schedule as the simulator serves it (no sockets): branches and seats.

The real pages (obs-facts.md, "Public course schedule"): a JSON list of branches, and per
branch an HTML table, one row per section, whose cells 9 and 10 are the quota and the students
enrolled. Here the enrolled count is the registrar's own, seat changes included, so a seat
that frees on the page is a seat a POST can take. Polled faster than
`SimConfig.schedule_min_interval_s`, it answers 429, as the real one does.
"""

from __future__ import annotations

import html
from typing import Final
from urllib.parse import parse_qs, urlsplit

import msgspec

from obsd.core.schedule_page import (
    BRANCHES_PATH,
    SCHEDULE_PATH,
    TABLE_ID,
    SchedulePageError,
    branch_of,
)
from obsd.core.timing import NS
from obsd.sim.config import SimConfig
from obsd.sim.http11 import HttpRequest, Reply
from obsd.sim.rules import Registrar

HTML: Final = "text/html; charset=utf-8"


def _branch(code: str) -> str | None:
    """A course's branch, or None for a course without a code of the usual form."""
    try:
        return branch_of(code) if code else None
    except SchedulePageError:
        return None


class PublicSchedule:
    """The branch list and the schedule pages of one simulated term."""

    def __init__(self, config: SimConfig, registrar: Registrar) -> None:
        self._config = config
        self._registrar = registrar
        codes = sorted({b for c in config.courses if (b := _branch(c.code)) is not None})
        self._branch_ids = {code: number for number, code in enumerate(codes, start=1)}
        self._last_served_ns: int | None = None

    def routes(self) -> dict[str, str]:
        """Path -> method of the endpoints served here."""
        return {BRANCHES_PATH: "GET", SCHEDULE_PATH: "GET"}

    def respond(self, request: HttpRequest, now_ns: int) -> Reply:
        """Answer one request at true time `now_ns`."""
        last = self._last_served_ns
        if last is not None and now_ns - last < self._config.schedule_min_interval_s * NS:
            return Reply(429, b"<html><body>Too Many Requests</body></html>", content_type=HTML)
        self._last_served_ns = now_ns
        if request.path == BRANCHES_PATH:
            branches = [
                {"bransKoduId": number, "dersBransKodu": code, "dersBransKoduAdi": code}
                for code, number in self._branch_ids.items()
            ]
            return Reply(200, msgspec.json.encode(branches))
        query = parse_qs(urlsplit(request.target).query)
        try:
            branch_id = int(query.get("dersBransKoduId", [""])[0])
        except ValueError:
            return Reply(400, b"<html><body>Bad Request</body></html>", content_type=HTML)
        return Reply(200, self._page(branch_id, now_ns).encode(), content_type=HTML)

    def _page(self, branch_id: int, now_ns: int) -> str:
        rows = []
        for course in self._config.courses:
            branch = _branch(course.code)
            if branch is None or self._branch_ids[branch] != branch_id:
                continue
            quota, taken = self._registrar.seats(course.crn, now_ns)
            cells = [
                course.crn,
                course.code,
                course.title,
                "Yüz Yüze",
                "Instructor",
                "EEB",
                " ".join(day for day, _, _ in course.slots),
                " ".join(f"{start}/{end}" for _, start, end in course.slots),
                "5202",
                str(quota),
                str(taken),
                "",
                "",
                course.prerequisite or "Yok/None",
                "",
            ]
            rows.append(cells)
        return schedule_table(rows)


def schedule_table(rows: list[list[str]]) -> str:
    """A schedule page as OBS serves it: its table, one row of 15 cells per section."""
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>"
        for cells in rows
    )
    head = "".join(
        f"<th>{name}</th>"
        for name in ("CRN", "Course Code", "Course Title", "Kontenjan", "Yazılan")
    )
    return (
        f'<html><body><table id="{TABLE_ID}" class="table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></body></html>"
    )
