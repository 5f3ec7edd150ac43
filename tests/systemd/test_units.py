"""The unit files: systemd accepts them without a word, rates the hardening OK, and they agree."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.systemd.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
SERVICE = UNITS / "obsd.service"
SOCKET = UNITS / "obsd.socket"
TEMPLATE = UNITS / "obsd@.service"
TEMPLATE_SOCKET = UNITS / "obsd@.socket"
SYSUSERS = UNITS / "obsd.sysusers.conf"
TMPFILES = UNITS / "obsd.tmpfiles.conf"
OPERATIONS = ROOT / "docs" / "operations.md"
# Where docs/operations.md installs obsd, and so where the unit runs it from.
INSTALLED_EXEC = "/opt/obsd/venv/bin/obsd"
# systemd-analyze's own bands: 0-2 "OK" or better is what the hardening aims at.
MAX_EXPOSURE = 2.0
EXPOSURE_LINE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?) (\w+)")
TOOL_TIMEOUT_S = 60
# How obsd@NAME differs from the single daemon, setting by setting: each "obsd" name is
# "obsd-%i" (its user, group, directories and socket), its credential file is its own with a
# blank default, and the daemon is told its name. Nothing else may differ.
INSTANCE_SETTINGS = {
    "Description=obsd, İTÜ OBS course registration daemon": [
        "Description=obsd for %i, İTÜ OBS course registration daemon"
    ],
    "User=obsd": ["User=obsd-%i"],
    "Group=obsd": ["Group=obsd-%i"],
    "Environment=OBSD_ADMIN_GROUP=obsd": ["Environment=OBSD_ADMIN_GROUP=obsd-%i OBSD_INSTANCE=%i"],
    "StateDirectory=obsd": ["StateDirectory=obsd-%i"],
    "RuntimeDirectory=obsd": ["RuntimeDirectory=obsd-%i"],
    "LoadCredential=obs-token:/etc/obsd/obs-token": [
        "LoadCredential=obs-token:/etc/obsd/%i/obs-token",
        "SetCredential=obs-token:\\n",
    ],
    "Description=obsd control socket": ["Description=obsd control socket for %i"],
    "ListenStream=/run/obsd.sock": ["ListenStream=/run/obsd-%i.sock"],
    "SocketUser=obsd": ["SocketUser=obsd-%i"],
    "SocketGroup=obsd": ["SocketGroup=obsd-%i"],
    "Service=obsd.service": ["Service=obsd@%i.service"],
}


class _UnitFile(configparser.RawConfigParser):
    """A unit file's settings; repeated keys keep their last value (enough for these checks)."""

    def __init__(self, path: Path) -> None:
        super().__init__(strict=False, interpolation=None, delimiters=("=",))
        self.read(path)

    def optionxform(self, optionstr: str) -> str:
        return optionstr  # Unit keys are case-sensitive.


def _unit(path: Path) -> _UnitFile:
    return _UnitFile(path)


def _run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, timeout=TOOL_TIMEOUT_S, check=False
    )


def _installed_obsd() -> Path:
    """The `obsd` console script of the environment running the tests."""
    script = Path(sys.executable).parent / "obsd"
    assert script.exists(), f"{script} is missing: install the project (pip install -e .)"
    return script


def _settings(path: Path) -> list[str]:
    """A unit file's section headers and settings, in order, without comments."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize(
    ("single", "template"),
    [(SERVICE, TEMPLATE), (SOCKET, TEMPLATE_SOCKET)],
    ids=["service", "socket"],
)
def test_the_template_is_the_single_unit_with_the_instances_names(
    single: Path, template: Path
) -> None:
    expected = [new for line in _settings(single) for new in INSTANCE_SETTINGS.get(line, [line])]
    assert _settings(template) == expected


@pytest.mark.parametrize(
    ("service", "socket", "names"),
    [
        (SERVICE, SOCKET, ("obsd.service", "obsd.socket")),
        (TEMPLATE, TEMPLATE_SOCKET, ("obsd@alice.service", "obsd@alice.socket")),
    ],
    ids=["single", "instance"],
)
def test_units_pass_systemd_analyze_verify_without_a_word(
    tmp_path: Path, service: Path, socket: Path, names: tuple[str, str]
) -> None:
    # verify checks that ExecStart's binary exists; /opt/obsd/venv/bin/obsd (the installed
    # path) does not on a test machine. So a copy is verified whose ExecStart names this
    # environment's own obsd, and nothing else in it differs.
    analyze = require_tool("systemd-analyze")
    original = service.read_text()
    assert original.count(f"ExecStart={INSTALLED_EXEC} ") == 1
    copy = original.replace(f"ExecStart={INSTALLED_EXEC} ", f"ExecStart={_installed_obsd()} ")
    differing = [
        (a, b) for a, b in zip(original.splitlines(), copy.splitlines(), strict=True) if a != b
    ]
    assert len(differing) == 1 and differing[0][0].startswith("ExecStart=")
    (tmp_path / service.name).write_text(copy)
    shutil.copy(socket, tmp_path / socket.name)
    # A template is verified as an instance of it (verify finds obsd@.service in the cwd).
    result = _run(analyze, "verify", *(f"./{name}" for name in names), cwd=tmp_path)
    # verify exits 0 even on unknown keys or bad values; any output at all is a finding.
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_verify_does_report_problems(tmp_path: Path) -> None:
    # The test above relies on verify speaking up; make sure it does for a typo.
    analyze = require_tool("systemd-analyze")
    broken = SERVICE.read_text().replace(
        f"ExecStart={INSTALLED_EXEC} ", f"ExecStart={_installed_obsd()} "
    )
    (tmp_path / SERVICE.name).write_text(broken.replace("NoNewPrivileges=", "NoNewPrivilege="))
    result = _run(analyze, "verify", SERVICE.name, cwd=tmp_path)
    assert "NoNewPrivilege" in result.stdout + result.stderr


@pytest.mark.parametrize("service", [SERVICE, TEMPLATE], ids=["single", "instance"])
def test_security_exposure_is_ok_or_better(service: Path) -> None:
    analyze = require_tool("systemd-analyze")
    result = _run(analyze, "security", "--offline=yes", "--no-pager", str(service))
    assert result.returncode == 0, result.stderr
    match = EXPOSURE_LINE.search(result.stdout)
    assert match, result.stdout
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} {match.group(2)}:\n{result.stdout}"


def test_hardening_keeps_what_the_access_checks_need() -> None:
    # PrivateUsers= maps every peer to nobody (SO_PEERCRED would say uid 65534 for all), and a
    # hidepid /proc hides /proc/<peer>/status, where the peer's supplementary groups are read.
    service = _unit(SERVICE)["Service"]
    assert service.get("PrivateUsers", "no") == "no"
    assert service.get("ProtectProc", "default") == "default"
    families = service["RestrictAddressFamilies"].split()
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families)
    assert "PrivateNetwork" not in service


def test_service_runs_as_the_sysusers_user_with_systemds_directories() -> None:
    service = _unit(SERVICE)["Service"]
    assert service["Type"] == "notify"
    assert service["Restart"] == "on-failure"
    assert service["StateDirectory"] == "obsd"
    assert service["RuntimeDirectory"] == "obsd"
    assert service["LoadCredential"] == "obs-token:/etc/obsd/obs-token"
    assert service["WatchdogSec"].endswith("s")
    declared = [
        line.split()
        for line in SYSUSERS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ["u", service["User"]] == declared[0][:2]
    assert service["Group"] == service["User"]  # sysusers' `u` makes a group of that name


def test_activated_socket_lives_outside_the_runtime_directory_with_the_daemons_rules() -> None:
    socket_unit = _unit(SOCKET)["Socket"]
    service = _unit(SERVICE)["Service"]
    listen = Path(socket_unit["ListenStream"])
    runtime = Path("/run") / service["RuntimeDirectory"]
    # systemd removes the RuntimeDirectory when the service stops, and the socket with it.
    assert runtime not in listen.parents
    assert listen.is_absolute() and str(listen).startswith("/run/")
    admin_group = service["Environment"].removeprefix("OBSD_ADMIN_GROUP=")
    assert socket_unit["SocketGroup"] == admin_group
    assert socket_unit["SocketMode"] == "0660"
    assert socket_unit.get("Accept", "no") == "no"


def test_the_guide_installs_obsd_where_the_unit_runs_it() -> None:
    service = _unit(SERVICE)["Service"]
    assert service["ExecStart"].split()[0] == INSTALLED_EXEC
    guide = OPERATIONS.read_text()
    assert "python3 -m venv /opt/obsd/venv" in guide
    for name in ("obsd.sysusers.conf", "obsd.tmpfiles.conf", "obsd.service", "obsd.socket"):
        assert f"systemd/{name}" in guide
    assert _unit(SOCKET)["Socket"]["ListenStream"] in guide


def test_sysusers_snippet_creates_the_user_and_group(tmp_path: Path) -> None:
    sysusers = require_tool("systemd-sysusers")
    (tmp_path / "etc").mkdir()
    # --root confines it to tmp_path; '-' reads the snippet from stdin (paths are rooted).
    result = subprocess.run(
        [sysusers, f"--root={tmp_path}", "-"],
        input=SYSUSERS.read_text(),
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(
        r"^obsd:x:\d+:\d+:.*:/var/lib/obsd:", (tmp_path / "etc/passwd").read_text(), re.MULTILINE
    )
    assert re.search(r"^obsd:x:\d+:", (tmp_path / "etc/group").read_text(), re.MULTILINE)


def test_tmpfiles_snippet_makes_an_empty_private_credential(tmp_path: Path) -> None:
    tmpfiles = require_tool("systemd-tmpfiles")
    if os.geteuid() != 0 and not os.environ.get("CI"):
        pytest.skip("the snippet creates root-owned files: run as root (CI does)")

    def create() -> None:
        result = subprocess.run(
            [tmpfiles, "--create", f"--root={tmp_path}", "-"],
            input=TMPFILES.read_text(),
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_S,
            check=False,
        )
        assert result.returncode == 0, result.stderr

    create()
    token = tmp_path / "etc/obsd/obs-token"
    assert token.read_text() == ""
    assert token.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "etc/obsd").stat().st_mode & 0o777 == 0o700
    token.write_text("a token")
    create()  # As at every boot: an existing token is left alone.
    assert token.read_text() == "a token"
