"""Simulator JWTs: issued like OBS's, verified for format, signature and time."""

from __future__ import annotations

import base64
import json

import pytest

from obsd.core.token import inspect_token
from obsd.sim.tokens import TokenRejected, issue_token, verify_token

KEY = b"k" * 32
NOW = 1_770_000_000.25


def test_an_issued_token_verifies_with_its_claims() -> None:
    claims = verify_token(issue_token("150200001", NOW, key=KEY), NOW, key=KEY)
    assert claims.sub == "150200001"
    assert claims.iat == claims.nbf == 1_770_000_000
    assert claims.exp - claims.iat == 21599


def test_the_daemon_reads_its_expiry() -> None:
    _, info = inspect_token("Bearer " + issue_token("x", NOW, 60, key=KEY))
    assert info.exp == "2026-02-02T02:41:00Z"


def test_expiry_is_checked_against_the_given_time() -> None:
    token = issue_token("x", NOW, 60, key=KEY)
    assert verify_token(token, 1_770_000_059.999, key=KEY).sub == "x"
    with pytest.raises(TokenRejected, match="expired"):
        verify_token(token, 1_770_000_060, key=KEY)


def test_a_token_is_not_valid_before_it_was_issued() -> None:
    with pytest.raises(TokenRejected, match="not valid yet"):
        verify_token(issue_token("x", NOW, key=KEY), NOW - 5, key=KEY)


def test_another_key_is_a_bad_signature() -> None:
    with pytest.raises(TokenRejected, match="signature"):
        verify_token(issue_token("x", NOW, key=KEY), NOW, key=b"other")


def _part(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_alg_none_is_refused() -> None:
    claims = {"sub": "x", "iat": 0, "nbf": 0, "exp": 2_000_000_000}
    with pytest.raises(TokenRejected, match="algorithm"):
        verify_token(f"{_part({'alg': 'none'})}.{_part(claims)}.", NOW, key=KEY)


def test_tampered_claims_are_refused() -> None:
    header, _, signature = issue_token("x", NOW, key=KEY).split(".")
    forged = _part({"sub": "admin", "iat": 0, "nbf": 0, "exp": 2_000_000_000})
    with pytest.raises(TokenRejected):
        verify_token(f"{header}.{forged}.{signature}", NOW, key=KEY)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "é.é.é",
        "!!.??.**",
        f"{_part({'alg': 'HS256'})}.{_part({'sub': 1})}.x",
        f"{_part({'alg': 'HS256'})}.WzFd.x",
    ],
)
def test_malformed_tokens_are_refused(text: str) -> None:
    with pytest.raises(TokenRejected):
        verify_token(text, NOW, key=KEY)
