"""Token inspection: claims without verification, a fingerprint, never the token in errors."""

import base64
import json

import pytest

from obsd.core.token import TokenError, fingerprint, inspect_token


def jwt(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def test_claims_become_iso_times() -> None:
    token, info = inspect_token(jwt({"exp": 1770120000, "iat": 1770098401}))
    assert info.exp == "2026-02-03T12:00:00Z" and info.iat == "2026-02-03T06:00:01Z"
    assert info.fingerprint == fingerprint(token) and token not in info.fingerprint


@pytest.mark.parametrize("prefix", ["Bearer ", "bearer ", "  Bearer  ", "\n"])
def test_pasted_bearer_prefix_and_white_space_are_stripped(prefix: str) -> None:
    bare = jwt({"exp": 1770120000})
    token, _ = inspect_token(prefix + bare + "\n")
    assert token == bare


def test_missing_exp_is_reported_as_unknown() -> None:
    assert inspect_token(jwt({"sub": "x"}))[1].exp is None


@pytest.mark.parametrize(
    "text", ["", "abc", "a.b", "a.b.c.d", "a b.c.d", "eyJ.bm90IGpzb24.sig", "x.WzFd.sig"]
)
def test_non_jwts_are_refused_without_echoing_the_text(text: str) -> None:
    with pytest.raises(TokenError) as caught:
        inspect_token(text)
    if len(text) > 3:
        assert text not in str(caught.value)


def test_fingerprints_differ_between_tokens() -> None:
    assert fingerprint(jwt({"exp": 1})) != fingerprint(jwt({"exp": 2}))
