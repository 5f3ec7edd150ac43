"""Configuration updates: partial, validated, with errors that name the field."""

from datetime import UTC, datetime

import msgspec
import pytest

from obsd.core.config import (
    ISTANBUL,
    PATCH_ONLY,
    Config,
    ConfigError,
    ConfigPatch,
    apply_patch,
    plan_warnings,
    resolve_target,
)

NOW = datetime(2026, 2, 3, 10, 0, 0, tzinfo=UTC)  # 13:00 in Istanbul


def patch(**fields: object) -> ConfigPatch:
    return msgspec.convert(fields, ConfigPatch)


def refused(**fields: object) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        apply_patch(Config(), patch(**fields), NOW)
    return caught.value


def test_defaults_match_the_documented_plan() -> None:
    config = Config()
    assert (config.max_attempts, config.retry_interval, config.safety_buffer) == (60, 3.5, 0.001)
    assert config.obs_base_url == "https://obs.itu.edu.tr"
    assert config.ecrn == config.scrn == () and config.target is None


def test_only_the_fields_given_change() -> None:
    first = apply_patch(Config(), patch(ecrn=["12345"], max_attempts=10), NOW)
    second = apply_patch(first, patch(scrn=["54321"]), NOW)
    assert (second.ecrn, second.scrn, second.max_attempts) == (("12345",), ("54321",), 10)


def test_hh_mm_ss_is_the_next_occurrence_in_istanbul() -> None:
    later_today = resolve_target("14:00:00", NOW)
    assert later_today == datetime(2026, 2, 3, 14, 0, tzinfo=ISTANBUL)
    already_passed = resolve_target("12:59:59", NOW)
    assert already_passed == datetime(2026, 2, 4, 12, 59, 59, tzinfo=ISTANBUL)


def test_a_time_that_passed_within_the_late_start_window_is_todays_a_late_start() -> None:
    # 13:00 in Istanbul: 12:58 passed two minutes ago, 09:59:59 just over three hours ago.
    assert apply_patch(Config(), patch(target="12:58:00"), NOW).target == (
        "2026-02-03T12:58:00+03:00"
    )
    assert apply_patch(Config(), patch(target="09:59:59"), NOW).target == (
        "2026-02-04T09:59:59+03:00"
    )
    late = apply_patch(Config(), patch(target="2026-02-03T12:58:00+03:00"), NOW)
    assert late.target == "2026-02-03T12:58:00+03:00"


def test_the_late_start_window_given_in_the_same_patch_is_the_one_that_counts() -> None:
    narrow = apply_patch(Config(), patch(late_start_window=60, target="12:58:00"), NOW)
    assert narrow.target == "2026-02-04T12:58:00+03:00", "two minutes is more than 60 s: tomorrow"
    error = refused(late_start_window=0, target="2026-02-03T12:59:59+03:00")
    assert error.field == "$.config.target" and "in the past" in str(error)
    error = refused(target="2026-02-03T09:59:59+03:00")
    assert "more than late_start_window (3:00:00) ago; check the day" in str(error)


def test_target_is_stored_as_an_absolute_instant_with_offset() -> None:
    config = apply_patch(Config(), patch(target="14:00:00"), NOW)
    assert config.target == "2026-02-03T14:00:00+03:00"
    utc = apply_patch(Config(), patch(target="2026-02-03T11:00:00Z"), NOW)
    assert datetime.fromisoformat(utc.target or "") == datetime(2026, 2, 3, 14, tzinfo=ISTANBUL)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("2026-02-03T14:00:00", "no UTC offset"),
        ("2026-02-03T09:00:00+03:00", "in the past"),
        ("tomorrow at two", "expected HH:MM:SS"),
        ("25:00:00", "expected HH:MM:SS"),
    ],
)
def test_bad_targets_are_refused_with_a_reason(text: str, words: str) -> None:
    error = refused(target=text)
    assert error.field == "$.config.target" and words in str(error)


def test_duplicate_crns_are_refused_even_across_lists() -> None:
    assert refused(ecrn=["12345", "12345"]).field == "$.config.ecrn[1]"
    assert refused(ecrn=["12345"], scrn=["12345"]).field == "$.config.scrn[0]"


def test_more_than_twelve_crns_in_total_are_refused() -> None:
    error = refused(
        ecrn=[str(10000 + i) for i in range(8)], scrn=[str(20000 + i) for i in range(5)]
    )
    assert "13 CRNs" in str(error) and "VAL15" in str(error)
    apply_patch(Config(), patch(ecrn=[str(10000 + i) for i in range(12)]), NOW)


def test_a_patch_that_fails_leaves_nothing_half_applied() -> None:
    config = Config(ecrn=("11111",))
    with pytest.raises(ConfigError):
        apply_patch(config, patch(ecrn=["22222"], target="nonsense"), NOW)
    assert config.ecrn == ("11111",)


@pytest.mark.parametrize(
    "server", ["pool.ntp.org", "127.0.0.1:12345", "[::1]:123", "[::1]", "time-a.example.com"]
)
def test_ntp_server_forms_accepted(server: str) -> None:
    assert apply_patch(Config(), patch(ntp_servers=[server]), NOW).ntp_servers == (server,)


@pytest.mark.parametrize("server", ["host:99999", "::1", "bad host", "host:", "-x.org"])
def test_ntp_server_forms_refused(server: str) -> None:
    assert refused(ntp_servers=["pool.ntp.org", server]).field == "$.config.ntp_servers[1]"


@pytest.mark.parametrize(
    "url",
    ["ftp://obs.itu.edu.tr", "obs.itu.edu.tr", "https://obs.itu.edu.tr/api", "https://user@host"],
)
def test_base_url_must_be_scheme_host_port(url: str) -> None:
    assert refused(obs_base_url=url).field == "$.config.obs_base_url"


def test_base_url_trailing_slash_is_dropped() -> None:
    config = apply_patch(Config(), patch(obs_base_url="http://127.0.0.1:8080/"), NOW)
    assert config.obs_base_url == "http://127.0.0.1:8080"


# A valid value for each patch field that differs from the default.
CHANGES: dict[str, object] = {
    "ecrn": ["21234"],
    "scrn": ["20456"],
    "target": "14:00:00",
    "max_attempts": 7,
    "retry_interval": 4.0,
    "safety_buffer": 0.02,
    "obs_base_url": "http://127.0.0.1:8080",
    "ntp_servers": ["pool.ntp.org"],
    "retry_full": True,
    "backup": {"21234": "21235"},
    "budget_posts": 5,
    "budget_window": 120.0,
    "read_timeout": 20.0,
    "aim_early_fraction": 0.5,
    "late_start_window": 600.0,
}


@pytest.mark.parametrize("field", [f for f in ConfigPatch.__struct_fields__ if f not in PATCH_ONLY])
def test_every_patch_field_is_applied(field: str) -> None:
    assert field in CHANGES, f"add an example value for the new field {field!r}"
    fields = {field: CHANGES[field]} | ({"ecrn": ["21234"]} if field == "backup" else {})
    changed = apply_patch(Config(), patch(**fields), NOW)
    assert getattr(changed, field) != getattr(Config(), field), f"{field} was not applied"


def test_a_long_ecrn_list_gets_advice_on_its_order() -> None:
    three = Config(ecrn=("21234", "22001", "24010"))
    assert plan_warnings(three) == [], "the last waits at most 2.2 s"
    four = Config(ecrn=("21234", "22001", "24010", "24020"))
    assert plan_warnings(four) == [
        "OBS handles the 4 ECRNs one after another in this order, 0.17-1.1 s each on a busy "
        "opening: the last (24020) may wait 0.5-3.3 s for its turn, while its seats fill; put "
        "the most contested course first (obsctl configure --ecrn-first CRN)"
    ]


def test_a_read_timeout_shorter_than_a_busy_answer_gets_advice() -> None:
    five = Config(ecrn=("21234", "22001", "24010"), scrn=("20456", "23100"), read_timeout=5.0)
    assert plan_warnings(five) == [
        "read_timeout 5 s is shorter than OBS may take to answer 5 CRNs on a busy opening (up "
        "to 5.5 s): each answer could come too late to be read, and every attempt end unknown; "
        "set --read-timeout 9 or more"
    ]
    # The default 30 s is enough for OBS's largest list, 12 CRNs at the slow end.
    assert not any("read_timeout" in w for w in plan_warnings(Config(ecrn=("21234",) * 12)))
