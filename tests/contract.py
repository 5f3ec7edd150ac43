"""The configuration contract as docs/protocol.md §6 states it: bounds, a model, and values.

The property tests of the core, the daemon and obsctl judge every answer by this model, and the
numeric bounds are read from the document itself, so code, docs and tests cannot drift apart.
The model is written from the document's words, not from the code it checks.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final

from hypothesis import strategies as st

DOC: Final = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
ASCII_DIGITS: Final = "0123456789"
HOST_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
# §6.2: a target more than this far ahead is refused, and one that passed less than the
# default `late_start_window` ago is a late start (accepted).
TARGET_HORIZON: Final = timedelta(days=365)
TARGET_LATE: Final = timedelta(hours=3)
# Targets this close to a bound are not generated: the daemon's "now" is not the test's.
TARGET_MARGIN: Final = timedelta(minutes=5)
MAX_CRNS: Final = 12


def _fields_table() -> dict[str, tuple[str, str]]:
    """§6.1's rows: field -> (its type in `configure`, its limits and rules)."""
    text = DOC.read_text()
    section = text[text.index("### 6.1 Fields") : text.index("### 6.2")]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| [^|]+ \| (.+) \|$", section, re.MULTILINE)
    return {name: (kind.strip(), limits) for name, kind, limits in rows}


FIELDS: Final = _fields_table()
_RANGE = re.compile(r"(-?[0-9]+(?:\.[0-9]+)?) … (-?[0-9]+(?:\.[0-9]+)?)")


@dataclass(frozen=True)
class NumberField:
    """A number field and its inclusive documented range."""

    name: str
    integer: bool
    low: float
    high: float

    def accepts(self, value: object) -> bool:
        """Whether the contract allows `value` (a JSON value) for this field."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.integer and not isinstance(value, int):
            return False
        return self.low <= value <= self.high

    def stored(self, value: int | float) -> int | float:
        """What `config` shows for an accepted value (number fields are stored as floats)."""
        return value if self.integer else float(value)


def _number_fields() -> list[NumberField]:
    found = []
    for name, (kind, limits) in FIELDS.items():
        if kind.startswith(("integer", "number")):
            low, high = _RANGE.match(limits).groups()  # type: ignore[union-attr]
            found.append(NumberField(name, kind.startswith("integer"), float(low), float(high)))
    return found


NUMBER_FIELDS: Final = _number_fields()
_NTP_RULE = re.compile(r"(\d+) … (\d+) entries, each (\d+) … (\d+) characters")
NTP_ENTRIES, NTP_LENGTH = (lambda m: ((int(m[1]), int(m[2])), (int(m[3]), int(m[4]))))(
    _NTP_RULE.match(FIELDS["ntp_servers"][1])
)


# -- the model ----------------------------------------------------------------------------


def is_crn(value: object) -> bool:
    """Exactly five ASCII digits."""
    return isinstance(value, str) and len(value) == 5 and all(c in ASCII_DIGITS for c in value)


def crn_lists_ok(ecrn: list[Any], scrn: list[Any], backup: dict[Any, Any]) -> bool:
    """§6.1's cross-field rules, for a patch that sets all three."""
    if not all(map(is_crn, [*ecrn, *scrn, *backup, *backup.values()])):
        return False
    listed = [*ecrn, *scrn]
    if len(set(listed)) != len(listed) or len(listed) > MAX_CRNS:
        return False
    values = list(backup.values())
    return (
        all(key in ecrn for key in backup)
        and len(set(values)) == len(values)
        and not set(values) & set(listed)
    )


def _host_ok(host: str) -> bool:
    return (
        0 < len(host) <= 253
        and set(host) <= HOST_CHARS
        and host[0] not in ".-"
        and host[-1] not in ".-"
    )


def _port_ok(port: str) -> bool:
    return 0 < len(port) <= 5 and all(c in ASCII_DIGITS for c in port) and 1 <= int(port) <= 65535


def host_port_ok(text: str) -> bool:
    """`host`, `host:port`, `[IPv6]` or `[IPv6]:port`; a bare IPv6 address is refused."""
    if text.startswith("["):
        address, bracket, rest = text[1:].partition("]")
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return False
        return bool(bracket) and (rest == "" or (rest[:1] == ":" and _port_ok(rest[1:])))
    host, colon, port = text.partition(":")
    return _host_ok(host) and (not colon or _port_ok(port))


def ntp_servers_ok(value: list[str]) -> bool:
    """1 … 8 entries, each 1 … 253 characters and a host[:port]."""
    (fewest, most), (shortest, longest) = NTP_ENTRIES, NTP_LENGTH
    return fewest <= len(value) <= most and all(
        shortest <= len(entry) <= longest and host_port_ok(entry) for entry in value
    )


def normalized_url(text: str) -> str | None:
    """What `obs_base_url` stores for `text`, or None if the contract refuses it."""
    url = text.strip().rstrip("/")
    scheme, sep, rest = url.partition("://")
    return url if sep and scheme in ("http", "https") and host_port_ok(rest) else None


def target_instant(text: str, now: datetime) -> datetime | None:
    """The instant an ISO-8601 target with an offset names, if the contract accepts it."""
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if instant.tzinfo is None or not now - TARGET_LATE < instant <= now + TARGET_HORIZON:
        return None
    return instant


# -- values at and around every bound -------------------------------------------------------


def numbers_around(field: NumberField) -> st.SearchStrategy[Any]:
    """The bounds, the nearest values beyond them, inside and outside, and wrong types."""
    low, high = field.low, field.high
    edges: list[Any] = [
        low,
        high,
        math.nextafter(low, -math.inf),
        math.nextafter(high, math.inf),
        low - 1,
        high + 1,
        -0.0,
        0,
        -1,
        10**20,
        1e308,
    ]
    if field.integer:
        edges += [int(low), int(high), int(low) - 1, int(high) + 1, float(int(low))]
    inside = (
        st.integers(int(low), int(high))
        if field.integer
        else st.floats(low, high) | st.integers(math.ceil(low), math.floor(high))
    )
    outside = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**6), 10**6)
    wrong = st.booleans() | st.none() | st.text(max_size=4) | st.just([low])
    return st.sampled_from(edges) | inside | outside | wrong


# Arabic-Indic, fullwidth, Devanagari and mathematical bold digits: str.isdigit() says yes.
DIGIT_ZEROS: Final = (0x0660, 0xFF10, 0x0966, 0x1D7CE)
OTHER_DIGITS: Final = tuple("".join(chr(zero + n) for n in range(10)) for zero in DIGIT_ZEROS)


def fullwidth(text: str) -> str:
    """`text` with its ASCII digits written as fullwidth digits."""
    return text.translate({ord(d): 0xFF10 + int(d) for d in ASCII_DIGITS})


five_digits = st.text(alphabet=ASCII_DIGITS, min_size=5, max_size=5)
crn_texts = st.one_of(
    five_digits,
    st.text(alphabet=ASCII_DIGITS, min_size=0, max_size=7),
    st.tuples(five_digits, st.sampled_from(["\n", " ", "\t", "\r\n", "\x00", "a"])).map(
        lambda pair: pair[0] + pair[1]
    ),
    st.tuples(st.sampled_from([" ", "\n", "+", "-"]), five_digits).map("".join),
    st.tuples(st.sampled_from(OTHER_DIGITS), st.integers(0, 4)).map(
        lambda pair: "12345"[: pair[1]] + pair[0][pair[1]] + "12345"[pair[1] + 1 :]
    ),
    st.text(max_size=6),
)
crn_lists = st.lists(crn_texts, max_size=MAX_CRNS + 2) | st.lists(
    five_digits, min_size=11, max_size=MAX_CRNS + 2
)


@st.composite
def crn_plans(draw: st.DrawFn) -> dict[str, Any]:
    """`ecrn`, `scrn` and `backup` together, mostly near the cross-field rules."""
    ecrn = draw(crn_lists)
    scrn = draw(st.lists(crn_texts | st.sampled_from(ecrn or ["12345"]), max_size=3))
    keys = st.sampled_from(ecrn) | crn_texts if ecrn else crn_texts
    backup = draw(
        st.dictionaries(keys, crn_texts | st.sampled_from([*ecrn, *scrn] or ["1"]), max_size=3)
    )
    return {"ecrn": ecrn, "scrn": scrn, "backup": backup}


hosts = st.sampled_from(
    [
        "obs.itu.edu.tr",
        "127.0.0.1",
        "localhost",
        "a",
        "a" * 253,
        "a" * 254,
        "x-y.z",
        "-bad",
        "bad-",
        ".bad",
        "ho st",
        "ho\nst",
        "hö.example",
        "",
        "[::1]",
        "[::g]",
        "[2001:db8::1]",
        "::1",
        "[127.0.0.1]",
        "host\n",
    ]
) | st.text(max_size=12)
ports = st.sampled_from(
    [None, "0", "1", "123", "65535", "65536", "00080", fullwidth("123"), "", "8 0", "80\n", "-1"]
)


@st.composite
def host_ports(draw: st.DrawFn) -> str:
    """host[:port] texts around every rule."""
    port = draw(ports)
    return draw(hosts) + ("" if port is None else ":" + port)


@st.composite
def base_urls(draw: st.DrawFn) -> str:
    """Base URLs around every rule: scheme, host, port, path, whitespace."""
    scheme = draw(st.sampled_from(["http://", "https://", "ftp://", "HTTP://", "http:/", ""]))
    user = draw(st.sampled_from(["", "", "", "me@"]))
    suffix = draw(st.sampled_from(["", "", "/", "//", "/api", "?q=1", "#top", "\n", " ", "/ "]))
    space = draw(st.sampled_from(["", "", " ", "\n", "\t"]))
    return space + scheme + user + draw(host_ports()) + suffix + space


ntp_server_lists = st.lists(host_ports(), max_size=NTP_ENTRIES[1] + 1)


def iso_targets(now: datetime) -> st.SearchStrategy[str]:
    """ISO-8601 targets around the late-start window, "now" and the horizon, spelt variously."""
    margin = TARGET_MARGIN.total_seconds()
    horizon = TARGET_HORIZON.total_seconds()
    late = TARGET_LATE.total_seconds()
    seconds = st.one_of(
        st.sampled_from(
            [
                -86_400.0,
                -late - margin,
                -late + margin,
                -margin,
                margin,
                horizon - margin,
                horizon + margin,
                10 * horizon,
                3.0e11,
            ]
        ),
        st.floats(-late + margin, horizon - margin),
        st.floats(-horizon, -late - margin),
        st.floats(horizon + margin, 20 * horizon),
    )
    offsets = st.sampled_from([UTC, timezone(timedelta(hours=3)), timezone(-timedelta(hours=11))])

    def spell(pair: tuple[float, timezone]) -> str:
        later, zone = pair
        limit = (datetime.max.replace(tzinfo=UTC) - now).total_seconds() - 86_400
        return (now + timedelta(seconds=min(later, limit))).astimezone(zone).isoformat()

    return st.tuples(seconds, offsets).map(spell)


def targets(now: datetime) -> st.SearchStrategy[str]:
    """Every kind of target text: ISO-8601 instants, HH:MM:SS, and near misses."""
    return st.one_of(
        iso_targets(now),
        iso_targets(now).map(lambda text: text[:19]),  # No offset.
        iso_targets(now).map(lambda text: text + "\n"),
        st.sampled_from(
            [
                "14:00:00",
                "00:00:00",
                "23:59:59",
                "24:00:00",
                "9:00:00",
                "14:00",
                "14:00:00\n",
                " 14:00:00 ",
                fullwidth("14:00:00"),
                "tomorrow",
                "",
            ]
        ),
        st.text(max_size=25),
    )


def hhmmss_ok(text: str) -> bool:
    """HH:MM:SS, two ASCII digits each, 00:00:00 … 23:59:59, whitespace around ignored."""
    parts = text.strip().split(":")
    return (
        len(parts) == 3
        and all(len(p) == 2 and all(c in ASCII_DIGITS for c in p) for p in parts)
        and int(parts[0]) < 24
        and int(parts[1]) < 60
        and int(parts[2]) < 60
    )
