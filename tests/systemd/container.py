"""A fresh Debian with systemd as PID 1, booted with systemd-nspawn, for tests of the units and
the operations guide (../shared/systemd-container-notes.md has the facts this relies on).

The root is made with mmdebstrap from the Debian mirror; the container shares the host's
network (to reach the package registries) and sees this checkout read-only at /src. It is
booted in a private mount namespace, so the tmpfs that systemd-nspawn needs on
/run/systemd/nspawn never shows on the host.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import pytest

from tests.conftest import wait_until
from tests.systemd.conftest import require_tool

CHECKOUT: Final = Path(__file__).resolve().parents[2]
MIRROR: Final = "http://deb.debian.org/debian"
# What a fresh Debian VPS image has; anything else is the guide's job.
IMAGE_PACKAGES: Final = ("systemd", "dbus", "sudo", "ca-certificates")
# mmdebstrap, apt-get and pip over a slow link take minutes; nothing waits this long on purpose.
STEP_TIMEOUT_S: Final = 900
BOOT_TIMEOUT_S: Final = 120
PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def require_containers() -> None:
    """Root and the tools; in CI a missing one fails the test (.ci/run installs them)."""
    if os.geteuid() != 0:
        message = "needs root: mmdebstrap and systemd-nspawn"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    for tool in ("mmdebstrap", "systemd-nspawn", "nsenter", "unshare"):
        require_tool(tool)


def run(
    argv: list[str], *, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a host command (`stdin` as its input); with `check`, fail the test if it fails."""
    result = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=STEP_TIMEOUT_S, check=False
    )
    if check:
        assert result.returncode == 0, (
            f"{shlex.join(argv)[:200]} failed:\n{result.stdout}\n{result.stderr}"
        )
    return result


def build_root(release: str, directory: Path, user: str) -> Path:
    """A minimal Debian `release` in `directory`/root, with `user` who may sudo."""
    root = directory / "root"
    run(
        [
            "mmdebstrap",
            "--variant=minbase",
            f"--include={','.join(IMAGE_PACKAGES)}",
            release,
            str(root),
            MIRROR,
        ]
    )
    run(["chroot", str(root), "useradd", "--create-home", "--shell", "/bin/sh", user])
    (root / "etc" / "sudoers.d" / user).write_text(f"{user} ALL=(ALL) NOPASSWD: ALL\n")
    # The registries are reached the way this machine reaches them: with its CA bundle.
    shutil.copyfile(
        "/etc/ssl/certs/ca-certificates.crt", root / "etc" / "ssl" / "certs" / "ca-certificates.crt"
    )
    (root / "etc" / "pip.conf").write_text(
        "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\ndefault-timeout = 180\n"
    )
    (root / "src").mkdir()
    return root


class Container:
    """A booted container: run commands in it as root or as a user."""

    def __init__(self, process: subprocess.Popen[str], init_pid: int) -> None:
        self.process = process
        self.init_pid = init_pid

    def run(
        self,
        script: str,
        *,
        user: str | None = None,
        check: bool = True,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """`sh -euc script` inside, as root or (a fresh login's groups) as `user`.

        Secrets go in `stdin`: a command line shows in `ps`, and sudo logs it to the journal.
        """
        as_user = ["runuser", "-u", user, "--"] if user else []
        home = f"/home/{user}" if user else "/root"
        environment = [
            "env",
            "-i",
            f"PATH={PATH}",
            f"HOME={home}",
            f"USER={user or 'root'}",
            "LANG=C.UTF-8",
        ]
        return run(
            [
                "nsenter",
                "-t",
                str(self.init_pid),
                "-a",
                *as_user,
                *environment,
                "sh",
                "-euc",
                f"cd {home}; {script}",
            ],
            check=check,
            stdin=stdin,
        )


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # The command name may hold spaces and parentheses: the fields follow the last ')'.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _init_of(nspawn_pid: int, deadline: float) -> int:
    """The container's PID 1 (as the host numbers it): nspawn's descendant running systemd."""
    while time.monotonic() < deadline:
        level = [nspawn_pid]
        while level:
            for pid in level:
                try:
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        return pid
                except OSError:
                    continue
            level = [child for pid in level for child in _children(pid)]
        time.sleep(0.05)
    raise AssertionError(f"no systemd under systemd-nspawn (pid {nspawn_pid}) in time")


@contextmanager
def booted(root: Path) -> Iterator[Container]:
    """Boot `root` with systemd as PID 1 until the block ends, then power it off."""
    nspawn = (
        f"mkdir -p /run/systemd/nspawn && mount -t tmpfs tmpfs /run/systemd/nspawn && "
        f"exec systemd-nspawn -D {shlex.quote(str(root))} -b --register=no --keep-unit "
        f"--console=pipe --bind-ro={shlex.quote(str(CHECKOUT))}:/src "
        # nspawn's own filter refuses the clock calls to a container without CAP_SYS_TIME,
        # even read-only; allowed back (still without the capability, so the kernel refuses
        # any change to the host's clock), the unit's own filter is what the tests see.
        "--system-call-filter='adjtimex clock_adjtime'"
    )
    process = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-euc", nspawn],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        container = Container(process, _init_of(process.pid, deadline))
        states: list[str] = []

        def booted_up() -> bool:
            # Until systemd has its bus socket, systemctl cannot even ask it (and says nothing).
            states.append(
                container.run("systemctl is-system-running --wait", check=False).stdout.strip()
            )
            return states[-1] != ""

        wait_until(booted_up, BOOT_TIMEOUT_S, "the container's systemd answers")
        assert states[-1] in ("running", "degraded"), f"the container booted into {states[-1]}"
        yield container
    finally:
        if process.poll() is None:
            subprocess.run(
                [
                    "nsenter",
                    "-t",
                    str(_init_of(process.pid, time.monotonic() + 5)),
                    "-a",
                    "systemctl",
                    "poweroff",
                ],
                capture_output=True,
                timeout=30,
                check=False,
            )
            try:
                process.wait(timeout=BOOT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def fresh_debian(release: str, user: str) -> Iterator[Path]:
    """A fresh Debian root in a temporary directory, removed afterwards."""
    require_containers()
    directory = Path(tempfile.mkdtemp(prefix="obsd-debian-", dir="/var/tmp"))
    try:
        yield build_root(release, directory, user)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
