"""What a simulated OBS is told: catalogue, students, clocks, limits, network and faults."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

from obsd.core.config import Crn

Day = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
ClockTime = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
# A weekly meeting: day, start and end ("HH:MM", the end excluded).
Slot = tuple[Day, ClockTime, ClockTime]
NonNegative = Annotated[float, Meta(ge=0)]
Positive = Annotated[float, Meta(gt=0)]
FaultKind = Literal[
    "http_500",
    "http_503",
    "iis_503",
    "reset",
    "reset_after",
    "slow",
    "malformed_json",
    "expired",
]

# OBS handles a POST's CRNs one after another: 0.17-1.1 s each on a busy opening (obs-facts.md).
BUSY_CRN_PROCESSING_S: Final = (0.17, 1.1)
# A client that treats a missing answer as "outcome unknown" waits ~30 s (obs-facts.md);
# a slow fault lasts longer by default so that it really is beyond that read timeout.
DEFAULT_SLOW_S: Final = 35.0


class SimConfigError(ValueError):
    """The simulator configuration is inconsistent; the message says what to fix."""


class SeatChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Another student drops (-1) or takes (+1, if one is free) a seat at `at` (epoch s, server).

    `page_only`: only the public schedule shows the change, as a page behind the truth would
    (a seat that shows free there was already taken).
    """

    at: float
    delta: Literal[-1, 1]
    page_only: bool = False


class Course(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One section of the catalogue. Seats taken at start = `enrolled` + configured students."""

    crn: Crn
    quota: Annotated[int, Meta(ge=0)]
    code: str = ""
    title: str = ""
    slots: list[Slot] = []
    # Seats held by students the simulator does not model.
    enrolled: Annotated[int, Meta(ge=0)] = 0
    # The course code a student must have passed; shown in VAL11's `uyulmayanOnsartlar`.
    prerequisite: str | None = None
    # Every add is refused with VAL22, as for a student who may not retake it for a grade.
    retake_blocked: bool = False
    # Other students take every seat left this long after the opening (true-time seconds), so
    # an add whose turn comes later finds the course full: order matters. None: never.
    fills_after_s: NonNegative | None = None
    # The add/drop days: seats freed and taken by students the simulator does not model.
    seat_changes: list[SeatChange] = []


class StudentLogin(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a student logs in to the simulated İTÜ single sign-on (obsd/sim/sso.py)."""

    username: Annotated[str, Meta(min_length=1)]
    password: Annotated[str, Meta(min_length=1)]
    # More than one (a double major): the login asks which, with a page of links.
    identities: list[Annotated[str, Meta(min_length=1)]] = []


class Student(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A student's state at start; `subject` is the JWT `sub` that identifies them."""

    subject: Annotated[str, Meta(min_length=1)]
    registered: list[Crn] = []
    drops_used: Annotated[int, Meta(ge=0)] = 0
    # Course codes passed, checked against prerequisites.
    passed: list[str] = []
    login: StudentLogin | None = None


class FaultRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A fault on registration POSTs chosen by POST number (1-based) or by probability."""

    kind: FaultKind
    on_posts: list[Annotated[int, Meta(ge=1)]] | None = None
    probability: Annotated[float, Meta(ge=0, le=1)] | None = None
    slow_s: NonNegative = DEFAULT_SLOW_S


NtpKind = Literal["honest", "kiss", "unsynchronised", "garbage", "silent"]


class NtpBehaviour(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One simulated NTP server: how it answers, how wrong it is, how slow its path."""

    kind: NtpKind = "honest"
    # Served time = true time + lie_s: a falseticker when it is not 0.
    lie_s: float = 0.0
    # The round trip of its path, honestly stamped (half each way).
    delay_s: Annotated[float, Meta(ge=0, le=5)] = 0.0
    kiss_code: Annotated[str, Meta(pattern="^[A-Z]{4}$")] = "RATE"


class SimConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything about one simulated OBS. Times are epoch seconds of the simulator's true time."""

    # None: registration is already open.
    opening_at: float | None = None
    # True time = local clock + clock_offset_s; the server's own clock = true + server_skew_s.
    clock_offset_s: float = 0.0
    server_skew_s: float = 0.0
    # At this true time (epoch s) true time steps by true_step_s against the local clocks, as
    # after a paused or migrated VM (positive: the local clocks fell behind).
    true_step_at: float | None = None
    true_step_s: float = 0.0
    # One NTP server per entry, on its own port.
    ntp: Annotated[list[NtpBehaviour], Meta(min_length=1, max_length=8)] = msgspec.field(
        default_factory=lambda: [NtpBehaviour()]
    )
    debounce_s: NonNegative = 3.0
    volume_limit: Annotated[int, Meta(ge=1)] = 100
    volume_window_s: Positive = 360.0
    ban_s: NonNegative = 600.0
    courses: list[Course] = []
    students: list[Student] = []
    request_delay_s: NonNegative = 0.0
    request_jitter_s: NonNegative = 0.0
    response_delay_s: NonNegative = 0.0
    response_jitter_s: NonNegative = 0.0
    faults: list[FaultRule] = []
    # How long a single sign-on session lasts: after it, the JWT endpoint answers the login
    # form (obs-facts.md: unknown for the real one; tools re-mint every 60 s to 1 h).
    session_lifetime_s: Positive = 3600.0
    # Requests of the login flow (1-based, in arrival order) that IIS answers with its HTML
    # 503 page, as at a busy moment.
    sso_unavailable_on: list[Annotated[int, Meta(ge=1)]] = []
    # The public course schedule answers 429 to a request this soon after the one before
    # (obs-facts.md: it rate-limits; watchers poll every 30 s at the fastest).
    schedule_min_interval_s: NonNegative = 10.0
    # Each CRN of a POST takes a uniform draw from this range, in turn (drops, then adds), and
    # the answer comes when the last is done. A busy opening's pace by default, as OBS answers
    # on the day; (0, 0) answers at once.
    crn_processing_s: tuple[NonNegative, NonNegative] = BUSY_CRN_PROCESSING_S
    # How far into each second of the server's clock its cached Date ticks (OBS's is not on
    # the second; a negative phase ticks early).
    date_phase_s: Annotated[float, Meta(gt=-1, lt=1)] = 0.37
    tls: bool = False
    # Seeds the jitter and the probabilistic faults, so a run can be repeated exactly.
    seed: int = 0


def clock_minutes(clock: str) -> int:
    """Minutes since midnight of an "HH:MM" time."""
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def validate_config(config: SimConfig) -> SimConfig:
    """Check field limits and cross-references; return the config with normalised types."""
    try:
        # Constructors do not check constraints; a round trip through JSON does.
        checked = msgspec.json.decode(msgspec.json.encode(config), type=SimConfig)
    except msgspec.ValidationError as exc:
        raise SimConfigError(str(exc)) from None
    crns: set[str] = set()
    for course in checked.courses:
        if course.crn in crns:
            raise SimConfigError(f"CRN {course.crn} is listed twice in courses")
        crns.add(course.crn)
        for day, start, end in course.slots:
            if clock_minutes(end) <= clock_minutes(start):
                raise SimConfigError(
                    f"course {course.crn}: slot {day} {start}-{end} ends before it starts"
                )
    subjects: set[str] = set()
    usernames: set[str] = set()
    for student in checked.students:
        if student.subject in subjects:
            raise SimConfigError(f"student {student.subject} is listed twice")
        subjects.add(student.subject)
        if student.login is not None and student.login.username in usernames:
            raise SimConfigError(f"user name {student.login.username} is listed twice")
        if student.login is not None:
            usernames.add(student.login.username)
        for crn in student.registered:
            if crn not in crns:
                raise SimConfigError(
                    f"student {student.subject} is registered in {crn}, which is not in courses"
                )
    for rule in checked.faults:
        if (rule.on_posts is None) == (rule.probability is None):
            raise SimConfigError(f"fault {rule.kind}: give exactly one of on_posts and probability")
    low, high = checked.crn_processing_s
    if low > high:
        raise SimConfigError(f"crn_processing_s: {low} is above {high}; give [low, high]")
    return checked


def load_config(path: Path) -> SimConfig:
    """Read and check a SimConfig from a JSON file."""
    try:
        config = msgspec.json.decode(path.read_bytes(), type=SimConfig)
    except OSError as exc:
        raise SimConfigError(f"cannot read {path}: {exc.strerror}") from None
    except msgspec.DecodeError as exc:
        raise SimConfigError(f"{path}: {exc}") from None
    return validate_config(config)


DEFAULT_STUDENT: Final = "150200001"
DEFAULT_COURSES: Final = (
    Course(
        crn="20456",
        code="FIZ 101E",
        title="Physics I",
        quota=80,
        enrolled=61,
        slots=[("Tue", "13:30", "16:30")],
    ),
    Course(
        crn="21234",
        code="BLG 102E",
        title="Introduction to Scientific and Engineering Computing (C)",
        quota=40,
        enrolled=31,
        slots=[("Mon", "08:30", "11:30")],
    ),
    Course(
        crn="21345",
        code="MAT 210E",
        title="Linear Algebra",
        quota=55,
        enrolled=20,
        slots=[("Wed", "10:30", "12:30")],
    ),
    # Full: every seat is taken before the opening; 22002 is another section with room.
    Course(
        crn="22001",
        code="EHB 211E",
        title="Basics of Electrical Circuits",
        quota=60,
        enrolled=60,
        slots=[("Fri", "09:30", "12:30")],
    ),
    Course(
        crn="22002",
        code="EHB 211E",
        title="Basics of Electrical Circuits",
        quota=60,
        enrolled=44,
        slots=[("Fri", "13:30", "16:30")],
    ),
    Course(
        crn="23100",
        code="BLG 223E",
        title="Data Structures",
        quota=70,
        enrolled=15,
        slots=[("Mon", "13:30", "16:30")],
        prerequisite="BLG 102E",
    ),
    # These two overlap on Thursday 11:30-12:30: whichever is added second gets VAL09.
    Course(
        crn="24010",
        code="ISL 201E",
        title="Engineering Economics",
        quota=90,
        enrolled=50,
        slots=[("Thu", "09:30", "12:30")],
    ),
    Course(
        crn="24020",
        code="ITB 111",
        title="Turkish I",
        quota=90,
        enrolled=40,
        slots=[("Thu", "11:30", "13:30")],
    ),
)


def default_config() -> SimConfig:
    """A small realistic term, open already, with one student registered in 20456."""
    return SimConfig(
        courses=list(DEFAULT_COURSES),
        students=[Student(subject=DEFAULT_STUDENT, registered=["20456"])],
    )
