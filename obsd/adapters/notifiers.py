"""Where notices go: a command the operator chose, and notification URLs (through apprise).

Both sit behind one small interface, `Channel.deliver(notice)`, which returns None or one line
saying why the delivery failed, and never raises: a notice that cannot be delivered must not
touch the run. Neither ever sees the OBS token. Both are set by whoever starts the daemon (the
unit, `obsd run`), never over the socket, where a client could make the daemon run a program
or post to an address of its choosing.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import anyio
import msgspec

from obsd.core.notices import Notice
from obsd.core.oserrors import explain

# The command inherits none of these: CREDENTIALS_DIRECTORY holds the token's credential, and
# the others are the daemon's own line to systemd.
WITHHELD_ENVIRONMENT: Final = frozenset(
    {
        "CREDENTIALS_DIRECTORY",
        "NOTIFY_SOCKET",
        "WATCHDOG_PID",
        "WATCHDOG_USEC",
        "LISTEN_PID",
        "LISTEN_FDS",
        "LISTEN_FDNAMES",
    }
)
APPRISE_MISSING: Final = (
    "notification URLs need apprise, which is not installed: pip install 'obsd[notify]'"
)

_encoder = msgspec.json.Encoder()


class Channel(Protocol):
    """One way of telling a person."""

    @property
    def name(self) -> str:
        """What the daemon's log calls it (never a URL: URLs hold their service's secrets)."""
        ...

    async def deliver(self, notice: Notice, timeout_s: float) -> str | None:
        """Send `notice`; None, or why it failed. Gives up after `timeout_s`."""
        ...


class CommandChannel:
    """Runs a command with the notice as JSON on its stdin, once per notice."""

    def __init__(self, argv: Sequence[str]) -> None:
        self._argv = list(argv)
        self.name = f"notification command {Path(argv[0]).name}"

    async def deliver(self, notice: Notice, timeout_s: float) -> str | None:
        """Run the command; a non-zero exit, a failed start or a timeout is a failure."""
        environment = {k: v for k, v in os.environ.items() if k not in WITHHELD_ENVIRONMENT}
        try:
            # Its own session, so that a timeout kills what it started too (a shell's curl).
            process = await anyio.open_process(
                self._argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=None,  # The daemon's stderr: the journal, where its errors help.
                cwd="/",
                env=environment,
                start_new_session=True,
            )
        except OSError as exc:
            return f"cannot run {self._argv[0]}: {exc.strerror or exc}"
        try:
            with anyio.move_on_after(timeout_s):
                assert process.stdin is not None
                # A command that does not read its stdin is still a working command.
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await process.stdin.send(_encoder.encode(notice) + b"\n")
                    await process.stdin.aclose()
                status = await process.wait()
                return None if status == 0 else f"{self._argv[0]} exited with status {status}"
            return f"{self._argv[0]} did not finish within {timeout_s:.0f} s and was killed"
        finally:
            # At the timeout, and when the daemon stops meanwhile: nothing is left running.
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                with anyio.CancelScope(shield=True):
                    await process.wait()


def _scheme(url: str) -> str:
    return urlsplit(url).scheme or "?"


def apprise_installed() -> bool:
    """Whether notification URLs can be served (apprise is an optional extra)."""
    return importlib.util.find_spec("apprise") is not None


class UrlChannel:
    """Posts notices to one notification URL (ntfy://, tgram://, mailto://, json://, ...)."""

    def __init__(self, url: str, number: int) -> None:
        self._url = url
        self.name = f"notification URL #{number} ({_scheme(url)})"
        self._apprise: Any = None

    def _load(self) -> Any:
        """apprise, with its own log quiet: its lines can carry the URL and so its secret."""
        if self._apprise is None:
            apprise = importlib.import_module("apprise")
            logging.getLogger("apprise").setLevel(logging.CRITICAL + 1)
            instance = apprise.Apprise()
            if not instance.add(self._url):
                raise ValueError(f"{self.name} is not a URL apprise knows")
            self._apprise = instance
        return self._apprise

    def check(self) -> str | None:
        """Load apprise and the URL now (at start-up, far from any shot); None, or the problem."""
        try:
            self._load()
        except ImportError:
            return APPRISE_MISSING
        except ValueError as exc:
            return str(exc)
        return None

    def _send(self, notice: Notice) -> str | None:
        try:
            sender = self._load()
            sent = sender.notify(title=notice.title, body=notice.message)
        except ImportError:
            return APPRISE_MISSING
        except Exception as exc:  # A plugin's own failure is a failed delivery, no more.
            return f"{self.name} failed: {type(exc).__name__}"
        return None if sent else f"{self.name}: the service did not take the notice"

    async def deliver(self, notice: Notice, timeout_s: float) -> str | None:
        """Send through apprise in a worker thread: its HTTP is blocking."""
        with anyio.move_on_after(timeout_s):
            return await anyio.to_thread.run_sync(self._send, notice, abandon_on_cancel=True)
        return f"{self.name} did not answer within {timeout_s:.0f} s"


def read_urls(path: Path) -> list[str]:
    """The URLs in a file, one per line; blank lines and `#` comments are skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def open_channels(
    command: Sequence[str], url_files: Sequence[Path]
) -> tuple[list[Channel], list[str]]:
    """The channels configured, and what is wrong with the rest.

    Never fatal: a daemon that would not start over a notification typo would miss the
    opening it was set up for. The problems are logged and listed by `health`.
    """
    channels: list[Channel] = []
    problems: list[str] = []
    if command:
        if shutil.which(command[0]) is None:
            problems.append(
                f"notification command {command[0]}: not found or not executable; "
                "give its full path"
            )
        else:
            channels.append(CommandChannel(command))
    urls: list[str] = []
    for path in url_files:
        try:
            urls += read_urls(path)
        except OSError as exc:
            problems.append(explain(exc, "fix the notification URL file or remove the option"))
        except UnicodeDecodeError:
            problems.append(f"{path} is not UTF-8 text; write one notification URL per line")
    for number, url in enumerate(urls, start=1):
        channel = UrlChannel(url, number)
        problem = channel.check()
        if problem is None:
            channels.append(channel)
        elif problem == APPRISE_MISSING:
            problems.append(problem)  # Once, not once per URL.
            break
        else:
            problems.append(problem)
    return channels, problems
