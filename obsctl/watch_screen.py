"""What `obsctl watch` shows, pure: a run's view folded from event dicts, and the screen of it.

Nothing here reads a clock, a socket or the terminal. `WatchState.apply` takes each event with
the client's clock readings at its arrival; `screen` takes the monotonic instant and the size.
Events stay plain dicts, as in event_view: a newer daemon's fields and types must not stop the
view, so an event this obsctl cannot read still gets its log line and changes nothing else.
"""

from __future__ import annotations

import contextlib
import unicodedata
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from obsctl import event_view
from obsctl.time_view import source_cells, time_text
from obsd.core.clock_select import SourceView
from obsd.core.events import CalibrationPayload
from obsd.core.phases import TERMINAL_PHASES
from obsd.core.status_text import late_text
from obsd.core.timing import NS, instant

# Events of the log section kept in memory; a screen shows the latest that fit.
LOG_KEPT: Final = 100
# Sources and CRNs are shortened before the log section gets fewer lines than this.
MIN_LOG_LINES: Final = 3
LABEL: Final = 8  # width of the left column of section names


@dataclass(frozen=True)
class ClockReading:
    """The client's two clocks read together: monotonic seconds and the system clock in ns."""

    mono_s: float
    wall_ns: int


@dataclass
class CrnRow:
    """One CRN of the plan and its latest result."""

    crn: str
    kind: str  # "ecrn" (add) or "scrn" (drop)
    state: str = "pending"
    message: str = "not sent yet"
    backup_for: str | None = None


@dataclass
class Post:
    """One armed registration POST and, once known, what became of it."""

    planned_ns: int
    responded_ns: int | None = None
    outcome: str | None = None


@dataclass
class RunView:
    """One run as its events tell it."""

    run_id: str
    target_ns: int
    config: dict[str, Any]
    crns: dict[str, CrnRow]  # in plan order: adds as sent, drops, then backups as they step in
    phase: str = "calibrating"
    reason: str | None = None
    fire_at_ns: int | None = None
    posts: dict[int, Post] = field(default_factory=dict)  # by attempt
    late: str | None = None
    deleted: bool = False


@dataclass
class WatchState:
    """Everything the screen needs, folded from the tail's lines."""

    server: str
    instance: str | None
    # Maps the client's monotonic clock onto the system clock; see true_ns.
    clock: ClockReading
    run: RunView | None = None
    # How far true time is ahead of the system clock, by the daemon's latest estimate.
    offset_ns: int = 0
    time_verdict: str | None = None
    sources: list[SourceView] = field(default_factory=list)
    caught_up: bool = False
    # Each event's lines as tail prints them (a crn_update or done has one more per CRN).
    log: deque[list[str]] = field(default_factory=lambda: deque(maxlen=LOG_KEPT))

    def true_ns(self, now_mono: float) -> int:
        """True time at the monotonic instant `now_mono`, extrapolated on the client's clock.

        obsctl runs on the daemon's host (a Unix socket), so the daemon's offset of true time
        from the system clock holds here too; counting on the monotonic clock from the reading
        taken with that offset keeps a step of the system clock out of the countdown.
        """
        return self.clock.wall_ns + round((now_mono - self.clock.mono_s) * NS) + self.offset_ns

    def apply(self, event: dict[str, Any], at: ClockReading) -> None:
        """Fold one line of the tail (an event or the caught_up marker), read at `at`."""
        if event.get("type") == "caught_up" and "seq" not in event:
            self.caught_up = True
            return
        if event_view.worth_showing(event):
            self.log.append(event_view.event_line(event).split("\n"))
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return
        # A payload this obsctl cannot read: its log line above is all it shows.
        with contextlib.suppress(KeyError, TypeError, ValueError, AttributeError):
            self._fold(str(event.get("type")), payload, at)

    def _fold(self, event_type: str, p: dict[str, Any], at: ClockReading) -> None:
        if event_type == "run_created" and not p.get("watch"):
            # The screen follows timed runs; a watch run's events show as log lines.
            config = p["config"]
            rows = [CrnRow(crn, "ecrn") for crn in config["ecrn"]]
            rows += [CrnRow(crn, "scrn") for crn in config["scrn"]]
            self.run = RunView(p["run_id"], p["target_ns"], config, {r.crn: r for r in rows})
            return
        run = self.run if self.run and p.get("run_id") == self.run.run_id else None
        if event_type == "calibration":
            if run is not None:
                run.fire_at_ns = p.get("fire_at_ns")
            self._calibrated(p, at)  # Any calibration, the `calibrate` op's too, judges the clock.
        if run is None:
            return  # Not about the run on screen (another run's, or none): its log line is all.
        if event_type == "state":
            run.phase, run.reason = p["phase"], p.get("reason")
        elif event_type in ("late_start", "opening_missed"):
            run.late = late_text(p["late_by_s"], event_type == "opening_missed")
        elif event_type in ("request_armed", "request_sent"):
            planned = p["planned_ns"] if "planned_ns" in p else p["at_ns"]
            run.posts[p["attempt"]] = Post(planned)
            for kind in ("ecrn", "scrn"):
                for crn in p[kind]:
                    _row(run, crn, kind)
        elif event_type == "crn_update":
            post = run.posts.setdefault(p["attempt"], Post(p.get("sent_ns") or 0))
            post.responded_ns, post.outcome = p.get("responded_ns"), p["outcome"]
            _results(run, p["results"])
        elif event_type == "done":
            run.phase, run.reason = p["phase"], p["reason"]
            _results(run, p["results"])
        elif event_type == "run_cancelled":
            run.phase, run.reason = "cancelled", f"cancelled while {p['phase']}"
        elif event_type == "run_resumed":
            run.phase = p["phase"]
        elif event_type == "run_deleted":
            run.deleted = True

    def _calibrated(self, p: dict[str, Any], at: ClockReading) -> None:
        calibration = msgspec.convert(p, CalibrationPayload)
        self.time_verdict = time_text(calibration)
        self.sources = list(calibration.sources)
        # Without trustworthy time the daemon counts by the system clock, and so does the view.
        offset_ms = calibration.ntp_offset_ms
        self.offset_ns = 0 if offset_ms is None else round(offset_ms * 1e6)
        # The offset is of the system clock as it is now: anchor the monotonic clock to it.
        self.clock = at


def _row(run: RunView, crn: str, kind: str) -> CrnRow:
    """The plan's row of `crn`; a CRN not in the plan yet is a backup stepping in."""
    row = run.crns.get(crn)
    if row is None:
        # Dicts keep their order: it joins the plan after the CRNs it was configured behind.
        backups = run.config.get("backup") or {}
        primary = next((p for p, b in backups.items() if b == crn), None)
        row = run.crns[crn] = CrnRow(crn, kind, backup_for=primary)
    return row


def _results(run: RunView, results: list[dict[str, Any]]) -> None:
    for result in results:
        row = _row(run, result["crn"], result["kind"])
        row.state, row.message = result["state"], result["message"]


def clock_text(span_ns: int) -> str:
    """A span as HH:MM:SS.t (with days beyond 24 h); never negative: a countdown stops at 0."""
    # Whole tenths by integer arithmetic: 29.7 s must not read 29.6 for a float's rounding.
    seconds_whole, tenth = divmod(max(0, span_ns) // (NS // 10), 10)
    minutes, secs = divmod(seconds_whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    text = f"{hours:02d}:{minutes:02d}:{secs:02d}.{tenth}"
    return f"{days} d {text}" if days else text


def _at(epoch_ns: int) -> str:
    """An instant as local HH:MM:SS.mmm, as tail prints times."""
    return instant(epoch_ns).astimezone().strftime("%H:%M:%S.%f")[:-3]


def _label(name: str, text: str) -> str:
    return f"{name:<{LABEL}}{text}"


def _phase_text(run: RunView, now_ns: int) -> str:
    # Instants here are true time (NTP time), as tail's "armed for" is; event times are not.
    if run.phase in TERMINAL_PHASES:
        return f"{run.phase}: {run.reason}" if run.reason else run.phase
    if run.phase == "calibrating":
        target = run.target_ns
        return f"calibrating, target in {_until(target, now_ns)} at {_at(target)} NTP time"
    if run.phase == "waiting":
        fire = run.fire_at_ns
        if fire is None:
            # No trustworthy time yet: the daemon counts to the target by the system clock.
            target = run.target_ns
            return f"waiting, target in {_until(target, now_ns)} at {_at(target)}, no shot planned"
        after_target = f"target {(fire - run.target_ns) / 1e6:+.1f} ms"
        return f"waiting, fires in {_until(fire, now_ns)} at {_at(fire)} NTP time ({after_target})"
    if run.phase == "registering" and not run.posts:
        return "registering, the first POST is about to leave"
    if run.phase == "registering":
        attempt = max(run.posts)
        post = run.posts[attempt]
        if post.outcome is not None:
            return f"registering, POST #{attempt} {post.outcome}"
        if post.planned_ns > now_ns:
            return (
                f"registering, POST #{attempt} leaves in {_until(post.planned_ns, now_ns)} "
                f"at {_at(post.planned_ns)} NTP time"
            )
        return f"registering, POST #{attempt} due at {_at(post.planned_ns)}, awaiting its answer"
    return run.phase


def _until(epoch_ns: int, now_ns: int) -> str:
    return clock_text(epoch_ns - now_ns)


def _head(state: WatchState, now_ns: int) -> list[str]:
    daemon = f"obsd {state.server}" + (f" (instance {state.instance})" if state.instance else "")
    run = state.run
    first = f"{daemon}  run {run.run_id}" if run else daemon
    if not state.caught_up:
        first += "  (reading the log...)"
    if run is None:
        return [first, _label("phase", "idle, no run yet (obsctl start begins one)")]
    phase = _phase_text(run, now_ns) + (" (run deleted)" if run.deleted else "")
    lines = [first, _label("phase", phase)]
    if run.late:
        lines.append(_label("", run.late))
    return lines


def _source_line(view: SourceView) -> str:
    # The delay column is left out: in 80 columns the verdict, offset and error bound matter.
    verdict, source, offset, _delay, error, detail = source_cells(view)
    numbers = "" if view.offset_ms is None else f"{offset} {error}"
    parts = (f"{verdict:<14}", source, numbers, detail)
    return _label("", "  ".join(part for part in parts if part))


def _clock(state: WatchState) -> tuple[str, list[str]]:
    verdict = state.time_verdict or "not calibrated yet (obsctl calibrate measures it)"
    return _label("time", verdict), [_source_line(view) for view in state.sources]


def _plan(run: RunView | None) -> list[str]:
    if run is None:
        return []
    rows = []
    for number, row in enumerate(run.crns.values(), 1):
        word = "drop" if row.kind == "scrn" else "add"
        backup = f" (backup for {row.backup_for})" if row.backup_for else ""
        text = f"{number:>2} {word:<4} {row.crn}  {row.state:<12} {row.message}{backup}"
        rows.append(_label("plan" if number == 1 else "", text))
    return rows or [_label("plan", "no CRNs")]


def _posts(run: RunView | None, now_ns: int) -> list[str]:
    if run is None:
        return []
    config = run.config
    # The daemon's budget is a sliding window, counted from each answer (or the plan, if none).
    window_s = float(config.get("budget_window", 360.0))
    recent = [
        post
        for post in run.posts.values()
        if (post.responded_ns or post.planned_ns) > now_ns - window_s * NS
    ]
    return [
        _label(
            "POSTs",
            f"{len(run.posts)} of {config.get('max_attempts', '?')} (max_attempts); "
            f"budget {len(recent)} of {config.get('budget_posts', '?')} per {window_s:g} s",
        )
    ]


def _fit(lines: list[str], room: int, what: str) -> list[str]:
    """At most `room` of `lines`, the last of them saying how many more there are."""
    if len(lines) <= room:
        return lines
    if room <= 0:
        return []
    return [*lines[: room - 1], _label("", f"(+{len(lines) - room + 1} more {what})")]


def _latest(log: deque[list[str]], room: int) -> list[str]:
    """The latest events' lines that fit in `room`, whole events only (but the latest)."""
    shown: list[str] = []
    for lines in reversed(log):
        if len(shown) + len(lines) > room:
            if not shown:
                shown = lines[:room]  # One event longer than the room: its first lines.
            break
        shown = lines + shown
    return shown


def _columns(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def fit_width(line: str, width: int) -> str:
    """`line` cut to `width` columns, control characters (an escape OBS sent) made harmless."""
    out, used = [], 0
    for char in line:
        if unicodedata.category(char) == "Cc":
            char = " " if char == "\t" else "?"
        used += _columns(char)
        if used > width:
            break
        out.append(char)
    return "".join(out)


def screen(state: WatchState, now_mono: float, width: int, height: int) -> list[str]:
    """The lines of the screen at `now_mono`: at most `height` lines of `width` columns."""
    now_ns = state.true_ns(now_mono)
    head = _head(state, now_ns)
    verdict, sources = _clock(state)
    plan = _plan(state.run)
    posts = _posts(state.run, now_ns)
    title = _label("events", "(the latest last; Ctrl-C quits)")
    # Room goes first to the run (phase, plan, POSTs), then to a few log lines, then to the
    # sources (obsctl health lists them all), and what is left to more log lines.
    fixed = len(head) + 1 + len(plan) + len(posts) + 1
    sources = _fit(sources, height - fixed - MIN_LOG_LINES, "sources: obsctl health")
    plan = _fit(plan, height - (fixed - len(plan)) - len(sources), "CRNs: obsctl run ID")
    body = [*head, verdict, *sources, *plan, *posts, title]
    log = _latest(state.log, height - len(body))
    return [fit_width(line, width) for line in [*body, *log][:height]]
