"""The time estimate as people read it: one line for the verdict, one per source, the kernel.

Shared by `obsctl calibrate`, `obsctl health`, the run report and `tail`, so that a source
reads the same wherever it is shown.
"""

from __future__ import annotations

from obsd.core.clock_select import KernelClock, SourceView
from obsd.core.events import CalibrationPayload
from obsd.core.replies import ClockHealth


def _num(value: float | None, unit: str = " ms", sign: str = "") -> str:
    return "-" if value is None else f"{value:{sign}.3f}{unit}"


def source_cells(view: SourceView) -> list[str]:
    """A source as table cells: verdict, name, offset, delay, error bound, detail."""
    return [
        view.verdict,
        view.source,
        _num(view.offset_ms, sign="+"),
        _num(view.delay_ms),
        "-" if view.error_ms is None else f"±{view.error_ms:.3f} ms",
        view.detail or "",
    ]


def source_line(view: SourceView) -> str:
    """A source on one line, aligned for a terminal."""
    verdict, source, offset, delay, error, detail = source_cells(view)
    numbers = "" if view.offset_ms is None else f"offset {offset}, delay {delay}, error {error}"
    return "  ".join(part for part in (f"{verdict:<14}", source, numbers, detail) if part)


def kernel_text(kernel: KernelClock | None) -> str:
    """What the kernel says of its clock."""
    if kernel is None:
        return "not read"
    if kernel.problem:
        return f"unreadable: {kernel.problem}"
    state = "synchronised" if kernel.synchronised else "NOT synchronised"
    if kernel.max_error_us is None:
        return state
    est = f", estimated {kernel.est_error_us / 1000:.3f} ms" if kernel.est_error_us else ""
    return f"{state}, max error {kernel.max_error_us / 1000:.3f} ms{est}"


def time_text(calibration: CalibrationPayload) -> str:
    """The verdict on true time: how far the system clock is off, and how sure obsd is."""
    if calibration.ntp_offset_ms is None:
        return f"NO TRUSTWORTHY TIME: {calibration.ntp_error}"
    status = calibration.time_status or "agreed"
    bound = "" if calibration.time_error_ms is None else f" ± {calibration.time_error_ms:.3f} ms"
    text = (
        f"{status}: true time is {calibration.ntp_offset_ms:+.3f} ms from the system clock{bound}"
    )
    if calibration.time_conflict:
        text += f" ({calibration.time_conflict})"
    return text


def fire_text(calibration: CalibrationPayload, safety_buffer_s: float | None = None) -> str:
    """The planned fire instant and what it adds to the target."""
    if calibration.fire_at is None:
        return "not planned (no target, or no trustworthy time)"
    parts = [
        "safety buffer" if safety_buffer_s is None else f"{safety_buffer_s * 1000:g} ms buffer"
    ]
    if calibration.margin_ms is not None:
        parts.append(f"{calibration.margin_ms:.3f} ms error margin")
    if calibration.lead_ms:
        parts.append(f"-{calibration.lead_ms:.3f} ms aimed early")
    return f"{calibration.fire_at}" + (f" (target + {' + '.join(parts)})" if parts else "")


def clock_rows(clock: ClockHealth) -> list[tuple[str, str]]:
    """The clock's health as `status` and `health` show it: the verdict, the sources, the kernel."""
    verdict = clock.status + (f": {clock.detail}" if clock.detail else "")
    if clock.error_ms is not None and clock.ntp_offset_ms is not None:
        verdict += f" (true time {clock.ntp_offset_ms:+.3f} ms ± {clock.error_ms:.3f} ms)"
    return [
        ("clock", verdict),
        *[("source", source_line(view)) for view in clock.sources],
        ("kernel", kernel_text(clock.kernel)),
    ]
