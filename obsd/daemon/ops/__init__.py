"""The handler of every op but `tail` (a connection streams it), by request type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from obsd.core import protocol
from obsd.daemon.context import Caller, Context
from obsd.daemon.ops import configure, login, obs, reads, runs

Handler = Callable[[Context, Any, Caller], Awaitable[Any]]

HANDLERS: Final[dict[type[Any], Handler]] = {
    protocol.Ping: reads.ping,
    protocol.Status: reads.status,
    protocol.GetConfig: reads.config,
    protocol.Configure: configure.configure,
    protocol.Events: reads.events,
    protocol.Health: reads.health,
    protocol.Schema: reads.schema_of_protocol,
    protocol.TestToken: obs.test_token,
    protocol.Calibrate: obs.calibrate,
    protocol.Start: runs.start,
    protocol.WatchSeat: runs.watch_seat,
    protocol.Cancel: runs.cancel,
    protocol.Runs: runs.runs,
    protocol.GetRun: runs.run,
    protocol.DeleteRun: runs.delete_run,
    protocol.Login: login.login,
    protocol.Logout: login.logout,
    protocol.TestLogin: login.test_login,
}
