"""Human-readable views of responses (the --json flag bypasses all of this)."""

from __future__ import annotations

from typing import Any

from obsctl.text import rows


def _active_run(run: dict[str, Any] | None) -> str:
    if run is None:
        return "none"
    return (f"{run['run_id']} for {run['target']} ({run['remaining_s']:+.1f} s), "
            f"{run['attempts']} POSTs, " + " ".join(f"{crn}:{state}" for crn, state in
                                                   run["crns"].items()))


def status(data: dict[str, Any]) -> str:
    """`obsctl status`."""
    daemon, log = data["daemon"], data["log"]
    pairs: list[tuple[str, Any]] = [
        ("daemon", f"obsd {daemon['version']}, pid {daemon['pid']}, "
                   f"up {daemon['uptime_s']:.0f} s"),
        ("phase", data["phase"]),
        ("active run", _active_run(data["active_run"])),
        ("log", f"{log['log_id']}, head {log['head_seq']}, {log['segments']} segment(s)"),
        ("access", data["access"]),
    ]
    if log["damage"]:
        damage = log["damage"]
        pairs.append(("LOG DAMAGED", f"{damage['segment']} line {damage['line']}: "
                                    f"{damage['reason']} (read-only until repaired)"))
    if log["failure"]:
        pairs.append(("STORAGE FAILED", log["failure"]))
    return rows(pairs)


def config(data: dict[str, Any]) -> str:
    """`obsctl config` and `obsctl configure`."""
    pairs = list(data["config"].items())
    token = data["token"]
    info = token.get("info")
    if info:
        pairs.append(("token", f"{info['fingerprint']} (exp {info['exp'] or 'unknown'}, "
                              f"from {token['source']})"))
    else:
        pairs.append(("token", token.get("problem") or "not set"))
    return rows(pairs)


def health(data: dict[str, Any]) -> str:
    """`obsctl health`."""
    disk = data["disk"]
    pairs: list[tuple[str, Any]] = [
        ("health", "ok" if data["ok"] else "PROBLEMS"),
        ("log", "writable" if data["log"]["writable"] else "NOT writable"),
        ("disk", f"{disk['free_bytes'] / 2**30:.1f} GiB free of "
                 f"{disk['total_bytes'] / 2**30:.1f} GiB at {disk['path']}"),
        ("clock", data["clock"]["status"]),
    ]
    pairs += [("problem", problem) for problem in data["problems"]]
    return rows(pairs)


def token_test(data: dict[str, Any]) -> str:
    """`obsctl test-token`."""
    info = data["token"] or {}
    pairs: list[tuple[str, Any]] = [
        ("token", f"{info.get('fingerprint')} (exp {info.get('exp') or 'unknown'})"),
        ("OBS says", f"{data['message']} (HTTP {data['http_status'] or '-'})"),
        ("verdict", "usable" if data["valid"] else "NOT usable"),
    ]
    if data["error"]:
        pairs.append(("problem", data["error"]))
    pairs += [("warning", warning) for warning in data["warnings"]]
    return rows(pairs)


def calibration(data: dict[str, Any]) -> str:
    """`obsctl calibrate`."""
    return rows([
        ("NTP", f"offset {data['ntp_offset_ms']} ms, delay {data['ntp_delay_ms']} ms "
                f"({data['ntp_server']}, {data['ntp_samples']} samples)"
         if data["ntp_offset_ms"] is not None else f"FAILED: {data['ntp_error']}"),
        ("RTT to OBS", f"min {data['rtt_min_ms']} ms, median {data['rtt_median_ms']} ms, "
                       f"jitter {data['rtt_jitter_ms']} ms"
         if data["rtt_min_ms"] is not None else f"unknown: {data['rtt_error']}"),
        ("send delay", f"{data['send_delay_ms']} ms (call to wire, subtracted)"),
        ("Date header", data["date_check"]),
        ("fire at", data["fire_at"] or "no target configured"),
    ])


def started(data: dict[str, Any]) -> str:
    """`obsctl start`."""
    lines = [f"run {data['run_id']} started for {data['target']}",
             "follow it with: obsctl tail -f"]
    return "\n".join(lines + [f"warning: {w}" for w in data["warnings"]])


def cancelled(data: dict[str, Any]) -> str:
    """`obsctl cancel`."""
    return f"run {data['run_id']} {data['phase']} (it was {data['was']})"


def runs(data: dict[str, Any]) -> str:
    """`obsctl runs`."""
    lines = [f"{run['run_id']}  {run['phase']:<11} {run['target']}  "
             f"{run['attempts']:>3} POSTs  " + " ".join(f"{crn}:{state}" for crn, state in
                                                         run["crns"].items())
             for run in data["items"]]
    page = data["pagination"]
    lines.append(f"(page {page['page']} of {page['total_pages']}, {page['total_items']} runs)")
    return "\n".join(lines)
