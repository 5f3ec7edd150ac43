"""What the engine measures and talks with: true time, its own send path, and OBS.

The daemon hands the real ones to the run driver and the ops; in-process tests hand fakes
(scripted NTP exchanges and kernel views, an httpx.MockTransport behind the OBS client), so
a whole run can be driven on a fake clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from obsd.adapters.clock import Clock
from obsd.adapters.itu_login import ItuSession
from obsd.adapters.kernel_clock import read_kernel_clock
from obsd.adapters.ntp_client import exchange_all
from obsd.adapters.obs_client import Answer, ObsClient, fetch_public
from obsd.adapters.send_path import WarmUp, measure_send_delay, warm_send_path
from obsd.core.config import Config
from obsd.daemon.timekeeper import TimeKeeper

# The fewest nanoseconds from calling send to the first byte on the wire, for these CRNs.
SendDelayMeasure = Callable[[list[str], list[str]], Awaitable[int]]
# A warm-up of the send path for these CRNs, for a shot due after the monotonic deadline given.
SendPathWarmer = Callable[[list[str], list[str], int], AbstractAsyncContextManager[WarmUp]]
# A client for the OBS a configuration names, with this token.
ObsConnector = Callable[[Config, str], ObsClient]
# A fresh cookie session with the single sign-on in front of that OBS.
SignOn = Callable[[Config], ItuSession]
# A GET of one public page (base URL, path with query) of OBS: no token.
PublicFetch = Callable[[str, str], Awaitable[Answer]]


@dataclass(frozen=True, slots=True)
class Instruments:
    """True time, the send path's measurement and warm-up, the way to OBS, its login and pages."""

    time: TimeKeeper
    send_delay: SendDelayMeasure
    warm_send_path: SendPathWarmer
    connect_obs: ObsConnector
    sign_on: SignOn
    fetch_public: PublicFetch


def real_instruments(clock: Clock) -> Instruments:
    """The instruments of a running daemon: the network, on `clock`."""
    return Instruments(
        time=TimeKeeper(clock, lambda servers: exchange_all(servers, clock), read_kernel_clock),
        send_delay=measure_send_delay,
        warm_send_path=warm_send_path,
        connect_obs=lambda config, token: ObsClient.for_config(config, token, clock),
        sign_on=lambda config: ItuSession(config.obs_base_url),
        fetch_public=lambda base_url, target: fetch_public(base_url, target, clock),
    )
