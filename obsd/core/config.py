"""The registration plan: its fields, defaults and limits, and how a partial update is checked."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from datetime import datetime, time, timedelta, timezone
from typing import Annotated, Any, Final

import msgspec
from msgspec import UNSET, Meta, UnsetType

# Türkiye has kept UTC+3 all year since 2016, so a fixed offset names Istanbul's wall clock
# exactly and spares a dependency on the system's tz database (absent on minimal images).
ISTANBUL = timezone(timedelta(hours=3), "Europe/Istanbul")

# OBS refuses more than 12 CRNs in one request with VAL15 (obs-facts.md); check before sending.
MAX_CRNS = 12
DEFAULT_OBS_BASE_URL = "https://obs.itu.edu.tr"
# Four independent operators, so that one liar is outvoted (docs/operations.md): Türkiye's
# national time laboratory (TÜBİTAK UME, next to Istanbul), two pool zones (different
# volunteers' servers), and Germany's PTB. None smears leap seconds (national labs serve UTC,
# and the pool forbids smearing); the big cloud services smear, so none of them is here, for
# a smeared and an unsmeared source would disagree by up to half a second on a leap day.
DEFAULT_NTP_SERVERS = (
    "time.ume.tubitak.gov.tr",
    "0.tr.pool.ntp.org",
    "1.europe.pool.ntp.org",
    "ptbtime1.ptb.de",
)

CRN_PATTERN: Final = r"^[0-9]{5}$"
# Python's `$` also matches before a final newline ("12345\n"); the length bound closes that,
# and `[0-9]` (not `\d`) keeps out other scripts' digits.
CRN_LENGTH: Final = 5
Crn = Annotated[
    str,
    Meta(
        pattern=CRN_PATTERN, max_length=CRN_LENGTH, description="A 5-digit course reference number"
    ),
]
MaxAttempts = Annotated[int, Meta(ge=1, le=300)]
# OBS's per-token debounce is ~3 s and spacings of 3.04-3.17 s still drew VAL16 on busy days,
# so the default waits 3.5 s (obs-facts.md); the original backend's 3.0 s proved unreliable.
RetryInterval = Annotated[float, Meta(ge=1.0, le=10.0)]
SafetyBuffer = Annotated[float, Meta(ge=0.0, le=0.1)]
NtpServer = Annotated[str, Meta(min_length=1, max_length=253)]
# ~100-120 POSTs in 6-7 minutes drew a VAL21 ban (obs-facts.md): the budget stays well under.
BudgetPosts = Annotated[int, Meta(ge=1, le=60)]
BudgetWindow = Annotated[float, Meta(ge=60.0, le=3600.0)]
# Answers took up to 10 s on opening days and a 10 s timeout once caused duplicate POSTs.
ReadTimeout = Annotated[float, Meta(ge=5.0, le=120.0)]
AimEarly = Annotated[float, Meta(ge=0.0, le=0.9)]
# OBS keeps registration open for hours, and students who started 2.5 and 4 minutes late still
# won seats (obs-facts.md): a target that passed less than this long ago is a late start and
# fires at once. Longer ago is more likely a wrong day than a late student. 0: never late.
DEFAULT_LATE_START_WINDOW_S: Final = 3 * 3600.0
LateStartWindow = Annotated[float, Meta(ge=0.0, le=24 * 3600.0)]
# OBS handles the ECRN list one CRN after another, 0.17-1.1 s each on a busy opening, and every
# course lost to a full quota that day was at the end of its list (obs-facts.md).
OBS_SECONDS_PER_CRN: Final = (0.17, 1.1)
# When the last ECRN may wait this long (at the slow end) for its turn, the plan says so.
ORDER_MATTERS_AFTER_S: Final = 3.0
# Beyond OBS's own processing, an answer needs the network and OBS's queue: a read timeout
# shorter than the processing plus this is likely to give up on answers that do come.
ANSWER_HEADROOM_S: Final = 3.0
# Registration periods are announced weeks ahead; a target further away than this is a typo
# (a wrong year), and would also push the run's nanosecond arithmetic past 64 bits.
MAX_TARGET_AHEAD: Final = timedelta(days=365)

# Matched with fullmatch and ASCII classes only: no trailing newline, no other scripts' digits.
_HHMMSS = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])")
_HOST = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_BRACKETED_V6 = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::([0-9]+))?")


class ConfigError(ValueError):
    """A configuration value was refused; `field` names it as a JSON path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{message} - at `{field}`")
        self.field = field


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """The effective plan. The token is kept apart (see TokenStore) and never appears here."""

    ecrn: tuple[str, ...] = ()
    scrn: tuple[str, ...] = ()
    target: str | None = None
    max_attempts: int = 60
    retry_interval: float = 3.5
    safety_buffer: float = 0.001
    obs_base_url: str = DEFAULT_OBS_BASE_URL
    ntp_servers: tuple[str, ...] = DEFAULT_NTP_SERVERS
    # Keep retrying full courses (within the budget and max_attempts) in case a seat frees up.
    retry_full: bool = False
    # primary ECRN -> a CRN to try instead once the primary is full.
    backup: dict[str, str] = msgspec.field(default_factory=dict)
    budget_posts: int = 30
    budget_window: float = 360.0
    read_timeout: float = 30.0
    # Off by default: aiming before the opening by part of the one-way latency risks VAL02.
    aim_early_fraction: float = 0.0
    late_start_window: float = DEFAULT_LATE_START_WINDOW_S


class ConfigPatch(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """A partial update: only the fields present change. `token` is write-only."""

    token: str | UnsetType | None = UNSET
    ecrn: list[Crn] | UnsetType = UNSET
    scrn: list[Crn] | UnsetType = UNSET
    target: str | UnsetType | None = UNSET
    max_attempts: MaxAttempts | UnsetType = UNSET
    retry_interval: RetryInterval | UnsetType = UNSET
    safety_buffer: SafetyBuffer | UnsetType = UNSET
    obs_base_url: str | UnsetType = UNSET
    ntp_servers: Annotated[list[NtpServer], Meta(min_length=1, max_length=8)] | UnsetType = UNSET
    retry_full: bool | UnsetType = UNSET
    backup: dict[Crn, Crn] | UnsetType = UNSET
    budget_posts: BudgetPosts | UnsetType = UNSET
    budget_window: BudgetWindow | UnsetType = UNSET
    read_timeout: ReadTimeout | UnsetType = UNSET
    aim_early_fraction: AimEarly | UnsetType = UNSET
    late_start_window: LateStartWindow | UnsetType = UNSET

    def changed_fields(self) -> list[str]:
        """Names of the fields this patch sets, in declaration order."""
        return [f for f in self.__struct_fields__ if getattr(self, f) is not UNSET]


def resolve_target(text: str, now: datetime, late_window: timedelta = timedelta(0)) -> datetime:
    """Turn `HH:MM:SS` or ISO-8601 with an offset into an instant.

    `HH:MM:SS` is Istanbul's wall clock: today's if it passed less than `late_window` ago (a
    late start) or is still ahead, else tomorrow's. An instant further back is refused.
    """
    text = text.strip()
    if m := _HHMMSS.fullmatch(text):
        wall = time(int(m[1]), int(m[2]), int(m[3]), tzinfo=ISTANBUL)
        local_now = now.astimezone(ISTANBUL)
        candidate = datetime.combine(local_now.date(), wall)
        if candidate <= local_now - late_window:
            candidate += timedelta(days=1)
        return candidate
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            "$.config.target",
            f"expected HH:MM:SS or an ISO-8601 date-time with offset, got {text!r}",
        ) from None
    if instant.tzinfo is None:
        raise ConfigError(
            "$.config.target",
            f"{text!r} has no UTC offset; write e.g. {text}+03:00 for Istanbul time",
        )
    if instant <= now - late_window:
        raise ConfigError(
            "$.config.target",
            f"{text!r} is in the past"
            + (
                f", more than late_start_window ({late_window}) ago; check the day"
                if late_window
                else ""
            ),
        )
    if instant > now + MAX_TARGET_AHEAD:
        raise ConfigError(
            "$.config.target",
            f"{text!r} is more than {MAX_TARGET_AHEAD.days} days ahead; check the year",
        )
    return instant


def split_host_port(text: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[IPv6]` or `[IPv6]:port` as (host, port or None)."""
    if m := _BRACKETED_V6.fullmatch(text):
        host, has_port, port = m[1], m[2] is not None, m[2] or ""
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    else:
        host, colon, port = text.partition(":")
        has_port = bool(colon)
        if not _HOST.fullmatch(host) or ":" in port:
            raise ValueError(f"expected host, host:port or [IPv6]:port, got {text!r}")
    if not has_port:
        return host, None
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"port must be 1-65535, got {port!r}")
    return host, int(port)


def _check_base_url(text: str) -> str:
    url = text.strip().rstrip("/")
    scheme, sep, rest = url.partition("://")
    try:
        if not sep or scheme not in ("http", "https"):
            raise ValueError("no http:// or https://")
        split_host_port(rest)
    except ValueError:
        raise ConfigError(
            "$.config.obs_base_url",
            f"expected http(s)://host[:port] with no path, got {text!r}",
        ) from None
    return url


def _ntp_servers(servers: list[str], now: datetime) -> tuple[str, ...]:
    for index, server in enumerate(servers):
        try:
            split_host_port(server)
        except ValueError as exc:
            raise ConfigError(f"$.config.ntp_servers[{index}]", str(exc)) from None
    return tuple(servers)


# How a patch value becomes the Config value, for the fields that are not taken as they are.
# Every other ConfigPatch field (but the token, kept apart) is copied; see apply_patch.
_NORMALISE: Final[dict[str, Callable[[Any, datetime], object]]] = {
    "ecrn": lambda crns, now: tuple(crns),
    "scrn": lambda crns, now: tuple(crns),
    "obs_base_url": lambda url, now: _check_base_url(url),
    "ntp_servers": _ntp_servers,
}
# Fields a patch may set that are not part of Config.
PATCH_ONLY: Final = frozenset({"token"})


def apply_patch(config: Config, patch: ConfigPatch, now: datetime) -> Config:
    """Return `config` updated by `patch`, or raise ConfigError naming the first bad field.

    Fields are checked in declaration order, then the rules that span fields.
    """
    changes: dict[str, object] = {}
    for name in patch.changed_fields():
        if name not in PATCH_ONLY:
            value = getattr(patch, name)
            normalise = _NORMALISE.get(name)
            changes[name] = value if normalise is None else normalise(value, now)
    if changes.get("target") is not None:
        # The only field whose meaning depends on another: how late a start may be.
        late_s = patch.late_start_window
        window = timedelta(
            seconds=config.late_start_window if isinstance(late_s, UnsetType) else late_s
        )
        changes["target"] = resolve_target(str(changes["target"]), now, window).isoformat()
    updated = msgspec.structs.replace(config, **changes)
    _check_crn_lists(updated)
    return updated


def _check_crn_lists(config: Config) -> None:
    seen: set[str] = set()
    for name in ("ecrn", "scrn"):
        for index, crn in enumerate(getattr(config, name)):
            if crn in seen:
                raise ConfigError(f"$.config.{name}[{index}]", f"CRN {crn} is listed twice")
            seen.add(crn)
    if len(seen) > MAX_CRNS:
        raise ConfigError(
            "$.config",
            f"{len(seen)} CRNs in ecrn and scrn together; OBS accepts at most {MAX_CRNS} (VAL15)",
        )
    for primary, backup in config.backup.items():
        field = f"$.config.backup.{primary}"
        if primary not in config.ecrn:
            raise ConfigError(field, f"{primary} is not in ecrn; a backup stands in for an ECRN")
        if backup in seen:
            raise ConfigError(field, f"backup {backup} is already in ecrn, scrn or another backup")
        seen.add(backup)


def plan_warnings(config: Config) -> list[str]:
    """What a busy opening means for this plan, when it matters: the order, the read timeout."""
    count = len(config.ecrn)
    fast, slow = OBS_SECONDS_PER_CRN
    warnings = []
    if (count - 1) * slow >= ORDER_MATTERS_AFTER_S:
        warnings.append(
            f"OBS handles the {count} ECRNs one after another in this order, {fast:g}-{slow:g} s "
            f"each on a busy opening: the last ({config.ecrn[-1]}) may wait "
            f"{(count - 1) * fast:.1f}-{(count - 1) * slow:.1f} s for its turn, while its seats "
            "fill; put the most contested course first (obsctl configure --ecrn-first CRN)"
        )
    crns = count + len(config.scrn)
    needed = crns * slow + ANSWER_HEADROOM_S
    if config.read_timeout < needed:
        warnings.append(
            f"read_timeout {config.read_timeout:g} s is shorter than OBS may take to answer "
            f"{crns} CRNs on a busy opening (up to {crns * slow:.1f} s): each answer could come "
            f"too late to be read, and every attempt end unknown; set --read-timeout "
            f"{math.ceil(needed)} or more"
        )
    return warnings
