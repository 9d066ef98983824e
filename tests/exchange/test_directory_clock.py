"""The directory's zones and state calendars (CIS Art. 12; SC Art. 6.1): published, signed with
the rest, read back exactly, refused when a node could not use them."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from gateway.exchange.directory import build_directory_xml, directory_problems, parse_directory_xml
from gateway.model.directory import PublishedCalendar
from gateway.model.problems import DocumentRejected
from gateway.rules.clock import Calendars
from tests.exchange.test_directory import body, directory

KZ_2026 = PublishedCalendar(
    "KZ", 3, frozenset({date(2026, 7, 6), date(2026, 12, 18)}), frozenset({date(2026, 7, 4)})
)


def _published() -> object:
    base = directory()
    bodies = tuple(replace(b, zone="Asia/Almaty") if b.state == "KZ" else b for b in base.bodies)
    return replace(base, bodies=bodies, calendars=(KZ_2026, PublishedCalendar("RU", 1)))


def test_zones_and_calendars_round_trip_and_reach_the_clock() -> None:
    original = _published()
    data = build_directory_xml(original)  # type: ignore[arg-type]
    assert b"<dir:TimeZone>Asia/Almaty</dir:TimeZone>" in data
    assert b'<dir:StateCalendar state="KZ" version="3">' in data
    parsed = parse_directory_xml(data)
    assert parsed == original
    clock = Calendars.build(directory=parsed)
    kz_body = next(b.id for b in parsed.bodies if b.state == "KZ")
    assert clock.zone_name_of(kz_body) == "Asia/Almaty"
    assert not clock.calendar("KZ").is_working_day(date(2026, 7, 6))
    assert clock.calendar("KZ").is_working_day(date(2026, 7, 4))  # a Saturday, transferred
    assert clock.source("KZ").endswith("calendar KZ v3")


def test_a_directory_without_them_still_reads() -> None:
    parsed = parse_directory_xml(build_directory_xml(directory()))
    assert parsed.calendars == ()
    assert all(b.zone == "" for b in parsed.bodies)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (
            {"calendars": (PublishedCalendar("KZ", 1), PublishedCalendar("KZ", 2))},
            "DIRECTORY_CALENDAR_INVALID",
        ),
        (
            {
                "calendars": (
                    PublishedCalendar(
                        "KZ", 1, frozenset({date(2026, 7, 4)}), frozenset({date(2026, 7, 4)})
                    ),
                )
            },
            "DIRECTORY_CALENDAR_INVALID",
        ),
        ({"bodies": (body("KZ-MJ", zone="Asia/Nowhere"),)}, "DIRECTORY_TIME_ZONE_UNKNOWN"),
    ],
)
def test_unusable_zones_and_calendars_are_refused(change: dict[str, object], code: str) -> None:
    bad = replace(directory(), **change)
    assert code in {p.code for p in directory_problems(bad)}
    with pytest.raises(DocumentRejected):
        build_directory_xml(bad)
