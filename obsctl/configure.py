"""`obsctl configure`: one option per ConfigPatch field, and the patch they make.

The fields come from `ConfigPatch` itself; this module says only how each is typed at the
command line. A field without an entry here stops obsctl from building its parser (and fails
tests/obsctl/test_configure_options.py), so a new field cannot be silently left out.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from obsd.core.config import PATCH_ONLY, ConfigPatch


class UsageError(Exception):
    """The command line itself is wrong (exit status 1)."""


def _seconds(text: str) -> float:
    """A finite number (JSON has no NaN or infinity; msgspec would send them as null)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


# field -> argparse options; the flag is --field-name unless "flag" says otherwise.
OPTIONS: Final[dict[str, dict[str, Any]]] = {
    "ecrn": {
        "nargs": "*",
        "metavar": "CRN",
        "help": "CRNs to add, most contested first: OBS handles them one after another in "
        "this order (replaces the list)",
    },
    "scrn": {
        "nargs": "*",
        "metavar": "CRN",
        "help": "CRNs to drop, in the same POST as the adds (replaces the list)",
    },
    "target": {"help": "opening instant: HH:MM:SS (Istanbul) or ISO-8601 with offset"},
    "max_attempts": {"type": int, "metavar": "N"},
    "retry_interval": {"type": _seconds, "metavar": "SECONDS"},
    "safety_buffer": {"type": _seconds, "metavar": "SECONDS"},
    "obs_base_url": {"metavar": "URL"},
    "ntp_servers": {
        "flag": "--ntp-server",
        "action": "append",
        "metavar": "HOST[:PORT]",
        "help": "repeat for several (replaces the list)",
    },
    "retry_full": {
        "action": argparse.BooleanOptionalAction,
        "help": "keep retrying full courses within the request budget",
    },
    "backup": {
        "action": "append",
        "metavar": "PRIMARY=BACKUP",
        "help": "try BACKUP when PRIMARY is full (repeat; replaces the map; "
        "'--backup none' clears it)",
    },
    "budget_posts": {"type": int, "metavar": "N"},
    "budget_window": {"type": _seconds, "metavar": "SECONDS"},
    "read_timeout": {"type": _seconds, "metavar": "SECONDS"},
    "late_start_window": {
        "type": _seconds,
        "metavar": "SECONDS",
        "help": "a target that passed less than this long ago fires at once (a late "
        "start; default 3 hours, 0 refuses any past target)",
    },
    "aim_early_fraction": {
        "type": _seconds,
        "metavar": "F",
        "help": "aim before the opening by this part of the one-way "
        "latency (default 0: never aim early)",
    },
}
FIELDS: Final = tuple(name for name in ConfigPatch.__struct_fields__ if name not in PATCH_ONLY)


def flag(field: str) -> str:
    """The option that sets `field`."""
    return str(OPTIONS[field].get("flag", "--" + field.replace("_", "-")))


def add_options(parser: argparse.ArgumentParser) -> None:
    """Every configuration field's option, then the token's."""
    missing = [field for field in FIELDS if field not in OPTIONS]
    if missing:
        raise RuntimeError(f"obsctl has no option for config field(s) {missing}")
    for field in FIELDS:
        options = {key: value for key, value in OPTIONS[field].items() if key != "flag"}
        parser.add_argument(flag(field), dest=field, **options)
    parser.add_argument(
        "--ecrn-first",
        nargs="+",
        metavar="CRN",
        help="move these ECRNs to the front of the list, in this order (OBS handles the "
        "list in order: the most contested course goes first)",
    )
    token = parser.add_mutually_exclusive_group()
    token.add_argument(
        "--token-file", type=Path, metavar="PATH", help="read the OBS token from this file"
    )
    token.add_argument("--token", metavar="-", help="'-' reads the token from standard input")
    token.add_argument("--clear-token", action="store_true", help="forget the stored token")


def _read_token(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        try:
            return str(args.token_file.read_text())
        except OSError as exc:
            raise UsageError(
                f"--token-file: cannot read {args.token_file}: {exc.strerror}"
            ) from None
    if args.token is not None:
        if args.token != "-":
            raise UsageError(
                "--token takes only '-' (read from standard input): a token on "
                "the command line lands in shell history and in ps"
            )
        return sys.stdin.read()
    return None


def _backup_map(pairs: list[str]) -> dict[str, str]:
    if pairs == ["none"]:
        return {}
    mapping = {}
    for pair in pairs:
        primary, sep, backup = pair.partition("=")
        if not sep:
            raise UsageError(f"--backup: expected PRIMARY=BACKUP, got {pair!r}")
        mapping[primary] = backup
    return mapping


def moved_first(ecrn: list[str], first: list[str]) -> list[str]:
    """`ecrn` with the CRNs of `first` moved to its front, in that order."""
    missing = [crn for crn in first if crn not in ecrn]
    if missing:
        raise UsageError(
            f"--ecrn-first: {', '.join(missing)} not in the ECRN list "
            f"({', '.join(ecrn) or 'empty'}); add it with --ecrn"
        )
    return [*dict.fromkeys(first), *(crn for crn in ecrn if crn not in first)]


def config_patch(args: argparse.Namespace, current_ecrn: Callable[[], list[str]]) -> dict[str, Any]:
    """The `config` object of the configure request the options ask for.

    `current_ecrn` is asked for the daemon's list only when --ecrn-first reorders it alone.
    """
    patch: dict[str, Any] = {}
    for field in FIELDS:
        value = getattr(args, field)
        if value is not None:
            patch[field] = _backup_map(value) if field == "backup" else value
    if args.ecrn_first:
        patch["ecrn"] = moved_first(patch.get("ecrn") or current_ecrn(), args.ecrn_first)
    token = _read_token(args)
    if token is not None:
        patch["token"] = token
    if args.clear_token:
        patch["token"] = None
    if not patch:
        raise UsageError("configure: give at least one field to change (see obsctl configure -h)")
    return patch


_CONFIG_PATH = re.compile(r"`\$\.config\.([a-z_]+)")


def with_flag(message: str) -> str:
    """Name the option a person typed beside the field the daemon names (`$.config.x`)."""
    if (m := _CONFIG_PATH.search(message)) and m[1] in OPTIONS:
        return f"{message} ({flag(m[1])})"
    return message
