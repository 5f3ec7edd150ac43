"""The run report (`obsctl run ID`): as Markdown for sharing, or as plain text."""

from __future__ import annotations

from typing import Any

from obsctl.text import value
from obsctl.time_view import fire_text, kernel_text, source_cells, time_text
from obsd.core.replies import RunReply
from obsd.core.results import CrnKind
from obsd.core.runs import CrnStatus
from obsd.core.status_text import late_text
from obsd.core.timing import instant


def _instant(ns: int | None) -> str:
    if ns is None:
        return "-"
    return instant(ns).astimezone().isoformat(timespec="microseconds")


def _ms(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:.3f} ms"


def _table(header: list[str], body: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(value(cell).replace("|", "\\|") for cell in row) + " |" for row in body
    ]
    return lines


def _action(crn: CrnStatus) -> str:
    if crn.kind == CrnKind.SCRN:
        return "drop"
    return f"add (backup for {crn.backup_for})" if crn.backup_for else "add"


def _aim(run: RunReply) -> str:
    """What the run aimed at: the target, or for a watch the section and its page."""
    config, watch = run.config, run.watch
    if watch is None:
        late = "" if run.late_by_s is None else f"; {late_text(run.late_by_s, run.opening_missed)}"
        return f"- **Target:** {config.target} (safety buffer {config.safety_buffer} s){late}"
    until = _instant(watch.until_ns) if watch.until_ns else "cancelled"
    seats = run.seats
    seen = f"; last seen {seats.enrolled} of {seats.quota} taken" if seats else ""
    stalled = f"; stalled: {'; '.join(run.stalls.values())}" if run.stalls else ""
    return (
        f"- **Watch:** a seat in {watch.crn} on the {watch.branch} schedule page, read every "
        f"{watch.every_s:g} s, until {until}{seen}{stalled}"
    )


def markdown(run: RunReply) -> str:
    """The whole run, readable in a terminal and pasteable into an issue or a chat."""
    config, token = run.config, run.token
    lines = [
        f"# Run {run.run_id}",
        "",
        f"- **Outcome:** {run.phase}" + (f" — {run.reason}" if run.reason else ""),
        _aim(run),
        f"- **Created:** {run.created_at} by uid {run.actor.uid}",
        f"- **Finished:** {run.finished_at or '-'}",
        (
            f"- **Token:** {token.fingerprint}, expires {token.exp or 'unknown'}"
            if token
            else "- **Token:** none at start (obsd was to log in for one)"
        ),
        f"- **Plan:** add {value(list(config.ecrn))}; drop {value(list(config.scrn))}; "
        f"backups {value(config.backup) if config.backup else '-'}",
        f"- **Limits:** {config.max_attempts} attempts, {config.retry_interval} s "
        f"apart, {config.budget_posts} POSTs per {config.budget_window:g} s",
    ]
    calibration = run.calibration
    if calibration:
        lines += ["", "## Calibration", ""]
        lines += _table(
            ["measure", "value"],
            [
                ["time", time_text(calibration)],
                ["kernel", kernel_text(calibration.kernel)],
                [
                    "RTT min / median / jitter",
                    f"{calibration.rtt_min_ms} / "
                    f"{calibration.rtt_median_ms} / {calibration.rtt_jitter_ms} ms",
                ],
                ["send delay (call to wire)", f"{calibration.send_delay_ms} ms"],
                ["Date header check", calibration.date_check],
                ["planned fire instant", fire_text(calibration, config.safety_buffer)],
            ],
        )
        if calibration.sources:
            lines += ["", "Time sources, as judged at the last re-check before the shot:", ""]
            lines += _table(
                ["verdict", "source", "offset", "delay", "error bound", "detail"],
                [source_cells(view) for view in calibration.sources],
            )
    durations = run.durations
    if durations.first_post_after_target_ms is not None:
        lines += [
            "",
            f"First POST left {durations.first_post_after_target_ms:.3f} ms after "
            f"the target; its answer took {durations.first_answer_ms or 0:.1f} ms; "
            f"the run took {durations.total_s or 0:.1f} s in all.",
        ]
    if run.refreshes:
        lines += ["", "## Token refreshes", ""]
        lines += _table(
            ["kind", "at", "result"],
            [
                [r.kind, _instant(r.at_ns), "fresh token" if r.ok else "failed"]
                for r in run.refreshes
            ],
        )
    lines += ["", "## Requests", ""]
    lines += _table(
        ["#", "planned", "sent", "vs target", "answer after", "outcome", "codes"],
        [
            [
                r.attempt,
                _instant(r.planned_ns),
                _instant(r.sent_ns),
                _ms(r.sent_ns - run.target_ns) if r.sent_ns and not run.watch else "-",
                _ms(r.responded_ns - r.sent_ns) if r.responded_ns and r.sent_ns else "-",
                r.outcome or "no answer recorded",
                ", ".join(f"{crn}:{code or '-'}" for crn, code in r.codes.items()),
            ]
            for r in run.requests
        ]
        or [["-", "no request was sent", "", "", "", "", ""]],
    )
    lines += ["", "## Courses", ""]
    lines += _table(
        ["CRN", "action", "state", "code", "attempts", "message"],
        [[c.crn, _action(c), c.state, c.code or "-", c.attempts, c.message] for c in run.crns],
    )
    return "\n".join(lines) + "\n"


def text(run: RunReply) -> str:
    """The same report without Markdown table syntax."""
    out = []
    for line in markdown(run).splitlines():
        if line.startswith("|---"):
            continue
        if line.startswith("|"):
            line = "  " + "  ".join(cell.strip() for cell in line.strip("|").split(" | "))
        if line.startswith("#"):
            line = line.lstrip("#").strip()
        out.append(line.replace("**", ""))
    return "\n".join(out) + "\n"
