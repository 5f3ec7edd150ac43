"""The `obsctl` command line: configure, inspect and follow the obsd daemon."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from obsctl import render
from obsctl.client import Client, ClientError
from obsd.paths import client_socket_path

EXIT_OK = 0
EXIT_CLIENT_ERROR = 1
EXIT_DAEMON_REFUSED = 2


class UsageError(Exception):
    """The command line itself is wrong (exit status 1)."""


def _global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--socket", type=Path, default=default,
                        help="control socket (default: $OBSD_SOCKET, /run/obsd/obsd.sock, "
                        "or the user's runtime dir)")
    parser.add_argument("--json", action="store_true", default=default,
                        help="print the daemon's raw JSON lines, for scripts")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="obsctl", description="Control the obsd daemon.")
    _global_options(parser, None)
    # The same options after the command name; SUPPRESS keeps them from undoing earlier ones.
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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
    configure.add_argument("--retry-interval", type=float, metavar="SECONDS")
    configure.add_argument("--safety-buffer", type=float, metavar="SECONDS")
    configure.add_argument("--obs-base-url", metavar="URL")
    configure.add_argument("--ntp-server", action="append", metavar="HOST[:PORT]",
                           dest="ntp_servers", help="repeat for several (replaces the list)")
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


def _config_patch(args: argparse.Namespace) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for name in ("ecrn", "scrn", "target", "max_attempts", "retry_interval", "safety_buffer",
                 "obs_base_url", "ntp_servers"):
        value = getattr(args, name)
        if value is not None:
            patch[name] = value
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
        print(f"obsctl: {error['code']}: {error['message']}", file=sys.stderr)
        return EXIT_DAEMON_REFUSED
    return EXIT_OK


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
        else:
            print(render.event_line(message), flush=True)
        if message.get("type") == "caught_up" and not args.follow:
            return EXIT_OK
    return EXIT_OK


def _events(client: Client, args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {"after_seq": args.after, "limit": args.limit}
    if args.types:
        fields["types"] = args.types
    response = client.request("events", **fields)

    def human(data: dict[str, Any]) -> str:
        lines = [render.event_line(item) for item in data["items"]]
        if data["has_more"]:
            lines.append(f"(more: obsctl events --after {data['next_after_seq']})")
        return "\n".join(lines) or "(no events)"

    return _print_response(response, args, human)


def _schema_text(data: Any) -> str:
    return msgspec.json.format(msgspec.json.encode(data)).decode()


SIMPLE_COMMANDS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "ping": ("ping", lambda data: "pong"),
    "status": ("status", render.status),
    "config": ("config", render.config),
    "health": ("health", render.health),
    "schema": ("schema", _schema_text),
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
        op, human = SIMPLE_COMMANDS[args.command]
        return _print_response(client.request(op), args, human)


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
