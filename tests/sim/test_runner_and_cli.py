"""The thread runner for synchronous callers, and `obsd sim` (options, announcement, signals)."""

from __future__ import annotations

import argparse
import json
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgspec
import pytest

from obsd.sim import NotLoopback, Simulator, cli, default_config

from .helpers import CLIENT_TIMEOUT_S, REGISTER, STUDENT, bearer, codes, config

# The CLI is wired into `obsd` elsewhere; this runs the same functions as a subcommand would.
CLI_SCRIPT = (
    "import argparse, sys; from obsd.sim import cli; "
    "parser = argparse.ArgumentParser(); cli.add_arguments(parser); "
    "sys.exit(cli.run(parser.parse_args(sys.argv[1:])))"
)
STARTUP_TIMEOUT_S = 20.0


def test_serve_in_thread_for_synchronous_callers() -> None:
    with Simulator(config()).serve_in_thread() as sim:
        with httpx.Client(base_url=sim.base_url, timeout=CLIENT_TIMEOUT_S) as client:
            response = client.post(
                REGISTER, json={"ECRN": ["21234"]}, headers=bearer(sim.token(STUDENT))
            )
        assert codes(response) == ["successResult"]
        assert [r.status for r in sim.requests()] == [200]
        assert "21234" in sim.state().students[0].registered
        assert abs(sim.true_time_ns() - time.time_ns() - 2_500_000_000) < 1_000_000_000
        port = int(sim.base_url.rsplit(":", 1)[1])
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def test_serve_in_thread_reports_start_up_failures_to_the_caller() -> None:
    with pytest.raises(NotLoopback), Simulator(config()).serve_in_thread(host="0.0.0.0"):
        pass
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with (
            pytest.raises(OSError),
            Simulator(config()).serve_in_thread(port=taken.getsockname()[1]),
        ):
            pass


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_options_build_the_config(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    path.write_bytes(msgspec.json.encode(config(clock_offset_s=-7.0, debounce_s=1.0)))
    before = time.time()
    built = cli.config_from(parse("--config", str(path), "--open-in", "10", "--tls"))
    assert built.clock_offset_s == -7.0 and built.debounce_s == 1.0 and built.tls
    assert built.opening_at is not None
    assert before + 3 <= built.opening_at <= time.time() + 3
    overridden = cli.config_from(parse("--offset", "5", "--open-in", "10"))
    assert overridden.clock_offset_s == 5.0 and overridden.opening_at is not None
    assert overridden.opening_at >= before + 15
    assert cli.config_from(parse()) == default_config()


@pytest.mark.parametrize("port", ["70000", "-1", "http", ""])
def test_port_options_are_checked(port: str) -> None:
    with pytest.raises(SystemExit):
        parse("--port", port)


@pytest.mark.parametrize("argv", [("--host", "0.0.0.0"), ("--config", "/nonexistent.json")])
def test_bad_options_exit_2_with_a_message(
    argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.run(parse(*argv)) == 2
    assert capsys.readouterr().err.startswith("obsd sim: ")


def read_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], STARTUP_TIMEOUT_S)
    assert ready, "obsd sim printed nothing in time"
    return process.stdout.readline()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_obsd_sim_announces_itself_and_stops_on_a_signal(stop: signal.Signals) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", CLI_SCRIPT, "--offset", "-3600", "--open-in", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        announcement = json.loads(read_line(process))
        assert announcement["ntp_server"].startswith("127.0.0.1:")
        assert announcement["clock_offset_s"] == -3600 and announcement["ca_cert"] is None
        assert announcement["opening_at"] == pytest.approx(time.time() - 3570, abs=10)
        token = announcement["tokens"][STUDENT]
        with httpx.Client(base_url=announcement["base_url"], timeout=CLIENT_TIMEOUT_S) as client:
            opening = client.get("/api/ogrenci/Takvim/KayitZamaniKontrolu", headers=bearer(token))
        assert opening.json() == {"kayitZamanKontrolResult": {"ogrenciSinifaKayitOlabilir": False}}
        process.send_signal(stop)
        assert process.wait(timeout=STARTUP_TIMEOUT_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()
