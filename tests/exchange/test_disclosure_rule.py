"""The disclosure rule alone (no I/O): CIS Art. 9.1–9.3, 16; SC Art. 8.1–8.2."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gateway.exchange.conversation import ConsentRecord, Conversation, Role, State
from gateway.exchange.disclosure import ConsentScope, Decision, RecipientCategory, may_disclose
from gateway.model.profiles import CIS_ENFORCEMENT, RU_KZ_SUPREME_COURTS, AgreementProfile

AT = datetime(2026, 12, 22, 7, 0, tzinfo=UTC)
RESPONSE = "67cb4354-9eee-5402-a4c2-29c38fb53605"
OTHER_MESSAGE = "7a1b0c52-08f4-4a77-9c3a-8f3f1f0e2b11"
CONSENT_REQUEST = "5c27ac86-0f3f-5636-b097-d7f8e39b573d"
TRUSTEE = "Арбитражный управляющий Образцова Мария Сергеевна"
R, D = Role.REQUESTING, Role.REQUESTED
CREDITOR, DEBTOR, THIRD = (
    RecipientCategory.CREDITOR,
    RecipientCategory.DEBTOR,
    RecipientCategory.THIRD_PARTY,
)


def conversation(
    agreement: AgreementProfile = CIS_ENFORCEMENT, *consents: ConsentRecord
) -> Conversation:
    return Conversation(
        conversation_id="1edac772-394a-5b56-b942-42bd22845d32",
        agreement=agreement.id,
        state=State.ANSWERED,
        consents=consents,
    )


def granted(by: Role = D, at: datetime = AT, request_id: str = CONSENT_REQUEST) -> ConsentRecord:
    return ConsentRecord(request_id, "granted", by, at)


SCOPE = {CONSENT_REQUEST: ConsentScope(CONSENT_REQUEST, TRUSTEE, RESPONSE)}


def judge(
    conv: Conversation,
    category: RecipientCategory,
    *,
    provided_by: Role = D,
    own_role: Role = R,
    recipient: str = TRUSTEE,
    purpose: str = "Включение сведений в конкурсную массу",
    message_id: str = RESPONSE,
    confidential: bool = False,
    scopes: dict[str, ConsentScope] | None = None,
    released: bool = False,
) -> Decision:
    profile = CIS_ENFORCEMENT if conv.agreement == CIS_ENFORCEMENT.id else RU_KZ_SUPREME_COURTS
    return may_disclose(
        conv,
        profile,
        category,
        provided_by,
        own_role=own_role,
        message_id=message_id,
        recipient=recipient,
        purpose=purpose,
        confidential=confidential,
        consent_scopes=SCOPE if scopes is None else scopes,
        confidentiality_released=released,
    )


@pytest.mark.parametrize(
    ("category", "article", "code"),
    [
        (DEBTOR, "CIS Art. 9.2", "DISCLOSURE_PARTY_OF_PROCEEDING"),
        (CREDITOR, "CIS Art. 9.3", "DISCLOSURE_CREDITOR"),
    ],
)
def test_cis_parties_of_the_proceeding_need_no_consent(
    category: RecipientCategory, article: str, code: str
) -> None:
    decision = judge(conversation(), category, recipient="Примеров Игорь Витальевич")
    assert (decision.allowed, decision.article, decision.code) == (True, article, code)
    assert decision.consent_request_id is None


def test_cis_creditor_disclosure_names_the_extent_of_art_9_3() -> None:
    decision = judge(conversation(), CREDITOR, recipient="ООО «Северный ветер»")
    assert "в той мере" in decision.reason_ru and "суд" in decision.reason_ru


def test_cis_third_party_without_consent_is_refused_naming_art_9_2_and_the_remedy() -> None:
    decision = judge(conversation(), THIRD)
    assert not decision.allowed
    assert decision.article == "CIS Art. 9.2"
    assert decision.code == "DISCLOSURE_CONSENT_REQUIRED"
    assert "ConsentRequest" in decision.remedy_ru and RESPONSE in decision.remedy_ru
    assert "CIS Art. 9.2" in decision.summary()


def test_cis_third_party_with_the_providers_consent_is_allowed() -> None:
    decision = judge(conversation(CIS_ENFORCEMENT, granted()), THIRD)
    assert (decision.allowed, decision.article, decision.code) == (
        True,
        "CIS Art. 9.2",
        "DISCLOSURE_CONSENTED",
    )
    assert decision.consent_request_id == CONSENT_REQUEST


def test_recipient_names_match_after_normalisation_only() -> None:
    conv = conversation(CIS_ENFORCEMENT, granted())
    same = "арбитражный управляющий  ОБРАЗЦОВА Мария Сергеевна"
    assert judge(conv, THIRD, recipient=same).allowed
    assert not judge(conv, THIRD, recipient="ООО «Коллекторское агентство»").allowed


@pytest.mark.parametrize(
    ("consent", "scopes", "message_id", "why"),
    [
        (granted(by=R), None, RESPONSE, "decided by the wrong party"),
        (granted(), {}, RESPONSE, "no ConsentRequest document behind it"),
        (granted(), None, OTHER_MESSAGE, "consent was for another message"),
        (
            ConsentRecord(CONSENT_REQUEST, "refused", D, AT),
            None,
            RESPONSE,
            "the provider refused",
        ),
    ],
)
def test_consent_counts_only_from_the_provider_for_this_recipient_and_message(
    consent: ConsentRecord, scopes: dict[str, ConsentScope] | None, message_id: str, why: str
) -> None:
    decision = judge(
        conversation(CIS_ENFORCEMENT, consent), THIRD, scopes=scopes, message_id=message_id
    )
    assert not decision.allowed, why
    assert decision.article == "CIS Art. 9.2"


def test_a_consent_request_without_a_message_id_covers_the_providers_documents() -> None:
    scopes = {CONSENT_REQUEST: ConsentScope(CONSENT_REQUEST, TRUSTEE, None)}
    conv = conversation(CIS_ENFORCEMENT, granted())
    assert judge(conv, THIRD, scopes=scopes, message_id=OTHER_MESSAGE).allowed


def test_a_later_refusal_outweighs_an_earlier_grant() -> None:
    second = "9d1f5a8e-3c4b-4e2a-8f6d-1b2c3d4e5f60"
    scopes = {**SCOPE, second: ConsentScope(second, TRUSTEE, RESPONSE)}
    later = ConsentRecord(second, "refused", D, AT + timedelta(days=1))
    decision = judge(conversation(CIS_ENFORCEMENT, granted(), later), THIRD, scopes=scopes)
    assert (decision.allowed, decision.code) == (False, "DISCLOSURE_CONSENT_REFUSED")
    earlier = replace(later, at=AT - timedelta(days=1))
    assert judge(conversation(CIS_ENFORCEMENT, granted(), earlier), THIRD, scopes=scopes).allowed


@pytest.mark.parametrize("category", list(RecipientCategory))
def test_sc_every_disclosure_needs_prior_written_consent(category: RecipientCategory) -> None:
    refused = judge(conversation(RU_KZ_SUPREME_COURTS), category)
    assert (refused.allowed, refused.article) == (False, "SC Art. 8.2")
    assert "письменного согласия" in refused.reason_ru
    allowed = judge(conversation(RU_KZ_SUPREME_COURTS, granted()), category)
    assert (allowed.allowed, allowed.article) == (True, "SC Art. 8.2")


@pytest.mark.parametrize("category", list(RecipientCategory))
def test_cis_requested_party_keeps_a_confidential_request_from_everyone(
    category: RecipientCategory,
) -> None:
    decision = judge(conversation(), category, provided_by=R, own_role=D, confidential=True)
    assert (decision.allowed, decision.article) == (False, "CIS Art. 16")
    assert decision.code == "DISCLOSURE_REQUEST_CONFIDENTIAL"
    assert "ConfidentialityNotice" in decision.remedy_ru


def test_cis_confidentiality_released_by_the_requesting_party_lets_art_9_apply() -> None:
    conv = conversation()
    decision = judge(conv, DEBTOR, provided_by=R, own_role=D, confidential=True, released=True)
    assert (decision.allowed, decision.article) == (True, "CIS Art. 9.2")


def test_cis_requested_party_cannot_ask_consent_so_the_remedy_says_so() -> None:
    decision = judge(conversation(), THIRD, provided_by=R, own_role=D)
    assert not decision.allowed
    assert "только запрашивающей" in decision.remedy_ru


def test_sc_requested_party_may_disclose_a_confidential_request_with_consent() -> None:
    conv = conversation(RU_KZ_SUPREME_COURTS, granted(by=R))
    decision = judge(conv, THIRD, provided_by=R, own_role=D, confidential=True)
    assert decision.allowed and decision.consent_request_id == CONSENT_REQUEST
    assert not judge(
        conversation(RU_KZ_SUPREME_COURTS), THIRD, provided_by=R, own_role=D, confidential=True
    ).allowed


def test_own_documents_are_outside_art_9_2_except_a_confidential_request_kept() -> None:
    assert judge(conversation(), THIRD, provided_by=R, own_role=R).code == "DISCLOSURE_OWN_DOCUMENT"
    # The requested party's own answer in a confidential conversation reveals the request.
    kept = judge(conversation(), THIRD, provided_by=D, own_role=D, confidential=True)
    assert (kept.allowed, kept.article) == (False, "CIS Art. 16")
    # The requesting party's own documents stay its own, confidential or not.
    assert judge(conversation(), THIRD, provided_by=R, own_role=R, confidential=True).allowed


@pytest.mark.parametrize(
    ("purpose", "recipient", "code"),
    [
        ("", TRUSTEE, "DISCLOSURE_PURPOSE_REQUIRED"),
        ("   ", TRUSTEE, "DISCLOSURE_PURPOSE_REQUIRED"),
        ("x" * 501, TRUSTEE, "DISCLOSURE_PURPOSE_REQUIRED"),
        ("иск", "", "DISCLOSURE_RECIPIENT_REQUIRED"),
        ("иск", " - . ", "DISCLOSURE_RECIPIENT_REQUIRED"),
        ("иск", "Я" * 501, "DISCLOSURE_RECIPIENT_TOO_LONG"),
    ],
)
def test_purpose_and_recipient_are_required_even_for_the_debtor(
    purpose: str, recipient: str, code: str
) -> None:
    decision = judge(conversation(), DEBTOR, purpose=purpose, recipient=recipient)
    assert (decision.allowed, decision.code) == (False, code)
    assert decision.article == "CIS Art. 9.1"


def test_a_profile_other_than_the_conversations_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="cis-enforcement"):
        may_disclose(
            conversation(),
            RU_KZ_SUPREME_COURTS,
            DEBTOR,
            D,
            own_role=R,
            message_id=RESPONSE,
            recipient=TRUSTEE,
            purpose="иск",
            confidential=False,
        )
