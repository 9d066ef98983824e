"""Agreement in force between two parties (CIS Art. 22–24; SC Art. 13)."""

from __future__ import annotations

from datetime import date

from gateway.model.problems import Severity
from gateway.model.profiles import CIS_ENFORCEMENT, RU_KZ_SUPREME_COURTS, Participation
from gateway.rules.in_force import (
    SC_SIGNED_ON,
    agreement_in_force_problems,
    cis_earliest_withdrawal,
    cis_entry_into_force,
    sc_participations,
    sc_termination_date,
)

CIS, SC = CIS_ENFORCEMENT, RU_KZ_SUPREME_COURTS


def _cis_rows(kz_withdrawn_from: date | None = None) -> list[Participation]:
    return [
        Participation("RU", CIS.id, date(2026, 3, 1)),
        Participation("KZ", CIS.id, date(2026, 6, 1), kz_withdrawn_from),
        Participation("BY", CIS.id, None),  # signed, notification not yet deposited
        Participation("KZ", SC.id, SC_SIGNED_ON),  # another agreement: ignored
    ]


def test_cis_entry_into_force_boundary() -> None:
    rows = _cis_rows()
    [p] = agreement_in_force_problems(CIS, rows, "RU", "KZ", on=date(2026, 5, 31))
    assert (p.code, p.severity, p.article) == (
        "AGREEMENT_NOT_IN_FORCE",
        Severity.ERROR,
        "CIS Art. 22–23",
    )
    assert "KZ" in p.message_ru and "2026-06-01" in p.message_ru
    assert p.path == "/Envelope/Header/Agreement"
    assert agreement_in_force_problems(CIS, rows, "RU", "KZ", on=date(2026, 6, 1)) == []
    assert agreement_in_force_problems(CIS, rows, "KZ", "RU", on=date(2026, 6, 1)) == []


def test_cis_party_without_notification_or_row() -> None:
    rows = _cis_rows()
    [p] = agreement_in_force_problems(CIS, rows, "BY", "RU", on=date(2026, 11, 23))
    assert p.code == "AGREEMENT_NOT_IN_FORCE" and "BY" in p.message_ru
    problems = agreement_in_force_problems(CIS, rows, "AM", "UZ", on=date(2026, 11, 23))
    assert [p.code for p in problems] == ["AGREEMENT_NOT_IN_FORCE"] * 2


def test_cis_withdrawal_boundary_new_conversations_refused() -> None:
    rows = _cis_rows(kz_withdrawn_from=date(2027, 3, 1))
    assert agreement_in_force_problems(CIS, rows, "RU", "KZ", on=date(2027, 2, 28)) == []
    [p] = agreement_in_force_problems(CIS, rows, "RU", "KZ", on=date(2027, 3, 1))
    assert (p.code, p.article, p.severity) == ("AGREEMENT_WITHDRAWN", "CIS Art. 24", Severity.ERROR)
    # One begun on the day the withdrawal took effect was never covered.
    [p] = agreement_in_force_problems(
        CIS, rows, "RU", "KZ", on=date(2027, 3, 2), conversation_started_on=date(2027, 3, 1)
    )
    assert p.code == "AGREEMENT_WITHDRAWN"


def test_cis_withdrawal_lets_a_conversation_begun_before_be_completed() -> None:
    # Art. 24: a party leaves "урегулировав ... обязательства, возникшие за время действия"; a
    # request received on the last day in force is answered after the withdrawal took effect.
    rows = _cis_rows(kz_withdrawn_from=date(2027, 3, 1))
    problems = agreement_in_force_problems(
        CIS, rows, "RU", "KZ", on=date(2027, 6, 1), conversation_started_on=date(2027, 2, 28)
    )
    assert [(p.code, p.article, p.severity) for p in problems] == [
        ("AGREEMENT_TERMINATED_CONVERSATION_CONTINUES", "CIS Art. 24", Severity.WARNING)
    ]


def test_cis_rejoining_after_withdrawal() -> None:
    rows = [
        Participation("RU", CIS.id, date(2026, 3, 1)),
        Participation("KZ", CIS.id, date(2026, 6, 1), date(2027, 3, 1)),
        Participation("KZ", CIS.id, date(2028, 1, 1)),
    ]
    [p] = agreement_in_force_problems(CIS, rows, "RU", "KZ", on=date(2027, 6, 1))
    assert p.code == "AGREEMENT_WITHDRAWN"
    assert agreement_in_force_problems(CIS, rows, "RU", "KZ", on=date(2028, 1, 1)) == []


def test_sc_in_force_from_signature() -> None:
    rows = sc_participations()
    assert {p.in_force_from for p in rows} == {date(2026, 4, 14)}  # signed in Moscow (Art. 13.1)
    assert agreement_in_force_problems(SC, rows, "RU", "KZ", on=date(2026, 4, 14)) == []
    problems = agreement_in_force_problems(SC, rows, "RU", "KZ", on=date(2026, 4, 13))
    assert [(p.code, p.article) for p in problems] == [
        ("AGREEMENT_NOT_IN_FORCE", "SC Art. 13.1")
    ] * 2


def test_sc_termination_with_a_conversation_begun_before() -> None:
    # Notice received Mon 23 Nov 2026. 60 days from the next day: 24-30 Nov = 7, December = 38,
    # 1-22 Jan = 60. In force through 22 Jan 2027; terminated from 23 Jan.
    ends = sc_termination_date(date(2026, 11, 23))
    assert ends == date(2027, 1, 23)
    rows = sc_participations(terminated_from=ends)
    assert agreement_in_force_problems(SC, rows, "KZ", "RU", on=date(2027, 1, 22)) == []
    problems = agreement_in_force_problems(SC, rows, "KZ", "RU", on=ends)
    assert [(p.code, p.article) for p in problems] == [("AGREEMENT_WITHDRAWN", "SC Art. 13.2")] * 2
    # A conversation begun on the last day in force continues (a warning, no error).
    problems = agreement_in_force_problems(
        SC, rows, "KZ", "RU", on=date(2027, 5, 1), conversation_started_on=date(2027, 1, 22)
    )
    assert {p.code for p in problems} == {"AGREEMENT_TERMINATED_CONVERSATION_CONTINUES"}
    assert all(p.severity is Severity.WARNING for p in problems)
    # One begun on the termination day does not.
    problems = agreement_in_force_problems(
        SC, rows, "KZ", "RU", on=ends, conversation_started_on=ends
    )
    assert {p.code for p in problems} == {"AGREEMENT_WITHDRAWN"}


def test_cis_entry_into_force_from_notification() -> None:
    # Received 2 Mar 2026; 30 days from 3 Mar: 3-31 Mar = 29, 1 Apr = 30; in force from 2 Apr.
    assert cis_entry_into_force(date(2026, 3, 2)) == date(2026, 4, 2)
    # Over a year end: 15 Dec 2026 → 16-31 Dec = 16, 1-14 Jan = 30 → 15 Jan 2027.
    assert cis_entry_into_force(date(2026, 12, 15)) == date(2027, 1, 15)


def test_cis_earliest_withdrawal() -> None:
    assert cis_earliest_withdrawal(date(2026, 11, 23)) == date(2027, 2, 23)
    assert cis_earliest_withdrawal(date(2026, 12, 31)) == date(2027, 3, 31)
    # 30 Nov + 3 months has no 30 February: the first day 3 full months later is 1 March.
    assert cis_earliest_withdrawal(date(2026, 11, 30)) == date(2027, 3, 1)
    assert cis_earliest_withdrawal(date(2027, 11, 29)) == date(2028, 2, 29)  # leap year
    assert cis_earliest_withdrawal(date(2026, 11, 29)) == date(2027, 3, 1)
