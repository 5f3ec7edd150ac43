"""What the engine measures and talks with: NTP, its own send delay, and OBS.

The daemon hands the real ones to the run driver and the ops; in-process tests hand fakes
(scripted NTP samples, an httpx.MockTransport behind the OBS client), so a whole run can be
driven on a fake clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from obsd.adapters.clock import Clock
from obsd.adapters.ntp_client import query_servers
from obsd.adapters.obs_client import ObsClient
from obsd.adapters.send_delay import measure_send_delay
from obsd.core.config import Config
from obsd.core.timing import NtpSample

# The samples of every server that answered, and what went wrong with the others.
NtpQuery = Callable[[tuple[str, ...]], Awaitable[tuple[list[NtpSample], list[str]]]]
# Median nanoseconds from calling send to the first byte on the wire, for these CRNs.
SendDelayMeasure = Callable[[list[str], list[str]], Awaitable[int]]
# A client for the OBS a configuration names, with this token.
ObsConnector = Callable[[Config, str], ObsClient]


@dataclass(frozen=True, slots=True)
class Instruments:
    """NTP, the send-delay measurement and the way to OBS, as the engine uses them."""

    ntp: NtpQuery
    send_delay: SendDelayMeasure
    connect_obs: ObsConnector


def real_instruments(clock: Clock) -> Instruments:
    """The instruments of a running daemon: the network, on `clock`."""
    return Instruments(
        ntp=query_servers,
        send_delay=measure_send_delay,
        connect_obs=lambda config, token: ObsClient.for_config(config, token, clock),
    )
