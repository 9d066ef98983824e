"""The original by post (CIS Art. 10 ¶1): which documents have one, and what a record of its
dispatch and arrival must satisfy. Free of I/O; the store records, the adapters ask.

CIS Art. 10 ¶1: "Обмен информацией … осуществляется доступными средствами связи, в том числе
факсимильной и электронной, с последующим направлением оригинала почтой в разумный срок."
The signed XML the nodes exchange is the machine-readable document of Art. 10 ¶3
("машиночитаемыми документами с использованием защищенных каналов связи"); the paper
document signed and sealed by the official (Art. 11 ¶3) is the original, sent by post after it.

The Supreme Courts' agreement has no such duty (SC Art. 5.1 lets a request go by post, fax,
e-mail or other means, with no original to follow), so nothing is tracked there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from gateway.model.problems import Refused
from gateway.model.profiles import CIS_ENFORCEMENT, PROFILES
from gateway.rules.calendars import WorkingCalendar

ARTICLE = "CIS Art. 10 ¶1"
ARTICLE_RU = "ч. 1 ст. 10 Соглашения СНГ"
AGREEMENTS_WITH_ORIGINAL = frozenset({CIS_ENFORCEMENT.id})
"""Agreements whose text requires the original to follow by post."""

DEFAULT_SEND_WITHIN_DAYS = 10
"""Working days after the machine-readable document within which the original should be marked
sent before the reminder job flags it. The agreement says only "в разумный срок" (a reasonable
time): two working weeks is this project's choice, set per node in ``[originals]
send_within_days``."""

MAX_SEND_WITHIN_DAYS = 60
"""An upper bound on the setting: three months is no longer "reasonable" for a letter."""


def send_by(created_on: date, within_days: int, calendar: WorkingCalendar) -> date:
    """The last day to post the original of a document created on ``created_on``: the
    ``within_days``-th working day after it in the sender's calendar. The reminder job flags
    our documents whose original is not marked sent when this day has passed."""
    return calendar.add_working_days(created_on, within_days)


MAX_TRACKING = 40
TRACKING_PATTERN = re.compile(r"^[0-9A-Za-zА-Яа-яЁё][0-9A-Za-zА-Яа-яЁё ./-]*$")
"""A carrier and its tracking number (``EMS RA123456789RU``, ``СДЭК 1234567890``): letters,
digits, spaces, dots, slashes and hyphens, at most :data:`MAX_TRACKING` characters. No
prose: the record is an identifier, not a place for personal data."""


def kinds_with_original(agreement: str) -> frozenset[str]:
    """The kinds of ``agreement`` whose documents are followed by their original."""
    if agreement not in AGREEMENTS_WITH_ORIGINAL:
        return frozenset()
    return frozenset(k.name for k in PROFILES[agreement].kinds.values() if k.signed_by_official)


def has_original(agreement: str, kind: str) -> bool:
    """True when a document of ``kind`` under ``agreement`` is followed by its original: the
    agreement requires it and the document is signed by an official (Art. 11 ¶3). Receipts
    and rejections are the nodes' own, with no paper original."""
    return kind in kinds_with_original(agreement)


CONFLICTS = frozenset({"ORIGINAL_ALREADY_SENT", "ORIGINAL_ALREADY_RECEIVED", "ORIGINAL_NOT_SENT"})
"""Refusal codes the record's own state causes (HTTP 409); the others are bad input (422)."""


class OriginalRefused(Refused):
    """A record of the original cannot be made as asked. :attr:`code`, :attr:`field` and the
    Russian message say why and what to do; nothing was changed."""

    CONFLICTS = CONFLICTS

    def __init__(self, code: str, field: str, message_ru: str, message_en: str) -> None:
        super().__init__(code, message_en, message_ru, {"field": field, "article": ARTICLE})
        self.field = field


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What the rules need of the stored message (never its content)."""

    message_id: str
    agreement: str
    kind: str
    outgoing: bool
    created_on: date
    """The date the message was created, in the node's zone."""


def check_tracking(tracking: str) -> str:
    """The tracking number trimmed, or :class:`OriginalRefused` naming the field."""
    # Runs of spaces collapse; any other white space (a newline, a tab) is refused, not rewritten.
    value = re.sub(" {2,}", " ", tracking.strip(" "))
    if not value or len(value) > MAX_TRACKING or not TRACKING_PATTERN.fullmatch(value):
        raise OriginalRefused(
            "ORIGINAL_TRACKING",
            "tracking",
            f"Трек-номер: 1–{MAX_TRACKING} знаков — буквы, цифры, пробел, точка, косая черта, "
            f"дефис (например «EMS RA123456789RU»; {ARTICLE_RU}).",
            f"tracking must be 1..{MAX_TRACKING} letters, digits, spaces, '.', '/' or '-' "
            f"(a carrier and its tracking number; {ARTICLE})",
        )
    return value


def _applies(message: MessageFacts) -> None:
    if not has_original(message.agreement, message.kind):
        raise OriginalRefused(
            "ORIGINAL_NOT_REQUIRED",
            "message_id",
            f"Для этого документа ({message.kind}, {message.agreement}) оригинал почтой не "
            f"направляется: это требование {ARTICLE_RU} к документам, подписанным должностным "
            "лицом.",
            f"no original by post follows a {message.kind} of {message.agreement} ({ARTICLE} "
            "applies to CIS documents signed by an official)",
        )


def _not_future(value: date, today: date, field: str) -> None:
    if value > today:
        raise OriginalRefused(
            "ORIGINAL_DATE_IN_FUTURE",
            field,
            f"{field}: дата {value.isoformat()} ещё не наступила (сегодня {today.isoformat()}); "
            f"отметьте, когда это произойдёт ({ARTICLE_RU}).",
            f"{field} {value.isoformat()} is in the future (today is {today.isoformat()}; "
            f"{ARTICLE})",
        )


def check_sent(
    message: MessageFacts, *, sent_on: date, already_sent: date | None, today: date
) -> None:
    """Raise :class:`OriginalRefused` unless the original of ``message`` may be marked sent on
    ``sent_on``: a document of ours that has an original, not marked before, dated between the
    machine-readable document's creation ("с последующим направлением") and today."""
    _applies(message)
    if not message.outgoing:
        raise OriginalRefused(
            "ORIGINAL_NOT_OURS",
            "message_id",
            "Этот документ получен от другой стороны: оригинал направляет она; отметьте его "
            f"получение ({ARTICLE_RU}).",
            f"the message was received, not sent, by this node: mark its original received "
            f"({ARTICLE})",
        )
    if already_sent is not None:
        raise OriginalRefused(
            "ORIGINAL_ALREADY_SENT",
            "sent_on",
            f"Отправка оригинала уже отмечена ({already_sent.isoformat()}); отметка делается "
            f"один раз ({ARTICLE_RU}).",
            f"the original was marked sent on {already_sent.isoformat()} already; set once "
            f"({ARTICLE})",
        )
    _not_future(sent_on, today, "sent_on")
    if sent_on < message.created_on:
        raise OriginalRefused(
            "ORIGINAL_SENT_BEFORE_DOCUMENT",
            "sent_on",
            f"sent_on: дата {sent_on.isoformat()} раньше создания электронного документа "
            f"({message.created_on.isoformat()}): оригинал направляется после него "
            f"({ARTICLE_RU}).",
            f"sent_on {sent_on.isoformat()} is before the document was created "
            f"({message.created_on.isoformat()}); the original follows it ({ARTICLE})",
        )


def check_received(
    message: MessageFacts,
    *,
    received_on: date,
    sent_on: date | None,
    already_received: date | None,
    today: date,
) -> None:
    """Raise :class:`OriginalRefused` unless the original of ``message`` may be marked
    received on ``received_on``: for a document received, its original arrived here; for one
    of ours, the carrier reports delivery, after it was marked sent. Not in the future, not
    before the document nor before the original was sent; set once."""
    _applies(message)
    if message.outgoing and sent_on is None:
        raise OriginalRefused(
            "ORIGINAL_NOT_SENT",
            "sent_on",
            "Сначала отметьте отправку оригинала (дата и трек-номер), затем его вручение "
            f"({ARTICLE_RU}).",
            f"mark the original sent (date and tracking) before it is received ({ARTICLE})",
        )
    if already_received is not None:
        raise OriginalRefused(
            "ORIGINAL_ALREADY_RECEIVED",
            "received_on",
            f"Получение оригинала уже отмечено ({already_received.isoformat()}); отметка "
            f"делается один раз ({ARTICLE_RU}).",
            f"the original was marked received on {already_received.isoformat()} already; set "
            f"once ({ARTICLE})",
        )
    _not_future(received_on, today, "received_on")
    floor, what_ru, what_en = message.created_on, "создания электронного документа", "created"
    if sent_on is not None and sent_on > floor:
        floor, what_ru, what_en = sent_on, "отправки оригинала", "sent"
    if received_on < floor:
        raise OriginalRefused(
            "ORIGINAL_RECEIVED_TOO_EARLY",
            "received_on",
            f"received_on: дата {received_on.isoformat()} раньше {what_ru} "
            f"({floor.isoformat()}); проверьте дату ({ARTICLE_RU}).",
            f"received_on {received_on.isoformat()} is before the original was {what_en} "
            f"({floor.isoformat()}) ({ARTICLE})",
        )
