"""The `obsd` command: run the daemon in the foreground (as systemd expects)."""

from __future__ import annotations

import argparse
import grp
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import anyio

from obsd import __version__
from obsd.adapters.clock import SystemClock
from obsd.adapters.eventlog import DEFAULT_SEGMENT_BYTES, LogUnavailable
from obsd.adapters.systemd import Notifier
from obsd.daemon.instruments import real_instruments
from obsd.daemon.lifecycle import Settings, StartupError, serve
from obsd.paths import InstanceError, daemon_socket_path, instance_of, state_dir_path

logger = logging.getLogger("obsd")

# Notification URLs hold their services' secrets (a bot token, a password): as a systemd
# credential (LoadCredentialEncrypted=notify-urls:...) they stay off the disk in the clear.
NOTIFY_URLS_CREDENTIAL: Final = "notify-urls"


def _group_id(name: str | None, option: str) -> int | None:
    if not name:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise StartupError(f"{option}: no group named {name!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="obsd", description="Register for İTÜ courses at the instant OBS opens."
    )
    parser.add_argument("--version", action="version", version=f"obsd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="run the daemon in the foreground (the default)")
    run.add_argument(
        "--socket",
        type=Path,
        help="control socket path "
        "(default: $OBSD_SOCKET, $RUNTIME_DIRECTORY/obsd.sock, or the user's "
        "runtime dir)",
    )
    run.add_argument(
        "--state-dir",
        type=Path,
        help="where the event log and token live "
        "(default: $OBSD_STATE_DIR, $STATE_DIRECTORY, or the user's state dir)",
    )
    run.add_argument(
        "--admin-group",
        default=os.environ.get("OBSD_ADMIN_GROUP"),
        help="members of this group get read-write access (default: $OBSD_ADMIN_GROUP)",
    )
    run.add_argument(
        "--socket-group",
        default=os.environ.get("OBSD_SOCKET_GROUP"),
        help="group that may connect (socket mode 0660); default: the admin "
        "group, else none (mode 0600)",
    )
    run.add_argument(
        "--segment-bytes",
        type=int,
        default=DEFAULT_SEGMENT_BYTES,
        help="rotate log segments at this size (default: %(default)s)",
    )
    run.add_argument(
        "--notify-command",
        default=os.environ.get("OBSD_NOTIFY_COMMAND"),
        metavar="COMMAND",
        help="run COMMAND (split like a shell line, run without one) with each notice as "
        "JSON on stdin: a run's end, a late start, a problem before the target "
        "(default: $OBSD_NOTIFY_COMMAND)",
    )
    run.add_argument(
        "--notify-urls",
        type=Path,
        default=os.environ.get("OBSD_NOTIFY_URLS"),
        metavar="FILE",
        help="send each notice to the apprise URLs in FILE, one per line (ntfy://, tgram://, "
        "mailto://, ...; needs obsd[notify]); the systemd credential notify-urls is read "
        "too (default: $OBSD_NOTIFY_URLS)",
    )
    # Its options are the simulator's own: `obsd sim --help` (parsed there, so that the
    # daemon never imports the simulator).
    commands.add_parser("sim", help="serve a simulated OBS (and NTP) on loopback", add_help=False)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """Resolve options, environment and defaults into Settings."""
    admin_gid = _group_id(args.admin_group, "--admin-group")
    socket_gid = _group_id(args.socket_group, "--socket-group")
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if args.segment_bytes < 4096:
        raise StartupError("--segment-bytes must be at least 4096")
    try:
        instance = instance_of()
        socket = args.socket or daemon_socket_path()
        state_dir = args.state_dir or state_dir_path()
    except InstanceError as exc:
        raise StartupError(f"{exc}; set OBSD_INSTANCE to such a name, or unset it") from None
    try:
        notify_command = tuple(shlex.split(args.notify_command or ""))
    except ValueError as exc:
        raise StartupError(f"--notify-command: {exc}; quote it as a shell would") from None
    url_files = [Path(args.notify_urls)] if args.notify_urls else []
    if credentials and (Path(credentials) / NOTIFY_URLS_CREDENTIAL).exists():
        url_files.append(Path(credentials) / NOTIFY_URLS_CREDENTIAL)
    return Settings(
        notify_command=notify_command,
        notify_url_files=tuple(url_files),
        socket=socket,
        state_dir=state_dir,
        socket_gid=socket_gid if socket_gid is not None else admin_gid,
        admin_gid=admin_gid,
        segment_bytes=args.segment_bytes,
        credentials_dir=Path(credentials) if credentials else None,
        instance=instance,
    )


def _setup_logging() -> None:
    # Under systemd the journal stamps each line; elsewhere a time helps the reader.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if "JOURNAL_STREAM" not in os.environ:
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=logging.INFO, format=fmt, stream=sys.stderr)
    # httpx logs every request at INFO; the engine's own events say more, and say it once.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `obsd` console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or (
        arguments[0].startswith("-") and arguments[0] not in ("-h", "--help", "--version")
    ):
        arguments.insert(0, "run")
    if arguments[0] == "sim":
        from obsd.sim import cli as sim_cli

        simulator = argparse.ArgumentParser(prog="obsd sim", description=sim_cli.DESCRIPTION)
        sim_cli.add_arguments(simulator)
        return sim_cli.run(simulator.parse_args(arguments[1:]))
    args = _parser().parse_args(arguments)
    _setup_logging()
    notifier = Notifier.from_environment()
    clock = SystemClock()
    try:
        return anyio.run(serve, settings_from(args), clock, real_instruments(clock), notifier)
    except (StartupError, LogUnavailable) as exc:
        what = "" if isinstance(exc, StartupError) else "event log unavailable: "
        logger.error("%s%s", what, exc)
        notifier.status(f"failed to start: {what}{exc}")
        return 1
    finally:
        notifier.close()
