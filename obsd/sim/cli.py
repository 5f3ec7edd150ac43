"""`obsd sim`: serve a simulated OBS on loopback until SIGTERM or SIGINT.

On start it prints one JSON line to stdout: `base_url`, `ntp_server`, `ca_cert` (TLS only),
`opening_at` (true-time epoch seconds, null = open) and a test token per configured student.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

import anyio
import msgspec

from obsd.sim.config import SimConfig, SimConfigError, default_config, load_config
from obsd.sim.simulator import NotLoopback, Simulator, require_loopback
from obsd.sim.tls import TlsUnavailable

DESCRIPTION = (
    "Serve a simulated OBS (HTTP or HTTPS, plus NTP with its true time) on loopback. "
    "Without --config: a small realistic catalogue and student 150200001."
)


class Announcement(msgspec.Struct, frozen=True, kw_only=True):
    """The line printed once the simulator listens."""

    base_url: str
    ntp_server: str
    ntp_servers: list[str]
    ca_cert: str | None
    opening_at: float | None
    clock_offset_s: float
    tokens: dict[str, str]


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `obsd sim` to its (sub)parser."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=0,
        help="HTTP(S) port; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--ntp-port",
        type=_port,
        default=0,
        help="NTP (UDP) port; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE.json",
        help="a SimConfig as JSON (default: the built-in catalogue)",
    )
    parser.add_argument(
        "--offset",
        type=float,
        metavar="SECONDS",
        help="true time = local clock + SECONDS (overrides clock_offset_s)",
    )
    parser.add_argument(
        "--open-in",
        type=float,
        metavar="SECONDS",
        help="registration opens SECONDS after start, in true time",
    )
    parser.add_argument(
        "--tls", action="store_true", help="serve HTTPS with a certificate made now (needs openssl)"
    )


def config_from(args: argparse.Namespace) -> SimConfig:
    """The SimConfig the options describe."""
    config = default_config() if args.config is None else load_config(args.config)
    changes: dict[str, object] = {}
    if args.offset is not None:
        changes["clock_offset_s"] = args.offset
    if args.open_in is not None:
        offset = config.clock_offset_s if args.offset is None else args.offset
        changes["opening_at"] = time.time() + offset + args.open_in
    if args.tls:
        changes["tls"] = True
    return msgspec.structs.replace(config, **changes)


async def _serve(simulator: Simulator, host: str, port: int, ntp_port: int) -> None:
    config = simulator.config
    # Listen for signals before announcing, so a stop right after the line is never missed.
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with simulator.serve(host, port, ntp_port) as sim:
            announcement = Announcement(
                base_url=sim.base_url,
                ntp_server=sim.ntp_server,
                ntp_servers=sim.ntp_servers,
                ca_cert=None if sim.ca_cert is None else str(sim.ca_cert),
                opening_at=config.opening_at,
                clock_offset_s=config.clock_offset_s,
                tokens={student.subject: sim.token(student.subject) for student in config.students},
            )
            sys.stdout.write(msgspec.json.encode(announcement).decode() + "\n")
            sys.stdout.flush()
            async for _ in signals:
                return


def run(args: argparse.Namespace) -> int:
    """Run `obsd sim` with parsed options; return the exit status."""
    try:
        require_loopback(args.host)
        simulator = Simulator(config_from(args))
    except (NotLoopback, SimConfigError) as exc:
        print(f"obsd sim: {exc}", file=sys.stderr)
        return 2
    try:
        anyio.run(_serve, simulator, args.host, args.port, args.ntp_port)
    except (TlsUnavailable, OSError) as exc:
        print(f"obsd sim: {exc}", file=sys.stderr)
        return 1
    return 0
