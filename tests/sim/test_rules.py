"""OBS's registration rules with plain values: every result code, the limits, the seats."""

from __future__ import annotations

import msgspec
import pytest

from obsd.sim.config import Course, SimConfig, Student, validate_config
from obsd.sim.rules import CrnResult, Registrar, RegistrationResult

S = 1_000_000_000
OPENING_S = 1_770_000_000

COURSES = [
    Course(crn="11111", code="BLG 101E", quota=2, slots=[("Mon", "08:30", "10:30")]),
    # Overlaps 11111 on Monday 10:00-10:30.
    Course(crn="22222", code="MAT 103E", quota=1, slots=[("Mon", "10:00", "12:00")]),
    Course(
        crn="33333",
        code="BLG 223E",
        quota=5,
        slots=[("Tue", "08:30", "10:30")],
        prerequisite="MAT 103E",
    ),
    Course(crn="44444", code="FIZ 101E", quota=5, retake_blocked=True),
    Course(crn="55555", code="ING 112", quota=5, slots=[("Wed", "08:30", "10:30")]),
    Course(crn="66666", code="EHB 211E", quota=1, enrolled=1),
    # Starts when 11111 ends: back to back is not a conflict.
    Course(crn="77777", code="KIM 101E", quota=5, slots=[("Mon", "10:30", "11:30")]),
]


def make(**changes: object) -> Registrar:
    config = SimConfig(
        courses=COURSES,
        students=[
            Student(subject="alice", registered=["55555"]),
            Student(subject="bob", passed=["MAT 103E"]),
        ],
    )
    return Registrar(validate_config(msgspec.structs.replace(config, **changes)))


def codes(results: list[CrnResult]) -> list[str]:
    return [r.result_code for r in results]


class Clock:
    """Hands out POST instants far enough apart that the debounce never interferes."""

    def __init__(self) -> None:
        self.now_ns = OPENING_S * S

    def next(self) -> int:
        self.now_ns += 10 * S
        return self.now_ns


@pytest.fixture
def clock() -> Clock:
    return Clock()


def add(registrar: Registrar, clock: Clock, subject: str, *crns: str) -> list[str]:
    return codes(registrar.register(subject, crns, (), clock.next()).ecrn_result_list)


def drop(registrar: Registrar, clock: Clock, subject: str, *crns: str) -> list[str]:
    return codes(registrar.register(subject, (), crns, clock.next()).scrn_result_list)


def test_results_have_obs_shape() -> None:
    result = make().register("bob", ["11111", "99999"], [], OPENING_S * S)
    assert msgspec.to_builtins(result) == {
        "ecrnResultList": [
            {
                "crn": "11111",
                "operationFinished": True,
                "statusCode": 0,
                "resultCode": "successResult",
                "resultData": None,
            },
            {
                "crn": "99999",
                "operationFinished": True,
                "statusCode": 1,
                "resultCode": "CRNNotFound",
                "resultData": None,
            },
        ],
        "scrnResultList": [],
    }


def test_unknown_crn_is_not_found_for_adds_and_drops(clock: Clock) -> None:
    registrar = make()
    assert add(registrar, clock, "alice", "12345") == ["CRNNotFound"]
    assert drop(registrar, clock, "alice", "12345") == ["CRNNotFound"]


def test_before_the_opening_every_crn_gets_val02() -> None:
    registrar = make(opening_at=float(OPENING_S))
    early = registrar.register("bob", ["11111", "99999"], ["55555"], OPENING_S * S - 1)
    assert codes(early.ecrn_result_list) == ["VAL02", "VAL02"]
    assert codes(early.scrn_result_list) == ["VAL02"]
    assert not registrar.is_open(OPENING_S * S - 1) and registrar.is_open(OPENING_S * S)
    assert registrar.snapshot().courses[0].taken == 0


def test_the_opening_instant_itself_is_open() -> None:
    registrar = make(opening_at=float(OPENING_S))
    assert codes(registrar.register("bob", ["11111"], [], OPENING_S * S).ecrn_result_list) == [
        "successResult"
    ]


def test_already_registered_is_val03(clock: Clock) -> None:
    registrar = make()
    assert add(registrar, clock, "alice", "55555") == ["VAL03"]
    assert add(registrar, clock, "bob", "11111", "11111") == ["successResult", "VAL03"]


def test_a_seat_taken_is_gone(clock: Clock) -> None:
    registrar = make()
    assert add(registrar, clock, "alice", "22222") == ["successResult"]
    assert add(registrar, clock, "bob", "22222") == ["VAL06"]
    assert add(registrar, clock, "bob", "66666") == ["VAL06"]


def test_time_conflict_with_a_registered_course_is_val09(clock: Clock) -> None:
    registrar = make()
    assert add(registrar, clock, "bob", "11111") == ["successResult"]
    assert add(registrar, clock, "bob", "22222") == ["VAL09"]
    assert add(registrar, clock, "bob", "77777") == ["successResult"]


def test_conflict_with_a_course_added_earlier_in_the_same_request(clock: Clock) -> None:
    assert add(make(), clock, "bob", "11111", "22222") == ["successResult", "VAL09"]


def test_unmet_prerequisite_is_val11_with_its_text() -> None:
    registrar = make()
    result = registrar.register("alice", ["33333"], [], OPENING_S * S).ecrn_result_list[0]
    assert (result.status_code, result.result_code) == (1, "VAL11")
    assert result.result_data == {"uyulmayanOnsartlar": "MAT 103E"}
    passed = registrar.register("bob", ["33333"], [], OPENING_S * S).ecrn_result_list[0]
    assert passed.result_code == "successResult"


def test_retake_blocked_course_is_val22_with_the_course() -> None:
    result = make().register("bob", ["44444"], [], OPENING_S * S).ecrn_result_list[0]
    assert result.result_code == "VAL22"
    assert result.result_data == {"yukseltmeyeAlinanDers": "FIZ 101E"}


@pytest.mark.parametrize(("adds", "drops"), [(13, 0), (7, 6), (0, 13)])
def test_more_than_12_crns_is_val15_for_every_crn(adds: int, drops: int) -> None:
    crns = [f"{10000 + i}" for i in range(adds + drops)]
    result = make().register("bob", crns[:adds], crns[adds:], OPENING_S * S)
    assert set(codes(result.ecrn_result_list + result.scrn_result_list)) == {"VAL15"}
    assert len(result.ecrn_result_list) == adds and len(result.scrn_result_list) == drops


def test_twelve_crns_are_accepted() -> None:
    crns = [f"{10000 + i}" for i in range(12)]
    result = make().register("bob", crns, [], OPENING_S * S)
    assert set(codes(result.ecrn_result_list)) == {"CRNNotFound"}


def test_a_drop_succeeds_and_frees_the_seat(clock: Clock) -> None:
    registrar = make()
    assert add(registrar, clock, "alice", "22222") == ["successResult"]
    assert drop(registrar, clock, "alice", "22222") == ["successResult"]
    assert add(registrar, clock, "bob", "22222") == ["successResult"]
    alice = registrar.snapshot().students[0]
    assert (alice.registered, alice.drops_used) == (["55555"], 1)


def test_dropping_an_unregistered_course_is_val10(clock: Clock) -> None:
    assert drop(make(), clock, "alice", "11111") == ["VAL10"]


def test_only_one_drop_per_term(clock: Clock) -> None:
    registrar = make()
    assert add(registrar, clock, "alice", "11111") == ["successResult"]
    assert drop(registrar, clock, "alice", "55555", "11111") == ["successResult", "VAL20"]
    assert drop(registrar, clock, "alice", "11111") == ["VAL20"]


def test_drops_used_before_the_simulation_count(clock: Clock) -> None:
    registrar = make(students=[Student(subject="carol", registered=["55555"], drops_used=1)])
    assert drop(registrar, clock, "carol", "55555") == ["VAL20"]


def test_drops_are_applied_before_adds(clock: Clock) -> None:
    registrar = make(students=[Student(subject="dan", registered=["22222"])])
    # Adds first would answer VAL03; drops first free dan's seat, which he then takes again.
    result = registrar.register("dan", ["22222"], ["22222"], clock.next())
    assert codes(result.scrn_result_list) == ["successResult"]
    assert codes(result.ecrn_result_list) == ["successResult"]


def test_a_drop_frees_the_time_slot_for_an_add_in_the_same_request(clock: Clock) -> None:
    registrar = make(students=[Student(subject="dan", registered=["11111"])])
    result = registrar.register("dan", ["22222"], ["11111"], clock.next())
    assert codes(result.scrn_result_list) == ["successResult"]
    assert codes(result.ecrn_result_list) == ["successResult"]


def test_a_new_subject_starts_with_nothing(clock: Clock) -> None:
    registrar = make()
    assert drop(registrar, clock, "stranger", "11111") == ["VAL10"]
    assert add(registrar, clock, "stranger", "11111") == ["successResult"]


def all_codes(result: RegistrationResult) -> set[str]:
    return set(codes(result.ecrn_result_list + result.scrn_result_list))


def test_debounce_refuses_and_restarts_the_window() -> None:
    registrar = make()
    t0 = OPENING_S * S
    assert all_codes(registrar.register("bob", ["11111"], ["55555"], t0)) == {
        "successResult",
        "VAL10",
    }
    assert all_codes(registrar.register("bob", ["77777"], ["11111"], t0 + 2_900_000_000)) == {
        "VAL16"
    }
    # 5.8 s after the first, but only 2.9 s after the refused one: the window restarted.
    assert all_codes(registrar.register("bob", ["77777"], [], t0 + 5_800_000_000)) == {"VAL16"}
    # Exactly the window after the previous POST is outside it.
    assert all_codes(registrar.register("bob", ["77777"], [], t0 + 8_800_000_000)) == {
        "successResult"
    }


def test_debounce_is_per_subject() -> None:
    registrar = make()
    t0 = OPENING_S * S
    registrar.register("bob", ["11111"], [], t0)
    assert all_codes(registrar.register("alice", ["11111"], [], t0 + 1)) == {"successResult"}


def test_a_post_before_the_opening_starts_the_debounce() -> None:
    registrar = make(opening_at=float(OPENING_S))
    assert all_codes(registrar.register("bob", ["11111"], [], (OPENING_S - 1) * S)) == {"VAL02"}
    assert all_codes(registrar.register("bob", ["11111"], [], (OPENING_S + 1) * S)) == {"VAL16"}


def test_refused_posts_start_the_debounce_too() -> None:
    registrar = make()
    t0 = OPENING_S * S
    crns = [f"{10000 + i}" for i in range(13)]
    assert all_codes(registrar.register("bob", crns, [], t0)) == {"VAL15"}
    assert all_codes(registrar.register("bob", ["11111"], [], t0 + S)) == {"VAL16"}


def test_arrivals_out_of_order_still_debounce() -> None:
    registrar = make()
    t0 = OPENING_S * S
    registrar.register("bob", ["11111"], [], t0)
    assert all_codes(registrar.register("bob", ["77777"], [], t0 - S // 2)) == {"VAL16"}


def test_zero_debounce_disables_it() -> None:
    registrar = make(debounce_s=0.0)
    t0 = OPENING_S * S
    registrar.register("bob", ["11111"], [], t0)
    assert all_codes(registrar.register("bob", ["77777"], [], t0)) == {"successResult"}


def test_volume_limit_bans_every_post_until_the_ban_ends() -> None:
    registrar = make(debounce_s=0.0, volume_limit=3, volume_window_s=60.0, ban_s=100.0)
    t0 = OPENING_S * S
    for i in range(3):
        assert registrar.count_post("bob", t0 + i * S) is None
    assert all_codes(registrar.register("bob", ["11111"], ["55555"], t0 + 3 * S)) == {"VAL21"}
    # Long after the window has emptied, the ban still holds.
    assert registrar.count_post("bob", t0 + 90 * S) == "VAL21"
    assert registrar.count_post("alice", t0 + 90 * S) is None
    assert registrar.count_post("bob", t0 + 104 * S) is None


def test_volume_window_slides() -> None:
    registrar = make(debounce_s=0.0, volume_limit=3, volume_window_s=10.0)
    t0 = OPENING_S * S
    for offset_s in (0.0, 4.0, 8.0, 10.0):
        # At 10 s the first POST has left the window (0, 10]: three remain.
        assert registrar.count_post("bob", t0 + int(offset_s * S)) is None
    assert registrar.count_post("bob", t0 + 11 * S) == "VAL21"


def test_debounced_posts_count_toward_the_volume() -> None:
    registrar = make(volume_limit=3)
    t0 = OPENING_S * S
    assert [registrar.count_post("bob", t0 + i * S) for i in range(4)] == [
        None,
        "VAL16",
        "VAL16",
        "VAL21",
    ]


def test_snapshot_counts_enrolled_and_configured_students() -> None:
    state = make().snapshot()
    taken = {course.crn: course.taken for course in state.courses}
    assert taken["55555"] == 1 and taken["66666"] == 1 and taken["11111"] == 0
    assert [(s.subject, s.registered) for s in state.students] == [
        ("alice", ["55555"]),
        ("bob", []),
    ]


def test_a_course_that_fills_before_its_turn_is_full_and_order_decides() -> None:
    # 22222 fills 1 s after the opening; each CRN's turn comes 0.6 s after the one before.
    filling = [
        msgspec.structs.replace(c, fills_after_s=1.0) if c.crn == "22222" else c for c in COURSES
    ]
    opening_ns = OPENING_S * S
    first = make(courses=filling, opening_at=OPENING_S)
    in_time = first.register("bob", ["22222", "33333"], (), opening_ns, [0, 600_000_000])
    assert codes(in_time.ecrn_result_list) == ["successResult", "successResult"]
    last = make(courses=filling, opening_at=OPENING_S)
    late = last.register(
        "bob", ["33333", "55555", "22222"], (), opening_ns, [0, 600_000_000, 1_200_000_000]
    )
    assert codes(late.ecrn_result_list) == ["successResult", "successResult", "VAL06"]


def test_drops_take_their_turns_before_the_adds() -> None:
    filling = [
        msgspec.structs.replace(c, fills_after_s=0.5) if c.crn == "11111" else c for c in COURSES
    ]
    registrar = make(courses=filling, opening_at=OPENING_S)
    result = registrar.register("alice", ["11111"], ["55555"], OPENING_S * S, [0, 600_000_000])
    assert codes(result.scrn_result_list) == ["successResult"]
    assert codes(result.ecrn_result_list) == ["VAL06"], "its turn came 0.6 s in, after the fill"
