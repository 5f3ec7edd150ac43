"""A run's phases and the one table of moves between them, which every run event obeys."""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Phase(StrEnum):
    """Where a run stands; the daemon is `idle` when no run is active."""

    IDLE = "idle"
    CALIBRATING = "calibrating"
    WAITING = "waiting"
    REGISTERING = "registering"
    WATCHING = "watching"  # a watch run, reading the public schedule for a free seat
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


# The only moves a run may make. Waiting may go back to calibrating (a re-check before the
# instant, or a resume after a restart); cancel and failure are possible from every live phase.
# A watch run registers from watching, and goes back to it when the seat went to someone else.
TRANSITIONS: Final[dict[Phase, frozenset[Phase]]] = {
    Phase.CALIBRATING: frozenset({Phase.WAITING, Phase.REGISTERING, Phase.CANCELLED, Phase.FAILED}),
    Phase.WAITING: frozenset({Phase.CALIBRATING, Phase.REGISTERING, Phase.CANCELLED, Phase.FAILED}),
    Phase.WATCHING: frozenset({Phase.REGISTERING, Phase.DONE, Phase.CANCELLED, Phase.FAILED}),
    Phase.REGISTERING: frozenset({Phase.WATCHING, Phase.DONE, Phase.CANCELLED, Phase.FAILED}),
    Phase.DONE: frozenset(),
    Phase.CANCELLED: frozenset(),
    Phase.FAILED: frozenset(),
}
TERMINAL_PHASES: Final = frozenset(p for p, moves in TRANSITIONS.items() if not moves)
# The phases of a watch run; a timed run is never in `watching`.
WATCH_PHASES: Final = frozenset({Phase.WATCHING, Phase.REGISTERING}) | TERMINAL_PHASES


def can_move(current: Phase, target: Phase) -> bool:
    """Whether the transition table allows `current -> target`."""
    return target in TRANSITIONS.get(current, frozenset())
