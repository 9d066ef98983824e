"""The node's [calendar] section gives the working calendars real dates (both TOML dates and
"YYYY-MM-DD" strings), and refuses anything else at load, naming the key."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from gateway.config import NodeConfig
from gateway.model.problems import ConfigurationError
from gateway.rules.calendars import calendar_for

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, calendar: str) -> NodeConfig:
    path = tmp_path / "node.toml"
    path.write_text(f'[node]\nbody_id = "RU-FSSP"\n[calendar]\n{calendar}\n', encoding="utf-8")
    return NodeConfig.from_toml(path)


def test_dates_and_date_strings_reach_the_calendar(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        'extra_days_off = { KZ = ["2026-12-31", 2026-12-30] }\n'
        "extra_working_days = { RU = [2026-12-26] }",
    )
    calendar = config.calendar
    assert calendar.extra_days_off == {"KZ": (date(2026, 12, 31), date(2026, 12, 30))}
    kz = calendar_for("KZ", extra_days_off=calendar.extra_days_off["KZ"])
    assert not kz.is_working_day(date(2026, 12, 31))  # a Thursday, made a day off
    ru = calendar_for("RU", extra_working_days=calendar.extra_working_days["RU"])
    assert ru.is_working_day(date(2026, 12, 26))  # a Saturday, made a working day


@pytest.mark.parametrize("value", ['"31.12.2026"', "2026-12-31T10:00:00", "20261231"])
def test_anything_but_a_date_is_refused_at_load(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigurationError, match=r"\[calendar\] extra_days_off\.KZ.*2026-12-31"):
        _config(tmp_path, f"extra_days_off = {{ KZ = [{value}] }}")


def test_the_example_configuration_calendar_builds() -> None:
    text = (ROOT / "config" / "node.example.toml").read_text(encoding="utf-8")
    assert "[calendar]" in text
    config = NodeConfig.from_toml(ROOT / "config" / "node.example.toml")
    for state, days in config.calendar.extra_days_off.items():
        calendar_for(state, extra_days_off=days)
