"""`obsctl watch-seat`: its options, and the `watch_seat` request they make."""

from __future__ import annotations

import argparse
import re
from datetime import datetime, timedelta
from typing import Any, Final

from obsd.core.watch import POLL_FLOOR_S

# "90m", "12h", "3d": a span from now, as people say how long to watch.
_SPAN: Final = re.compile(r"([0-9]+)([mhd])")
_UNITS: Final = {"m": "minutes", "h": "hours", "d": "days"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    parser.add_argument("crn", metavar="CRN", help="the section to get a seat in")
    parser.add_argument(
        "--branch",
        required=True,
        metavar="CODE",
        type=str.upper,
        help="the letters of its course code (BLG for BLG 102E): which schedule page to read",
    )
    parser.add_argument(
        "--drop",
        action="append",
        default=[],
        metavar="CRN",
        help="also drop this CRN in the same request (dangerous: see --accept-drop-risk)",
    )
    parser.add_argument(
        "--accept-drop-risk",
        action="store_true",
        help="OBS applies a drop even when the add fails: you may lose the dropped course",
    )
    parser.add_argument(
        "--every",
        type=float,
        default=POLL_FLOOR_S,
        metavar="SECONDS",
        help=f"read the page this often (at least {POLL_FLOOR_S:g} s, the polite floor)",
    )
    parser.add_argument(
        "--until",
        metavar="WHEN",
        help="stop watching then: an ISO-8601 date-time with offset, or 90m, 12h, 3d from now",
    )


def request_fields(args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    """The fields of the `watch_seat` request."""
    fields: dict[str, Any] = {
        "crn": args.crn,
        "branch": args.branch,
        "drop": args.drop,
        "accept_drop_risk": args.accept_drop_risk,
        "every": args.every,
    }
    if args.until:
        fields["until"] = until_instant(args.until, now)
    return fields


def until_instant(text: str, now: datetime) -> str:
    """A span from `now` as an instant; anything else goes as written (the daemon checks it)."""
    span = _SPAN.fullmatch(text.strip())
    if span is None:
        return text
    delta = timedelta(**{_UNITS[span[2]]: int(span[1])})
    return (now + delta).isoformat(timespec="seconds")
