"""Calibration: true time from every source, the path to OBS, our own send delay, the shot.

OBS is probed first, so that its Date headers can arbitrate between the time sources. Each
re-check of the time during the wait makes a new calibration on the same path figures, with
the shot planned again on the new estimate.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass
from typing import Final

from obsd.adapters.obs_client import ObsClient, ObsError
from obsd.core.clock_select import DateProbe, KernelClock, TimeEstimate, date_interval
from obsd.core.config import Config
from obsd.core.events import CalibrationPayload, utc_timestamp
from obsd.core.time_advice import date_check, no_time_advice
from obsd.core.time_sources import SYSTEM_CLOCK, Verdict
from obsd.core.timing import MS, NS, ClockMap, ShotPlan, plan_shot
from obsd.daemon.instruments import Instruments

# HEAD probes per calibration after the one that opens the connection (not counted).
RTT_PROBES: Final = 5
# The Date headers kept for arbitration: the latest few are all that can still agree.
MAX_DATE_PROBES: Final = 8


@dataclass(frozen=True, slots=True)
class Calibrated:
    """What a calibration measured, and the shot planned from it."""

    run_id: str | None
    config: Config
    target_ns: int | None
    estimate: TimeEstimate
    kernel: KernelClock | None
    probes: list[DateProbe]  # OBS's answers with a Date header, oldest first
    rtts: list[int]
    rtt_error: str | None
    send_delay_ns: int

    @property
    def date(self) -> tuple[int, int] | None:
        """Where OBS's Date headers put true - mono."""
        return date_interval(self.probes)

    @property
    def one_way_ns(self) -> int | None:
        """Half the fastest round trip to OBS."""
        return min(self.rtts) // 2 if self.rtts else None

    @property
    def shot(self) -> ShotPlan | None:
        """The shot on this estimate, its error bound at the shot added.

        None: no target, or no trustworthy time to plan on.
        """
        mapping = self.estimate.clock()
        if mapping is None or self.target_ns is None:
            return None
        return plan_shot(
            self.target_ns,
            self.config.safety_buffer,
            self.estimate.margin_at(mapping.mono_ns(self.target_ns)),
            self.one_way_ns,
            self.config.aim_early_fraction,
            self.send_delay_ns,
        )

    @property
    def clock(self) -> ClockMap:
        """The estimate's mapping; without one, the system clock (to schedule re-checks only)."""
        mapping = self.estimate.clock()
        if mapping is not None:
            return mapping
        return ClockMap(self.estimate.ref_mono_ns, self.estimate.ref_wall_ns)

    def again(
        self, estimate: TimeEstimate, kernel: KernelClock | None, probes: list[DateProbe]
    ) -> Calibrated:
        """The same calibration on a new time estimate and the latest Date probes (a re-check)."""
        kept = probes[-MAX_DATE_PROBES:]
        return dataclasses.replace(self, estimate=estimate, kernel=kernel, probes=kept)

    @property
    def payload(self) -> CalibrationPayload:
        """The calibration event: every source with its verdict, the estimate, the shot."""
        estimate, rtts, shot = self.estimate, self.rtts, self.shot
        chosen = next((s for s in estimate.sources if s.verdict == Verdict.CHOSEN), None)
        server = chosen if chosen is not None and chosen.source != SYSTEM_CLOCK else None
        date_offset = estimate.date_offset_ns
        return CalibrationPayload(
            run_id=self.run_id,
            ntp_server=server.source if server else None,
            ntp_offset_ms=_ms(estimate.wall_offset_ns),
            ntp_delay_ms=server.delay_ms if server else None,
            ntp_samples=sum(1 for s in estimate.sources if s.offset_ms is not None),
            ntp_error=no_time_advice(estimate, self.config.ntp_servers),
            time_status=estimate.status,
            time_error_ms=_ms(estimate.error_ns),
            time_conflict=estimate.conflict,
            sources=estimate.sources,
            kernel=self.kernel,
            rtt_min_ms=_ms(min(rtts)) if rtts else None,
            rtt_median_ms=_ms(int(statistics.median(rtts))) if rtts else None,
            rtt_jitter_ms=_ms(max(rtts) - min(rtts)) if rtts else None,
            rtt_samples=len(rtts),
            rtt_error=self.rtt_error,
            date_offset_s=None if date_offset is None else round(date_offset / NS, 3),
            date_check=date_check(estimate),
            send_delay_ms=_ms(self.send_delay_ns),
            fire_at=utc_timestamp(shot.fire_ns) if shot else None,
            fire_at_ns=shot.fire_ns if shot else None,
            margin_ms=_ms(shot.margin_ns) if shot else None,
            lead_ms=round(shot.lead_ns / MS, 3) if shot else 0.0,
        )


async def calibrate(
    run_id: str | None,
    config: Config,
    target_ns: int | None,
    obs: ObsClient,
    instruments: Instruments,
) -> Calibrated:
    """Measure everything the fire instant depends on."""
    rtts: list[int] = []
    probes: list[DateProbe] = []
    rtt_error = None
    try:
        for index in range(RTT_PROBES + 1):
            probe = await obs.probe()
            if index == 0:
                continue  # It paid for the connection (and TLS); that is not the path's RTT.
            rtts.append(probe.received_mono_ns - probe.sent_mono_ns)
            if probe.date_epoch_s is not None:
                probes.append(
                    DateProbe(probe.sent_mono_ns, probe.received_mono_ns, int(probe.date_epoch_s))
                )
    except ObsError as exc:
        rtt_error = f"OBS did not answer HEAD: {exc}"
    estimate = await instruments.time.estimate(config.ntp_servers, date_interval(probes))
    send_delay = await instruments.send_delay(list(config.ecrn), list(config.scrn))
    return Calibrated(
        run_id,
        config,
        target_ns,
        estimate,
        instruments.time.kernel,
        probes,
        rtts,
        rtt_error,
        send_delay,
    )


def _ms(ns: int | None) -> float | None:
    return None if ns is None else round(ns / MS, 3)
