"""HS256 JWTs like OBS's, issued and checked with the standard library only."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from typing import Final

import msgspec

# OBS tokens live six hours less a second (`exp - iat`, obs-facts.md).
DEFAULT_LIFETIME_S: Final = 21599
_HEADER: Final = {"alg": "HS256", "typ": "JWT"}


class TokenRejected(ValueError):
    """The token is malformed, forged or expired; OBS answers 401."""


class Claims(msgspec.Struct, frozen=True):
    """The claims the simulator issues and checks."""

    sub: str
    iat: int
    nbf: int
    exp: int


class _Header(msgspec.Struct, frozen=True):
    alg: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(signing_input: str, key: bytes) -> str:
    return _b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())


def issue_token(
    subject: str, now_s: float, lifetime_s: int = DEFAULT_LIFETIME_S, *, key: bytes
) -> str:
    """A JWT for `subject` issued at `now_s` (true time) that expires `lifetime_s` later."""
    issued = math.floor(now_s)
    claims = Claims(sub=subject, iat=issued, nbf=issued, exp=issued + lifetime_s)
    signing_input = _b64(msgspec.json.encode(_HEADER)) + "." + _b64(msgspec.json.encode(claims))
    return signing_input + "." + _sign(signing_input, key)


def verify_token(token: str, now_s: float, *, key: bytes) -> Claims:
    """Check format, algorithm, signature, `nbf` and `exp` at `now_s`; return the claims."""
    parts = token.split(".")
    if len(parts) != 3 or not token.isascii():
        raise TokenRejected("not a JWT")
    header_part, claims_part, signature = parts
    try:
        header = msgspec.json.decode(_unb64(header_part), type=_Header)
        claims = msgspec.json.decode(_unb64(claims_part), type=Claims)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise TokenRejected("not a JWT") from None
    if header.alg != "HS256":
        raise TokenRejected("unsupported algorithm")
    if not hmac.compare_digest(signature, _sign(f"{header_part}.{claims_part}", key)):
        raise TokenRejected("bad signature")
    if now_s < claims.nbf:
        raise TokenRejected("not valid yet")
    if now_s >= claims.exp:
        raise TokenRejected("expired")
    return claims
