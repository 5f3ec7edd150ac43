"""A realistic OBS on loopback for tests, benchmarks and the demo (`obsd sim`).

async with Simulator(config).serve() as sim:      # or: with ....serve_in_thread() as sim:
    sim.base_url, sim.ntp_server, sim.token("150200001"), sim.requests()
"""

from obsd.sim.app import RequestRecord
from obsd.sim.config import (
    Course,
    FaultRule,
    NtpBehaviour,
    SeatChange,
    SimConfig,
    SimConfigError,
    Student,
    default_config,
    load_config,
)
from obsd.sim.rules import CrnResult, RegistrationResult, SimState
from obsd.sim.simulator import NotLoopback, RunningSimulator, Simulator
from obsd.sim.tls import TlsUnavailable

__all__ = [
    "Course",
    "CrnResult",
    "FaultRule",
    "NotLoopback",
    "NtpBehaviour",
    "RegistrationResult",
    "RequestRecord",
    "RunningSimulator",
    "SeatChange",
    "SimConfig",
    "SimConfigError",
    "SimState",
    "Simulator",
    "Student",
    "TlsUnavailable",
    "default_config",
    "load_config",
]
