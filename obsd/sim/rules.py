"""OBS's registration rules as plain state and functions: no sockets, no clock, no sleeps.

Within one request the drops (SCRN) are applied before the adds (ECRN), so a seat or a time
slot freed by a drop is available to an add of the same request. OBS's own order is unknown
(obs-facts.md); this is the order a careful client must not rely on either way.

Request-wide refusals are checked in this order, each giving every CRN the same code:
ban or volume limit (VAL21), debounce (VAL16), more than 12 CRNs (VAL15), not open (VAL02).
Every POST that reaches the rules counts toward the debounce and the volume window first,
whatever its outcome, as on OBS. Per CRN, an add is checked for: unknown CRN, already
registered (VAL03), retake blocked (VAL22), prerequisite (VAL11), time conflict (VAL09) and
quota (VAL06, also once other students have filled the course: `Course.fills_after_s`, judged
when the CRN's turn comes), in that order; a drop for: unknown CRN, not registered (VAL10), a
drop already used this term (VAL20). Instants are the server's own clock (true time + skew),
in epoch ns.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import msgspec

from obsd.core.config import MAX_CRNS
from obsd.core.timing import NS
from obsd.sim.config import Course, SimConfig, clock_minutes

SUCCESS: Final = "successResult"
NOT_FOUND: Final = "CRNNotFound"
NOT_OPEN: Final = "VAL02"
ALREADY: Final = "VAL03"
FULL: Final = "VAL06"
CONFLICT: Final = "VAL09"
NOT_REGISTERED: Final = "VAL10"
PREREQUISITE: Final = "VAL11"
TOO_MANY: Final = "VAL15"
DEBOUNCE: Final = "VAL16"
ONE_DROP: Final = "VAL20"
VOLUME: Final = "VAL21"
RETAKE: Final = "VAL22"
# OBS lets a student drop one course per term (VAL20 after that).
DROPS_PER_TERM: Final = 1


class CrnResult(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The outcome for one CRN, exactly as OBS writes it."""

    crn: str
    operation_finished: bool = True
    status_code: int
    result_code: str
    result_data: dict[str, str] | None = None


class RegistrationResult(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The body of a 200 answer to a registration POST."""

    ecrn_result_list: list[CrnResult]
    scrn_result_list: list[CrnResult]


class CourseState(msgspec.Struct, frozen=True, kw_only=True):
    """Seats of one course right now."""

    crn: str
    code: str
    quota: int
    taken: int


class StudentState(msgspec.Struct, frozen=True, kw_only=True):
    """One student's registrations right now."""

    subject: str
    registered: list[str]
    drops_used: int


class SimState(msgspec.Struct, frozen=True, kw_only=True):
    """Every seat and registration, for `GET /_sim/state` and tests."""

    courses: list[CourseState]
    students: list[StudentState]


def success(crn: str) -> CrnResult:
    """A successful add or drop."""
    return CrnResult(crn=crn, status_code=0, result_code=SUCCESS)


def failure(crn: str, code: str, data: dict[str, str] | None = None) -> CrnResult:
    """A refused add or drop with OBS's code."""
    return CrnResult(crn=crn, status_code=1, result_code=code, result_data=data)


def _overlaps(a: Course, b: Course) -> bool:
    return any(
        day_a == day_b
        and clock_minutes(start_a) < clock_minutes(end_b)
        and clock_minutes(start_b) < clock_minutes(end_a)
        for day_a, start_a, end_a in a.slots
        for day_b, start_b, end_b in b.slots
    )


@dataclass(slots=True)
class _Limits:
    """One token subject's debounce and volume history."""

    window: deque[int]
    last_post_ns: int | None = None
    banned_until_ns: int = 0


@dataclass(slots=True)
class _Student:
    registered: list[str] = field(default_factory=list)
    drops_used: int = 0
    passed: frozenset[str] = frozenset()


class Registrar:
    """The catalogue and every student's registrations; `register` is OBS's POST handler."""

    def __init__(self, config: SimConfig) -> None:
        self._config = config
        self._courses = {course.crn: course for course in config.courses}
        self._taken = {course.crn: course.enrolled for course in config.courses}
        # Seat changes still to come, in time order, as (true ns, CRN, delta, page only).
        self._changes = sorted(
            (round(change.at * NS), course.crn, change.delta, change.page_only)
            for course in config.courses
            for change in course.seat_changes
        )
        # What the public schedule shows beyond the truth, by CRN (page-only changes).
        self._page_offset = dict.fromkeys(self._courses, 0)
        self._students: dict[str, _Student] = {}
        self._limits: dict[str, _Limits] = {}
        self._opening_ns = None if config.opening_at is None else round(config.opening_at * NS)
        for student in config.students:
            self._students[student.subject] = _Student(
                list(student.registered), student.drops_used, frozenset(student.passed)
            )
            for crn in student.registered:
                self._taken[crn] += 1

    def is_open(self, server_now_ns: int) -> bool:
        """Whether registration has opened by the server's own clock."""
        return self._opening_ns is None or server_now_ns >= self._opening_ns

    def count_post(self, subject: str, server_now_ns: int) -> str | None:
        """Count one POST against the limits; return VAL21 or VAL16 if they refuse it."""
        limits = self._limits.get(subject)
        if limits is None:
            # Knowing that more than `volume_limit` POSTs are in the window is enough.
            limits = self._limits[subject] = _Limits(deque(maxlen=self._config.volume_limit + 1))
        window_start = server_now_ns - round(self._config.volume_window_s * NS)
        limits.window.append(server_now_ns)
        while limits.window[0] <= window_start:
            limits.window.popleft()
        previous = limits.last_post_ns
        # Injected jitter may hand the rules arrivals slightly out of order; the window
        # restarts from the latest POST and `abs` measures the gap either way.
        limits.last_post_ns = server_now_ns if previous is None else max(previous, server_now_ns)
        if server_now_ns < limits.banned_until_ns:
            return VOLUME
        if len(limits.window) > self._config.volume_limit:
            limits.banned_until_ns = server_now_ns + round(self._config.ban_s * NS)
            return VOLUME
        if previous is not None and abs(server_now_ns - previous) < self._config.debounce_s * NS:
            return DEBOUNCE
        return None

    def register(
        self,
        subject: str,
        ecrn: Sequence[str],
        scrn: Sequence[str],
        server_now_ns: int,
        turns_ns: Sequence[int] = (),
    ) -> RegistrationResult:
        """Apply one registration POST of `subject` arriving at `server_now_ns`.

        `turns_ns`: when each CRN's turn comes after the arrival, drops first, then adds (OBS
        handles them one after another); a course may fill before its turn. Default: at once.
        """
        self.catch_up(server_now_ns)
        refusal = self.count_post(subject, server_now_ns)
        if refusal is None and len(ecrn) + len(scrn) > MAX_CRNS:
            refusal = TOO_MANY
        if refusal is None and not self.is_open(server_now_ns):
            refusal = NOT_OPEN
        if refusal is not None:
            return RegistrationResult(
                ecrn_result_list=[failure(crn, refusal) for crn in ecrn],
                scrn_result_list=[failure(crn, refusal) for crn in scrn],
            )
        student = self._students.setdefault(subject, _Student())
        turns = [server_now_ns + offset for offset in turns_ns]
        turns += [server_now_ns] * (len(scrn) + len(ecrn) - len(turns))
        drops = [self._drop(student, crn) for crn in scrn]
        add_turns = turns[len(scrn) :]
        adds = [self._add(student, crn, at) for crn, at in zip(ecrn, add_turns, strict=True)]
        return RegistrationResult(ecrn_result_list=adds, scrn_result_list=drops)

    def catch_up(self, now_ns: int) -> None:
        """Apply the seat changes due by `now_ns` (another's +1 only if a seat is free)."""
        while self._changes and self._changes[0][0] <= now_ns:
            _, crn, delta, page_only = self._changes.pop(0)
            quota = self._courses[crn].quota
            if page_only:
                self._page_offset[crn] += delta
            elif delta < 0 and self._taken[crn] > 0:
                self._taken[crn] -= 1
            elif delta > 0 and self._taken[crn] < quota:
                self._taken[crn] += 1

    def seats(self, crn: str, now_ns: int) -> tuple[int, int]:
        """The quota and the seats taken of `crn` at `now_ns`, as the public schedule shows."""
        self.catch_up(now_ns)
        quota = self._courses[crn].quota
        return quota, min(quota, max(0, self._taken[crn] + self._page_offset[crn]))

    def _drop(self, student: _Student, crn: str) -> CrnResult:
        if crn not in self._courses:
            return failure(crn, NOT_FOUND)
        if crn not in student.registered:
            return failure(crn, NOT_REGISTERED)
        if student.drops_used >= DROPS_PER_TERM:
            return failure(crn, ONE_DROP)
        student.registered.remove(crn)
        student.drops_used += 1
        self._taken[crn] -= 1
        return success(crn)

    def _add(self, student: _Student, crn: str, at_ns: int) -> CrnResult:
        course = self._courses.get(crn)
        if course is None:
            return failure(crn, NOT_FOUND)
        if crn in student.registered:
            return failure(crn, ALREADY)
        if course.retake_blocked:
            return failure(crn, RETAKE, {"yukseltmeyeAlinanDers": course.code or crn})
        if course.prerequisite is not None and course.prerequisite not in student.passed:
            return failure(crn, PREREQUISITE, {"uyulmayanOnsartlar": course.prerequisite})
        if any(_overlaps(course, self._courses[other]) for other in student.registered):
            return failure(crn, CONFLICT)
        if self._taken[crn] >= course.quota or self._filled(course, at_ns):
            return failure(crn, FULL)
        student.registered.append(crn)
        self._taken[crn] += 1
        return success(crn)

    def _filled(self, course: Course, at_ns: int) -> bool:
        """Whether other students have taken the seats left by `at_ns` (Course.fills_after_s)."""
        if course.fills_after_s is None or self._opening_ns is None:
            return False
        return at_ns >= self._opening_ns + round(course.fills_after_s * NS)

    def snapshot(self) -> SimState:
        """Seats and registrations as they stand."""
        return SimState(
            courses=[
                CourseState(crn=crn, code=course.code, quota=course.quota, taken=self._taken[crn])
                for crn, course in self._courses.items()
            ],
            students=[
                StudentState(
                    subject=subject,
                    registered=list(student.registered),
                    drops_used=student.drops_used,
                )
                for subject, student in self._students.items()
            ],
        )
