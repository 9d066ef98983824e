"""The conformance matrix: each provision of the two agreements, what the gateway does about it,
how far (DONE, PARTIAL, MISSING) and the tests that show it.

The provisions are those issue #12 names: CIS Art. 3–16, 18, 19, 22–25 and Kazakhstan's
reservation (21), and the Supreme Courts agreement's Art. 5–9, 11 and 13 by paragraph (16):
37 in all. ``docs/conformance.md`` is generated from :data:`PROVISIONS`::

    python -m gateway.rules.conformance            # writes docs/conformance.md
    python -m gateway.rules.conformance --check    # exit 1 when the file differs

``tests/docs/test_conformance.py`` fails when the document differs from the table, when a DONE
provision names no test, or when a named test does not exist. A status says what this code does
today, not what is planned: a gap is written out for each PARTIAL or MISSING provision.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class Status(StrEnum):
    DONE = "DONE"
    PARTIAL = "PARTIAL"
    MISSING = "MISSING"


CIS, SC = "cis-enforcement", "ru-kz-supreme-courts"


@dataclass(frozen=True, slots=True)
class Provision:
    id: str
    """``CIS Art. 12``, ``SC Art. 5.1 para. 2``, ``KZ reservation (CIS Art. 6 а))``."""
    agreement: str
    text: str
    """What the provision says, in a line (the article's own words where short)."""
    behaviour: str
    """What the gateway does about it."""
    status: Status
    tests: tuple[str, ...] = ()
    """pytest node ids (``path::function``, without parameters) that show the behaviour."""
    gap: str = ""
    """What is not done; required unless DONE."""


_EXAMPLES = "tests/xml/test_examples_documents.py::"
_CONTENT = "tests/xml/test_content_rules.py::"
_MACHINE = "tests/exchange/test_conversation.py::"
_CORE = "tests/exchange/test_exchange_core.py::"
_IN_FORCE = "tests/rules/test_rules_in_force.py::"
_DEADLINES = "tests/rules/test_rules_deadlines.py::"
_RESERVATIONS = "tests/rules/test_rules_reservations.py::"
_RESERVATION_NODES = "tests/integration/test_reservations_exchange.py::"
_DISCLOSURE = "tests/exchange/test_disclosure_rule.py::"
_CONFIDENTIAL = "tests/integration/test_exchange_confidential.py::"
_REJECTIONS = "tests/integration/test_exchange_rejections.py::"
_SUPREME = "tests/integration/test_supreme_courts.py::"
_REFUSAL_FORM = "tests/web/console/test_console_refusal.py::"
_NEW_REQUEST = "tests/integration/test_console_new_request.py::"
_CONSULT = "tests/exchange/test_conversation_consultations.py::"
_CONSULT_NODES = "tests/integration/test_exchange_consultations.py::"
_ACTIONS = "tests/web/console/test_console_actions.py::"
_CONSULTATIONS = (
    _CONSULT + "test_every_open_request_state_allows_a_consultation_and_stays",
    _CONSULT_NODES + "test_a_consultation_is_asked_answered_and_recorded_on_both_sides",
    _ACTIONS + "test_consultations_are_offered_as_each_agreement_provides",
)

_CLOCK = "tests/rules/test_rules_clock.py::"
_LEGAL_CLOCK = "tests/integration/test_legal_clock.py::"
_ATTACHMENT_LANGUAGES = (
    _CONTENT + "test_attachment_in_another_language_needs_its_russian_translation",
    _CONTENT + "test_a_translation_must_name_another_attachment_and_be_russian",
    _CONTENT + "test_a_file_beside_the_xml_in_another_language_needs_its_russian_translation",
    "tests/integration/test_attachments.py::"
    "test_a_file_beside_the_xml_obeys_the_language_rule_and_carries_its_description",
)

PROVISIONS: tuple[Provision, ...] = (
    Provision(
        "CIS Art. 3",
        CIS,
        "Объем представляемой информации: производства, имущество, работа и доходы, "
        "местонахождение; сведения и документы; иная информация",
        "A request's `Subjects` is a choice of exactly these kinds (Proceedings, Assets, "
        "EmploymentAndIncome, Location, Documents, Explanations, Other) in the XSD",
        Status.DONE,
        (
            _EXAMPLES + "test_every_kind_of_both_profiles_has_a_valid_example",
            _EXAMPLES + "test_valid_example_passes_schema_and_rules",
        ),
    ),
    Provision(
        "CIS Art. 4",
        CIS,
        "Информация об исполнительных производствах: документ, даты, стадия, взысканное",
        "Request subject `Proceedings`; the Response's `ProceedingInfo` carries Art. 4 б), в)",
        Status.DONE,
        (
            _EXAMPLES + "test_valid_example_passes_schema_and_rules",
            _EXAMPLES + "test_invalid_example_fails_with_its_code",
        ),
    ),
    Provision(
        "CIS Art. 5",
        CIS,
        "Сведения, справки, документы от сторон и органов; разъяснения по вопросам запроса; "
        "выписки без перевода и безвозмездно",
        "Subjects `Documents` and `Explanations`; explanations must list their questions "
        "(`RULE_QUESTIONS_MISSING`); an attachment marked `RegisterExtract` travels without "
        "translation (para. 3), any other one in another language needs its Russian "
        "translation; the console's CIS answer forms ask whether the file is one",
        Status.DONE,
        (
            _CONTENT + "test_questions_rule_applies_to_every_explanations_subject",
            _EXAMPLES + "test_invalid_example_fails_with_its_code",
            _CONTENT
            + "test_a_register_extract_beside_the_xml_travels_without_translation_under_cis_only",
            _ACTIONS + "test_a_register_extract_in_kazakh_travels_without_translation",
        ),
    ),
    Provision(
        "CIS Art. 6",
        CIS,
        "Информация об имуществе должника а)–д) в том объеме, в котором она доступна",
        "`Assets` subject with the asset kinds а)–д) (each at most once); a Response is "
        "accepted even while additional information is awaited (answer what is available)",
        Status.DONE,
        (
            _EXAMPLES + "test_invalid_example_fails_with_its_code",
            _MACHINE + "test_cis_request_with_additional_info_delay_answer_and_consent",
        ),
    ),
    Provision(
        "CIS Art. 7",
        CIS,
        "Место работы, источники и размер доходов — за период, но не более чем за 3 года",
        "`EmploymentAndIncome` subject; the period runs forward and covers at most 3 years "
        "(`RULE_INCOME_PERIOD_*`)",
        Status.DONE,
        (
            _CONTENT + "test_income_period_cap_of_article_7",
            _CONTENT + "test_income_period_problem_names_article_and_last_allowed_day",
        ),
    ),
    Provision(
        "CIS Art. 8",
        CIS,
        "Местонахождение должника или имущества; имущество указывается конкретно",
        "`Location` subject (targets а)–в)); property must be identified "
        "(`RULE_PROPERTY_NOT_IDENTIFIED`)",
        Status.DONE,
        (
            _CONTENT + "test_property_identified_by_identifier_alone_passes",
            _EXAMPLES + "test_invalid_example_fails_with_its_code",
        ),
    ),
    Provision(
        "CIS Art. 9",
        CIS,
        "Информация — только в целях Соглашения и запроса; раскрытие сторонам, третьим лицам "
        "с согласия; взыскателю; защита; сведения о мерах защиты; сроки хранения",
        "Disclosure rule (parties of the proceeding, creditor, third parties only with the "
        "provider's consent exchanged between nodes); encryption at rest; protection-measures "
        "inquiry; retention policies, counting from the proceeding's close once it is marked "
        "(API, CLI, console; audited); a stated purpose for every read of a document's content, "
        "sealed under the KEK ring in the chained audit event and opened for auditors "
        "(`gateway audit show --purposes`)",
        Status.DONE,
        (
            _DISCLOSURE
            + "test_cis_third_party_without_consent_is_refused_naming_art_9_2_and_the_remedy",
            _DISCLOSURE + "test_cis_parties_of_the_proceeding_need_no_consent",
            _DISCLOSURE + "test_cis_creditor_disclosure_names_the_extent_of_art_9_3",
            "tests/integration/confidentiality/test_disclosure_exchange.py::"
            "test_third_party_disclosure_needs_the_providers_consent_exchanged_between_nodes",
            _MACHINE + "test_cis_protection_measures_inquiry_as_its_own_conversation_and_as_a_side",
            "tests/integration/confidentiality/test_no_leak.py::"
            "test_confidential_documents_are_unreadable_in_the_database_and_on_disk",
            "tests/app/purge/test_proceeding_closed.py::"
            "test_marking_a_proceeding_closed_starts_its_retention_and_is_audited",
            "tests/integration/test_proceeding_closed_api.py::"
            "test_the_case_system_marks_the_proceeding_closed_once",
            "tests/web/console/test_console_agreements.py::"
            "test_an_operator_marks_the_proceeding_closed_in_the_console_zone",
            "tests/integration/test_read_purposes.py::"
            "test_every_read_states_a_purpose_sealed_in_the_audit_trail",
            "tests/web/api/test_local_api_confidential.py::test_plain_message_needs_a_purpose_too",
        ),
    ),
    Provision(
        "CIS Art. 10",
        CIS,
        "Обмен доступными средствами связи, с последующим направлением оригинала почтой; "
        "машиночитаемые документы по защищенным каналам",
        "Signed XML documents (the machine-readable documents of 10.3) over mutual TLS between "
        "nodes listed in the signed directory; the paper original by post recorded per document "
        "(sent on, tracking number, received on; API, CLI, console; audited) and flagged by the "
        "reminder job when not sent within «разумный срок», read as [originals] "
        "send_within_days working days (default 10, a documented choice)",
        Status.DONE,
        (
            _REJECTIONS + "test_a_client_without_certificate_fails_the_handshake",
            "tests/integration/test_exchange_demo.py::test_demo_scenario_runs_end_to_end",
            "tests/integration/test_originals_by_post.py::"
            "test_api_cli_and_console_record_the_same_original",
            "tests/integration/test_originals_by_post.py::"
            "test_refusals_name_the_field_and_the_article_and_change_nothing",
            "tests/integration/test_originals_by_post.py::"
            "test_the_reminder_flags_an_original_not_sent_in_time",
            "tests/rules/test_rules_originals.py::"
            "test_only_cis_documents_signed_by_an_official_have_an_original",
        ),
    ),
    Provision(
        "CIS Art. 11",
        CIS,
        "Содержание запроса а)–е); перечень вопросов; письменная форма, подпись "
        "уполномоченного лица и печать",
        "The Request's XSD has fields а)–е); questions rule (11.2); every document but "
        "receipts and rejections needs the official's signature and the seal (11.3)",
        Status.DONE,
        (
            "tests/xml/test_envelope_signatures.py::test_official_without_seal_is_refused",
            "tests/xml/test_envelope_signatures.py::test_seal_alone_is_enough_for_machine_documents",
            _NEW_REQUEST + "test_a_cis_request_sent_from_the_console_opens_a_conversation",
            "tests/crypto/test_xades_signatures.py::test_removed_official_signature",
            _CONTENT + "test_questions_rule_applies_to_every_explanations_subject",
        ),
    ),
    Provision(
        "CIS Art. 12",
        CIS,
        "30 рабочих дней со дня получения; более короткий срок по просьбе; уведомление о "
        "невозможности исполнить в срок",
        "Due date in working days of the requested state, shorter requested term, delay "
        "notices, clock paused while waiting on the requesting party, reminder job",
        Status.DONE,
        (
            _DEADLINES + "test_cis_hand_checked_due_dates",
            _DEADLINES + "test_shorter_requested_deadline_replaces_the_agreements",
            _MACHINE + "test_cis_request_with_additional_info_delay_answer_and_consent",
            "tests/app/purge/test_job_wiring.py::test_deadline_reminders",
            _CLOCK + "test_both_nodes_agree_on_every_due_date_of_a_year",
            _CLOCK + "test_a_pause_is_counted_in_working_days_and_the_due_date_is_a_working_day",
            _LEGAL_CLOCK + "test_the_day_of_receipt_is_the_requested_partys_local_date",
            _LEGAL_CLOCK + "test_a_published_calendar_moves_the_due_date_on_both_nodes",
            _LEGAL_CLOCK + "test_a_requested_term_already_past_is_refused_at_submit",
            _LEGAL_CLOCK + "test_a_requested_term_already_past_is_refused_at_receipt",
            _LEGAL_CLOCK + "test_a_late_answer_is_accepted_and_flagged_on_both_sides",
        ),
    ),
    Provision(
        "CIS Art. 13",
        CIS,
        "Отказ: суверенитет, безопасность, законодательство, обязательства, заявление по "
        "ст. 25; уведомление об обстоятельствах; консультации до отказа",
        "Refusal with grounds from the XSD (required); the console offers the grounds the "
        "agreement and the declarations allow; before refusing, the requested party may send a "
        "ConsultationRequest (topic `refusal`, para. 3) answered by a ConsultationAnswer (or a "
        "ConsultationRecord of one held orally), "
        "recorded in the conversation on both sides (an answer still pending is recorded after "
        "the refusal; 'при необходимости': a refusal without one is accepted); the documents "
        "returned travel beside it, named in `ReturnedDocuments` (`RULE_FILE_NOT_LISTED`): the "
        "console offers the files that came with the request, ticked, and the node takes each "
        "in again from its store, its digest checked (the API: `POST "
        "…/attachments/{number}/returns`)",
        Status.DONE,
        (
            _MACHINE + "test_refusal_requires_grounds_and_records_them",
            _CONTENT + "test_a_file_the_body_names_travels_beside_it",
            _REFUSAL_FORM + "test_the_ticked_files_go_back_with_the_refusal",
            "tests/integration/test_attachments.py::"
            "test_a_console_refusal_returns_the_files_that_came_with_the_request",
            "tests/integration/test_attachments.py::"
            "test_the_api_returns_a_received_file_with_a_refusal",
            _REFUSAL_FORM + "test_cis_refusal_is_submitted",
            _REFUSAL_FORM + "test_form_offers_the_agreement_s_grounds",
            _CONSULT
            + "test_a_refusal_after_consultation_keeps_the_record_and_a_late_answer_is_recorded",
            *_CONSULTATIONS,
            "tests/integration/test_reservations_exchange.py::"
            "test_a_refusal_citing_a_declaration_nobody_made",
        ),
    ),
    Provision(
        "CIS Art. 14",
        CIS,
        "Запрос дополнительных сведений",
        "AdditionalInfoRequest / AdditionalInfoAnswer; the deadline clock pauses meanwhile",
        Status.DONE,
        (
            _MACHINE + "test_cis_request_with_additional_info_delay_answer_and_consent",
            _MACHINE + "test_every_event_outside_the_table_is_refused_and_changes_nothing",
        ),
    ),
    Provision(
        "CIS Art. 15",
        CIS,
        "Отложение исполнения или условия исполнения после консультаций",
        "Postponement and PostponementDecision accept/decline; the consultations before them are "
        "ConsultationRequest (topic `postponement-or-conditions`, sent by the requested party "
        "only) and ConsultationAnswer, beside the main state, recorded on both sides",
        Status.DONE,
        (
            _MACHINE + "test_postponement_decision",
            _CONSULT + "test_cis_consultations_are_asked_by_the_requested_party_only",
            _CONSULT_NODES
            + "test_cis_requesting_party_cannot_open_a_consultation_and_nothing_changes",
            *_CONSULTATIONS,
        ),
    ),
    Provision(
        "CIS Art. 16",
        CIS,
        "Конфиденциальность запроса по просьбе; при невозможности — решение запрашивающей Стороны",
        "Confidential flag covering the conversation, encryption to the recipient (clear "
        "refused), ConfidentialityNotice / ConfidentialityDecision proceed|withdraw",
        Status.DONE,
        (
            _CONFIDENTIAL + "test_a_confidential_document_in_clear_is_refused",
            _CONFIDENTIAL + "test_art16_hold_then_proceed_without_confidentiality",
            _CONFIDENTIAL + "test_art16_hold_then_withdraw",
            _MACHINE + "test_confidentiality_decision",
        ),
    ),
    Provision(
        "CIS Art. 18",
        CIS,
        "Центральные и иные органы; сведения передаются депозитарию",
        "The directory of bodies signed by the depositary, versioned, taken live; a seal not "
        "listed for the sender is refused",
        Status.DONE,
        (
            "tests/exchange/test_directory.py::test_update_refuses_older_or_equal_version",
            "tests/integration/test_directory_reload.py::"
            "test_a_new_directory_version_is_taken_live_and_a_rollback_is_refused",
            _REJECTIONS + "test_a_seal_not_listed_in_the_directory_is_refused",
        ),
    ),
    Provision(
        "CIS Art. 19",
        CIS,
        "Стороны используют русский язык",
        "`RULE_LANGUAGE`: the document's language is Russian; an attachment in another "
        "language (every file travels beside the XML) travels with its Russian translation "
        "(`RULE_ATTACHMENT_TRANSLATION_*`)",
        Status.DONE,
        (_EXAMPLES + "test_invalid_example_fails_with_its_code", *_ATTACHMENT_LANGUAGES),
    ),
    Provision(
        "CIS Art. 22",
        CIS,
        "Вступление в силу через 30 дней после третьего уведомления (позднее — своего)",
        "Participation rows with the depositary's dates; documents refused "
        "`AGREEMENT_NOT_IN_FORCE` before; `cis_entry_into_force` for planning",
        Status.DONE,
        (
            _IN_FORCE + "test_cis_entry_into_force_boundary",
            _IN_FORCE + "test_cis_entry_into_force_from_notification",
            _REJECTIONS + "test_a_party_not_in_force_is_refused",
        ),
    ),
    Provision(
        "CIS Art. 23",
        CIS,
        "Присоединение: через 30 дней (СНГ) или 3 месяца после согласий (не СНГ)",
        "In force from the date the depositary publishes for the acceding state; a state "
        "without a row is refused",
        Status.DONE,
        (
            _IN_FORCE + "test_cis_party_without_notification_or_row",
            _IN_FORCE + "test_cis_entry_into_force_from_notification",
        ),
    ),
    Provision(
        "CIS Art. 24",
        CIS,
        "Выход: уведомление не позднее чем за 3 месяца, урегулировав обязательства, "
        "возникшие за время действия",
        "New requests refused `AGREEMENT_WITHDRAWN`; requests received while it applied are "
        "completed after (answer, refusal, delay notice, additional information, withdrawal)",
        Status.DONE,
        (
            _IN_FORCE + "test_cis_withdrawal_boundary_new_conversations_refused",
            _IN_FORCE + "test_cis_withdrawal_lets_a_conversation_begun_before_be_completed",
            _IN_FORCE + "test_cis_earliest_withdrawal",
            _REJECTIONS + "test_requests_received_before_a_withdrawal_are_completed_after_it",
        ),
    ),
    Provision(
        "CIS Art. 25",
        CIS,
        "Заявление о неприменении (полностью или в части) к документам несудебных органов и "
        "нотариальным",
        "Declarations are read item by item from the signed directory (issuer kinds, the "
        "subjects a partial one covers, since when). A request wholly under a declaration of "
        "either party is an error on sending, partly under one a warning naming the covered "
        "subjects; a refusal citing Art. 25 when neither party declared, or the declaration "
        "does not cover the issuer or (alone) every subject, is refused on submit and on "
        "receipt; the reciprocity note where only the requesting state declared",
        Status.DONE,
        (
            _RESERVATIONS + "test_art25_declaration_by_either_party_is_an_error",
            _RESERVATIONS + "test_art25_declaration_not_covering_the_issuer",
            _RESERVATIONS + "test_partial_declaration_covers_only_the_items_it_names",
            _RESERVATIONS + "test_refusal_citing_a_declaration_nobody_made_is_an_error",
            _RESERVATIONS + "test_refusal_on_art25_must_match_the_declaration",
            _RESERVATIONS + "test_a_declaration_applies_from_its_date",
            _RESERVATIONS + "test_validate_reservations",
            _RESERVATION_NODES + "test_a_refusal_citing_a_declaration_nobody_made",
            _RESERVATION_NODES + "test_a_partial_declaration_covers_only_what_it_names",
            _RESERVATION_NODES + "test_a_request_wholly_under_the_declaration_is_refused_on_submit",
            "tests/exchange/test_directory.py::test_a_partial_declaration_round_trips_item_by_item",
        ),
    ),
    Provision(
        "KZ reservation (CIS Art. 6 а))",
        CIS,
        "Казахстан применяет подпункт а) статьи 6 в части, не противоречащей его законодательству",
        "Read from the signed directory (the profile's copy only when the directory carries no "
        "reservation at all): a warning `RESERVATION_KZ_ART6A` when Kazakhstan is asked about "
        "bank accounts; when Kazakhstan asks, the reciprocity note `RESERVATION_RECIPROCITY` "
        "(Vienna Convention 1969 Art. 21.1 b); the agreement is silent)",
        Status.DONE,
        (
            _RESERVATIONS + "test_kazakh_reservation_on_bank_accounts_is_a_warning",
            _RESERVATIONS + "test_kazakh_reservation_only_when_kazakhstan_is_asked_about_accounts",
            _RESERVATIONS + "test_reciprocity_note_where_the_requesting_state_declared",
            _RESERVATIONS + "test_the_directory_is_the_source_the_profile_only_a_fallback",
            _RESERVATION_NODES + "test_the_kazakh_reservation_comes_from_the_directory",
        ),
    ),
    Provision(
        "SC Art. 5.1",
        SC,
        "Письменный запрос: а) запрашивающая, б) запрашиваемая Сторона, в) основание, цель, "
        "содержание, г) сроки, д) иное; перевод документов; подпись руководителя",
        "The Request's XSD has а)–д); `ExpectedBy` (г) is the request's shorter term; "
        "documents not in Russian need a translation; the official signs",
        Status.DONE,
        (
            _CONTENT + "test_russian_original_needs_no_translation_but_kazakh_does",
            _CORE + "test_sc_request_expected_by_is_its_shorter_term_and_urgency_is_read",
            _NEW_REQUEST + "test_a_supreme_courts_request_is_sent_urgent_to_the_other_court",
            "tests/xml/test_envelope_signatures.py::test_official_without_seal_is_refused",
        ),
    ),
    Provision(
        "SC Art. 5.1 para. 2",
        SC,
        "Запросы могут быть переданы в устной форме с последующим письменным подтверждением",
        "The written confirmation is a Request carrying `ConfirmsOralRequest` (when and how the "
        "oral request was made, who received it, when confirmation was asked); the dates must "
        "run in that order (`RULE_ORAL_REQUEST_DATES`); the term runs from the written "
        "request's receipt",
        Status.DONE,
        (
            _CONTENT + "test_oral_request_then_its_written_confirmation",
            _SUPREME + "test_an_oral_request_is_confirmed_in_writing_and_its_dates_are_checked",
        ),
    ),
    Provision(
        "SC Art. 5.2",
        SC,
        "В случаях, не терпящих отлагательства — техническими средствами коммуникации",
        "`<env:Urgency>urgent` is kept with the conversation (a column, read by lists); the "
        "requested operator is notified on receipt (`URGENT_REQUEST_RECEIVED`); the "
        "conversation's view, the conversation list and the dashboard's near-deadline list "
        "(API, console) and the PDF rendition mark it; the reminder job names it at every run "
        "while it is open",
        Status.DONE,
        (
            _MACHINE + "test_urgent_request_is_kept_and_its_receipt_notifies_at_once",
            _SUPREME
            + "test_an_urgent_request_notifies_at_once_and_its_expected_term_is_the_due_date",
            _SUPREME + "test_an_urgent_request_is_marked_in_lists_and_reminded_at_every_run",
            "tests/web/console/test_console_agreements.py::test_an_urgent_request_is_marked_on_its_page",
        ),
    ),
    Provision(
        "SC Art. 5.3",
        SC,
        "При сомнении в подлинности или содержании — дополнительное подтверждение",
        "AuthenticityConfirmationRequest pauses the clock; `Confirmed=true` resumes "
        "execution, `false` closes the request (WITHDRAWN) and stops the clock",
        Status.DONE,
        (
            _MACHINE + "test_sc_authenticity_confirmation_holds_the_request",
            _MACHINE + "test_sc_authenticity_not_confirmed_stops_execution",
            _SUPREME + "test_authenticity_not_confirmed_stops_execution",
        ),
    ),
    Provision(
        "SC Art. 6.1",
        SC,
        "Исполнение в срок не более 30 дней, если не согласовано иное; уведомление о "
        "препятствиях; дополнительные сведения; информирование о результатах",
        "30 calendar days moved to the next working day; the requested `ExpectedBy` as a "
        "shorter term; delay notices; additional information; Response",
        Status.DONE,
        (
            _DEADLINES + "test_sc_thirty_calendar_days_then_next_working_day",
            _DEADLINES + "test_sc_days_left_are_calendar_days",
            _SUPREME
            + "test_an_urgent_request_notifies_at_once_and_its_expected_term_is_the_due_date",
            _CLOCK + "test_both_nodes_agree_on_every_due_date_of_a_year",
            _CLOCK + "test_an_sc_pause_is_counted_in_calendar_days",
        ),
    ),
    Provision(
        "SC Art. 6.2",
        SC,
        "Отказ полностью или частично, с письменным уведомлением о причинах",
        "A full Refusal closes the request; a partial one stands beside the Response for the "
        "rest, which closes it",
        Status.DONE,
        (
            _MACHINE + "test_sc_partial_refusal_stands_beside_the_response_for_the_rest",
            _SUPREME + "test_a_partial_refusal_then_the_response_for_the_rest",
            _SUPREME + "test_a_full_refusal_still_closes_the_request",
            _REFUSAL_FORM + "test_sc_partial_refusal_is_submitted",
        ),
    ),
    Provision(
        "SC Art. 6.3",
        SC,
        "Запросы не являются формой международной правовой помощи",
        "The agreement is a profile of its own (namespace, kinds); its documents cannot enter "
        "the other agreement's conversations or kinds",
        Status.DONE,
        (
            _MACHINE + "test_kind_outside_the_agreement_or_direction",
            _EXAMPLES + "test_invalid_example_fails_with_its_code",
        ),
    ),
    Provision(
        "SC Art. 7",
        SC,
        "Информация без запроса, если она представляет правовой интерес",
        "UnsolicitedInformation opens a conversation of its own with `LegalInterest`; "
        "consent to disclose may follow",
        Status.DONE,
        (_MACHINE + "test_sc_unsolicited_information_closes_on_receipt_then_allows_consent",),
    ),
    Provision(
        "SC Art. 8.1",
        SC,
        "Меры конфиденциальности, в том числе в объеме, о котором попросит другая Сторона",
        "Confidential flag; confidential documents travel encrypted to the recipient",
        Status.DONE,
        (
            _CONFIDENTIAL + "test_a_confidential_document_crosses_encrypted_and_is_stored_readable",
            _CONFIDENTIAL + "test_a_confidential_document_in_clear_is_refused",
        ),
    ),
    Provision(
        "SC Art. 8.2",
        SC,
        "Использование только для целей Соглашения; раскрытие — с предварительного "
        "письменного согласия",
        "Every disclosure needs the provider's prior written consent (ConsentRequest / "
        "ConsentDecision)",
        Status.DONE,
        (
            _DISCLOSURE + "test_sc_every_disclosure_needs_prior_written_consent",
            _DISCLOSURE
            + "test_sc_requested_party_may_disclose_a_confidential_request_with_consent",
        ),
    ),
    Provision(
        "SC Art. 8.3",
        SC,
        "Хранение, обработка и защита по национальному законодательству",
        "Encryption at rest, retention policies with a national minimum, audit chain",
        Status.DONE,
        (
            "tests/integration/confidentiality/test_no_leak.py::"
            "test_confidential_documents_are_unreadable_in_the_database_and_on_disk",
            "tests/jobs/test_retention_policies.py::"
            "test_a_period_below_the_minimum_is_refused_naming_the_line_and_what_to_do",
        ),
    ),
    Provision(
        "SC Art. 9.1",
        SC,
        "Каждая Сторона несет свои расходы, если не договорятся об ином в конкретном случае",
        "The gateway charges nothing between the parties; a case-by-case agreement otherwise is "
        "a ConsultationAnswer's `CostCoverage` (`each-party-own`, `requesting-party`, `shared`, "
        "`not-agreed`), and one departing from the rule states its terms "
        "(`RULE_COST_COVERAGE_TERMS`)",
        Status.DONE,
        (
            _CONTENT + "test_costs_other_than_each_party_s_own_state_their_terms",
            _CONTENT + "test_a_consultation_record_departing_from_art_9_1_states_its_terms",
            _ACTIONS + "test_consultation_forms_refuse_a_bad_amount_and_shared_costs_without_terms",
        ),
    ),
    Provision(
        "SC Art. 9.2",
        SC,
        "Существенные расходы — консультации об условиях исполнения и покрытии расходов",
        "ConsultationRequest (topic `substantial-costs`, the estimated costs as amount and "
        "currency, questions, proposed conditions) from either party, ConsultationAnswer or "
        "ConsultationRecord (held orally) with the cost coverage agreed; beside the main state, "
        "recorded on both sides",
        Status.DONE,
        _CONSULTATIONS,
    ),
    Provision(
        "SC Art. 11",
        SC,
        "Стороны пользуются русским языком",
        "`RULE_LANGUAGE`; request documents and files beside the XML not in Russian need a "
        "Russian translation",
        Status.DONE,
        (
            _CONTENT + "test_russian_original_needs_no_translation_but_kazakh_does",
            *_ATTACHMENT_LANGUAGES,
        ),
    ),
    Provision(
        "SC Art. 13.1",
        SC,
        "Вступает в силу со дня подписания (14 апреля 2026 г.)",
        "Both courts in force from 14 April 2026; earlier documents refused",
        Status.DONE,
        (_IN_FORCE + "test_sc_in_force_from_signature",),
    ),
    Provision(
        "SC Art. 13.2",
        SC,
        "Прекращение через 60 дней после получения уведомления; мероприятия, начатые в "
        "период применения, продолжаются",
        "`sc_termination_date`; new requests refused after; conversations begun before "
        "continue (a warning)",
        Status.DONE,
        (_IN_FORCE + "test_sc_termination_with_a_conversation_begun_before",),
    ),
)


def counts() -> Counter[Status]:
    return Counter(p.status for p in PROVISIONS)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """``docs/conformance.md``, exactly."""
    tally = counts()
    lines = [
        "# Conformance matrix",
        "",
        "<!-- Generated from gateway/rules/conformance.py: edit the table there, then run",
        "     python -m gateway.rules.conformance -->",
        "",
        "Each provision of the two agreements, what the gateway does about it, how far, and the",
        "tests that show it. A status says what the code does today; every gap is written out.",
        "`tests/docs/test_conformance.py` fails when this page differs from the table in code,",
        "when a DONE provision names no test, or when a named test does not exist.",
        "",
        "```sh",
        "python -m gateway.rules.conformance            # regenerate this page",
        "python -m gateway.rules.conformance --check    # exit 1 when it is out of date",
        "```",
        "",
        f"{len(PROVISIONS)} provisions: "
        + ", ".join(f"{tally[s]} {s.value}" for s in Status)
        + ".",
        "",
    ]
    for agreement, title in (
        (CIS, "CIS agreement on information exchange in enforcement (`cis-enforcement`)"),
        (SC, "Agreement of the Supreme Courts of Russia and Kazakhstan (`ru-kz-supreme-courts`)"),
    ):
        lines += [f"## {title}", "", "| provision | text | behaviour | status | tests | gap |"]
        lines.append("|---|---|---|---|---|---|")
        for p in (p for p in PROVISIONS if p.agreement == agreement):
            tests = "<br>".join(f"`{t}`" for t in p.tests) or "—"
            lines.append(
                f"| {_cell(p.id)} | {_cell(p.text)} | {_cell(p.behaviour)} | {p.status.value} "
                f"| {tests} | {_cell(p.gap) or '—'} |"
            )
        lines.append("")
    return "\n".join(lines)


DOC = Path("docs") / "conformance.md"


def main(argv: list[str]) -> int:
    """Write ``docs/conformance.md`` under the current folder (the checkout), or with
    ``--check`` say whether it is up to date."""
    text = render()
    if "--check" in argv:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if current != text:
            print(f"{DOC} is out of date: run python -m gateway.rules.conformance", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}: {len(PROVISIONS)} provisions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
