"""Reservations: Art. 25 non-application (refusal) and the Kazakh reservation on Art. 6 а)."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.model.problems import ConfigurationError, Severity
from gateway.model.profiles import CIS_ENFORCEMENT, RU_KZ_SUPREME_COURTS, Reservation
from gateway.rules.reservations import (
    in_effect,
    refusal_grounds_for,
    refusal_problems,
    reservation_problems,
    reservations_in_use,
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
    # Kazakhstan asking Russia: no limit on Russia's side, only the reciprocity note.
    [note] = reservation_problems(CIS, ALL, "KZ", "RU", "court", {"BankAccounts"})
    assert note.code != "RESERVATION_KZ_ART6A"
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


# A fictitious partial Art. 25 declaration (para. 2): Armenia does not apply the agreement to
# notarised documents only as far as bank accounts and real estate are asked about.
AM_PARTIAL = Reservation(
    state="AM",
    agreement=CIS.id,
    code="non-application",
    article="CIS Art. 25",
    text_ru="Не применяет подпункты а) и б) статьи 6 к нотариально заверенным документам.",
    issuer_kinds=frozenset({"notary"}),
    scope=frozenset({"bank-accounts", "real-estate"}),
)
ART25 = "non-application-declaration"


def test_partial_declaration_covers_only_the_items_it_names() -> None:
    # Every item covered: as a full declaration, an error.
    [full] = reservation_problems(
        CIS, [AM_PARTIAL], "RU", "AM", "notary", {"Assets", "bank-accounts"}
    )
    assert (full.code, full.severity) == ("RESERVATION_ART25_NON_APPLICATION", Severity.ERROR)
    # Some covered: a warning naming them; the rest must be executed.
    [part] = reservation_problems(
        CIS, [AM_PARTIAL], "RU", "AM", "notary", {"Assets", "bank-accounts", "Location"}
    )
    assert (part.code, part.severity, part.article) == (
        "RESERVATION_ART25_PARTIAL",
        Severity.WARNING,
        "CIS Art. 25",
    )
    assert "bank-accounts" in part.message_ru and "Location" not in part.message_ru
    # None covered: nothing.
    assert reservation_problems(CIS, [AM_PARTIAL], "RU", "AM", "notary", {"Location"}) == []
    # The console's grounds: only where the declaration covers every subject.
    assert refusal_grounds_for(CIS, [AM_PARTIAL], "RU", "AM", "notary", {"Location"}) == ()
    [ground] = refusal_grounds_for(CIS, [AM_PARTIAL], "RU", "AM", "notary", {"real-estate"})
    assert ground.reservation == AM_PARTIAL


def test_refusal_citing_a_declaration_nobody_made_is_an_error() -> None:
    [p] = refusal_problems(CIS, CIS.reservations, "RU", "KZ", [ART25], ("notary", {"Location"}))
    assert (p.code, p.severity, p.article, p.path) == (
        "RESERVATION_ART25_UNDECLARED",
        Severity.ERROR,
        "CIS Art. 13, 25",
        "/Envelope/Body/Refusal/Ground",
    )
    # Even without the request's facts, the declaration's absence is known from the directory.
    assert [q.code for q in refusal_problems(CIS, (), "RU", "KZ", [ART25], None)] == [p.code]
    # Other grounds are not this rule's.
    assert refusal_problems(CIS, (), "RU", "KZ", ["security"], ("notary", set())) == []


def test_refusal_on_art25_must_match_the_declaration() -> None:
    [issuer] = refusal_problems(CIS, [AM_PARTIAL], "RU", "AM", [ART25], ("court", {"Location"}))
    assert (issuer.code, issuer.severity) == ("RESERVATION_ART25_NOT_COVERED", Severity.ERROR)
    facts = ("notary", {"Assets", "bank-accounts", "Location"})
    [alone] = refusal_problems(CIS, [AM_PARTIAL], "RU", "AM", [ART25], facts)
    assert (alone.code, alone.severity) == ("RESERVATION_ART25_OUT_OF_SCOPE", Severity.ERROR)
    assert "Location" in alone.message_ru
    [beside] = refusal_problems(CIS, [AM_PARTIAL], "RU", "AM", [ART25, "security"], facts)
    assert (beside.code, beside.severity) == ("RESERVATION_ART25_OUT_OF_SCOPE", Severity.WARNING)
    covered = ("notary", {"Assets", "real-estate"})
    assert refusal_problems(CIS, [AM_PARTIAL], "RU", "AM", [ART25], covered) == []


def test_reciprocity_note_where_the_requesting_state_declared() -> None:
    # The refusing state (RU) applies Armenia's own declaration towards Armenia.
    [note] = refusal_problems(CIS, [AM_ART25], "AM", "RU", [ART25], ("notary", {"Location"}))
    assert (note.code, note.severity) == ("RESERVATION_RECIPROCITY", Severity.WARNING)
    assert "21" in note.article and "AM" in note.message_ru and "RU" in note.message_ru
    # Kazakhstan asking Russia about bank accounts: Russia may limit the answer in return.
    [kz] = reservation_problems(CIS, CIS.reservations, "KZ", "RU", "court", {"bank-accounts"})
    assert (kz.code, kz.severity) == ("RESERVATION_RECIPROCITY", Severity.WARNING)
    assert kz.article.startswith("CIS Art. 6 а)")
    # Asked about something else, no note.
    assert reservation_problems(CIS, CIS.reservations, "KZ", "RU", "court", {"vehicles"}) == []


def test_the_directory_is_the_source_the_profile_only_a_fallback() -> None:
    assert reservations_in_use(CIS.reservations, [], directory_has_any=False) == CIS.reservations
    assert reservations_in_use(CIS.reservations, [AM_ART25], directory_has_any=True) == (AM_ART25,)
    # A directory publishing reservations but none for Kazakhstan: Kazakhstan has none.
    assert reservations_in_use(CIS.reservations, [], directory_has_any=True) == ()


def test_a_declaration_applies_from_its_date() -> None:
    later = Reservation(**{**_fields(AM_ART25), "since": date(2026, 3, 1)})
    assert in_effect([later], date(2026, 2, 28)) == ()
    assert in_effect([later], date(2026, 3, 1)) == (later,)


def test_scope_only_on_a_non_application_declaration() -> None:
    bad = Reservation(**{**_fields(CIS.reservations[0]), "scope": frozenset({"bank-accounts"})})
    with pytest.raises(ConfigurationError, match="scope"):
        validate_reservations([bad])


def _fields(r: Reservation) -> dict[str, object]:
    return {name: getattr(r, name) for name in Reservation.__dataclass_fields__}
