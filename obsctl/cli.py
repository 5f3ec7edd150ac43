"""The `obsctl` command line: configure, inspect and follow the obsd daemon."""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import msgspec

from obsctl import event_view, render, report
from obsctl.client import Client, ClientError
from obsd.paths import client_socket_path

EXIT_OK = 0
EXIT_CLIENT_ERROR = 1
EXIT_DAEMON_REFUSED = 2


class UsageError(Exception):
    """The command line itself is wrong (exit status 1)."""


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1: status 2 means only that the daemon refused a request."""

    def error(self, message: str) -> NoReturn:
        # One line that says what to do; the full usage would bury it.
        self.exit(EXIT_CLIENT_ERROR, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def _seconds(text: str) -> float:
    """A finite number (JSON has no NaN or infinity; msgspec would send them as null)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--socket", type=Path, default=default,
                        help="control socket (default: $OBSD_SOCKET, /run/obsd.sock, "
                        "/run/obsd/obsd.sock, or the user's runtime dir)")
    parser.add_argument("--json", action="store_true", default=default,
                        help="print the daemon's raw JSON lines, for scripts")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="obsctl", description="Control the obsd daemon.")
    _global_options(parser, None)
    # The same options after the command name; SUPPRESS keeps them from undoing earlier ones.
    common = _Parser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                     parser_class=_Parser)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, parents=[common])

    command("ping", "check that the daemon answers")
    command("status", "daemon, phase, active run, log head")
    command("config", "the current configuration (token as a fingerprint)")
    configure = command("configure", "change configuration fields")
    configure.add_argument("--ecrn", nargs="*", metavar="CRN", help="CRNs to add (replaces)")
    configure.add_argument("--scrn", nargs="*", metavar="CRN", help="CRNs to drop (replaces)")
    configure.add_argument("--target", help="opening instant: HH:MM:SS (Istanbul) or ISO-8601 "
                           "with offset")
    configure.add_argument("--max-attempts", type=int)
    configure.add_argument("--retry-interval", type=_seconds, metavar="SECONDS")
    configure.add_argument("--safety-buffer", type=_seconds, metavar="SECONDS")
    configure.add_argument("--obs-base-url", metavar="URL")
    configure.add_argument("--ntp-server", action="append", metavar="HOST[:PORT]",
                           dest="ntp_servers", help="repeat for several (replaces the list)")
    configure.add_argument("--retry-full", action=argparse.BooleanOptionalAction,
                           help="keep retrying full courses within the request budget")
    configure.add_argument("--backup", action="append", metavar="PRIMARY=BACKUP",
                           help="try BACKUP when PRIMARY is full (repeat; replaces the map; "
                           "'--backup none' clears it)")
    configure.add_argument("--budget-posts", type=int, metavar="N")
    configure.add_argument("--budget-window", type=_seconds, metavar="SECONDS")
    configure.add_argument("--read-timeout", type=_seconds, metavar="SECONDS")
    configure.add_argument("--aim-early-fraction", type=_seconds, metavar="F",
                           help="aim before the opening by this part of the one-way latency "
                           "(default 0: never aim early)")
    configure.set_defaults(field_flags={
        action.dest: action.option_strings[0] for action in configure._actions
        if action.option_strings and action.option_strings[0].startswith("--")})
    token = configure.add_mutually_exclusive_group()
    token.add_argument("--token-file", type=Path, metavar="PATH",
                       help="read the OBS token from this file")
    token.add_argument("--token", metavar="-", help="'-' reads the token from standard input")
    token.add_argument("--clear-token", action="store_true", help="forget the stored token")
    tail = command("tail", "print events; -f keeps following")
    tail.add_argument("-f", "--follow", action="store_true")
    tail.add_argument("--after", type=int, metavar="SEQ",
                      help="start after this seq (default: the last 10 events)")
    events = command("events", "one page of the event history")
    events.add_argument("--after", type=int, default=0, metavar="SEQ")
    events.add_argument("--limit", type=int, default=100)
    events.add_argument("--type", action="append", dest="types", metavar="TYPE")
    command("health", "log store, disk space, clock")
    command("schema", "the JSON Schema of the protocol")
    command("test-token", "check the token with OBS (a cheap GET, never a registration)")
    command("calibrate", "measure NTP offset, RTT to OBS and send delay now")
    command("start", "start a run from the current configuration")
    command("cancel", "cancel the active run at once")
    runs = command("runs", "the run history")
    runs.add_argument("--page", type=int, default=1)
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--status", metavar="PHASE",
                      help="only runs in this phase (done, failed, cancelled, waiting, ...)")
    runs.add_argument("--oldest-first", action="store_true")
    run = command("run", "one run in full, as a report")
    run.add_argument("run_id", metavar="ID")
    run.add_argument("--format", choices=("text", "md"), default="text")
    delete = command("delete-run", "remove a finished run from the history")
    delete.add_argument("run_id", metavar="ID")
    return parser


def _read_token(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        try:
            return str(args.token_file.read_text())
        except OSError as exc:
            raise UsageError(f"--token-file: cannot read {args.token_file}: {exc.strerror}"
                             ) from None
    if args.token is not None:
        if args.token != "-":
            raise UsageError("--token takes only '-' (read from standard input): a token on "
                             "the command line lands in shell history and in ps")
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


def _config_patch(args: argparse.Namespace) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for name in ("ecrn", "scrn", "target", "max_attempts", "retry_interval", "safety_buffer",
                 "obs_base_url", "ntp_servers", "retry_full", "budget_posts", "budget_window",
                 "read_timeout", "aim_early_fraction"):
        value = getattr(args, name)
        if value is not None:
            patch[name] = value
    if args.backup is not None:
        patch["backup"] = _backup_map(args.backup)
    token = _read_token(args)
    if token is not None:
        patch["token"] = token
    if args.clear_token:
        patch["token"] = None
    if not patch:
        raise UsageError("configure: give at least one field to change (see obsctl configure -h)")
    return patch


def _print_response(response: dict[str, Any], args: argparse.Namespace,
                    human: Callable[[Any], str]) -> int:
    if args.json:
        print(msgspec.json.encode(response).decode())
    elif response["success"]:
        print(human(response["data"]))
    if not response["success"]:
        error = response["error"]
        print(f"obsctl: {error['code']}: {_with_flag(error['message'], args)}", file=sys.stderr)
        return EXIT_DAEMON_REFUSED
    return EXIT_OK


_CONFIG_PATH = re.compile(r"`\$\.config\.([a-z_]+)")


def _with_flag(message: str, args: argparse.Namespace) -> str:
    """Name the option a person typed beside the field the daemon names (`$.config.x`)."""
    flags: dict[str, str] = getattr(args, "field_flags", {})
    if (m := _CONFIG_PATH.search(message)) and (flag := flags.get(m[1])):
        return f"{message} ({flag})"
    return message


def _tail(client: Client, args: argparse.Namespace) -> int:
    after = args.after
    if after is None:
        after = max(0, int(client.greeting["head_seq"]) - 10)
    response = client.request("tail", after_seq=after, follow=args.follow)
    if not response["success"]:
        return _print_response(response, args, str)
    for line in client.stream():
        message = msgspec.json.decode(line)
        if args.json:
            print(line.decode(), flush=True)
        elif message.get("type") == "caught_up":
            if args.follow:
                print("--- following live events (Ctrl-C to stop) ---", flush=True)
        elif event_view.worth_showing(message):
            print(event_view.event_line(message), flush=True)
        if message.get("type") == "caught_up" and not args.follow:
            return EXIT_OK
    return EXIT_OK


def _events(client: Client, args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {"after_seq": args.after, "limit": args.limit}
    if args.types:
        fields["types"] = args.types
    response = client.request("events", **fields)

    def human(data: dict[str, Any]) -> str:
        lines = [event_view.event_line(item) for item in data["items"]]
        if data["has_more"]:
            lines.append(f"(more: obsctl events --after {data['next_after_seq']})")
        return "\n".join(lines) or "(no events)"

    return _print_response(response, args, human)


def _schema_text(data: Any) -> str:
    return msgspec.json.format(msgspec.json.encode(data)).decode()


def _request_fields(args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "runs":
        fields: dict[str, Any] = {"page": args.page, "limit": args.limit,
                                  "sort": "created_asc" if args.oldest_first else "created_desc"}
        if args.status:
            fields["status"] = args.status
        return fields
    if args.command in ("run", "delete-run"):
        return {"run_id": args.run_id}
    return {}


def _run_report(args: argparse.Namespace) -> Callable[[Any], str]:
    return report.markdown if args.format == "md" else report.text


# command -> (op, how to show its data to a person)
COMMANDS: dict[str, tuple[str, Callable[[argparse.Namespace], Callable[[Any], str]]]] = {
    "ping": ("ping", lambda args: lambda data: "pong"),
    "status": ("status", lambda args: render.status),
    "config": ("config", lambda args: render.config),
    "health": ("health", lambda args: render.health),
    "schema": ("schema", lambda args: _schema_text),
    "test-token": ("test_token", lambda args: render.token_test),
    "calibrate": ("calibrate", lambda args: render.calibration),
    "start": ("start", lambda args: render.started),
    "cancel": ("cancel", lambda args: render.cancelled),
    "runs": ("runs", lambda args: render.runs),
    "run": ("run", _run_report),
    "delete-run": ("delete_run", lambda args: lambda data: f"run {data['run_id']} deleted"),
}


def run(args: argparse.Namespace) -> int:
    """Carry out one parsed command; return the exit status."""
    patch = _config_patch(args) if args.command == "configure" else None
    with Client(args.socket or client_socket_path()) as client:
        if patch is not None:
            return _print_response(client.request("configure", config=patch), args,
                                   render.config)
        if args.command == "tail":
            return _tail(client, args)
        if args.command == "events":
            return _events(client, args)
        op, view = COMMANDS[args.command]
        return _print_response(client.request(op, **_request_fields(args)), args, view(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `obsctl` console script."""
    args = _parser().parse_args(argv)
    try:
        return run(args)
    except (ClientError, UsageError) as exc:
        print(f"obsctl: {exc}", file=sys.stderr)
        return EXIT_CLIENT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        return EXIT_OK
