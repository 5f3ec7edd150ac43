"""Where obsd and obsctl look for the socket and the state: one daemon, or one per student."""

from __future__ import annotations

from pathlib import Path

import pytest

from obsd.paths import (
    InstanceError,
    app_name,
    client_socket,
    daemon_socket_path,
    service_name,
    state_dir_path,
    system_sockets,
)


@pytest.fixture(autouse=True)
def user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's runtime and state dirs (platformdirs reads them from the environment)."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path


def test_an_instance_is_obsd_dash_name_everywhere() -> None:
    assert app_name(None) == "obsd" and app_name("bob") == "obsd-bob"
    assert service_name(None) == "obsd" and service_name("bob-2") == "obsd@bob-2"
    assert system_sockets("bob") == (Path("/run/obsd-bob.sock"), Path("/run/obsd-bob/obsd.sock"))
    assert system_sockets(None) == (Path("/run/obsd.sock"), Path("/run/obsd/obsd.sock"))


@pytest.mark.parametrize("name", ["", "Bob", "2bob", "-bob", "bob_x", "b/o", "b" * 28, "bö"])
def test_names_a_user_name_cannot_carry_are_refused(name: str) -> None:
    with pytest.raises(InstanceError, match="1-27 lowercase letters, digits or '-'"):
        app_name(name)


def test_the_longest_name_still_makes_a_valid_user_name() -> None:
    assert len(app_name("b" * 27)) == 32  # useradd's limit


def test_the_daemon_of_an_instance_outside_systemd_uses_the_users_dirs_of_its_name(
    user_dirs: Path,
) -> None:
    env = {"OBSD_INSTANCE": "bob"}
    assert daemon_socket_path(env) == user_dirs / "run" / "obsd-bob" / "obsd.sock"
    assert state_dir_path(env) == user_dirs / "state" / "obsd-bob"
    assert state_dir_path({}) == user_dirs / "state" / "obsd"


def test_systemds_directories_beat_the_instance_name() -> None:
    env = {"OBSD_INSTANCE": "bob", "RUNTIME_DIRECTORY": "/run/obsd-bob", "STATE_DIRECTORY": "/s"}
    assert daemon_socket_path(env) == Path("/run/obsd-bob/obsd.sock")
    assert state_dir_path(env) == Path("/s")


def test_obsctl_asks_for_an_instance_by_name_or_by_environment(user_dirs: Path) -> None:
    bob = (user_dirs / "run" / "obsd-bob" / "obsd.sock", "obsd@bob")
    assert client_socket("bob", {}) == bob
    assert client_socket(None, {"OBSD_INSTANCE": "bob"}) == bob
    # -i is explicit and wins; $OBSD_SOCKET names one socket and beats $OBSD_INSTANCE.
    assert client_socket("bob", {"OBSD_SOCKET": "/x.sock"}) == bob
    assert client_socket(None, {"OBSD_SOCKET": "/x.sock", "OBSD_INSTANCE": "bob"}) == (
        Path("/x.sock"),
        "obsd",
    )


def test_a_bad_instance_in_the_environment_says_where_it_came_from() -> None:
    with pytest.raises(InstanceError, match=r"^\$OBSD_INSTANCE: instance name 'B' is not "):
        daemon_socket_path({"OBSD_INSTANCE": "B"})
    with pytest.raises(InstanceError, match=r"^\$OBSD_INSTANCE: "):
        client_socket(None, {"OBSD_INSTANCE": "B"})
