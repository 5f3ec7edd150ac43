"""NTP queries (ntplib, in a worker thread so the event loop never waits on the network)."""

from __future__ import annotations

from typing import Final

import anyio.to_thread
import ntplib

from obsd.core.config import split_host_port
from obsd.core.timing import NS, NtpSample

# Several exchanges per server: the lowest-delay one bounds the offset error best.
SAMPLES_PER_SERVER: Final = 4
NTP_TIMEOUT_S: Final = 2.0
NTP_PORT: Final = 123


def _query(servers: tuple[str, ...], samples: int) -> tuple[list[NtpSample], list[str]]:
    client = ntplib.NTPClient()
    found: list[NtpSample] = []
    errors: list[str] = []
    for server in servers:
        host, port = split_host_port(server)
        for _ in range(samples):
            try:
                stats = client.request(
                    host, version=3, port=port or NTP_PORT, timeout=NTP_TIMEOUT_S
                )
            except (ntplib.NTPException, OSError) as exc:
                errors.append(f"{server}: {exc}")
                break
            found.append(
                NtpSample(
                    server=server, offset_ns=int(stats.offset * NS), delay_ns=int(stats.delay * NS)
                )
            )
    return found, errors


async def query_servers(
    servers: tuple[str, ...],
    samples: int = SAMPLES_PER_SERVER,
) -> tuple[list[NtpSample], list[str]]:
    """Samples from every server that answered, and what went wrong with the others."""
    return await anyio.to_thread.run_sync(_query, servers, samples)
