"""docs/operations.md §2 runs as written on fresh Debian 12 and 13.

The commands are taken from the document itself and run, as an SSH user with sudo, in a fresh
Debian booted with systemd as PID 1 (tests/systemd/container.py): the install blocks, then the
"Check it" block, whose `systemctl status obsd` must show the status line the guide promises.
"""

from __future__ import annotations

import re
from typing import Final

import pytest

from tests.systemd.container import STEP_TIMEOUT_S, booted, fresh_debian
from tests.systemd.guide import install_blocks

USER: Final = "student"


def test_the_install_section_has_every_step() -> None:
    install, check = install_blocks()
    for step in (
        "apt-get install",
        "git clone /src /opt/obsd/src",
        "pip install",
        "install -D",
        "systemd-sysusers",
        "systemd-tmpfiles --create",
        "systemctl enable --now",
        "usermod -aG obsd",
    ):
        assert step in install, step
    assert "systemctl status obsd" in check and "obsctl ping" in check


@pytest.mark.slow
@pytest.mark.timeout(3 * STEP_TIMEOUT_S)
@pytest.mark.parametrize("release", ["bookworm", "trixie"], ids=["debian-12", "debian-13"])
def test_the_guide_installs_and_starts_obsd_on_a_fresh_debian(release: str) -> None:
    install, check = install_blocks()
    with fresh_debian(release, USER) as root, booted(root) as container:
        container.run(install, user=USER)
        # A new login picks up the obsd group, as the guide says ("log out and in again").
        checked = container.run(check, user=USER).stdout
        assert 'Status: "idle; no runs yet"' in checked
        assert "pong" in checked.splitlines()
        assert re.search(r"^health +ok$", checked, re.MULTILINE), checked
        # The hardened unit still lets obsd read the kernel's clock state (adjtimex).
        kernel = re.search(r"^kernel +(.*)$", checked, re.MULTILINE)
        assert kernel and not kernel.group(1).startswith("unreadable"), checked
        assert container.run("getent passwd obsd | cut -d: -f6").stdout == "/var/lib/obsd\n"
        assert container.run("stat -c '%a %U %s' /etc/obsd/obs-token").stdout == "600 root 0\n"
        assert container.run("systemctl is-enabled obsd.socket obsd.service").stdout == (
            "enabled\nenabled\n"
        )
