"""Human-readable output of responses and events (the --json flag bypasses all of this)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def _local_time(timestamp: str) -> str:
    try:
        return datetime.fromisoformat(timestamp).astimezone().strftime("%H:%M:%S.%f")[:-3]
    except ValueError:
        return timestamp


def _value(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(_value(v) for v in value) or "-"
    if isinstance(value, dict):
        return "{" + " ".join(f"{k}={_value(v)}" for k, v in value.items()) + "}"
    return "-" if value is None else str(value)


def _summary(event_type: str, payload: dict[str, Any]) -> str:
    if event_type == "config_changed":
        config = payload.get("config", {})
        parts = [f"{name}={_value(config.get(name))}" for name in payload.get("changed", [])
                 if name != "token"]
        if "token" in payload:
            token = payload["token"]
            parts.append("token=" + ("cleared" if token is None else
                                     f"{token['fingerprint']} exp {token.get('exp') or '?'}"))
        actor = payload.get("actor", {})
        return " ".join(parts) + f"  (uid {actor.get('uid')} pid {actor.get('pid')})"
    return " ".join(f"{key}={_value(value)}" for key, value in payload.items())


def event_line(event: dict[str, Any]) -> str:
    """One event as `seq time type summary`."""
    event_type = str(event.get("type", "?"))
    payload = event.get("payload")
    summary = _summary(event_type, payload) if isinstance(payload, dict) else ""
    return (f"{event.get('seq', '?'):>7}  {_local_time(str(event.get('timestamp', '')))}  "
            f"{event_type:<15} {summary}").rstrip()


def _rows(rows: list[tuple[str, Any]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {_value(value)}" for name, value in rows)


def status(data: dict[str, Any]) -> str:
    """`obsctl status`."""
    daemon, log = data["daemon"], data["log"]
    rows: list[tuple[str, Any]] = [
        ("daemon", f"obsd {daemon['version']}, pid {daemon['pid']}, "
                   f"up {daemon['uptime_s']:.0f} s"),
        ("phase", data["phase"]),
        ("active run", data["active_run"] or "none"),
        ("log", f"{log['log_id']}, head {log['head_seq']}, {log['segments']} segment(s)"),
        ("access", data["access"]),
    ]
    if log["damage"]:
        damage = log["damage"]
        rows.append(("LOG DAMAGED", f"{damage['segment']} line {damage['line']}: "
                                    f"{damage['reason']} (read-only until repaired)"))
    if log["failure"]:
        rows.append(("STORAGE FAILED", log["failure"]))
    return _rows(rows)


def config(data: dict[str, Any]) -> str:
    """`obsctl config` and `obsctl configure`."""
    rows = list(data["config"].items())
    token = data["token"]
    info = token.get("info")
    if info:
        rows.append(("token", f"{info['fingerprint']} (exp {info['exp'] or 'unknown'}, "
                              f"from {token['source']})"))
    else:
        rows.append(("token", token.get("problem") or "not set"))
    return _rows(rows)


def health(data: dict[str, Any]) -> str:
    """`obsctl health`."""
    disk = data["disk"]
    rows: list[tuple[str, Any]] = [
        ("health", "ok" if data["ok"] else "PROBLEMS"),
        ("log", "writable" if data["log"]["writable"] else "NOT writable"),
        ("disk", f"{disk['free_bytes'] / 2**30:.1f} GiB free of "
                 f"{disk['total_bytes'] / 2**30:.1f} GiB at {disk['path']}"),
        ("clock", data["clock"]["status"]),
    ]
    rows += [("problem", problem) for problem in data["problems"]]
    return _rows(rows)
