"""How obsctl shows the time estimate: the verdict, every source, the kernel, the margin."""

from __future__ import annotations

from obsctl import render
from obsctl.time_view import fire_text, kernel_text, source_line
from obsd.core.clock_select import KernelClock, SourceView, TimeStatus
from obsd.core.events import CalibrationPayload
from obsd.core.time_sources import Verdict

SOURCES = [
    SourceView("ntp-a:123", Verdict.FALSETICKER, -8000.0, 0.1, 0.07, 1),
    SourceView("ntp-b:123", Verdict.CHOSEN, 2000.0, 2.5, 1.3, 1),
    SourceView("ntp-c:123", Verdict.KISS, detail="kiss-o'-death RATE: resting 64 s"),
    SourceView("system clock", Verdict.UNSYNCHRONISED, detail="the kernel says unsynchronised"),
]
CALIBRATION = CalibrationPayload(
    run_id=None,
    ntp_server="ntp-b:123",
    ntp_offset_ms=2000.0,
    ntp_delay_ms=2.5,
    ntp_samples=2,
    time_status=TimeStatus.AGREED,
    time_error_ms=1.3,
    sources=SOURCES,
    kernel=KernelClock(False, 16_000_000, 16_000_000),
    rtt_min_ms=1.0,
    rtt_median_ms=1.2,
    rtt_jitter_ms=0.3,
    rtt_samples=5,
    date_offset_s=-0.3,
    date_check="ok",
    send_delay_ms=0.4,
    fire_at="2026-12-01T11:00:00.002300Z",
    margin_ms=1.3,
)


def test_calibrate_shows_every_source_with_its_verdict_and_the_margin() -> None:
    text = render.calibration(CALIBRATION)
    assert "agreed: true time is +2000.000 ms from the system clock ± 1.300 ms" in text
    lines = [line for line in text.splitlines() if "source" in line.split()[0]]
    assert len(lines) == 4
    assert "falseticker" in lines[0] and "ntp-a:123" in lines[0] and "-8000.000 ms" in lines[0]
    assert "kiss-o'-death RATE" in lines[2]
    assert "NOT synchronised, max error 16000.000 ms" in text
    assert "(target + safety buffer + 1.300 ms error margin)" in text


def test_without_trusted_time_calibrate_says_so_first() -> None:
    advice = "no trustworthy time: no NTP server answered (ntp-a:123); open outgoing UDP port 123"
    untrusted = CalibrationPayload(
        **{
            **{f: getattr(CALIBRATION, f) for f in CALIBRATION.__struct_fields__},
            "ntp_offset_ms": None,
            "ntp_error": advice,
            "fire_at": None,
            "margin_ms": None,
        }
    )
    text = render.calibration(untrusted)
    assert f"NO TRUSTWORTHY TIME: {advice}" in text.splitlines()[0]
    assert "not planned (no target, or no trustworthy time)" in text


def test_a_source_line_and_the_kernel_read_plainly() -> None:
    assert source_line(SOURCES[1]).split() == [
        "chosen",
        "ntp-b:123",
        "offset",
        "+2000.000",
        "ms,",
        "delay",
        "2.500",
        "ms,",
        "error",
        "±1.300",
        "ms",
    ]
    assert kernel_text(KernelClock(True, 3_000, 500)) == (
        "synchronised, max error 3.000 ms, estimated 0.500 ms"
    )
    assert kernel_text(KernelClock(False, None, None, problem="adjtimex was refused (EPERM)")) == (
        "unreadable: adjtimex was refused (EPERM)"
    )
    assert fire_text(CALIBRATION, 0.001) == (
        "2026-12-01T11:00:00.002300Z (target + 1 ms buffer + 1.300 ms error margin)"
    )
