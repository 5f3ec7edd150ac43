"""The ops that talk to OBS and NTP without registering: test_token and calibrate."""

from __future__ import annotations

from datetime import datetime

from obsd.adapters.obs_client import ObsError
from obsd.core.events import CalibrationPayload, TokenTestedPayload
from obsd.core.protocol import Calibrate, ErrorCode, ProtocolError, TestToken
from obsd.core.replies import TokenTestReply
from obsd.core.timing import epoch_ns
from obsd.core.token import judge_expiry
from obsd.daemon.calibration import calibrate as measure
from obsd.daemon.context import Caller, Context

# What OBS's answer to the cheap token check means.
TOKEN_CHECK_WORDS = {200: "OBS accepts the token", 401: "OBS refuses the token (401): log in again"}


def _target(ctx: Context) -> datetime | None:
    target = ctx.state.config.target
    return datetime.fromisoformat(target) if target else None


async def obs_says(ctx: Context, token: str) -> tuple[int | None, str]:
    """OBS's cheap GET with `token` (never a registration): its status and what it means."""
    config = ctx.state.config
    try:
        async with ctx.instruments.connect_obs(config, token) as obs:
            status = (await obs.check_token()).http_status
    except ObsError as exc:
        return None, f"could not reach OBS at {config.obs_base_url}: {exc}"
    return status, TOKEN_CHECK_WORDS.get(status, f"OBS answered HTTP {status}")


async def test_token(ctx: Context, request: TestToken, caller: Caller) -> TokenTestReply:
    """OBS's cheap GET with the token (never a registration), and its expiry against the target."""
    token, info = ctx.tokens.token, ctx.tokens.stored.info
    if token is None or info is None:
        raise ProtocolError(
            ErrorCode.TOKEN_MISSING, ctx.tokens.stored.problem or "no OBS token is configured"
        )
    verdict = judge_expiry(info, _target(ctx), ctx.now())
    status, message = await obs_says(ctx, token)
    valid = status == 200 and verdict.error is None
    await ctx.journal.append(
        TokenTestedPayload(
            token=info, valid=valid, http_status=status, message=verdict.error or message
        )
    )
    return TokenTestReply(
        valid=valid,
        http_status=status,
        message=message,
        token=info,
        error=verdict.error,
        warnings=verdict.warnings,
    )


async def calibrate(ctx: Context, request: Calibrate, caller: Caller) -> CalibrationPayload:
    """NTP offset, RTT to OBS, send delay and the fire instant, measured now."""
    config = ctx.state.config
    target = _target(ctx)
    target_ns = None if target is None or target <= ctx.now() else epoch_ns(target)
    async with ctx.instruments.connect_obs(config, ctx.tokens.token or "") as obs:
        calibrated = await measure(None, config, target_ns, obs, ctx.instruments)
    await ctx.journal.append(calibrated.payload)
    return calibrated.payload
