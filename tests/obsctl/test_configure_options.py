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
    assert configure.config_patch(args) == {field: expected}
