"""`obsctl tail` lines say what happened when it happened: a POST is armed before the shot and
sent, with the measured instant, when its answer shows that it left."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec

from obsctl.event_view import event_line
from obsd.core.timing import NS
from tests.harness import registration

PLANNED_NS = 1_795_500_000_001_000_000


def summary(event: dict[str, Any]) -> str:
    """The line after its seq, time and type columns."""
    return event_line(event).split(f" {event['type']} ", 1)[1].strip()


def armed(**payload: Any) -> dict[str, Any]:
    base = {"run_id": "r", "attempt": 1, "ecrn": ["21234"], "scrn": []}
    return {"type": "request_armed", "seq": 7, "payload": base | payload}


def test_an_armed_post_says_when_it_is_meant_to_leave() -> None:
    line = summary(armed(planned_ns=PLANNED_NS))
    assert line.startswith("POST #1 armed for ") and "(NTP time): add 21234" in line


def test_a_0_1_request_sent_reads_as_armed() -> None:
    legacy = armed(at_ns=PLANNED_NS) | {"type": "request_sent"}
    assert summary(legacy) == summary(armed(planned_ns=PLANNED_NS))


def test_an_answer_says_when_its_post_was_sent_and_how_long_it_took() -> None:
    update = {
        "type": "crn_update",
        "payload": {
            "attempt": 1,
            "outcome": "answered",
            "sent_ns": PLANNED_NS,
            "responded_ns": PLANNED_NS + 230 * 10**6,
            "results": [],
        },
    }
    assert summary(update).endswith(": answered in 230 ms")
    assert summary(update).startswith("POST #1 sent at ")


def test_tail_shows_the_armed_line_before_the_post_and_the_sent_line_after(
    short_dir: Path,
) -> None:
    seen: dict[str, tuple[int, str]] = {}
    with registration(short_dir, opening_in_s=3) as reg:
        reg.plan(ecrn=["21234"])
        reg.start()
        with reg.daemon.client() as client:
            client.request("tail", after_seq=0, follow=True)
            for raw in client.stream(deadline=time.monotonic() + 30):
                event = msgspec.json.decode(raw)
                if event.get("type") in ("request_armed", "crn_update"):
                    # How many POSTs OBS had seen when the line reached the reader.
                    seen[event["type"]] = (len(reg.posts()), summary(event))
                if event.get("type") == "done":
                    break
        (post,) = reg.posts()
    assert seen["request_armed"][0] == 0, "armed is written before the POST leaves"
    posts_then, sent_line = seen["crn_update"]
    assert posts_then == 1
    assert sent_line.startswith("POST #1 sent at ") and "answered in" in sent_line
    assert post.arrival_ns >= reg.opening_ns and post.arrival_ns - reg.opening_ns < 5 * NS


def test_the_login_s_events_read_as_sentences_without_secrets() -> None:
    info = {"fingerprint": "sha256:ab", "exp": "2026-12-01T19:00:00Z", "iat": None}
    refreshed = {
        "type": "token_refreshed",
        "payload": {"kind": "remint", "token": info, "identity": None, "steps": [{"x": 1}]},
    }
    assert summary(refreshed) == "fresh token from the remint: exp 2026-12-01T19:00:00Z"
    failed = {
        "type": "token_refresh_failed",
        "payload": {
            "kind": "login",
            "code": "LOGIN_WRONG_PASSWORD",
            "message": "İTÜ refused the user name or password",
            "kept": info,
            "steps": [],
        },
    }
    assert summary(failed).endswith("keeping the token valid until 2026-12-01T19:00:00Z")
    changed = {
        "type": "login_changed",
        "payload": {
            "actor": {"uid": 1000, "pid": 7},
            "login": {"configured": True, "username": "ayse"},
        },
    }
    assert summary(changed).startswith("İTÜ login set for ayse")
