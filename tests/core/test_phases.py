"""The one table of moves between a run's phases."""

from obsd.core.phases import TERMINAL_PHASES, TRANSITIONS, Phase, can_move


def test_every_live_phase_can_be_cancelled_or_fail_and_terminal_ones_are_final() -> None:
    for phase in (Phase.CALIBRATING, Phase.WAITING, Phase.REGISTERING):
        assert can_move(phase, Phase.CANCELLED) and can_move(phase, Phase.FAILED)
    assert {Phase.DONE, Phase.CANCELLED, Phase.FAILED} == TERMINAL_PHASES
    assert all(not TRANSITIONS[phase] for phase in TERMINAL_PHASES)
    assert not can_move(Phase.REGISTERING, Phase.WAITING)
    assert can_move(Phase.WAITING, Phase.CALIBRATING), "a resume recalibrates"
