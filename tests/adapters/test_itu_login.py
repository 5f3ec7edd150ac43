"""Logging in to the simulated İTÜ over loopback: the whole flow gives a token OBS accepts,
and each way it can fail has its own code; no password reaches the simulator's record."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from obsd.adapters.itu_login import ItuSession, LoginFailed
from obsd.core.login import LoginFailure
from obsd.core.token import inspect_token
from obsd.sim import RunningSimulator, SimConfig, Simulator, Student
from obsd.sim.config import StudentLogin

PASSWORD = "correct horse 9"
STUDENTS = [
    Student(subject="150200001", login=StudentLogin(username="ayse", password=PASSWORD)),
    Student(
        subject="150200002",
        login=StudentLogin(
            username="mehmet",
            password=PASSWORD,
            identities=["Bilgisayar Mühendisliği (aktif)", "Matematik Mühendisliği"],
        ),
    ),
]


@pytest.fixture
def sim() -> Iterator[RunningSimulator]:
    with Simulator(SimConfig(students=STUDENTS)).serve_in_thread() as running:
        yield running


def obs_accepts(sim: RunningSimulator, token: str) -> bool:
    answer = httpx.get(
        f"{sim.base_url}/api/ogrenci/OgrenciYetkiListesi",
        headers={"Authorization": f"Bearer {token}"},
    )
    return answer.status_code == 200


async def test_a_login_gives_a_token_obs_accepts_and_the_session_mints_more(
    sim: RunningSimulator,
) -> None:
    session = ItuSession(sim.base_url)
    try:
        minted = await session.log_in("ayse", PASSWORD, None)
        again = await session.remint()
    finally:
        await session.aclose()
    _, info = inspect_token(minted.token)
    assert info.exp is not None and obs_accepts(sim, minted.token)
    assert obs_accepts(sim, again.token)
    assert [step.what for step in minted.steps] == [
        "login page",
        "user name and password",
        "token",
    ]
    assert minted.steps[0].redirects == 1 and minted.steps[1].redirects == 1
    assert all("?" not in step.url for step in minted.steps), "queries hold session ids"
    assert minted.identity is None and minted.identities == []
    for record in sim.requests():
        assert PASSWORD not in str(record.body) and "correct" not in str(record.body)


async def test_a_double_major_picks_the_identity_asked_for_else_the_first(
    sim: RunningSimulator,
) -> None:
    for wanted, label in [
        (None, "Bilgisayar Mühendisliği (aktif)"),
        ("matematik", "Matematik Mühendisliği"),
    ]:
        session = ItuSession(sim.base_url)
        try:
            minted = await session.log_in("mehmet", PASSWORD, wanted)
        finally:
            await session.aclose()
        assert minted.identity == label and len(minted.identities) == 2
        assert obs_accepts(sim, minted.token)


@pytest.mark.parametrize(
    ("username", "password", "identity", "code"),
    [
        ("ayse", "wrong", None, LoginFailure.WRONG_PASSWORD),
        ("nobody", PASSWORD, None, LoginFailure.WRONG_PASSWORD),
        ("mehmet", PASSWORD, "Fizik", LoginFailure.NO_IDENTITY),
    ],
)
async def test_each_refusal_has_its_own_code(
    sim: RunningSimulator, username: str, password: str, identity: str | None, code: LoginFailure
) -> None:
    session = ItuSession(sim.base_url)
    try:
        with pytest.raises(LoginFailed) as failed:
            await session.log_in(username, password, identity)
    finally:
        await session.aclose()
    assert failed.value.code == code
    assert password not in str(failed.value)


async def test_an_expired_session_asks_for_a_full_login() -> None:
    config = SimConfig(students=STUDENTS, session_lifetime_s=0.001)
    with Simulator(config).serve_in_thread() as sim:
        session = ItuSession(sim.base_url)
        try:
            with pytest.raises(LoginFailed) as failed:
                # The session is over before the token step.
                await session.log_in("ayse", PASSWORD, None)
            assert failed.value.code == LoginFailure.FORM_AGAIN
            with pytest.raises(LoginFailed) as lost:
                await session.remint()
        finally:
            await session.aclose()
    assert lost.value.code == LoginFailure.SESSION_EXPIRED


async def test_an_unreachable_single_sign_on_is_said_so() -> None:
    session = ItuSession("http://127.0.0.1:9")
    try:
        with pytest.raises(LoginFailed) as failed:
            await session.log_in("ayse", PASSWORD, None)
    finally:
        await session.aclose()
    assert failed.value.code == LoginFailure.UNREACHABLE
    assert "cannot be reached" in str(failed.value)


async def test_iis_503_page_on_the_way_is_unreachable_and_says_so() -> None:
    config = SimConfig(students=STUDENTS, sso_unavailable_on=[2])
    with Simulator(config).serve_in_thread() as sim:
        session = ItuSession(sim.base_url)
        try:
            with pytest.raises(LoginFailed) as failed:
                await session.log_in("ayse", PASSWORD, None)
            # A moment later the service is back: the same session logs in.
            minted = await session.log_in("ayse", PASSWORD, None)
        finally:
            await session.aclose()
        assert obs_accepts(sim, minted.token)
    assert failed.value.code == LoginFailure.UNREACHABLE
    assert "answered 503" in str(failed.value)
