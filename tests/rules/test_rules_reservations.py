"""Reservations: Art. 25 non-application (refusal) and the Kazakh reservation on Art. 6 а)."""

from __future__ import annotations

import pytest

from gateway.model.problems import ConfigurationError, Severity
from gateway.model.profiles import CIS_ENFORCEMENT, RU_KZ_SUPREME_COURTS, Reservation
from gateway.rules.reservations import (
    refusal_grounds_for,
    reservation_problems,
    validate_reservations,
)

CIS = CIS_ENFORCEMENT

# A fictitious Art. 25 declaration for the tests: Armenia does not apply the agreement to
# documents of non-judicial authorities and to notarised documents.
AM_ART25 = Reservation(
    state="AM",
    agreement=CIS.id,
    code="non-application",
    article="CIS Art. 25",
    text_ru="Не применяется к исполнительным документам несудебных органов и нотариальным.",
    issuer_kinds=frozenset({"authority", "notary"}),
)
ALL = (*CIS.reservations, AM_ART25)


@pytest.mark.parametrize(("requesting", "requested"), [("AM", "RU"), ("RU", "AM")])
@pytest.mark.parametrize("issuer", ["authority", "notary"])
def test_art25_declaration_by_either_party_is_an_error(
    requesting: str, requested: str, issuer: str
) -> None:
    [p] = reservation_problems(CIS, ALL, requesting, requested, issuer, {"Income"})
    assert (p.code, p.severity, p.article) == (
        "RESERVATION_ART25_NON_APPLICATION",
        Severity.ERROR,
        "CIS Art. 13, 25",
    )
    assert "AM" in p.message_ru
    role = "запрашивающая" if requesting == "AM" else "запрашиваемая"
    assert role in p.message_ru
    [ground] = refusal_grounds_for(CIS, ALL, requesting, requested, issuer)
    assert (ground.code, ground.declared_by, ground.reservation) == (
        "non-application-declaration",
        "AM",
        AM_ART25,
    )
    assert "статьёй 25" in ground.text_ru


@pytest.mark.parametrize("issuer", ["court", "official"])
def test_art25_declaration_not_covering_the_issuer(issuer: str) -> None:
    assert reservation_problems(CIS, ALL, "AM", "RU", issuer, {"Income"}) == []
    assert refusal_grounds_for(CIS, ALL, "AM", "RU", issuer) == ()


def test_art25_declaration_of_a_third_state_or_other_agreement_is_ignored() -> None:
    assert reservation_problems(CIS, ALL, "RU", "KZ", "notary", set()) == []
    other = Reservation(
        "AM", RU_KZ_SUPREME_COURTS.id, "non-application", "CIS Art. 25", "", frozenset({"notary"})
    )
    assert reservation_problems(CIS, [other], "AM", "RU", "notary", set()) == []


def test_unknown_issuer_with_a_declaration_warns() -> None:
    [p] = reservation_problems(CIS, ALL, "AM", "RU", None, set())
    assert (p.code, p.severity) == ("RESERVATION_ART25_ISSUER_UNKNOWN", Severity.WARNING)
    assert reservation_problems(CIS, ALL, "RU", "KZ", None, set()) == []
    assert refusal_grounds_for(CIS, ALL, "AM", "RU", None) == ()


def test_kazakh_reservation_on_bank_accounts_is_a_warning() -> None:
    [p] = reservation_problems(CIS, ALL, "RU", "KZ", "court", {"BankAccounts", "Vehicles"})
    assert (p.code, p.severity, p.article) == (
        "RESERVATION_KZ_ART6A",
        Severity.WARNING,
        "CIS Art. 6 а)",
    )
    assert p.path == "/Envelope/Body/Request/Subjects/Assets/Kind"
    assert "законодательству" in p.message_ru
    # The XSD's asset kind value works the same.
    [same] = reservation_problems(CIS, ALL, "RU", "KZ", "court", {"bank-accounts"})
    assert same == p
    # Not a ground for refusal.
    assert refusal_grounds_for(CIS, ALL, "RU", "KZ", "court") == ()


def test_kazakh_reservation_only_when_kazakhstan_is_asked_about_accounts() -> None:
    assert reservation_problems(CIS, ALL, "KZ", "RU", "court", {"BankAccounts"}) == []
    assert reservation_problems(CIS, ALL, "RU", "KZ", "court", {"RealEstate"}) == []
    # The SC profile has no reservations, whatever is passed for it.
    assert reservation_problems(RU_KZ_SUPREME_COURTS, ALL, "RU", "KZ", None, {"BankAccounts"}) == []


def test_both_at_once() -> None:
    am_kz = Reservation("KZ", CIS.id, "non-application", "CIS Art. 25", "", frozenset({"official"}))
    problems = reservation_problems(CIS, (*ALL, am_kz), "RU", "KZ", "official", {"BankAccounts"})
    assert [(p.code, p.severity) for p in problems] == [
        ("RESERVATION_ART25_NON_APPLICATION", Severity.ERROR),
        ("RESERVATION_KZ_ART6A", Severity.WARNING),
    ]


def test_unknown_issuer_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="issuer_kind"):
        reservation_problems(CIS, ALL, "RU", "KZ", "bailiff", set())
    with pytest.raises(ValueError, match="issuer_kind"):
        refusal_grounds_for(CIS, ALL, "RU", "KZ", "bailiff")


def test_validate_reservations() -> None:
    validate_reservations(ALL)  # the profile's and a well-formed declaration
    court = Reservation("AM", CIS.id, "non-application", "CIS Art. 25", "", frozenset({"court"}))
    empty = Reservation("AM", CIS.id, "non-application", "CIS Art. 25", "")
    unknown_code = Reservation("AM", CIS.id, "partial", "CIS Art. 25", "")
    unknown_article = Reservation("AM", CIS.id, "limits-article", "CIS Art. 7", "")
    for bad, words in [
        (court, "court"),
        (empty, "issuer_kinds"),
        (unknown_code, "partial"),
        (unknown_article, "CIS Art. 7"),
    ]:
        with pytest.raises(ConfigurationError, match=words):
            validate_reservations([bad])
