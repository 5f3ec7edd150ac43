"""Every configuration field has an obsctl option, which sets exactly that field."""

from typing import Any

import pytest

from obsctl import configure
from obsctl.cli import _parser
from obsd.core.config import PATCH_ONLY, ConfigPatch

# A command-line value for each field, and what it must put in the patch.
EXAMPLES: dict[str, tuple[list[str], Any]] = {
    "ecrn": (["21234", "21345"], ["21234", "21345"]),
    "scrn": (["20456"], ["20456"]),
    "target": (["14:00:00"], "14:00:00"),
    "max_attempts": (["20"], 20),
    "retry_interval": (["4"], 4.0),
    "safety_buffer": (["0.01"], 0.01),
    "obs_base_url": (["http://127.0.0.1:8080"], "http://127.0.0.1:8080"),
    "ntp_servers": (["pool.ntp.org"], ["pool.ntp.org"]),
    "retry_full": ([], True),
    "backup": (["22001=22002"], {"22001": "22002"}),
    "budget_posts": (["10"], 10),
    "budget_window": (["120"], 120.0),
    "read_timeout": (["20"], 20.0),
    "aim_early_fraction": (["0.5"], 0.5),
    "late_start_window": (["600"], 600.0),
}
FIELDS = [name for name in ConfigPatch.__struct_fields__ if name not in PATCH_ONLY]


def test_the_options_are_the_patch_fields() -> None:
    assert list(configure.FIELDS) == FIELDS
    assert set(configure.OPTIONS) == set(FIELDS), "an option for every field, and no other"


@pytest.mark.parametrize("field", FIELDS)
def test_each_option_sets_its_field_and_nothing_else(field: str) -> None:
    assert field in EXAMPLES, f"add a command-line example for the new field {field!r}"
    words, expected = EXAMPLES[field]
    args = _parser().parse_args(["configure", configure.flag(field), *words])
    assert configure.config_patch(args, no_daemon) == {field: expected}


def no_daemon() -> list[str]:
    raise AssertionError("only --ecrn-first alone asks the daemon for its list")


def patch_of(*argv: str, current: list[str] | None = None) -> dict[str, object]:
    args = _parser().parse_args(["configure", *argv])
    return configure.config_patch(args, no_daemon if current is None else lambda: current)


def test_ecrn_first_reorders_the_daemons_list_without_retyping_it() -> None:
    listed = ["21234", "22001", "24010", "24020"]
    assert patch_of("--ecrn-first", "24020", current=listed) == {
        "ecrn": ["24020", "21234", "22001", "24010"]
    }
    assert patch_of("--ecrn-first", "24010", "22001", current=listed) == {
        "ecrn": ["24010", "22001", "21234", "24020"]
    }


def test_ecrn_first_with_a_new_list_reorders_that_one() -> None:
    assert patch_of("--ecrn", "11111", "22222", "--ecrn-first", "22222") == {
        "ecrn": ["22222", "11111"]
    }


def test_ecrn_first_names_a_crn_that_is_not_in_the_list() -> None:
    with pytest.raises(configure.UsageError, match="--ecrn-first: 99999 not in the ECRN list"):
        patch_of("--ecrn-first", "99999", current=["21234"])
