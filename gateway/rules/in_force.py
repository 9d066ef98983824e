"""Is the agreement in force between two parties on a date (CIS Art. 22–24; SC Art. 13)?

The depositary's published dates are the truth: they go into
:class:`~gateway.model.profiles.Participation` rows (``in_force_from`` is the first day in force,
``withdrawn_from`` the first day no longer in force). The helpers below compute those dates from
a notification for planning, reading the agreements' "по истечении N дней с даты получения" as
Russian law reads a term: it runs from the day after receipt (ГК РФ ст. 191) and expires at the
end of its last day (ГК РФ ст. 194), so the new state begins the day after, N + 1 days after
receipt. When the depositary publishes a different date, use the published one.

* CIS: in force for a party from the entry-into-force date of its notification (Art. 22) or
  accession (Art. 23) until its withdrawal takes effect on the date stated in its notice, at least
  3 months after the notice (Art. 24). A party withdraws "урегулировав финансовые и иные
  обязательства, возникшие за время действия настоящего Соглашения": a conversation begun while
  the agreement applied is completed after the withdrawal (answer, refusal, delay notice,
  additional information, withdrawal of the request); a new one is refused.
* SC: in force from signature, 14 April 2026 (Art. 13.1); terminates 60 days after the other
  party receives a notice (Art. 13.2); activities begun while it applied continue.

Both profiles set ``continues_after_termination``.
"""

from __future__ import annotations

import calendar as _calendar
from collections.abc import Iterable
from datetime import date, timedelta

from gateway.model.problems import Problem, Severity
from gateway.model.profiles import (
    CIS_ENFORCEMENT,
    RU_KZ_SUPREME_COURTS,
    AgreementProfile,
    Participation,
)

CIS_ENTRY_INTO_FORCE_DAYS = 30
"""CIS Art. 22 and Art. 23 para. 2: "по истечении 30 дней с даты получения депозитарием"."""

CIS_WITHDRAWAL_NOTICE_MONTHS = 3
"""CIS Art. 24: notice "не позднее чем за 3 месяца до выхода"."""

SC_TERMINATION_DAYS = 60
"""SC Art. 13.2: "по истечении 60 дней с даты получения такого уведомления"."""

SC_SIGNED_ON = date(2026, 4, 14)
"""SC Art. 13.1: in force from signature; signed in Moscow on 14 April 2026."""

SC_STATES = ("RU", "KZ")

_PATH = "/Envelope/Header/Agreement"


def _after_term(received_on: date, days: int) -> date:
    """First day after a term of ``days`` days counted from the day after ``received_on``."""
    return received_on + timedelta(days=days + 1)


def cis_entry_into_force(notification_received_on: date) -> date:
    """First day the CIS agreement is in force for a party whose notification (Art. 22) or
    accession document (Art. 23, CIS member state) the depositary received on that date."""
    return _after_term(notification_received_on, CIS_ENTRY_INTO_FORCE_DAYS)


def cis_earliest_withdrawal(notice_received_on: date) -> date:
    """Earliest date a CIS withdrawal may take effect: 3 months after the notice (Art. 24).

    The withdrawal takes effect on the date the notice states; this is the earliest valid one.
    A month without the notice's day (notice on 30 November → February) moves to the 1st of
    the next month, so that the notice still comes a full 3 months before.
    """
    month_index = notice_received_on.month - 1 + CIS_WITHDRAWAL_NOTICE_MONTHS
    year, month = notice_received_on.year + month_index // 12, month_index % 12 + 1
    if notice_received_on.day <= _calendar.monthrange(year, month)[1]:
        return date(year, month, notice_received_on.day)
    return date(year, month, 1) + timedelta(days=_calendar.monthrange(year, month)[1])


def sc_termination_date(notice_received_on: date) -> date:
    """First day the SC agreement no longer applies, given the day the other party received the
    termination notice (Art. 13.2): after 60 days counted from the next day."""
    return _after_term(notice_received_on, SC_TERMINATION_DAYS)


def sc_participations(terminated_from: date | None = None) -> tuple[Participation, ...]:
    """Participation rows of both supreme courts: in force from signature (Art. 13.1), ending
    on ``terminated_from`` when a termination notice was given (see :func:`sc_termination_date`)."""
    return tuple(
        Participation(state, RU_KZ_SUPREME_COURTS.id, SC_SIGNED_ON, terminated_from)
        for state in SC_STATES
    )


def _covers(p: Participation, on: date) -> bool:
    return (
        p.in_force_from is not None
        and p.in_force_from <= on
        and (p.withdrawn_from is None or on < p.withdrawn_from)
    )


_ARTICLES = {
    CIS_ENFORCEMENT.id: ("CIS Art. 22–23", "CIS Art. 24"),
    RU_KZ_SUPREME_COURTS.id: ("SC Art. 13.1", "SC Art. 13.2"),
}
"""Per profile: (entry-into-force article, withdrawal/termination article) for messages."""


def _state_problems(
    profile: AgreementProfile,
    rows: list[Participation],
    state: str,
    role_ru: str,
    on: date,
    conversation_started_on: date | None,
) -> list[Problem]:
    if any(_covers(p, on) for p in rows):
        return []
    force_article, end_article = _ARTICLES.get(profile.id, ("", ""))
    # (first day in force, first day no longer in force) of the rows that ended by ``on``
    ended = [
        (p.in_force_from, p.withdrawn_from)
        for p in rows
        if p.in_force_from is not None and p.withdrawn_from is not None and p.withdrawn_from <= on
    ]
    if ended:
        began_on, ended_on = max(ended, key=lambda span: span[1])
        if (
            profile.continues_after_termination
            and conversation_started_on is not None
            and began_on <= conversation_started_on < ended_on
        ):
            return [
                Problem(
                    code="AGREEMENT_TERMINATED_CONVERSATION_CONTINUES",
                    path=_PATH,
                    message_ru=(
                        f"Соглашение прекратило действие для {role_ru} ({state}) "
                        f"с {ended_on.isoformat()}, но переписка начата "
                        f"{conversation_started_on.isoformat()}, в период его применения, "
                        "и продолжается."
                    ),
                    message_en=(
                        f"{profile.id} terminated for {state} from {ended_on}; the conversation "
                        f"begun on {conversation_started_on} continues."
                    ),
                    remedy_ru="Новые запросы по соглашению не направляйте.",
                    article=end_article,
                    severity=Severity.WARNING,
                )
            ]
        return [
            Problem(
                code="AGREEMENT_WITHDRAWN",
                path=_PATH,
                message_ru=(
                    f"Соглашение не действует для {role_ru} ({state}) "
                    f"с {ended_on.isoformat()} (выход или прекращение действия)."
                ),
                message_en=f"{profile.id} no longer applies to {state} since {ended_on}.",
                remedy_ru="Обмен по этому соглашению с этой Стороной невозможен.",
                article=end_article,
            )
        ]
    upcoming = [
        p.in_force_from for p in rows if p.in_force_from is not None and p.in_force_from > on
    ]
    if upcoming:
        starts = min(upcoming).isoformat()
        detail_ru, detail_en = f"вступает в силу {starts}", f"enters into force on {starts}"
    else:
        detail_ru, detail_en = "не вступило в силу", "is not in force"
    return [
        Problem(
            code="AGREEMENT_NOT_IN_FORCE",
            path=_PATH,
            message_ru=(f"На {on.isoformat()} соглашение для {role_ru} ({state}) {detail_ru}."),
            message_en=f"on {on}, {profile.id} {detail_en} for {state}.",
            remedy_ru="Направьте документ после вступления соглашения в силу для обеих Сторон.",
            article=force_article,
        )
    ]


def agreement_in_force_problems(
    profile: AgreementProfile,
    participations: Iterable[Participation],
    requesting_state: str,
    requested_state: str,
    on: date,
    conversation_started_on: date | None = None,
) -> list[Problem]:
    """Why the agreement does not bind both parties on ``on``; empty: it does.

    A party is bound when one of its participation rows for ``profile`` has
    ``in_force_from <= on < withdrawn_from``. Errors: ``AGREEMENT_NOT_IN_FORCE`` (no row, or not
    yet in force), ``AGREEMENT_WITHDRAWN`` (withdrawal or termination took effect). For a profile
    whose conversations outlive withdrawal or termination (CIS Art. 24; SC Art. 13.2), a
    ``conversation_started_on`` while it applied gives the WARNING
    ``AGREEMENT_TERMINATED_CONVERSATION_CONTINUES`` instead.
    """
    rows = [p for p in participations if p.agreement == profile.id]
    problems: list[Problem] = []
    for state, role_ru in (
        (requesting_state, "запрашивающей Стороны"),
        (requested_state, "запрашиваемой Стороны"),
    ):
        own = [p for p in rows if p.state == state]
        problems += _state_problems(profile, own, state, role_ru, on, conversation_started_on)
    return problems
