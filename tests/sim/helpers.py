"""Shared by the simulator's socket tests: a hand-moved wall clock and a small catalogue."""

from __future__ import annotations

from typing import Any, Final

import httpx
import msgspec

from obsd.sim import SimConfig, default_config

S: Final = 1_000_000_000
# Tue, 03 Feb 2026 12:00:00 UTC on the local clock of the tests that move it by hand.
WALL_NS: Final = 1_770_120_000 * S
OFFSET_S: Final = 2.5
STUDENT: Final = "150200001"
REGISTER: Final = "/api/ders-kayit/v21"
# Every socket operation in these tests is bounded; nothing here waits on purpose this long.
CLIENT_TIMEOUT_S: Final = 10.0


class ManualClock:
    """A wall clock (epoch ns) that moves only when told; sleeps stay real."""

    def __init__(self, ns: int = WALL_NS) -> None:
        self.ns = ns

    def __call__(self) -> int:
        return self.ns

    def advance(self, seconds: float) -> None:
        self.ns += round(seconds * S)


def config(**changes: Any) -> SimConfig:
    """The default catalogue, true time OFFSET_S ahead, with the given fields changed."""
    return msgspec.structs.replace(default_config(), **{"clock_offset_s": OFFSET_S, **changes})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def codes(response: httpx.Response) -> list[str]:
    body = response.json()
    return [r["resultCode"] for r in body["ecrnResultList"] + body["scrnResultList"]]
