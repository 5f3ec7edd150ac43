"""What the time estimate means for people: the Date check, the clock's health, what to do."""

from __future__ import annotations

from typing import Final

from obsd.core.clock_select import DATE_TOLERANCE_NS, KernelClock, TimeEstimate, TimeStatus
from obsd.core.events import CalibrationPayload
from obsd.core.replies import ClockHealth, ClockStatus
from obsd.core.time_sources import SYSTEM_CLOCK, Verdict
from obsd.core.timing import NS


def date_check(estimate: TimeEstimate) -> str:
    """`ok`, or how OBS's Date header stands against the estimate."""
    if estimate.status == TimeStatus.OBS_DATE:
        return "only the Date header"
    if estimate.date_offset_ns is None:
        return "no Date header"
    if abs(estimate.date_offset_ns) <= DATE_TOLERANCE_NS:
        return "ok"
    return (
        f"OBS's Date header disagrees with the time estimate by "
        f"{estimate.date_offset_ns / NS:+.1f} s: a clock conflict"
    )


def no_time_advice(estimate: TimeEstimate, servers: tuple[str, ...]) -> str | None:
    """None when a shot can be planned; otherwise what is wrong and what to do, in one line."""
    if estimate.trusted:
        return None
    kinds = {view.verdict for view in estimate.sources if view.source != SYSTEM_CLOCK}
    system = next((v for v in estimate.sources if v.source == SYSTEM_CLOCK), None)
    kernel = f"; the system clock cannot stand alone ({system.detail})" if system else ""
    if kinds <= {Verdict.NO_ANSWER}:
        cause = f"no NTP server answered ({', '.join(servers)})"
        remedy = (
            "open outgoing UDP port 123 to them, configure servers that answer "
            "(obsctl configure --ntp-server HOST), or synchronise the system clock with "
            "chrony or systemd-timesyncd"
        )
    else:
        cause = "no NTP server gave a usable answer (see each source's verdict)"
        remedy = "configure other servers (obsctl configure --ntp-server HOST)"
    return f"no trustworthy time: {cause}{kernel}; {remedy}"


# The system clock this far off true time means the host's own time sync is broken (obsd
# fires on its own estimate anyway).
CLOCK_OFFSET_WARNING_MS: Final = 100.0

_STATUS_OF: Final[dict[TimeStatus, ClockStatus]] = {
    TimeStatus.AGREED: "ok",
    TimeStatus.CONFLICT: "conflict",
    TimeStatus.SYSTEM_CLOCK: "system_clock",
    TimeStatus.OBS_DATE: "obs_date",
    TimeStatus.NONE: "no_time",
}


def clock_health(
    calibration: CalibrationPayload | None, checked_at: str | None, kernel: KernelClock
) -> tuple[ClockHealth, list[str]]:
    """The last calibration's verdict on the clock, and what an operator should hear of it."""
    if calibration is None:
        return ClockHealth(
            status="unknown",
            detail="not calibrated yet (obsctl calibrate)",
            checked_at=None,
            ntp_offset_ms=None,
            ntp_delay_ms=None,
            kernel=kernel,
        ), []
    # Events from before time sources were judged: no NTP error means NTP answered.
    time_status = calibration.time_status or (
        TimeStatus.NONE if calibration.ntp_error else TimeStatus.AGREED
    )
    status = _STATUS_OF[time_status]
    detail = calibration.ntp_server
    problems = []
    if status == "no_time":
        detail = calibration.ntp_error
        problems.append(f"at the last calibration: {calibration.ntp_error}")
    elif status == "conflict":
        detail = calibration.time_conflict
        problems.append(
            f"the time sources disagreed at the last calibration ({calibration.time_conflict}); "
            "the shot waits for the latest credible instant: see obsctl calibrate"
        )
    elif status == "system_clock":
        problems.append(
            "no NTP server gave a usable answer at the last calibration; the shot relies on "
            "the kernel's clock alone: open outgoing UDP port 123 or configure servers that "
            "answer"
        )
    elif status == "obs_date":
        problems.append(
            "only OBS's Date header placed the time at the last calibration: the shot may be "
            "up to 1.2 s late; open outgoing UDP port 123 or configure servers that answer"
        )
    elif abs(calibration.ntp_offset_ms or 0) > CLOCK_OFFSET_WARNING_MS:
        status = "offset"
        problems.append(
            f"the system clock is {calibration.ntp_offset_ms:+.1f} ms off NTP time "
            "(obsd corrects for it; check chrony/timesyncd)"
        )
    return ClockHealth(
        status=status,
        detail=detail,
        checked_at=checked_at,
        ntp_offset_ms=calibration.ntp_offset_ms,
        ntp_delay_ms=calibration.ntp_delay_ms,
        error_ms=calibration.time_error_ms,
        sources=calibration.sources,
        kernel=kernel,
    ), problems
