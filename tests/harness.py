"""A real daemon against a real simulator, for tests and benchmarks that drive whole runs."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec

from obsctl.client import ClientError
from obsd.core.timing import NS
from obsd.sim import Course, RunningSimulator, SimConfig, Simulator, Student
from obsd.sim.app import REGISTRATION_PATHS, RequestRecord
from obsd.sim.config import StudentLogin
from tests.conftest import DaemonProcess

STUDENT = "150200001"
# A catalogue small enough to reason about in a test: 22001 is full (22002 is its free twin),
# 24010 and 24020 clash in time, 20456 is the course the student already has.
COURSES = [
    Course(crn="21234", code="BLG 102E", quota=40, slots=[("Mon", "08:30", "11:30")]),
    Course(crn="22001", code="BLG 212E", quota=1, enrolled=1, slots=[("Fri", "09:30", "12:30")]),
    Course(crn="22002", code="BLG 212E", quota=40, slots=[("Fri", "13:30", "16:30")]),
    Course(crn="24010", code="MAT 210E", quota=40, slots=[("Thu", "09:30", "12:30")]),
    Course(crn="24020", code="FIZ 101E", quota=40, slots=[("Thu", "11:30", "13:30")]),
    Course(crn="20456", code="EHB 211E", quota=40, enrolled=1, slots=[("Tue", "13:30", "16:30")]),
]


INSTANT: Final = (0.0, 0.0)
# The student as one who logs in to the simulated İTÜ (tests of `obsctl login`).
PASSWORD: Final = "Ayşe-pass 42"
STUDENT_WHO_LOGS_IN: Final = Student(
    subject=STUDENT,
    registered=["20456"],
    login=StudentLogin(username="ayse", password=PASSWORD),
)


def sim_config(
    opening_in_s: float,
    clock_offset_s: float = 1.75,
    true_step_before_s: float | None = None,
    **overrides: Any,
) -> SimConfig:
    """A simulated OBS whose true clock is `clock_offset_s` off ours, opening soon.

    With `true_step_before_s`, true time steps by `true_step_s` that long before the opening.
    """
    opening = time.time() + clock_offset_s + opening_in_s
    fields: dict[str, Any] = {
        "opening_at": opening,
        "true_step_at": None if true_step_before_s is None else opening - true_step_before_s,
        "clock_offset_s": clock_offset_s,
        "courses": COURSES,
        "students": [Student(subject=STUDENT, registered=["20456"])],
        # Answers at once, so that runs stay short; the busy-opening tests ask for OBS's pace.
        "crn_processing_s": INSTANT,
    }
    return SimConfig(**(fields | overrides))


def iso(epoch_ns: int) -> str:
    """An instant as ISO-8601 with offset, as `target` takes it."""
    return datetime.fromtimestamp(epoch_ns / NS, UTC).isoformat(timespec="microseconds")


@dataclass
class Registration:
    """A daemon and a simulator wired together; `plan` configures, `run` drives to the end."""

    daemon: DaemonProcess
    sim: RunningSimulator
    opening_ns: int

    def configure(self, **fields: Any) -> dict[str, Any]:
        """Send a configure; return its response envelope."""
        with self.daemon.client() as client:
            return client.request("configure", config=fields)

    def plan(self, **fields: Any) -> None:
        """Point the daemon at the simulator, with a target at its opening, and `fields`."""
        base = {
            "obs_base_url": self.sim.base_url,
            "ntp_servers": self.sim.ntp_servers,
            "target": iso(self.opening_ns),
            "token": self.sim.token(STUDENT),
        }
        response = self.configure(**(base | fields))
        assert response["success"], response

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """One request on a fresh connection; return its response envelope."""
        with self.daemon.client() as client:
            return client.request(op, **fields)

    def start(self) -> str:
        """Start a run; return its id."""
        response = self.request("start")
        assert response["success"], response
        return str(response["data"]["run_id"])

    def wait_for(
        self,
        event_type: str,
        timeout_s: float,
        after_seq: int = 0,
    ) -> list[dict[str, Any]]:
        """Every event from `after_seq` until the first of `event_type` (inclusive)."""
        events: list[dict[str, Any]] = []
        with self.daemon.client() as client:
            client.request("tail", after_seq=after_seq, follow=True)
            try:
                # Each read waits only until the deadline: a silent daemon fails the test.
                for line in client.stream(deadline=time.monotonic() + timeout_s):
                    event = msgspec.json.decode(line)
                    if "seq" in event:
                        events.append(event)
                        if event["type"] == event_type:
                            return events
            except ClientError as exc:
                raise AssertionError(
                    f"no {event_type} in {timeout_s} s ({exc}); got {[e['type'] for e in events]}"
                ) from None
        raise AssertionError("tail ended")

    def run_detail(self, run_id: str) -> dict[str, Any]:
        """The `run` op's data."""
        response = self.request("run", run_id=run_id)
        assert response["success"], response
        return dict(response["data"])

    def posts(self) -> list[RequestRecord]:
        """Registration POSTs in the order the simulator saw them (a login's are not)."""
        return [
            r for r in self.sim.requests() if r.method == "POST" and r.path in REGISTRATION_PATHS
        ]


@contextmanager
def registration(
    short_dir: Path,
    opening_in_s: float = 3.0,
    daemon_args: Sequence[str] = (),
    **sim_overrides: Any,
) -> Iterator[Registration]:
    """A simulator opening in `opening_in_s` and a daemon on `short_dir` (with `daemon_args`)."""
    config = sim_config(opening_in_s, **sim_overrides)
    assert config.opening_at is not None
    with Simulator(config).serve_in_thread() as sim:
        daemon = DaemonProcess(
            short_dir / "obsd.sock", short_dir / "state", list(daemon_args)
        ).start()
        try:
            yield Registration(daemon, sim, int(config.opening_at * NS))
        finally:
            assert daemon.stop() == 0, daemon.stderr()
