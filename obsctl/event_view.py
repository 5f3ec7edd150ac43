"""One readable line (or a few) per event, for `obsctl tail` and `obsctl events`.

Events stay plain JSON objects here, unlike replies: a daemon newer than this obsctl may send
event types it does not know, and those still get a line (their fields, as they are).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from obsctl.text import local_time, value
from obsd.core.status_text import late_text
from obsd.core.timing import instant

Payload = dict[str, Any]


def _ns_time(ns: int | None) -> str:
    if ns is None:
        return "?"
    return instant(ns).astimezone().strftime("%H:%M:%S.%f")


def _actor(payload: Payload) -> str:
    actor = payload.get("actor") or {}
    return f"(uid {actor.get('uid')} pid {actor.get('pid')})"


def _login(info: Payload) -> str:
    if not info.get("configured"):
        return "not set"
    return f"set for {info.get('username')}" + (
        f" (identity {info['identity']})" if info.get("identity") else ""
    )


def _config_changed(p: Payload) -> str:
    config = p.get("config", {})
    parts = [
        f"{name}={value(config.get(name))}" for name in p.get("changed", []) if name != "token"
    ]
    if "token" in p:
        token = p["token"]
        parts.append(
            "token="
            + (
                "cleared"
                if token is None
                else f"{token['fingerprint']} exp {token.get('exp') or '?'}"
            )
        )
    return " ".join(parts) + "  " + _actor(p)


def _run_created(p: Payload) -> str:
    config, watch = p["config"], p.get("watch")
    if watch:
        until_ns = watch.get("until_ns")
        until = f" until {instant(until_ns).astimezone():%Y-%m-%d %H:%M}" if until_ns else ""
        drops = f", drop {value(watch['drop'])}" if watch.get("drop") else ""
        return (
            f"watch {p['run_id']}: a seat in {watch['crn']} ({watch['branch']}), "
            f"read every {watch['every_s']:g} s{until}{drops}  {_actor(p)}"
        )
    return (
        f"run {p['run_id']} for {config['target']}: add {value(config['ecrn'])}, "
        f"drop {value(config['scrn'])}  {_actor(p)}"
    )


def _calibration(p: Payload) -> str:
    if p.get("ntp_offset_ms") is not None:
        error = p.get("time_error_ms")
        bound = "" if error is None else f" ± {error:.3f} ms"
        ntp = f"time {p.get('time_status') or 'agreed'} {p['ntp_offset_ms']:+.3f} ms{bound}"
        chosen = [s["source"] for s in p.get("sources", []) if s["verdict"] == "chosen"]
        rejected = [
            f"{s['source']} {s['verdict']}"
            for s in p.get("sources", [])
            if s["verdict"] not in ("chosen", "truechimer", "unused")
        ]
        ntp += f" (by {', '.join(chosen)})" if chosen else ""
        ntp += f" [{'; '.join(rejected)}]" if rejected else ""
    else:
        ntp = f"NO TRUSTWORTHY TIME: {p.get('ntp_error')}"
    rtt = (
        f"RTT min {p['rtt_min_ms']:.2f} / median {p['rtt_median_ms']:.2f} ms"
        if p.get("rtt_min_ms") is not None
        else f"RTT unknown: {p.get('rtt_error')}"
    )
    margin = f" (+{p['margin_ms']:.3f} ms margin)" if p.get("margin_ms") else ""
    fire = f", fire at {local_time(p['fire_at'])}{margin}" if p.get("fire_at") else ""
    return f"{ntp}, {rtt}, send {p.get('send_delay_ms')} ms, Date {p['date_check']}{fire}"


def _request_armed(p: Payload) -> str:
    # Written about a second before the POST leaves: the line says when it is meant to.
    planned = p["planned_ns"] if "planned_ns" in p else p["at_ns"]  # at_ns: 0.1's request_sent
    return (
        f"POST #{p['attempt']} armed for {_ns_time(planned)} (NTP time): add "
        f"{value(p['ecrn'])}, drop {value(p['scrn'])}"
    )


def crn_lines(results: list[Payload]) -> list[str]:
    """One indented line per CRN result."""
    return [
        f"{'':26}{r['crn']} {'drop' if r['kind'] == 'scrn' else 'add ':<4} "
        f"{r['state']:<12} {r['message']}"
        for r in results
    ]


def _crn_update(p: Payload) -> str:
    # The send instant is measured by the send itself, so it is known only now.
    head = f"POST #{p['attempt']}"
    if p.get("sent_ns"):
        head += f" sent at {_ns_time(p['sent_ns'])}"
    head += f": {p['outcome']}"
    if p.get("sent_ns") and p.get("responded_ns"):
        head += f" in {(p['responded_ns'] - p['sent_ns']) / 1e6:.0f} ms"
    if p.get("detail"):
        head += f" ({p['detail']})"
    return "\n".join([head, *crn_lines(p.get("results", []))])


def _done(p: Payload) -> str:
    return "\n".join([f"run {p['phase']}: {p['reason']}", *crn_lines(p.get("results", []))])


def _countdown(p: Payload) -> str:
    return f"T-{p['remaining']:.1f} s"


FORMATS: dict[str, Callable[[Payload], str]] = {
    "config_changed": _config_changed,
    "run_created": _run_created,
    "state": lambda p: f"phase {p['phase']}" + (f" ({p['reason']})" if p.get("reason") else ""),
    "countdown": _countdown,
    "log": lambda p: (f"[{p['level']}] " if p.get("level") != "info" else "") + p["message"],
    "calibration": _calibration,
    "late_start": lambda p: late_text(p["late_by_s"], opening_missed=False),
    "opening_missed": lambda p: late_text(p["late_by_s"], opening_missed=True),
    "request_armed": _request_armed,
    "request_sent": _request_armed,
    "crn_update": _crn_update,
    "done": _done,
    "run_cancelled": lambda p: f"run {p['run_id']} cancelled while {p['phase']} {_actor(p)}",
    "run_interrupted": lambda p: f"run interrupted while {p['phase']}: {p['reason']}",
    "run_resumed": lambda p: f"run resumed in {p['phase']}; pending: {value(p['pending'])}",
    "run_deleted": lambda p: f"run {p['run_id']} deleted {_actor(p)}",
    "token_tested": lambda p: f"token test: {p['message']}",
    "login_changed": lambda p: f"İTÜ login {_login(p['login'])} {_actor(p)}",
    "login_checked": lambda p: (
        f"login check: {'works' if p['ok'] else p['code'] or 'token refused'}: {p['message']}"
    ),
    "token_refreshed": lambda p: (
        f"fresh token from the {p['kind']}: exp {p['token'].get('exp') or 'unknown'}"
        + (f", identity {p['identity']}" if p.get("identity") else "")
    ),
    "seats_seen": lambda p: (
        f"{p['enrolled']} of {p['quota']} seats taken"
        + (" - a seat is free" if p["enrolled"] < p["quota"] else "")
    ),
    "watch_stalled": lambda p: (
        f"[stalled] {p['reason']}" if p.get("reason") else f"no longer stalled ({p['cause']})"
    ),
    "token_refresh_failed": lambda p: (
        f"the {p['kind']} for a fresh token failed ({p['code']}): {p['message']}"
        + (f"; keeping the token valid until {p['kept']['exp']}" if p.get("kept") else "")
    ),
}


def worth_showing(event: dict[str, Any]) -> bool:
    """Countdowns are thinned for people: every minute, every 10 s in the last one, then each."""
    if event.get("type") != "countdown":
        return True
    remaining = round(float(event["payload"]["remaining"]))
    return remaining <= 10 or (remaining < 60 and remaining % 10 == 0) or remaining % 60 == 0


def event_line(event: dict[str, Any]) -> str:
    """One event as `seq time type summary` (a crn_update or done adds a line per CRN)."""
    event_type = str(event.get("type", "?"))
    payload = event.get("payload")
    summary = ""
    if isinstance(payload, dict):
        render = FORMATS.get(event_type)
        try:
            summary = (
                render(payload)
                if render
                else " ".join(f"{key}={value(item)}" for key, item in payload.items())
            )
        except (KeyError, TypeError, ValueError):
            summary = " ".join(f"{key}={value(item)}" for key, item in payload.items())
    return (
        f"{event.get('seq', '?'):>7}  {local_time(str(event.get('timestamp', '')))}  "
        f"{event_type:<15} {summary}"
    ).rstrip()
