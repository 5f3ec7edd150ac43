"""Human-readable views of replies, decoded into their types (--json bypasses all of this)."""

from __future__ import annotations

from typing import Any

import msgspec

from obsctl.text import rows
from obsctl.time_view import clock_rows, fire_text, kernel_text, source_line, time_text
from obsd.core.events import CalibrationPayload, LoginCheckedPayload
from obsd.core.login import LoginInfo
from obsd.core.replies import (
    ActiveRun,
    CancelReply,
    ConfigReply,
    DaemonInfo,
    HealthReply,
    LoginReply,
    RunsPage,
    StartReply,
    StatusReply,
    TokenTestReply,
    WatchSeatReply,
)
from obsd.core.status_text import late_text


def _crn_states(crns: dict[str, Any]) -> str:
    return " ".join(f"{crn}:{state}" for crn, state in crns.items())


def _active_run(run: ActiveRun | None) -> str:
    if run is None:
        return "none"
    late = "" if run.late_by_s is None else f"; {late_text(run.late_by_s, run.opening_missed)}"
    return (
        f"{run.run_id} for {run.target} ({run.remaining_s:+.1f} s), {run.attempts} POSTs, "
        + _crn_states(run.crns)
        + late
    )


def _daemon_name(daemon: DaemonInfo) -> str:
    """The daemon's name: obsd 0.1.0, and on a shared VPS obsd 0.1.0 (instance bob)."""
    name = f"obsd {daemon.version}"
    return name if daemon.instance is None else f"{name} (instance {daemon.instance})"


def status(reply: StatusReply) -> str:
    """`obsctl status`."""
    daemon, log = reply.daemon, reply.log
    pairs: list[tuple[str, Any]] = [
        ("daemon", f"{_daemon_name(daemon)}, pid {daemon.pid}, up {daemon.uptime_s:.0f} s"),
        ("phase", reply.phase),
        ("active run", _active_run(reply.active_run)),
        *[("watch", watch.text) for watch in reply.watches],
        ("log", f"{log.log_id}, head {log.head_seq}, {log.segments} segment(s)"),
        ("access", reply.access),
        *clock_rows(reply.clock),
    ]
    if log.damage:
        damage = log.damage
        pairs.append(
            (
                "LOG DAMAGED",
                f"{damage.segment} line {damage.line}: {damage.reason} (read-only until repaired)",
            )
        )
    if log.failure:
        pairs.append(("STORAGE FAILED", log.failure))
    return rows(pairs)


def config(reply: ConfigReply) -> str:
    """`obsctl config` and `obsctl configure`."""
    pairs = list(msgspec.to_builtins(reply.config).items())
    info, token = reply.token.info, reply.token
    if info:
        pairs.append(
            ("token", f"{info.fingerprint} (exp {info.exp or 'unknown'}, from {token.source})")
        )
    else:
        pairs.append(("token", token.problem or "not set"))
    pairs.append(("login", login_text(reply.login)))
    pairs += [("warning", warning) for warning in reply.warnings]
    return rows(pairs)


def login_text(info: LoginInfo) -> str:
    """The İTÜ credentials as they may be shown: set or not, the user name, the identity."""
    if not info.configured:
        return info.problem or "not set (obsctl login)"
    identity = f", identity {info.identity!r}" if info.identity else ""
    return f"{info.username}{identity}, password set (from {info.source})"


def login(reply: LoginReply) -> str:
    """`obsctl login` and `obsctl logout`."""
    return rows([("login", login_text(reply.login))])


def login_check(reply: LoginCheckedPayload) -> str:
    """`obsctl login --check`: each step of the flow, then the verdict."""
    pairs: list[tuple[str, Any]] = [
        (
            "step",
            f"{step.what}: {step.method} {step.url} -> {step.status}"
            + (f" after {step.redirects} redirects" if step.redirects else ""),
        )
        for step in reply.steps
    ]
    if reply.identities:
        pairs.append(("identities", "; ".join(reply.identities)))
    if reply.identity:
        pairs.append(("identity", reply.identity))
    if reply.token:
        pairs.append(("token", f"{reply.token.fingerprint} (exp {reply.token.exp or 'unknown'})"))
    pairs.append(("OBS says" if reply.code is None else "error", reply.message))
    pairs.append(("verdict", "login works" if reply.ok else f"FAILED ({reply.code or 'token'})"))
    return rows(pairs)


def health(reply: HealthReply) -> str:
    """`obsctl health`."""
    disk = reply.disk
    pairs: list[tuple[str, Any]] = [
        ("health", "ok" if reply.ok else "PROBLEMS"),
        ("log", "writable" if reply.log.writable else "NOT writable"),
        (
            "disk",
            f"{disk.free_bytes / 2**30:.1f} GiB free of "
            f"{disk.total_bytes / 2**30:.1f} GiB at {disk.path}",
        ),
        *clock_rows(reply.clock),
    ]
    pairs += [("problem", problem) for problem in reply.problems]
    return rows(pairs)


def token_test(reply: TokenTestReply) -> str:
    """`obsctl test-token`."""
    pairs: list[tuple[str, Any]] = [
        ("token", f"{reply.token.fingerprint} (exp {reply.token.exp or 'unknown'})"),
        ("OBS says", f"{reply.message} (HTTP {reply.http_status or '-'})"),
        ("verdict", "usable" if reply.valid else "NOT usable"),
    ]
    if reply.error:
        pairs.append(("problem", reply.error))
    pairs += [("warning", warning) for warning in reply.warnings]
    return rows(pairs)


def calibration(reply: CalibrationPayload) -> str:
    """`obsctl calibrate`."""
    return rows(
        [
            ("time", time_text(reply)),
            *[("source", source_line(view)) for view in reply.sources],
            ("kernel", kernel_text(reply.kernel)),
            (
                "RTT to OBS",
                f"min {reply.rtt_min_ms} ms, median {reply.rtt_median_ms} ms, "
                f"jitter {reply.rtt_jitter_ms} ms"
                if reply.rtt_min_ms is not None
                else f"unknown: {reply.rtt_error}",
            ),
            ("send delay", f"{reply.send_delay_ms} ms (call to wire, subtracted)"),
            ("Date header", reply.date_check),
            ("fire at", fire_text(reply)),
        ]
    )


def started(reply: StartReply) -> str:
    """`obsctl start`."""
    lines = [f"run {reply.run_id} started for {reply.target}", "follow it with: obsctl tail -f"]
    return "\n".join(lines + [f"warning: {w}" for w in reply.warnings])


def watch_started(reply: WatchSeatReply) -> str:
    """`obsctl watch-seat`."""
    lines = [
        f"watch {reply.run_id} started",
        "follow it with: obsctl tail -f   (or: obsctl watch)",
        f"stop it with: obsctl cancel {reply.run_id}",
    ]
    return "\n".join(lines + [f"warning: {w}" for w in reply.warnings])


def cancelled(reply: CancelReply) -> str:
    """`obsctl cancel`."""
    return f"run {reply.run_id} {reply.phase} (it was {reply.was})"


def runs(reply: RunsPage) -> str:
    """`obsctl runs`."""
    lines = [
        f"{run.run_id}  {run.phase:<11} "
        + (f"watch {run.watch.branch} {run.watch.crn}" if run.watch else str(run.target))
        + f"  {run.attempts:>3} POSTs  "
        + _crn_states(run.crns)
        for run in reply.items
    ]
    page = reply.pagination
    lines.append(f"(page {page.page} of {page.total_pages}, {page.total_items} runs)")
    return "\n".join(lines)
