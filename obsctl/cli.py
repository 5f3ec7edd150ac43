"""The `obsctl` command line: configure, inspect and follow the obsd daemon."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import msgspec

from obsctl import configure as configure_options
from obsctl import event_view, render, report, watch, watch_seat
from obsctl.client import Client, ClientError
from obsctl.configure import UsageError
from obsctl.login import login_fields
from obsd.core.replies import REPLIES
from obsd.paths import InstanceError, app_name, client_socket

EXIT_OK = 0
EXIT_CLIENT_ERROR = 1
EXIT_DAEMON_REFUSED = 2


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1: status 2 means only that the daemon refused a request."""

    def error(self, message: str) -> NoReturn:
        # One line that says what to do; the full usage would bury it.
        self.exit(EXIT_CLIENT_ERROR, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def _instance(text: str) -> str:
    try:
        app_name(text)
    except InstanceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--socket",
        type=Path,
        default=default,
        help="control socket (default: $OBSD_SOCKET, /run/obsd.sock, "
        "/run/obsd/obsd.sock, or the user's runtime dir)",
    )
    parser.add_argument(
        "-i",
        "--instance",
        type=_instance,
        default=default,
        metavar="NAME",
        help="the daemon of student NAME on a shared VPS, obsd@NAME "
        "(default: $OBSD_INSTANCE; its socket is /run/obsd-NAME.sock)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default,
        help="print the daemon's raw JSON lines, for scripts",
    )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="obsctl", description="Control the obsd daemon.")
    _global_options(parser, None)
    # The same options after the command name; SUPPRESS keeps them from undoing earlier ones.
    common = _Parser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, parents=[common])

    commands.add_parser(
        "demo",
        help="a whole registration against the built-in simulator "
        "(~25 s, loopback only, temporary paths)",
        parents=[common],
    )
    command("ping", "check that the daemon answers")
    command("status", "daemon, phase, active run, log head")
    command("config", "the current configuration (token as a fingerprint)")
    configure = command("configure", "change configuration fields")
    configure_options.add_options(configure)
    tail = command("tail", "print events; -f keeps following")
    tail.add_argument("-f", "--follow", action="store_true")
    tail.add_argument(
        "--after",
        type=int,
        metavar="SEQ",
        help="start after this seq (default: the last 10 events)",
    )
    command("watch", "one live screen: phase, countdown, clock, plan, results (piped: tail -f)")
    events = command("events", "one page of the event history")
    events.add_argument("--after", type=int, default=0, metavar="SEQ")
    events.add_argument("--limit", type=int, default=100)
    events.add_argument("--type", action="append", dest="types", metavar="TYPE")
    command("health", "log store, disk space, clock")
    command("schema", "the JSON Schema of the protocol")
    command("test-token", "check the token with OBS (a cheap GET, never a registration)")
    login = command(
        "login",
        "keep the İTÜ user name and password, so that obsd can fetch fresh tokens itself "
        "(asked for without echo, or two lines on stdin)",
    )
    login.add_argument(
        "--identity",
        metavar="NAME",
        help="for a double major: the identity (program) whose name contains NAME",
    )
    login.add_argument(
        "--check",
        action="store_true",
        help="log in once with the kept credentials and test the token; show each step",
    )
    command("logout", "forget the kept İTÜ credentials")
    command("calibrate", "measure NTP offset, RTT to OBS and send delay now")
    command("start", "start a run from the current configuration")
    watch_seat.add_arguments(
        command(
            "watch-seat",
            "watch a full section on the public schedule and take a seat when one frees "
            "(add/drop days)",
        )
    )
    cancel = command("cancel", "cancel the timed run in progress, or the run named, at once")
    cancel.add_argument("run_id", metavar="ID", nargs="?", help="a watch (or any run) to cancel")
    runs = command("runs", "the run history")
    runs.add_argument("--page", type=int, default=1)
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument(
        "--status",
        metavar="PHASE",
        help="only runs in this phase (done, failed, cancelled, waiting, ...)",
    )
    runs.add_argument("--oldest-first", action="store_true")
    run = command("run", "one run in full, as a report")
    run.add_argument("run_id", metavar="ID")
    run.add_argument("--format", choices=("text", "md"), default="text")
    delete = command("delete-run", "remove a finished run from the history")
    delete.add_argument("run_id", metavar="ID")
    return parser


def _print_response(
    response: dict[str, Any],
    args: argparse.Namespace,
    human: Callable[[Any], str],
    op: str | None = None,
) -> int:
    """Print the reply (decoded into `op`'s reply type, if given) or the refusal."""
    if args.json:
        print(msgspec.json.encode(response).decode())
    elif response["success"]:
        data = response["data"]
        if op is not None:
            try:
                data = msgspec.convert(data, REPLIES[op])
            except msgspec.ValidationError as exc:
                raise ClientError(
                    f"obsd's reply to {op} is not what this obsctl knows "
                    f"({exc}); are the two the same version?"
                ) from None
        print(human(data))
    if not response["success"]:
        error = response["error"]
        message = configure_options.with_flag(error["message"])
        print(f"obsctl: {error['code']}: {message}", file=sys.stderr)
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
        elif event_view.worth_showing(message):
            print(event_view.event_line(message), flush=True)
        if message.get("type") == "caught_up" and not args.follow:
            return EXIT_OK
    return EXIT_OK


def _watch(client: Client, args: argparse.Namespace) -> int:
    after = watch.tail_start(client)
    if args.json or not sys.stdout.isatty():
        # Into a pipe or a file a screen makes no sense: the lines of tail -f, from the same start.
        args.after, args.follow = after, True
        return _tail(client, args)
    return watch.watch(client, after, watch.initial_state(client))


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
        fields: dict[str, Any] = {
            "page": args.page,
            "limit": args.limit,
            "sort": "created_asc" if args.oldest_first else "created_desc",
        }
        if args.status:
            fields["status"] = args.status
        return fields
    if args.command in ("run", "delete-run"):
        return {"run_id": args.run_id}
    if args.command == "cancel":
        return {"run_id": args.run_id} if args.run_id else {}
    if args.command == "watch-seat":
        return watch_seat.request_fields(args, datetime.now(UTC))
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
    "watch-seat": ("watch_seat", lambda args: render.watch_started),
    "cancel": ("cancel", lambda args: render.cancelled),
    "runs": ("runs", lambda args: render.runs),
    "run": ("run", _run_report),
    "delete-run": ("delete_run", lambda args: lambda reply: f"run {reply.run_id} deleted"),
    "logout": ("logout", lambda args: render.login),
}


def run(args: argparse.Namespace) -> int:
    """Carry out one parsed command; return the exit status."""
    if args.command == "demo":
        from obsctl.demo import run_demo  # Loads the simulator: only when asked for.

        return run_demo()
    if args.socket is not None and args.instance is not None:
        raise UsageError("give --socket or --instance, not both")
    try:
        path, service = (args.socket, "obsd") if args.socket else client_socket(args.instance)
    except InstanceError as exc:
        raise UsageError(f"{exc}; set it to such a name, or unset it") from None

    def current_ecrn() -> list[str]:
        with Client(path, service=service) as client:
            reply = client.request("config")
        if not reply.get("success"):
            raise ClientError(f"config: {(reply.get('error') or {}).get('message', reply)}")
        return list(reply["data"]["config"]["ecrn"])

    patch = (
        configure_options.config_patch(args, current_ecrn) if args.command == "configure" else None
    )
    # Asked for before connecting: a person typing holds no connection open.
    credentials = login_fields(args) if args.command == "login" and not args.check else {}
    with Client(path, service=service) as client:
        if patch is not None:
            return _print_response(
                client.request("configure", config=patch), args, render.config, "configure"
            )
        if args.command == "tail":
            return _tail(client, args)
        if args.command == "events":
            return _events(client, args)
        if args.command == "watch":
            return _watch(client, args)
        if args.command == "login" and args.check:
            return _print_response(
                client.request("test_login"), args, render.login_check, "test_login"
            )
        if args.command == "login":
            return _print_response(
                client.request("login", **credentials), args, render.login, "login"
            )
        op, view = COMMANDS[args.command]
        return _print_response(client.request(op, **_request_fields(args)), args, view(args), op)


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
