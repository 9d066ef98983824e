"""The rules of the original by post (CIS Art. 10 para. 1), without I/O: which documents have
one, what a dispatch and an arrival must satisfy, and the last day to post it."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.rules.calendars import calendar_for
from gateway.rules.originals import (
    MessageFacts,
    OriginalRefused,
    check_received,
    check_sent,
    check_tracking,
    has_original,
    kinds_with_original,
    send_by,
)

CREATED = date(2026, 12, 1)
TODAY = date(2026, 12, 10)
OURS = MessageFacts("m-1", "cis-enforcement", "Request", True, CREATED)
THEIRS = MessageFacts("m-2", "cis-enforcement", "Response", False, CREATED)


def test_only_cis_documents_signed_by_an_official_have_an_original() -> None:
    assert has_original("cis-enforcement", "Request")
    assert has_original("cis-enforcement", "Refusal")
    assert not has_original("cis-enforcement", "Receipt")
    assert not has_original("cis-enforcement", "Rejection")
    # SC Art. 5.1: post, fax, e-mail or other means, with no original to follow.
    assert kinds_with_original("ru-kz-supreme-courts") == frozenset()
    court = MessageFacts("m-3", "ru-kz-supreme-courts", "Request", False, CREATED)
    with pytest.raises(OriginalRefused) as refused:
        check_received(court, received_on=TODAY, sent_on=None, already_received=None, today=TODAY)
    assert (refused.value.code, refused.value.field) == ("ORIGINAL_NOT_REQUIRED", "message_id")


@pytest.mark.parametrize(
    ("sent_on", "already", "message", "code", "field"),
    [
        (date(2026, 12, 11), None, OURS, "ORIGINAL_DATE_IN_FUTURE", "sent_on"),
        (date(2026, 11, 30), None, OURS, "ORIGINAL_SENT_BEFORE_DOCUMENT", "sent_on"),
        (CREATED, CREATED, OURS, "ORIGINAL_ALREADY_SENT", "sent_on"),
        (CREATED, None, THEIRS, "ORIGINAL_NOT_OURS", "message_id"),
    ],
)
def test_a_dispatch_is_refused_naming_the_field_and_the_article(
    sent_on: date, already: date | None, message: MessageFacts, code: str, field: str
) -> None:
    with pytest.raises(OriginalRefused) as refused:
        check_sent(message, sent_on=sent_on, already_sent=already, today=TODAY)
    assert (refused.value.code, refused.value.field) == (code, field)
    assert "CIS Art. 10 ¶1" in str(refused.value)
    assert "ч. 1 ст. 10" in refused.value.message_ru


def test_a_dispatch_on_the_day_of_the_document_or_today_is_accepted() -> None:
    for sent_on in (CREATED, TODAY):
        check_sent(OURS, sent_on=sent_on, already_sent=None, today=TODAY)


def test_an_arrival_is_not_before_the_dispatch_nor_the_document() -> None:
    sent = date(2026, 12, 3)
    check_received(OURS, received_on=sent, sent_on=sent, already_received=None, today=TODAY)
    check_received(THEIRS, received_on=CREATED, sent_on=None, already_received=None, today=TODAY)
    for message, received_on, sent_on in (
        (OURS, date(2026, 12, 2), sent),
        (THEIRS, date(2026, 11, 30), None),
    ):
        with pytest.raises(OriginalRefused) as refused:
            check_received(
                message, received_on=received_on, sent_on=sent_on, already_received=None,
                today=TODAY,
            )  # fmt: skip
        assert (refused.value.code, refused.value.field) == (
            "ORIGINAL_RECEIVED_TOO_EARLY",
            "received_on",
        )
        assert "ч. 1 ст. 10" in refused.value.message_ru
    with pytest.raises(OriginalRefused, match="before it is received"):
        check_received(OURS, received_on=TODAY, sent_on=None, already_received=None, today=TODAY)


def test_a_tracking_number_is_an_identifier_not_prose() -> None:
    assert check_tracking("  EMS   RA123456789RU ") == "EMS RA123456789RU"
    assert check_tracking("Казпочта RR-123/45.6") == "Казпочта RR-123/45.6"
    for bad in ("", "   ", "R" * 41, "RA1; drop", "RA1\n2", "RA1\t2", "RA1\n", "-RA1", "<b>"):
        with pytest.raises(OriginalRefused) as refused:
            check_tracking(bad)
        assert refused.value.field == "tracking"


def test_the_last_day_to_post_counts_working_days_of_the_senders_calendar() -> None:
    ru = calendar_for("RU")
    # Friday 25 Dec 2026 + 10 working days: the New Year holidays (1–8 Jan) are skipped.
    last = send_by(date(2026, 12, 25), 10, ru)
    assert ru.working_days_between(date(2026, 12, 25), last) == 10
    assert last > date(2027, 1, 8)
    assert send_by(date(2026, 12, 1), 10, ru) == date(2026, 12, 15)
