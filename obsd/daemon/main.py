"""The `obsd` command: run the daemon in the foreground (as systemd expects)."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import grp
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio
import anyio.abc

from obsd import __version__
from obsd.adapters.clock import SystemClock
from obsd.adapters.control_socket import (
    SocketInUse,
    UnsafeSocketPath,
    bind_control_socket,
)
from obsd.adapters.eventlog import DEFAULT_SEGMENT_BYTES, EventLog, LogUnavailable
from obsd.adapters.systemd import (
    ActivationError,
    Notifier,
    inherited_control_socket,
    socket_name,
)
from obsd.adapters.token_store import TokenStore
from obsd.core.events import (
    DaemonStartedPayload,
    DaemonStoppedPayload,
    RunInterruptedPayload,
    RunResumedPayload,
)
from obsd.core.oserrors import explain
from obsd.core.policy import wants_sending
from obsd.daemon.connection import accept_connections, serve_connection
from obsd.daemon.notify import SystemdReporter
from obsd.daemon.service import Service
from obsd.paths import daemon_socket_path, state_dir_path

logger = logging.getLogger("obsd")

LOG_DIR_NAME = "log"
LOCK_FILE_NAME = "obsd.lock"
# After a failed write or sync the daemon stops; this long it waits so that the command which
# hit the failure is answered STORAGE_FAILED rather than seeing its connection drop.
STORAGE_FAILURE_GRACE_S = 0.2


class StartupError(Exception):
    """The daemon cannot start; the message says why and what to do."""


# What to do when a start-up step meets a file-system error, by the setting that owns the path.
STATE_DIR_REMEDY: Final = ("give obsd a state directory it can write: --state-dir or "
                           "$OBSD_STATE_DIR (under systemd, StateDirectory=)")
SOCKET_REMEDY: Final = ("choose a socket path in a directory obsd can write: --socket or "
                        "$OBSD_SOCKET (under systemd, RuntimeDirectory= or obsd.socket)")


@contextlib.contextmanager
def _step(remedy: str) -> Iterator[None]:
    """Turn a file-system error inside a start-up step into one line saying what to do."""
    try:
        yield
    except OSError as exc:
        raise StartupError(explain(exc, remedy, os.geteuid())) from None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything `obsd run` was told."""

    socket: Path
    state_dir: Path
    socket_gid: int | None
    admin_gid: int | None
    segment_bytes: int
    credentials_dir: Path | None


def _group_id(name: str | None, option: str) -> int | None:
    if not name:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise StartupError(f"{option}: no group named {name!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="obsd", description="Register for İTÜ courses at the instant OBS opens.")
    parser.add_argument("--version", action="version", version=f"obsd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="run the daemon in the foreground (the default)")
    run.add_argument("--socket", type=Path, help="control socket path "
                     "(default: $OBSD_SOCKET, $RUNTIME_DIRECTORY/obsd.sock, or the user's "
                     "runtime dir)")
    run.add_argument("--state-dir", type=Path, help="where the event log and token live "
                     "(default: $OBSD_STATE_DIR, $STATE_DIRECTORY, or the user's state dir)")
    run.add_argument("--admin-group", default=os.environ.get("OBSD_ADMIN_GROUP"),
                     help="members of this group get read-write access "
                     "(default: $OBSD_ADMIN_GROUP)")
    run.add_argument("--socket-group", default=os.environ.get("OBSD_SOCKET_GROUP"),
                     help="group that may connect (socket mode 0660); default: the admin "
                     "group, else none (mode 0600)")
    run.add_argument("--segment-bytes", type=int, default=DEFAULT_SEGMENT_BYTES,
                     help="rotate log segments at this size (default: %(default)s)")
    commands.add_parser("demo", help="a whole registration against the built-in simulator "
                        "(~20 s, loopback only)")
    # Its options are the simulator's own: `obsd sim --help` (parsed there, so that the
    # daemon never imports the simulator).
    commands.add_parser("sim", help="serve a simulated OBS (and NTP) on loopback",
                        add_help=False)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """Resolve options, environment and defaults into Settings."""
    admin_gid = _group_id(args.admin_group, "--admin-group")
    socket_gid = _group_id(args.socket_group, "--socket-group")
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if args.segment_bytes < 4096:
        raise StartupError("--segment-bytes must be at least 4096")
    return Settings(
        socket=args.socket or daemon_socket_path(),
        state_dir=args.state_dir or state_dir_path(),
        socket_gid=socket_gid if socket_gid is not None else admin_gid,
        admin_gid=admin_gid,
        segment_bytes=args.segment_bytes,
        credentials_dir=Path(credentials) if credentials else None,
    )


def _lock_state_dir(state_dir: Path) -> int:
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(state_dir / LOCK_FILE_NAME,
                 os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StartupError(f"another obsd (pid {holder}) is using {state_dir}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


@dataclass(frozen=True, slots=True)
class Listening:
    """The control socket, a name for it in log lines, and how to let go of its file."""

    sock: socket.socket
    name: str
    release: Callable[[], None]


def _listen(settings: Settings) -> Listening:
    """The socket systemd passed (obsd.socket), else one bound at `settings.socket`."""
    try:
        inherited = inherited_control_socket()
    except ActivationError as exc:
        raise StartupError(str(exc)) from None
    if inherited is not None:
        # The file belongs to obsd.socket and must outlive us, for the next activation.
        return Listening(inherited, f"{socket_name(inherited)} (from systemd)", lambda: None)
    try:
        bound = bind_control_socket(settings.socket, settings.socket_gid)
    except (SocketInUse, UnsafeSocketPath) as exc:
        raise StartupError(str(exc)) from None
    return Listening(bound.sock, str(bound.path), bound.remove_file)


async def serve(settings: Settings, notifier: Notifier | None = None) -> int:
    """Replay the log, listen, serve until SIGTERM/SIGINT; return the exit status."""
    with _step(STATE_DIR_REMEDY):
        lock_fd = _lock_state_dir(settings.state_dir)
    try:
        with _step(STATE_DIR_REMEDY):
            tokens = TokenStore(settings.state_dir, settings.credentials_dir)
            service = Service(settings.state_dir, tokens, SystemClock())
            log = EventLog.open(settings.state_dir / LOG_DIR_NAME, service.fold,
                                segment_bytes=settings.segment_bytes)
    except BaseException:
        os.close(lock_fd)
        raise
    service.attach(log)
    systemd = SystemdReporter(notifier or Notifier(), service)
    try:
        if log.damage is not None:
            logger.error("log damaged at %s line %d (%s); serving read-only",
                         log.damage.segment, log.damage.line, log.damage.reason)
        with _step(SOCKET_REMEDY):
            listening = _listen(settings)
        try:
            if log.damage is None:
                await log.append(DaemonStartedPayload(
                    server=__version__, pid=os.getpid(), replayed_events=service.replayed_events))
            logger.info("obsd %s listening on %s (state %s, %d events)", __version__,
                        listening.name, settings.state_dir, log.head_seq)
            reason = await _serve_until_stopped(listening.sock, service, settings, systemd)
            systemd.stopping(reason)
        finally:
            listening.release()
        if log.damage is None and log.failure is None:
            with anyio.CancelScope(shield=True):
                if (run_id := service.state.active_run) is not None:
                    await log.append(RunInterruptedPayload(
                        run_id, service.state.runs[run_id].phase, reason))
                await log.append(DaemonStoppedPayload(reason=reason))
        logger.info("stopped: %s", reason)
        return 0 if log.failure is None else 1
    finally:
        log.close()
        os.close(lock_fd)


async def _serve_until_stopped(sock: socket.socket, service: Service, settings: Settings,
                               systemd: SystemdReporter) -> str:
    listener = await anyio.abc.SocketListener.from_socket(sock)
    reason = "stopped"
    async with listener, anyio.create_task_group() as tasks:

        async def watch_signals(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            nonlocal reason
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                task_status.started()
                async for signum in signals:
                    reason = f"received {signal.Signals(signum).name}"
                    tasks.cancel_scope.cancel()
                    return

        async def watch_storage() -> None:
            nonlocal reason
            await service.storage_failed.wait()
            reason = f"the event log failed: {service.log.failure}"
            logger.error("stopping: %s", reason)
            # Let the connection that hit the failure send its STORAGE_FAILED answer first.
            await anyio.sleep(STORAGE_FAILURE_GRACE_S)
            tasks.cancel_scope.cancel()

        # Handlers in place before READY: a SIGTERM right after it must stop us cleanly.
        await tasks.start(watch_signals)
        tasks.start_soon(watch_storage)
        service.runner.bind(tasks)
        await _resume(service)
        # The log is replayed and the socket listens: a client connecting now is greeted.
        systemd.ready()
        tasks.start_soon(systemd.run)
        daemon_uid = os.geteuid()

        async def serve(stream: anyio.abc.SocketStream) -> None:
            await serve_connection(stream, service, daemon_uid, settings.admin_gid)

        await accept_connections(listener, serve, tasks, service.clock)
    return reason


async def _resume(service: Service) -> None:
    """Take up a run the log shows unfinished (the daemon stopped or crashed during it)."""
    run_id = service.state.active_run
    if run_id is None or service.log.damage is not None:
        return
    run = service.state.runs[run_id]
    last = run.requests[-1].at_ns if run.requests else None
    pending = [c.crn for c in run.crns if wants_sending(c, run)]
    await service.log.append(RunResumedPayload(run_id, run.phase, pending, last))
    logger.info("resuming run %s (%s; pending: %s)", run_id, run.phase,
                ", ".join(pending) or "none")
    service.runner.start(run_id)


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
    if not arguments or (arguments[0].startswith("-") and arguments[0] not in ("-h", "--help",
                                                                               "--version")):
        arguments.insert(0, "run")
    if arguments[0] == "sim":
        from obsd.sim import cli as sim_cli

        simulator = argparse.ArgumentParser(prog="obsd sim", description=sim_cli.DESCRIPTION)
        sim_cli.add_arguments(simulator)
        return sim_cli.run(simulator.parse_args(arguments[1:]))
    args = _parser().parse_args(arguments)
    _setup_logging()
    if args.command == "demo":
        from obsd.demo import run_demo

        return run_demo()
    notifier = Notifier.from_environment()
    try:
        return anyio.run(serve, settings_from(args), notifier)
    except StartupError as exc:
        logger.error("%s", exc)
        notifier.status(f"failed to start: {exc}")
        return 1
    except LogUnavailable as exc:
        logger.error("event log unavailable: %s", exc)
        notifier.status(f"failed to start: event log unavailable: {exc}")
        return 1
    finally:
        notifier.close()
