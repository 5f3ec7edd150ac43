"""SimConfig: JSON loading, limits, cross-checks and the default catalogue."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from obsd.sim.config import (
    Course,
    FaultRule,
    SimConfig,
    SimConfigError,
    Student,
    default_config,
    load_config,
    validate_config,
)
from obsd.sim.rules import Registrar


def test_a_json_file_loads_with_tuples_for_slots(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    path.write_text("""{
      "opening_at": 1770000000.5, "clock_offset_s": -3600, "debounce_s": 3.0,
      "courses": [{"crn": "21234", "quota": 40, "slots": [["Mon", "08:30", "11:30"]]}],
      "students": [{"subject": "150200001", "registered": ["21234"]}],
      "faults": [{"kind": "http_503", "on_posts": [1, 3]}]
    }""")
    config = load_config(path)
    assert config.opening_at == 1770000000.5 and config.clock_offset_s == -3600
    assert config.courses[0].slots == [("Mon", "08:30", "11:30")]
    assert config.faults == [FaultRule(kind="http_503", on_posts=[1, 3])]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"courses": [{"crn": "2123", "quota": 1}]}', "courses[0].crn"),
        ('{"courses": [{"crn": "21234", "quota": -1}]}', "courses[0].quota"),
        (
            '{"courses": [{"crn": "21234", "quota": 1, "slots": [["Mon", "8:30", "9:30"]]}]}',
            "slots",
        ),
        (
            '{"courses": [{"crn": "21234", "quota": 1, "slots": [["Xyz", "08:30", "09:30"]]}]}',
            "slots",
        ),
        ('{"debounce": 3}', "unknown field"),
        ('{"faults": [{"kind": "explode", "on_posts": [1]}]}', "kind"),
        ('{"date_phase_s": 1.5}', "date_phase_s"),
        ("{not json", "malformed"),
    ],
)
def test_bad_files_are_refused_with_the_place(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "sim.json"
    path.write_text(text)
    with pytest.raises(SimConfigError, match=re.compile(re.escape(fragment), re.IGNORECASE)):
        load_config(path)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(SimConfigError, match="cannot read"):
        load_config(tmp_path / "absent.json")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            SimConfig(courses=[Course(crn="21234", quota=1), Course(crn="21234", quota=2)]),
            "listed twice",
        ),
        (SimConfig(students=[Student(subject="a"), Student(subject="a")]), "listed twice"),
        (SimConfig(students=[Student(subject="a", registered=["21234"])]), "not in courses"),
        (
            SimConfig(courses=[Course(crn="21234", quota=1, slots=[("Mon", "10:00", "09:00")])]),
            "ends before it starts",
        ),
        (SimConfig(faults=[FaultRule(kind="reset")]), "exactly one"),
        (SimConfig(faults=[FaultRule(kind="reset", on_posts=[1], probability=0.5)]), "exactly one"),
        (SimConfig(faults=[FaultRule(kind="reset", on_posts=[0])]), "on_posts"),
        (SimConfig(volume_limit=0), "volume_limit"),
    ],
)
def test_inconsistent_configs_are_refused(config: SimConfig, message: str) -> None:
    with pytest.raises(SimConfigError, match=message):
        validate_config(config)


def test_lists_given_in_python_are_accepted() -> None:
    config = SimConfig(courses=[Course(crn="21234", quota=1, slots=[("Mon", "08:30", "09:30")])])
    assert validate_config(config).courses[0].slots == [("Mon", "08:30", "09:30")]


def test_default_catalogue_has_every_situation_the_demo_needs() -> None:
    config = validate_config(default_config())
    registrar = Registrar(config)
    student = config.students[0].subject
    result = registrar.register(
        student, ["21234", "22001", "22002", "23100", "24010", "24020"], ["20456"], 0
    )
    assert [r.result_code for r in result.ecrn_result_list] == [
        "successResult",
        "VAL06",
        "successResult",
        "VAL11",
        "successResult",
        "VAL09",
    ]
    assert [r.result_code for r in result.scrn_result_list] == ["successResult"]
    assert config.opening_at is None


def test_a_config_round_trips_through_json() -> None:
    config = validate_config(default_config())
    assert msgspec.json.decode(msgspec.json.encode(config), type=SimConfig) == config


def test_a_processing_range_must_run_low_to_high() -> None:
    with pytest.raises(SimConfigError, match=r"crn_processing_s: 1.1 is above 0.17"):
        validate_config(SimConfig(crn_processing_s=(1.1, 0.17)))
