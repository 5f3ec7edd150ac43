"""The ops of the İTÜ login: keep the credentials (`login`), drop them (`logout`), and try the
whole flow once (`test_login`) so that a student can check it days before the opening."""

from __future__ import annotations

import anyio

from obsd.adapters.itu_login import LoginFailed, Minted
from obsd.core.events import LoginChangedPayload, LoginCheckedPayload
from obsd.core.login import Credentials
from obsd.core.phases import Phase
from obsd.core.protocol import ErrorCode, Login, Logout, ProtocolError, TestLogin
from obsd.core.replies import LoginReply
from obsd.core.timing import epoch_ns
from obsd.core.token import TokenError, inspect_token
from obsd.core.token_refresh import LATEST_BEFORE_S, too_late
from obsd.daemon.context import Caller, Context
from obsd.daemon.ops.obs import obs_says


async def _replaced(ctx: Context, caller: Caller, credentials: Credentials | None) -> LoginReply:
    # Refuse before touching the file if the change could not be recorded.
    ctx.journal.log.check_writable()
    await anyio.to_thread.run_sync(ctx.logins.replace, credentials)
    await ctx.journal.append(LoginChangedPayload(actor=caller.actor, login=ctx.logins.info))
    return LoginReply(login=ctx.logins.info)


async def login(ctx: Context, request: Login, caller: Caller) -> LoginReply:
    """Keep the credentials (0600 in the state dir); nothing is sent to İTÜ yet."""
    credentials = Credentials(request.username.strip(), request.password, request.identity)
    return await _replaced(ctx, caller, credentials)


async def logout(ctx: Context, request: Logout, caller: Caller) -> LoginReply:
    """Remove the credentials `login` kept (a systemd credential, if any, is then in use)."""
    return await _replaced(ctx, caller, None)


async def test_login(ctx: Context, request: TestLogin, caller: Caller) -> LoginCheckedPayload:
    """Log in once, then OBS's cheap GET with the new token; the token is not kept."""
    run = ctx.state.runs.get(ctx.state.active_run) if ctx.state.active_run else None
    if run is not None and (
        run.phase == Phase.REGISTERING or too_late(run.target_ns, epoch_ns(ctx.now()))
    ):
        # The same rule as a run's own logins: no login traffic near or after its shot.
        raise ProtocolError(
            ErrorCode.RUN_IN_PROGRESS,
            f"run {run.run_id} fires within {LATEST_BEFORE_S:.0f} s or is registering; "
            "check the login after it",
        )
    credentials = ctx.logins.credentials
    if credentials is None:
        raise ProtocolError(
            ErrorCode.LOGIN_MISSING,
            ctx.logins.info.problem or "no İTÜ credentials are set: obsctl login",
        )
    config = ctx.state.config
    session = ctx.instruments.sign_on(config)
    try:
        minted = await session.log_in(
            credentials.username, credentials.password, credentials.identity
        )
    except LoginFailed as failed:
        checked = LoginCheckedPayload(
            ok=False,
            code=failed.code,
            message=str(failed),
            identity=None,
            identities=[],
            steps=failed.steps,
            token=None,
            http_status=None,
        )
    else:
        checked = await _token_checked(ctx, minted)
    finally:
        await session.aclose()
    await ctx.journal.append(checked)
    return checked


async def _token_checked(ctx: Context, minted: Minted) -> LoginCheckedPayload:
    """What OBS says of a token the login minted."""
    token = minted.token
    try:
        _, info = inspect_token(token)
    except TokenError as exc:
        message, info, status = f"the token endpoint's answer is no usable token: {exc}", None, None
    else:
        status, message = await obs_says(ctx, token)
    return LoginCheckedPayload(
        ok=status == 200,
        code=None,
        message=message,
        identity=minted.identity,
        identities=minted.identities,
        steps=minted.steps,
        token=info,
        http_status=status,
    )
