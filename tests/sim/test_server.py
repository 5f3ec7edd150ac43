"""The simulator over real loopback sockets, driven with httpx and raw streams."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest

from obsd.core.token import fingerprint
from obsd.sim import FaultRule, NotLoopback, RunningSimulator, SimConfig, Simulator
from obsd.sim.clock import http_date
from obsd.sim.config import FaultKind

from .helpers import (
    CLIENT_TIMEOUT_S,
    OFFSET_S,
    REGISTER,
    STUDENT,
    WALL_NS,
    ManualClock,
    S,
    bearer,
    codes,
    config,
)

Served = tuple[RunningSimulator, httpx.AsyncClient, ManualClock]


@asynccontextmanager
async def serve(sim_config: SimConfig) -> AsyncIterator[Served]:
    wall = ManualClock()
    async with (
        Simulator(sim_config, wall_clock_ns=wall).serve() as sim,
        httpx.AsyncClient(base_url=sim.base_url, timeout=CLIENT_TIMEOUT_S) as client,
    ):
        yield sim, client, wall


async def register(
    sim: RunningSimulator,
    client: httpx.AsyncClient,
    ecrn: list[str],
    scrn: list[str] | None = None,
    path: str = REGISTER,
) -> httpx.Response:
    return await client.post(
        path, json={"ECRN": ecrn, "SCRN": scrn or []}, headers=bearer(sim.token(STUDENT))
    )


@pytest.mark.parametrize("path", [REGISTER, REGISTER + "/"])
async def test_registration_post_with_and_without_trailing_slash(path: str) -> None:
    async with serve(config()) as (sim, client, _):
        response = await register(sim, client, ["21234", "22001"], ["20456"], path=path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {
        "ecrnResultList": [
            {
                "crn": "21234",
                "operationFinished": True,
                "statusCode": 0,
                "resultCode": "successResult",
                "resultData": None,
            },
            {
                "crn": "22001",
                "operationFinished": True,
                "statusCode": 1,
                "resultCode": "VAL06",
                "resultData": None,
            },
        ],
        "scrnResultList": [
            {
                "crn": "20456",
                "operationFinished": True,
                "statusCode": 0,
                "resultCode": "successResult",
                "resultData": None,
            }
        ],
    }
    [record] = sim.requests()
    assert (record.path, record.subject, record.post_number) == (path, STUDENT, 1)


async def test_head_is_405_and_does_not_count_toward_the_debounce() -> None:
    async with serve(config()) as (sim, client, wall):
        assert codes(await register(sim, client, ["21234"])) == ["successResult"]
        wall.advance(3.1)
        head = await client.head(REGISTER, headers=bearer(sim.token(STUDENT)))
        assert head.status_code == 405 and head.headers["allow"] == "POST"
        assert codes(await register(sim, client, ["21345"])) == ["successResult"]


async def test_other_methods_and_paths() -> None:
    async with serve(config()) as (_, client, _):
        assert (await client.get(REGISTER)).status_code == 405
        missing = await client.get("/api/nothing")
        assert missing.status_code == 404 and missing.json() == {"message": "Not Found"}


async def test_unusable_tokens_get_401_and_do_not_count() -> None:
    async with serve(config()) as (sim, client, _):
        async with Simulator(config()).serve() as other:
            foreign = other.token(STUDENT)
        expired = sim.token(STUDENT, issued_at_s=sim.true_time_ns() / S - 21600)
        body = {"ECRN": ["21234"], "SCRN": []}
        for headers in (
            {},
            {"Authorization": "Basic eDp5"},
            bearer("abc"),
            bearer(expired),
            bearer(foreign),
            {"Authorization": sim.token(STUDENT)},
        ):
            response = await client.post(REGISTER, json=body, headers=headers)
            assert response.status_code == 401 and response.json() == {"message": "Unauthorized"}
        assert codes(await register(sim, client, ["21234"])) == ["successResult"]


async def test_a_token_expires_by_the_simulators_true_time() -> None:
    async with serve(config()) as (sim, client, wall):
        headers = bearer(sim.token(STUDENT, lifetime_s=60))
        check = "/api/ogrenci/OgrenciYetkiListesi"
        assert (await client.get(check, headers=headers)).json() == ["ogrenci"]
        wall.advance(61)
        assert (await client.get(check, headers=headers)).status_code == 401


async def test_the_token_check_does_not_count_toward_the_debounce() -> None:
    async with serve(config()) as (sim, client, wall):
        await register(sim, client, ["21234"])
        wall.advance(3.1)
        check = await client.get(
            "/api/ogrenci/OgrenciYetkiListesi", headers=bearer(sim.token(STUDENT))
        )
        assert check.status_code == 200
        assert codes(await register(sim, client, ["21345"])) == ["successResult"]
        assert (await client.get("/api/ogrenci/OgrenciYetkiListesi")).status_code == 401


@pytest.mark.parametrize(("skew_s", "expected"), [(-0.003, "VAL02"), (0.003, "successResult")])
async def test_opening_is_judged_by_the_server_clock_at_arrival(
    skew_s: float, expected: str
) -> None:
    opening = (WALL_NS / S) + OFFSET_S + 10
    async with serve(config(opening_at=opening, server_skew_s=skew_s)) as (sim, client, wall):
        opening_check = "/api/ogrenci/Takvim/KayitZamaniKontrolu"
        before = await client.get(opening_check, headers=bearer(sim.token(STUDENT)))
        assert before.json() == {"kayitZamanKontrolResult": {"ogrenciSinifaKayitOlabilir": False}}
        # True time 2 ms after (skew -3 ms) or 2 ms before (skew +3 ms) the opening.
        wall.advance(10 + (0.002 if skew_s < 0 else -0.002))
        assert codes(await register(sim, client, ["21234"])) == [expected]


async def test_the_date_header_ticks_at_its_phase_not_on_the_true_second() -> None:
    second = WALL_NS // S + 10
    async with serve(config(date_phase_s=0.37)) as (_, client, wall):
        seen = []
        for true_s in (0.001, 0.369, 0.371, 0.999, 1.371):
            wall.ns = round((second + true_s - OFFSET_S) * S)
            seen.append((await client.head(REGISTER)).headers["date"])
    # Just after the true second the header still shows the previous one, until 0.37 s in.
    assert seen == [
        http_date(second - 1),
        http_date(second - 1),
        http_date(second),
        http_date(second),
        http_date(second + 1),
    ]


async def test_every_request_is_recorded_with_true_time_and_injected_delay() -> None:
    sim_config = config(request_delay_s=0.05, request_jitter_s=0.01, response_delay_s=0.02, seed=3)
    async with serve(sim_config) as (sim, client, _):
        token = sim.token(STUDENT)
        started = time.monotonic()
        await client.post(REGISTER, json={"ECRN": ["21234"]}, headers=bearer(token))
        elapsed_s = time.monotonic() - started
        await client.head(REGISTER)
        admin = (await client.get("/_sim/requests")).json()
    post, head = sim.requests()
    true_wall_ns = WALL_NS + round(OFFSET_S * S)
    assert post.received_ns == head.received_ns == true_wall_ns
    for record in (post, head):
        assert 40_000_000 <= record.arrival_ns - record.received_ns <= 60_000_000
    # The server really waited for both delays (a generous lower bound, no upper one).
    assert elapsed_s >= 0.055
    assert post.connection == head.connection
    assert (post.method, post.token_fingerprint, post.body, post.status, post.fault) == (
        "POST",
        fingerprint(token),
        {"ECRN": ["21234"]},
        200,
        None,
    )
    assert post.response["ecrnResultList"][0]["resultCode"] == "successResult"
    assert (head.method, head.status, head.response, head.token_fingerprint) == (
        "HEAD",
        405,
        None,
        None,
    )
    # The admin endpoint shows the same records, and is not recorded itself.
    assert [r["seq"] for r in admin] == [post.seq, head.seq]
    assert admin[0]["arrival_ns"] == post.arrival_ns


async def test_state_endpoint() -> None:
    async with serve(config()) as (sim, client, _):
        await register(sim, client, ["21234"], ["20456"])
        state = (await client.get("/_sim/state")).json()
    assert {"subject": STUDENT, "registered": ["21234"], "drops_used": 1} in state["students"]
    seats = {course["crn"]: course["taken"] for course in state["courses"]}
    assert seats["21234"] == 32 and seats["20456"] == 61


async def test_bad_json_is_400_and_does_not_count() -> None:
    async with serve(config()) as (sim, client, _):
        for content in (
            b"{not json",
            b'{"ECRN": "21234"}',
            b'{"ECRN": [21234]}',
            b'{"x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
        ):
            response = await client.post(
                REGISTER, content=content, headers=bearer(sim.token(STUDENT))
            )
            assert response.status_code == 400
        assert codes(await register(sim, client, ["21234"])) == ["successResult"]
    assert sim.requests()[0].body == "{not json"


@pytest.mark.parametrize("kind", ["http_500", "http_503", "expired"])
async def test_error_faults_answer_their_status_and_count_without_registering(
    kind: FaultKind,
) -> None:
    faults = [FaultRule(kind=kind, on_posts=[1])]
    async with serve(config(faults=faults)) as (sim, client, wall):
        failed = await register(sim, client, ["21234"])
        assert failed.status_code == {"http_500": 500, "http_503": 503, "expired": 401}[kind]
        assert codes(await register(sim, client, ["21234"])) == ["VAL16"]
        wall.advance(3.1)
        assert codes(await register(sim, client, ["21234"])) == ["successResult"]
    assert [r.fault for r in sim.requests()] == [kind, None, None]


async def test_the_iis_503_page_comes_from_the_web_server_and_does_not_count() -> None:
    async with serve(config(faults=[FaultRule(kind="iis_503", on_posts=[1, 2])])) as (
        sim,
        client,
        _,
    ):
        for _attempt in range(2):
            busy = await register(sim, client, ["21234"])
            assert busy.status_code == 503 and busy.headers["content-type"].startswith("text/html")
            assert b"HTTP Error 503. The service is unavailable." in busy.content
        # OBS's application never saw those two: no debounce, the third registers at once.
        assert codes(await register(sim, client, ["21234"])) == ["successResult"]
    assert [r.fault for r in sim.requests()] == ["iis_503", "iis_503", None]


async def test_the_answer_comes_when_the_last_crn_has_had_its_turn() -> None:
    async with serve(config(crn_processing_s=(0.05, 0.05))) as (sim, client, _):
        began = time.monotonic()
        answer = await register(sim, client, ["21234", "22002"], ["20456"])
        waited_s = time.monotonic() - began
    assert answer.status_code == 200
    # Three CRNs, one after another: never sooner than 3 x 50 ms (a lower bound, not a timing).
    assert waited_s >= 0.15


async def test_reset_drops_the_connection_before_obs_sees_the_post() -> None:
    async with serve(config(faults=[FaultRule(kind="reset", on_posts=[1])])) as (sim, client, _):
        with pytest.raises(httpx.TransportError):
            await register(sim, client, ["21234"])
        assert codes(await register(sim, client, ["21234"])) == ["successResult"]
    first = sim.requests()[0]
    assert (first.fault, first.status, first.response, first.post_number) == (
        "reset",
        None,
        None,
        1,
    )


async def test_reset_after_registers_then_drops_the_connection() -> None:
    async with serve(config(faults=[FaultRule(kind="reset_after", on_posts=[1])])) as (
        sim,
        client,
        wall,
    ):
        with pytest.raises(httpx.TransportError):
            await register(sim, client, ["21234"])
        wall.advance(3.5)
        # The outcome was unknown to the client; VAL03 now proves the first POST worked.
        assert codes(await register(sim, client, ["21234"])) == ["VAL03"]


async def test_slow_answers_after_the_clients_timeout_but_registers() -> None:
    faults = [FaultRule(kind="slow", on_posts=[1], slow_s=0.3)]
    async with serve(config(faults=faults)) as (sim, client, _):
        with pytest.raises(httpx.ReadTimeout):
            await client.post(
                REGISTER, json={"ECRN": ["21234"]}, headers=bearer(sim.token(STUDENT)), timeout=0.1
            )
        assert "21234" in sim.state().students[0].registered
        assert sim.requests()[0].fault == "slow"


async def test_malformed_json_fault_sends_a_broken_200() -> None:
    async with serve(config(faults=[FaultRule(kind="malformed_json", on_posts=[1])])) as (
        sim,
        client,
        _,
    ):
        response = await register(sim, client, ["21234"])
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert sim.requests()[0].response == response.text


async def read_response(stream: anyio.abc.ByteStream, buffer: bytearray) -> bytes:
    """One whole response (head and Content-Length body) from `stream`."""
    with anyio.fail_after(CLIENT_TIMEOUT_S):
        while b"\r\n\r\n" not in buffer:
            buffer += await stream.receive()
        head, _, _ = bytes(buffer).partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        total = len(head) + 4 + length
        while len(buffer) < total:
            buffer += await stream.receive()
        response = bytes(buffer[:total])
        del buffer[:total]
        return response


async def read_to_eof(stream: anyio.abc.ByteStream) -> bytes:
    data = b""
    with anyio.fail_after(CLIENT_TIMEOUT_S):
        while True:
            try:
                data += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return data


def host_port(sim: RunningSimulator) -> tuple[str, int]:
    host, port = sim.base_url.partition("://")[2].rsplit(":", 1)
    return host, int(port)


async def test_keep_alive_and_pipelining_on_one_connection() -> None:
    async with serve(config()) as (sim, _, _):
        request = (
            f"GET /api/ogrenci/OgrenciYetkiListesi HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {sim.token(STUDENT)}\r\n\r\n".encode()
        )
        async with await anyio.connect_tcp(*host_port(sim)) as stream:
            buffer = bytearray()
            for _ in range(3):
                await stream.send(request)
                assert (await read_response(stream, buffer)).startswith(b"HTTP/1.1 200 OK")
            await stream.send(request * 3)
            for _ in range(3):
                assert (await read_response(stream, buffer)).endswith(b'["ogrenci"]')
        assert {record.connection for record in sim.requests()} == {1}


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(256)) + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: zz\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
        b"GET /" + b"a" * 20_000,
    ],
)
async def test_garbage_gets_an_error_and_the_connection_closes(garbage: bytes) -> None:
    async with serve(config()) as (sim, client, _):
        async with await anyio.connect_tcp(*host_port(sim)) as stream:
            await stream.send(garbage)
            answer = await read_to_eof(stream)
        assert answer.split(b" ")[1] in (b"400", b"413", b"431")
        assert b"Connection: close" in answer
        # The server is unharmed.
        assert (await client.head(REGISTER)).status_code == 405
    assert sim.requests()[0].method == ""


async def test_a_half_closed_connection_still_gets_its_answer() -> None:
    async with serve(config()) as (sim, _, _), await anyio.connect_tcp(*host_port(sim)) as stream:
        await stream.send(b"HEAD /api/ders-kayit/v21 HTTP/1.1\r\nHost: x\r\n\r\n")
        await stream.send_eof()
        assert (await read_to_eof(stream)).startswith(b"HTTP/1.1 405")


async def test_a_client_that_vanishes_mid_request_harms_nothing() -> None:
    async with serve(config(request_delay_s=0.05)) as (sim, client, _):
        for _ in range(3):
            async with await anyio.connect_tcp(*host_port(sim)) as stream:
                await stream.send(
                    b"POST /api/ders-kayit/v21 HTTP/1.1\r\nContent-Length: 50\r\n\r\n{"
                )
            async with await anyio.connect_tcp(*host_port(sim)) as stream:
                await stream.send(b"HEAD / HTTP/1.1\r\n\r\n")
        assert (await client.head(REGISTER)).status_code == 405


async def test_tls_with_the_generated_certificate() -> None:
    async with Simulator(config(tls=True)).serve() as sim:
        assert sim.base_url.startswith("https://127.0.0.1:") and sim.ca_cert is not None
        context = ssl.create_default_context(cafile=str(sim.ca_cert))
        async with httpx.AsyncClient(
            base_url=sim.base_url, verify=context, timeout=CLIENT_TIMEOUT_S
        ) as client:
            response = await register(sim, client, ["21234"])
            head = await client.head(REGISTER)
    assert codes(response) == ["successResult"] and head.status_code == 405


def connect_blocking(sim: RunningSimulator) -> socket.socket:
    """A blocking client socket to the simulator, its TLS handshake done if it serves TLS."""
    client = socket.create_connection(host_port(sim), timeout=CLIENT_TIMEOUT_S)
    if sim.ca_cert is None:
        return client
    context = ssl.create_default_context(cafile=str(sim.ca_cert))
    return context.wrap_socket(client, server_hostname="127.0.0.1")


@pytest.mark.parametrize("tls", [False, True])
async def test_a_request_is_stamped_when_it_reached_the_machine_not_when_the_loop_read_it(
    tls: bool,
) -> None:
    # The system's wall clock (none injected), the one the kernel stamps packets with.
    async with Simulator(config(tls=tls)).serve() as sim:
        body = b'{"ECRN": ["21234"]}'
        request = (
            f"POST {REGISTER} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            f"Authorization: Bearer {sim.token(STUDENT)}\r\n\r\n"
        ).encode() + body
        # The handshake needs the simulator's loop, which is this test's: do it in a thread.
        with await anyio.to_thread.run_sync(connect_blocking, sim) as client:
            # While this coroutine holds the loop, the simulator cannot read: a stamp taken
            # when it reads would come after `after`.
            before = time.time_ns()
            client.sendall(request)
            after = time.time_ns()
            answer = await anyio.to_thread.run_sync(client.recv, 65536)
    assert answer.startswith(b"HTTP/1.1 200 OK")
    (post,) = sim.requests()
    offset_ns = round(OFFSET_S * S)
    assert before + offset_ns <= post.received_ns <= after + offset_ns


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "localhost", "::"])
async def test_only_loopback_addresses_are_served(host: str) -> None:
    with pytest.raises(NotLoopback):
        async with Simulator(config()).serve(host=host):
            pass
