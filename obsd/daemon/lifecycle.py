"""A daemon's life: its parts built in order, served until a signal or a storage failure.

`open_daemon` takes the state directory's lock, loads the token store and replays the log
into the journal, and gives back finished parts. `serve` then listens, and inside one task
group makes the runner, the context and the dispatcher, resumes an unfinished run, says
READY, and accepts connections until it is told to stop.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio
import anyio.abc

from obsd import __version__
from obsd.adapters.clock import Clock
from obsd.adapters.control_socket import SocketInUse, UnsafeSocketPath, bind_control_socket
from obsd.adapters.login_store import LoginStore
from obsd.adapters.notifiers import open_channels
from obsd.adapters.systemd import ActivationError, Notifier, inherited_control_socket, socket_name
from obsd.adapters.token_store import TokenStore
from obsd.core.admission import Admission
from obsd.core.events import (
    DaemonStartedPayload,
    DaemonStoppedPayload,
    RunInterruptedPayload,
    RunResumedPayload,
)
from obsd.core.oserrors import explain
from obsd.core.policy import wants_sending
from obsd.core.runs import RunState
from obsd.daemon.connection import accept_connections, serve_connection
from obsd.daemon.context import Context
from obsd.daemon.dispatch import Dispatcher
from obsd.daemon.instruments import Instruments
from obsd.daemon.journal import Journal
from obsd.daemon.notifications import Notifications
from obsd.daemon.ops.reads import health_problems
from obsd.daemon.runner import Runner, StoredKeys
from obsd.daemon.systemd_status import SystemdReporter

logger = logging.getLogger("obsd")

LOG_DIR_NAME: Final = "log"
LOCK_FILE_NAME: Final = "obsd.lock"
# After a failed write or sync the daemon stops; this long it waits so that the command which
# hit the failure is answered STORAGE_FAILED rather than seeing its connection drop.
STORAGE_FAILURE_GRACE_S: Final = 0.2
# What to do when a start-up step meets a file-system error, by the setting that owns the path.
STATE_DIR_REMEDY: Final = (
    "give obsd a state directory it can write: --state-dir or "
    "$OBSD_STATE_DIR (under systemd, StateDirectory=)"
)
SOCKET_REMEDY: Final = (
    "choose a socket path in a directory obsd can write: --socket or "
    "$OBSD_SOCKET (under systemd, RuntimeDirectory= or obsd.socket)"
)


class StartupError(Exception):
    """The daemon cannot start; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything `obsd run` was told."""

    socket: Path
    state_dir: Path
    socket_gid: int | None
    admin_gid: int | None
    segment_bytes: int
    credentials_dir: Path | None
    # The student's name on a shared VPS ($OBSD_INSTANCE, obsd@NAME.service); None: the only one.
    instance: str | None = None
    # Notices go to this command (argv) and to the URLs in these files (daemon/notifications.py).
    notify_command: tuple[str, ...] = ()
    notify_url_files: tuple[Path, ...] = ()


@dataclass(frozen=True, slots=True)
class Stores:
    """The daemon's state on disk, opened: the token, the credentials, the replayed journal."""

    tokens: TokenStore
    logins: LoginStore
    journal: Journal


@contextlib.contextmanager
def _step(remedy: str) -> Iterator[None]:
    """Turn a file-system error inside a start-up step into one line saying what to do."""
    try:
        yield
    except OSError as exc:
        raise StartupError(explain(exc, remedy, os.geteuid())) from None


def _lock_state_dir(state_dir: Path) -> int:
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(
        state_dir / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
    )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StartupError(f"another obsd (pid {holder}) is using {state_dir}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


@contextlib.contextmanager
def open_daemon(settings: Settings, clock: Clock) -> Iterator[Stores]:
    """Lock the state directory, load the token and replay the log; release them after."""
    with _step(STATE_DIR_REMEDY):
        lock_fd = _lock_state_dir(settings.state_dir)
    try:
        with _step(STATE_DIR_REMEDY):
            tokens = TokenStore(settings.state_dir, settings.credentials_dir)
            logins = LoginStore(settings.state_dir, settings.credentials_dir)
            journal = Journal.open(
                settings.state_dir / LOG_DIR_NAME, clock, segment_bytes=settings.segment_bytes
            )
        try:
            yield Stores(tokens, logins, journal)
        finally:
            journal.log.close()
    finally:
        os.close(lock_fd)


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
        with _step(SOCKET_REMEDY):
            bound = bind_control_socket(settings.socket, settings.socket_gid)
    except (SocketInUse, UnsafeSocketPath) as exc:
        raise StartupError(str(exc)) from None
    return Listening(bound.sock, str(bound.path), bound.remove_file)


async def serve(
    settings: Settings, clock: Clock, instruments: Instruments, notifier: Notifier
) -> int:
    """Replay the log, listen, serve until SIGTERM/SIGINT; return the exit status."""
    started = clock.mono_ns()
    with open_daemon(settings, clock) as stores:
        journal = stores.journal
        log = journal.log
        systemd = SystemdReporter(notifier, journal, clock)
        if log.damage is not None:
            logger.error("%s; serving read-only", log.damage)
        listening = _listen(settings)
        try:
            if log.damage is None:
                await journal.append(
                    DaemonStartedPayload(
                        server=__version__, pid=os.getpid(), replayed_events=log.replayed
                    )
                )
            logger.info(
                "obsd %s listening on %s (state %s, %d events)",
                __version__,
                listening.name,
                settings.state_dir,
                log.head_seq,
            )
            reason = await _serve_until_stopped(
                listening.sock, stores, settings, clock, instruments, systemd, started
            )
            systemd.stopping(reason)
        finally:
            listening.release()
        if log.damage is None and log.failure is None:
            with anyio.CancelScope(shield=True):
                for run in _active_runs(journal):
                    await journal.append(RunInterruptedPayload(run.run_id, run.phase, reason))
                await journal.append(DaemonStoppedPayload(reason=reason))
        logger.info("stopped: %s", reason)
        return 0 if log.failure is None else 1


async def _serve_until_stopped(
    sock: socket.socket,
    stores: Stores,
    settings: Settings,
    clock: Clock,
    instruments: Instruments,
    systemd: SystemdReporter,
    started_mono_ns: int,
) -> str:
    listener = await anyio.abc.SocketListener.from_socket(sock)
    journal = stores.journal
    storage_failed = anyio.Event()
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
            await storage_failed.wait()
            # A run about to fire fires first; its driver records nothing more meanwhile.
            await runner.shot_settled()
            reason = f"the event log failed: {journal.log.failure}"
            logger.error("stopping: %s", reason)
            # Let the connection that hit the failure send its STORAGE_FAILED answer first.
            await anyio.sleep(STORAGE_FAILURE_GRACE_S)
            tasks.cancel_scope.cancel()

        # Handlers in place before READY: a SIGTERM right after it must stop us cleanly.
        await tasks.start(watch_signals)
        tokens = stores.tokens
        keys = StoredKeys(tokens, stores.logins)
        runner = Runner(tasks, journal, keys, clock, instruments, storage_failed)
        tasks.start_soon(watch_storage)
        channels, notify_problems = open_channels(
            settings.notify_command, settings.notify_url_files
        )
        for problem in notify_problems:
            logger.error("%s", problem)
        notifications = Notifications(
            journal,
            clock,
            channels,
            lambda: health_problems(ctx),
            settings.instance,
            notify_problems,
        )
        ctx = Context(
            notifications=notifications,
            journal=journal,
            tokens=tokens,
            logins=stores.logins,
            runner=runner,
            clock=clock,
            instruments=instruments,
            started_mono_ns=started_mono_ns,
            replayed_events=journal.log.replayed,
            instance=settings.instance,
        )
        dispatcher = Dispatcher(ctx, storage_failed)
        # Following the log before the resume: an opening missed while down is told too.
        await tasks.start(notifications.run)
        await _resume(journal, runner)
        # The log is replayed and the socket listens: a client connecting now is greeted.
        systemd.ready()
        tasks.start_soon(systemd.run)
        daemon_uid = os.geteuid()
        admission = Admission()

        async def serve(stream: anyio.abc.SocketStream) -> None:
            await serve_connection(stream, dispatcher, admission, daemon_uid, settings.admin_gid)

        await accept_connections(listener, serve, tasks, clock)
    return reason


async def _resume(journal: Journal, runner: Runner) -> None:
    """Take up a run the log shows unfinished (the daemon stopped or crashed during it)."""
    if journal.log.damage is not None:
        return
    appended, kept = await journal.record_kept_aside()
    if kept:
        logger.warning(
            "appended %d of %d events kept aside when the log failed at a shot (%s)",
            appended,
            kept,
            journal.spare.path,
        )
    for run in _active_runs(journal):
        last = run.requests[-1].planned_ns if run.requests else None
        pending = [c.crn for c in run.crns if wants_sending(c, run)]
        await journal.append(RunResumedPayload(run.run_id, run.phase, pending, last))
        logger.info(
            "resuming run %s (%s; pending: %s)",
            run.run_id,
            run.phase,
            ", ".join(pending) or "none",
        )
        runner.start(run.run_id)


def _active_runs(journal: Journal) -> list[RunState]:
    """The timed run in progress, if any, then every watch in progress."""
    state = journal.state
    timed = [state.runs[state.active_run]] if state.active_run is not None else []
    return timed + state.watches
