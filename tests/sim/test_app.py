"""The endpoints without sockets: whatever a client sends, an answer and a record come back."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from obsd.sim.app import SimApp
from obsd.sim.clock import SimClock
from obsd.sim.http11 import HttpRequest
from obsd.sim.tokens import issue_token

from .helpers import REGISTER, STUDENT, WALL_NS, S, config

KEY = b"k" * 32
TOKEN = issue_token(STUDENT, WALL_NS / S, key=KEY)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["ECRN", "SCRN", "x"]), inner, max_size=3)
    ),
    max_leaves=20,
)


def make_app() -> SimApp:
    return SimApp(config(debounce_s=0.0), SimClock(lambda: WALL_NS, 0.0, 0.0, 0.37), KEY)


def request(method: str, path: str, body: bytes, authorization: str | None) -> HttpRequest:
    headers = {} if authorization is None else {"authorization": authorization}
    return HttpRequest(method, path, headers, body, True, WALL_NS)


@settings(max_examples=300)
@given(
    body=st.one_of(json_values.map(msgspec.json.encode), st.binary(max_size=64)),
    method=st.sampled_from(["POST", "GET", "HEAD", "PUT"]),
    path=st.sampled_from(
        [
            REGISTER,
            REGISTER + "/",
            "/api/ogrenci/OgrenciYetkiListesi",
            "/api/ogrenci/Takvim/KayitZamaniKontrolu",
            "/",
            "/_sim/x",
        ]
    ),
    authorization=st.sampled_from([None, f"Bearer {TOKEN}", "Bearer x.y.z", "bearer", ""]),
)
def test_any_request_gets_an_answer(
    body: bytes, method: str, path: str, authorization: str | None
) -> None:
    app = make_app()
    reply = app.respond(request(method, path, body, authorization), WALL_NS, 1)
    assert reply.status in (200, 400, 401, 404, 405)
    assert len(app.records()) == (0 if path.startswith("/_sim/") else 1)
    msgspec.json.encode(app.records())


def test_a_registration_answer_is_recorded_with_its_response() -> None:
    app = make_app()
    body = msgspec.json.encode({"ECRN": ["21234"], "SCRN": []})
    reply = app.respond(request("POST", REGISTER, body, f"Bearer {TOKEN}"), WALL_NS + 5, 3)
    [record] = app.records()
    assert reply.status == 200 and msgspec.json.decode(reply.body) == record.response
    assert (record.connection, record.received_ns, record.arrival_ns) == (3, WALL_NS, WALL_NS + 5)
