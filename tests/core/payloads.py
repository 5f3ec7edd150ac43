"""Payloads the core tests fold, written once."""

from __future__ import annotations

from obsd.core.events import CalibrationPayload


def calibration(run_id: str, fire_at_ns: int, ntp_offset_ms: float = 1.0) -> CalibrationPayload:
    """A trusted calibration of `run_id` that plans its shot at `fire_at_ns`."""
    return CalibrationPayload(
        run_id=run_id,
        ntp_server="pool",
        ntp_offset_ms=ntp_offset_ms,
        ntp_delay_ms=5.0,
        ntp_samples=3,
        rtt_min_ms=10.0,
        rtt_median_ms=11.0,
        rtt_jitter_ms=1.0,
        rtt_samples=5,
        date_offset_s=0.0,
        date_check="ok",
        send_delay_ms=0.1,
        fire_at_ns=fire_at_ns,
    )
