"""The screen of `obsctl watch`, from events alone: what an 80x24 terminal shows of a run."""

from __future__ import annotations

from typing import Any

from obsctl.watch_screen import ClockReading, WatchState, clock_text, fit_width, screen
from obsd.core.timing import NS

RUN = "71150dd2-8906-46ce-bc90-78e8eb4312fa"
TARGET_NS = 1_795_500_999_993_000_000
FIRE_NS = TARGET_NS + 5_000_000  # the safety buffer
OFFSET_MS = 2000.0  # true time is 2 s ahead of the system clock
# At this client instant the system clock reads 30 s and 5 ms before the fire instant.
MONO_S = 1000.0
START = ClockReading(MONO_S, FIRE_NS - 30 * NS - int(OFFSET_MS * 1e6))
CONFIG = {
    "ecrn": ["21234", "22001", "24010"],
    "scrn": ["20456"],
    "target": "2026-11-24T06:16:39.993000+00:00",
    "max_attempts": 60,
    "budget_posts": 30,
    "budget_window": 360.0,
    "backup": {"22001": "22002"},
}
SOURCES = [
    {"source": "127.0.0.1:48805", "verdict": "falseticker", "offset_ms": -8000.0, "error_ms": 0.1},
    {"source": "127.0.0.1:54535", "verdict": "chosen", "offset_ms": 2000.0, "error_ms": 1.449},
    {"source": "system clock", "verdict": "unsynchronised", "detail": "the kernel says so"},
]


def event(seq: int, event_type: str, **payload: Any) -> dict[str, Any]:
    return {
        "type": event_type,
        "seq": seq,
        "timestamp": "2026-11-24T06:16:08.286278Z",
        "payload": payload,
    }


def calibration(seq: int, offset_ms: float | None = OFFSET_MS, **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "run_id": RUN,
        "ntp_server": "127.0.0.1:54535",
        "ntp_offset_ms": offset_ms,
        "ntp_delay_ms": 2.8,
        "ntp_samples": 2,
        "time_status": "agreed",
        "time_error_ms": 1.449,
        "sources": SOURCES,
        "rtt_min_ms": 1.7,
        "rtt_median_ms": 4.0,
        "rtt_jitter_ms": 7.7,
        "rtt_samples": 5,
        "date_offset_s": -0.2,
        "date_check": "ok",
        "send_delay_ms": 0.8,
        "fire_at": "2026-11-24T06:16:39.998000Z",
        "fire_at_ns": FIRE_NS,
        "margin_ms": 1.5,
    }
    return event(seq, "calibration", **(payload | fields))


def result(crn: str, state: str, message: str, kind: str = "ecrn") -> dict[str, Any]:
    return {"crn": crn, "kind": kind, "state": state, "code": None, "message": message}


FIRST_ANSWER = [
    result("21234", "success", "added"),
    result("22001", "full", "VAL06: quota is full"),
    result("24010", "conflict", "VAL09: time conflict"),
    result("20456", "success", "dropped", "scrn"),
]
WAITING = [
    event(7, "run_created", run_id=RUN, config=CONFIG, target_ns=TARGET_NS),
    calibration(8),
    event(9, "state", run_id=RUN, phase="waiting", reason=None),
    event(10, "countdown", run_id=RUN, remaining=30.0),
]
FIRST_POST = [
    event(11, "state", run_id=RUN, phase="registering", reason=None),
    event(
        12,
        "request_armed",
        run_id=RUN,
        attempt=1,
        ecrn=CONFIG["ecrn"],
        scrn=CONFIG["scrn"],
        planned_ns=FIRE_NS,
    ),
    event(
        13,
        "crn_update",
        run_id=RUN,
        attempt=1,
        outcome="answered",
        http_status=200,
        sent_ns=FIRE_NS,
        responded_ns=FIRE_NS + 2 * 10**6,
        results=FIRST_ANSWER,
        detail=None,
    ),
]
BACKUP = result("22002", "success", "added")
FINISHED = [
    event(
        14,
        "request_armed",
        run_id=RUN,
        attempt=2,
        ecrn=["22002"],
        scrn=[],
        planned_ns=FIRE_NS + 3500 * 10**6,
    ),
    event(
        15,
        "crn_update",
        run_id=RUN,
        attempt=2,
        outcome="answered",
        http_status=200,
        sent_ns=FIRE_NS + 3500 * 10**6,
        responded_ns=FIRE_NS + 3502 * 10**6,
        results=[BACKUP],
        detail=None,
    ),
    event(
        16,
        "done",
        run_id=RUN,
        phase="done",
        reason="every CRN has a final result",
        results=[*FIRST_ANSWER, BACKUP],
    ),
]


def folded(*events: dict[str, Any], start: ClockReading = START) -> WatchState:
    state = WatchState(server="0.1.0", instance="bob", clock=start)
    for item in [*events, {"type": "caught_up", "after_seq": 6, "log_id": "x"}]:
        state.apply(item, start)
    return state


def shown(state: WatchState, after_s: float = 0.0, width: int = 80, height: int = 24) -> list[str]:
    lines = screen(state, MONO_S + after_s, width, height)
    assert len(lines) <= height
    assert all(len(line) <= width for line in lines), [line for line in lines if len(line) > width]
    return lines


def row(lines: list[str], crn: str) -> str:
    (line,) = [line for line in lines if f" {crn}  " in line and ("add" in line or "drop" in line)]
    return line


def plan_rows(lines: list[str]) -> list[str]:
    """The lines of the plan section: from `plan` to the line before `POSTs`."""
    first = next(i for i, line in enumerate(lines) if line.startswith("plan "))
    return lines[first : next(i for i, line in enumerate(lines) if line.startswith("POSTs "))]


def test_a_waiting_run_shows_its_countdown_clock_and_plan_in_80x24() -> None:
    lines = shown(folded(*WAITING))
    assert lines[0] == f"obsd 0.1.0 (instance bob)  run {RUN}"
    assert lines[1].startswith("phase   waiting, fires in 00:00:30.0 at ")
    assert lines[1].endswith("NTP time (target +5.0 ms)")
    text = "\n".join(lines)
    assert "time    agreed: true time is +2000.000 ms from the system clock ± 1.449 ms" in text
    assert "falseticker     127.0.0.1:48805" in text
    assert "chosen          127.0.0.1:54535" in text
    assert "unsynchronised  system clock  the kernel says so" in text
    plan = plan_rows(lines)
    assert [row(lines, crn) for crn in ("21234", "22001", "24010", "20456")] == plan
    assert plan[0].startswith("plan     1 add  21234  pending")
    assert plan[3].startswith("         4 drop 20456  pending")
    assert "POSTs   0 of 60 (max_attempts); budget 0 of 30 per 360 s" in lines
    # The last lines are the latest events, as tail prints them.
    assert "run_created" in text and lines[-1].split()[2:4] == ["countdown", "T-30.0"]


def test_the_countdown_moves_on_the_clients_clock_between_events() -> None:
    state = folded(*WAITING)
    assert "fires in 00:00:30.0" in shown(state)[1]
    assert "fires in 00:00:29.7" in shown(state, after_s=0.3)[1]
    assert "fires in 00:00:00.0" in shown(state, after_s=31)[1], "a countdown stops at zero"


def test_a_calibration_anchors_the_countdown_to_the_system_clock_of_its_estimate() -> None:
    # The system clock was stepped 5 s forward after the watch began: the re-check's offset is
    # 5 s less, and it is of the clock as it reads now. The countdown does not jump.
    stepped = ClockReading(MONO_S + 10, START.wall_ns + 15 * NS)
    state = folded(*WAITING)
    state.apply(calibration(11, offset_ms=OFFSET_MS - 5000), stepped)
    assert "fires in 00:00:20.0" in shown(state, after_s=10)[1]


def test_per_crn_results_arrive_with_their_answer() -> None:
    lines = shown(folded(*WAITING, *FIRST_POST), after_s=31)
    assert lines[1] == "phase   registering, POST #1 answered"
    assert row(lines, "21234").endswith("21234  success      added")
    assert row(lines, "22001").endswith("22001  full         VAL06: quota is full")
    assert row(lines, "24010").endswith("24010  conflict     VAL09: time conflict")
    assert row(lines, "20456").endswith("20456  success      dropped")
    assert "POSTs   1 of 60 (max_attempts); budget 1 of 30 per 360 s" in lines


def test_an_armed_post_counts_down_to_its_planned_instant() -> None:
    lines = shown(folded(*WAITING, *FIRST_POST[:2]), after_s=29.5)
    assert lines[1].startswith("phase   registering, POST #1 leaves in 00:00:00.5 at ")
    assert any(line.startswith("POSTs   1 of 60") for line in lines)
    lines = shown(folded(*WAITING, *FIRST_POST[:2]), after_s=30.5)
    assert "POST #1 due at " in lines[1] and lines[1].endswith("awaiting its answer")


def test_a_finished_run_shows_every_result_and_the_backup_that_stepped_in() -> None:
    lines = shown(folded(*WAITING, *FIRST_POST, *FINISHED), after_s=40)
    assert lines[1] == "phase   done: every CRN has a final result"
    backup = row(lines, "22002")
    assert backup.startswith("         5 add  22002  success      added (backup for 22001)")
    assert "POSTs   2 of 60 (max_attempts); budget 2 of 30 per 360 s" in lines
    assert any("done            run done: every CRN has a final result" in line for line in lines)
    # The log shows whole events: no CRN line cut off from its answer's head line.
    log = lines[lines.index("events  (the latest last; Ctrl-C quits)") + 1 :]
    assert log[0].split()[0].isdigit()


def test_the_budget_counts_only_the_posts_in_its_window() -> None:
    lines = shown(folded(*WAITING, *FIRST_POST, *FINISHED), after_s=30 + 3600)
    assert "POSTs   2 of 60 (max_attempts); budget 0 of 30 per 360 s" in lines


def test_without_trustworthy_time_the_wait_counts_to_the_target() -> None:
    no_time = calibration(8, offset_ms=None, fire_at=None, fire_at_ns=None, time_status="none")
    lines = shown(folded(WAITING[0], no_time, WAITING[2]))
    assert lines[1].startswith("phase   waiting, target in 00:00:")
    assert lines[1].endswith(", no shot planned")


def test_an_idle_daemon_says_so() -> None:
    lines = shown(folded())
    assert lines[:3] == [
        "obsd 0.1.0 (instance bob)",
        "phase   idle, no run yet (obsctl start begins one)",
        "time    not calibrated yet (obsctl calibrate measures it)",
    ]


def test_the_log_section_is_cut_to_the_height_keeping_the_latest() -> None:
    messages = [event(20 + i, "log", message=f"line {i}", level="info") for i in range(60)]
    lines = shown(folded(*WAITING, *messages))
    assert len(lines) == 24
    assert lines[-1].endswith("line 59") and not any(line.endswith("line 40") for line in lines)
    short = shown(folded(*WAITING, *messages), height=16)
    assert len(short) == 16 and short[-1].endswith("line 59")
    assert any(line.startswith("plan     1 add  21234") for line in short)


def test_a_crowded_plan_and_many_sources_still_fit_and_the_plan_comes_first() -> None:
    many = [{"source": f"10.0.0.{i}:123", "verdict": "truechimer"} for i in range(9)]
    crns = [str(30000 + i) for i in range(14)]
    state = folded(
        event(7, "run_created", run_id=RUN, config=CONFIG | {"ecrn": crns}, target_ns=TARGET_NS),
        calibration(8, sources=many),
    )
    lines = shown(state)
    assert [row(lines, crn) for crn in crns]  # every CRN has its row
    assert any("more sources: obsctl health" in line for line in lines)
    tiny = shown(state, width=30, height=8)
    assert tiny[0].startswith("obsd 0.1.0 (instance bob)")


def test_a_narrow_terminal_gets_lines_cut_to_its_width() -> None:
    lines = shown(folded(*WAITING, *FIRST_POST), width=40, height=12)
    assert lines[1] == "phase   registering, POST #1 answered"


def test_text_from_outside_cannot_drive_the_terminal() -> None:
    hostile = result("21234", "error", "OBS answered \x1b[2J\x1b]0;owned\x07 oops")
    answer = {**FIRST_POST[2], "payload": FIRST_POST[2]["payload"] | {"results": [hostile]}}
    lines = shown(folded(*WAITING, FIRST_POST[1], answer), after_s=31)
    assert not any(ch < " " for line in lines for ch in line)
    assert "OBS answered ?[2J?]0;owned? oops" in row(lines, "21234")
    assert fit_width("日本語abc", 5) == "日本"  # wide characters take two columns


def test_events_it_cannot_read_change_nothing_but_still_get_a_line() -> None:
    state = folded(
        *WAITING,
        event(11, "state", run_id=RUN),  # no phase: a malformed payload
        event(12, "brand_new_event", what="news", run_id=RUN),
        event(13, "state", run_id="another-run", phase="registering", reason=None),
    )
    lines = shown(state)
    assert lines[1].startswith("phase   waiting, fires in")
    assert any("brand_new_event" in line and "what=news" in line for line in lines)


def test_a_new_run_replaces_the_one_shown() -> None:
    state = folded(*WAITING, *FIRST_POST, *FINISHED)
    second = "0c8e0f5d-1111-4222-8333-944445555666"
    state.apply(
        event(17, "run_created", run_id=second, config=CONFIG | {"ecrn": ["21234"]}, target_ns=0),
        START,
    )
    lines = shown(state)
    assert lines[0].endswith(f"run {second}") and lines[1].startswith("phase   calibrating")
    assert row(lines, "21234").endswith("21234  pending      not sent yet")


def test_a_countdown_reads_as_a_clock() -> None:
    assert clock_text(3723 * NS + 450_000_000) == "01:02:03.4"
    assert clock_text((2 * 86400 + 5) * NS) == "2 d 00:00:05.0"
    assert clock_text(29_700_000_000) == "00:00:29.7"
    assert clock_text(-NS) == "00:00:00.0"


def test_a_watch_created_beside_the_run_does_not_take_the_screen_over() -> None:
    watch_created = event(
        9,
        "run_created",
        run_id="watch-1",
        config={**CONFIG, "ecrn": ["23100"], "scrn": [], "backup": {}},
        target_ns=TARGET_NS - 600 * NS,
        watch={"crn": "23100", "branch": "BLG", "drop": [], "every_s": 60.0, "until_ns": None},
    )
    state = folded(*WAITING, watch_created)
    assert state.run is not None and state.run.run_id == RUN
    assert any("a seat in 23100 (BLG)" in line for line in shown(state, height=60))
