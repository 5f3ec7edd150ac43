"""Calibration: the clock against NTP, the path to OBS, our own send delay, the fire instant."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Final

from obsd.adapters.clock import Clock
from obsd.adapters.obs_client import ObsClient, ObsError
from obsd.core.config import Config
from obsd.core.events import CalibrationPayload, utc_timestamp
from obsd.core.timing import (
    MS,
    NS,
    ClockMap,
    NtpSample,
    best_sample,
    call_at,
    clock_map,
    fire_at,
    lead_for,
)
from obsd.daemon.instruments import Instruments

# HEAD probes per calibration after the one that opens the connection (not counted).
RTT_PROBES: Final = 5
# OBS's Date header comes from a cached clock whose second transitions were seen spread over
# -20..+140 ms; it is only a coarse check (obs-facts.md): flag it beyond this.
DATE_TOLERANCE_S: Final = 2.0


@dataclass(frozen=True, slots=True)
class Calibrated:
    """A calibration's event payload and what the engine computes with."""

    payload: CalibrationPayload
    clock: ClockMap
    call_true_ns: int | None  # when to call send for the first shot (true time)


@dataclass(frozen=True, slots=True)
class ClockSync:
    """The monotonic-to-true mapping and the NTP sample it came from (None: local clock)."""

    clock: ClockMap
    best: NtpSample | None
    samples: int
    error: str | None


async def sync_clock(config: Config, clock: Clock, instruments: Instruments) -> ClockSync:
    """Map the monotonic clock to true time from the best NTP sample (local clock if none)."""
    samples, errors = await instruments.ntp(config.ntp_servers)
    best = best_sample(samples)
    mapping = clock_map(clock.mono_ns(), clock.wall_ns(), best.offset_ns if best else 0)
    error = None if best else ("; ".join(errors) or "no NTP server answered")
    return ClockSync(mapping, best, len(samples), error)


async def calibrate(
    run_id: str | None,
    config: Config,
    target_ns: int | None,
    obs: ObsClient,
    clock: Clock,
    instruments: Instruments,
) -> Calibrated:
    """Measure everything the fire instant depends on."""
    sync = await sync_clock(config, clock, instruments)
    rtts: list[int] = []
    date_offsets: list[float] = []
    rtt_error = None
    try:
        for index in range(RTT_PROBES + 1):
            probe = await obs.probe()
            if index == 0:
                continue  # It paid for the connection (and TLS); that is not the path's RTT.
            rtts.append(probe.received_mono_ns - probe.sent_mono_ns)
            if probe.date_epoch_s is not None:
                mid = sync.clock.true_ns((probe.sent_mono_ns + probe.received_mono_ns) // 2)
                date_offsets.append(probe.date_epoch_s - mid / NS)
    except ObsError as exc:
        rtt_error = f"OBS did not answer HEAD: {exc}"
    send_delay = await instruments.send_delay(list(config.ecrn), list(config.scrn))
    one_way = min(rtts) // 2 if rtts else None
    fire = call = None
    if target_ns is not None:
        fire = fire_at(target_ns, config.safety_buffer, one_way, config.aim_early_fraction)
        call = call_at(fire, send_delay)
    date_offset = statistics.median(date_offsets) if date_offsets else None
    best = sync.best
    payload = CalibrationPayload(
        run_id=run_id,
        ntp_server=best.server if best else None,
        ntp_offset_ms=_ms(best.offset_ns) if best else None,
        ntp_delay_ms=_ms(best.delay_ns) if best else None,
        ntp_samples=sync.samples,
        ntp_error=sync.error,
        rtt_min_ms=_ms(min(rtts)) if rtts else None,
        rtt_median_ms=_ms(int(statistics.median(rtts))) if rtts else None,
        rtt_jitter_ms=_ms(max(rtts) - min(rtts)) if rtts else None,
        rtt_samples=len(rtts),
        rtt_error=rtt_error,
        date_offset_s=None if date_offset is None else round(date_offset, 3),
        date_check=_date_check(date_offset),
        send_delay_ms=_ms(send_delay),
        fire_at=utc_timestamp(fire) if fire is not None else None,
        fire_at_ns=fire,
        lead_ms=_ms(lead_for(one_way, config.aim_early_fraction)),
    )
    return Calibrated(payload=payload, clock=sync.clock, call_true_ns=call)


def _ms(ns: int) -> float:
    return round(ns / MS, 3)


def _date_check(offset_s: float | None) -> str:
    if offset_s is None:
        return "no Date header"
    # The header is truncated to the second, so it trails true time by up to one second.
    if -1.0 - DATE_TOLERANCE_S < offset_s < DATE_TOLERANCE_S:
        return "ok"
    return f"OBS's Date header disagrees with NTP time by {offset_s:+.1f} s"
