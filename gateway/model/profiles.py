"""Agreement profiles as data.

Two agreements, two profiles:

* ``cis-enforcement`` — the CIS agreement on information exchange in the enforcement of
  judgments (enforcement authorities; 30 *working* days by the requested party's calendar,
  Art. 12; Russian language, Art. 19; reservations under Art. 25 and Kazakhstan's on Art. 6 a)).
* ``ru-kz-supreme-courts`` — the 2026 cooperation agreement of the Supreme Courts of Russia and
  Kazakhstan (30 *calendar* days, Art. 6.1; Russian, Art. 11; in force from signature, ends
  60 days after notice, requests already begun continue, Art. 13).

Kind names are the XML element names in ``<env:Body>`` and the values of ``<env:Kind>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from types import MappingProxyType


class Direction(StrEnum):
    """Which side of a conversation may send a kind."""

    REQUESTING = "requesting"
    """Only the party that opened the conversation (the requesting party)."""
    REQUESTED = "requested"
    """Only the party asked (the requested party)."""
    EITHER = "either"


class CalendarOf(StrEnum):
    REQUESTED = "requested"
    """Working days are those of the requested party's state (CIS Art. 12: 'со дня получения')."""


@dataclass(frozen=True, slots=True)
class DeadlineRule:
    days: int
    """How many days the requested party has to execute a request."""
    working_days: bool
    """True: working days of ``calendar_of``'s state; False: calendar days."""
    calendar_of: CalendarOf
    article: str
    shorter_allowed: bool = True
    """The requesting party may ask for a shorter deadline (CIS Art. 12 para. 2)."""


@dataclass(frozen=True, slots=True)
class MessageKind:
    name: str
    """Element name and ``<env:Kind>`` value, e.g. ``Request``."""
    title_ru: str
    article: str
    direction: Direction
    opens_conversation: bool = False
    """True for kinds that start a new conversation (a request, unsolicited information)."""
    signed_by_official: bool = True
    """Art. 11.3 / SC Art. 5.1: signed by an authorised person and sealed. Machine documents
    (receipts, rejections) carry only the body's seal."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """A reservation or declaration a state made to an agreement (CIS Art. 25; KZ on Art. 6 a))."""

    state: str
    """ISO 3166-1 alpha-2 of the declaring state."""
    agreement: str
    code: str
    """``limits-article`` (applies an article only as far as national law allows: a warning that
    limits the answer) or ``non-application`` (the agreement does not apply to some enforcement
    documents: a ground for refusal, CIS Art. 13 and 25)."""
    article: str
    text_ru: str
    issuer_kinds: frozenset[str] = frozenset()
    """For ``non-application``: the issuer kinds excluded, of ``court``, ``authority``,
    ``official``, ``notary`` (the enforcement document's issuer, CIS Art. 1)."""
    scope: frozenset[str] = frozenset()
    """For a partial ``non-application`` (CIS Art. 25 para. 2, "конкретные положения"): the
    request subjects it covers (the XSD's ``Subject`` element names or ``AssetKind`` values);
    empty: the whole request."""
    since: date | None = None
    """When the declaration took effect for the state, as the depositary published it; None:
    since the agreement took effect for it."""


@dataclass(frozen=True, slots=True)
class AgreementProfile:
    id: str
    title_ru: str
    namespace: str
    """XML namespace of the profile's schema."""
    schema_file: str
    """File name in ``gateway/schemas/``."""
    language: str
    language_article: str
    deadline: DeadlineRule
    kinds: Mapping[str, MessageKind]
    continues_after_termination: bool
    """Conversations begun while the agreement applied to both parties may be completed after a
    withdrawal or termination takes effect; only new conversations are refused. SC Art. 13.2
    says so outright; CIS Art. 24 lets a party leave only "урегулировав финансовые и иные
    обязательства, возникшие за время действия настоящего Соглашения", and a request received
    while it applied is such an obligation."""
    reservations: tuple[Reservation, ...] = field(default=())
    """The reservations the agreement's published text carries. The rules read reservations
    from the signed directory; this copy is used only when the directory carries none for the
    agreement (:func:`gateway.rules.reservations.reservations_in_use`), and the demo publishes
    it in its directory."""

    def kind(self, name: str) -> MessageKind:
        try:
            return self.kinds[name]
        except KeyError:
            raise KeyError(
                f"{name!r} is not a message kind of {self.id}; known: {', '.join(self.kinds)}"
            ) from None


ENVELOPE_NAMESPACE = "urn:cis-exchange:envelope:1"
COMMON_NAMESPACE = "urn:cis-exchange:common:1"


def _kinds(*kinds: MessageKind) -> Mapping[str, MessageKind]:
    return MappingProxyType({k.name: k for k in kinds})


_R, _D, _E = Direction.REQUESTING, Direction.REQUESTED, Direction.EITHER


def _answers(article: str) -> tuple[MessageKind, MessageKind]:
    """The node's own answers to every document, sealed without an official's signature: the
    Receipt and the Rejection (the same in every agreement but for the article)."""
    return (
        MessageKind("Receipt", "Квитанция о получении", article, _E, signed_by_official=False),
        MessageKind(
            "Rejection",
            "Уведомление об отклонении документа",
            article,
            _E,
            signed_by_official=False,
        ),
    )


CIS_ENFORCEMENT = AgreementProfile(
    id="cis-enforcement",
    title_ru=(
        "Соглашение о сотрудничестве по обмену информацией при осуществлении принудительного "
        "исполнения судебных актов, актов иных уполномоченных органов и должностных лиц"
    ),
    namespace="urn:cis-exchange:cis-enforcement:1",
    schema_file="cis-enforcement.xsd",
    language="ru",
    language_article="CIS Art. 19",
    deadline=DeadlineRule(30, True, CalendarOf.REQUESTED, "CIS Art. 12"),
    continues_after_termination=True,
    kinds=_kinds(
        MessageKind("Request", "Запрос", "CIS Art. 11", _R, opens_conversation=True),
        MessageKind("Response", "Ответ на запрос", "CIS Art. 4–8", _D),
        MessageKind("Refusal", "Отказ в исполнении запроса", "CIS Art. 13", _D),
        MessageKind(
            "DelayNotice", "Уведомление о невозможности исполнить в срок", "CIS Art. 12", _D
        ),
        MessageKind("AdditionalInfoRequest", "Запрос дополнительных сведений", "CIS Art. 14", _D),
        MessageKind("AdditionalInfoAnswer", "Дополнительные сведения", "CIS Art. 14", _R),
        MessageKind(
            "Postponement", "Отложение исполнения или условия исполнения", "CIS Art. 15", _D
        ),
        MessageKind("PostponementDecision", "Решение по условиям исполнения", "CIS Art. 15", _R),
        MessageKind(
            "ConfidentialityNotice",
            "Уведомление о невозможности исполнения с сохранением конфиденциальности",
            "CIS Art. 16",
            _D,
        ),
        MessageKind(
            "ConfidentialityDecision",
            "Решение об исполнении запроса без сохранения конфиденциальности",
            "CIS Art. 16",
            _R,
        ),
        MessageKind(
            "ConsentRequest",
            "Запрос согласия на раскрытие информации третьим лицам",
            "CIS Art. 9.2",
            _R,
        ),
        MessageKind("ConsentDecision", "Решение о согласии на раскрытие", "CIS Art. 9.2", _D),
        MessageKind(
            "ProtectionMeasuresInquiry",
            "Запрос сведений о мерах защиты информации и сроках хранения",
            "CIS Art. 9.5",
            _E,
            opens_conversation=True,
        ),
        MessageKind(
            "ProtectionMeasuresAnswer",
            "Сведения о мерах защиты и сроках хранения",
            "CIS Art. 9.5",
            _E,
        ),
        MessageKind(
            "ConsultationRequest",
            "Предложение о проведении консультаций",
            "CIS Art. 13, 15",
            _D,
        ),
        MessageKind("ConsultationAnswer", "Ответ в ходе консультаций", "CIS Art. 13, 15", _R),
        MessageKind(
            "ConsultationRecord", "Запись о проведённых консультациях", "CIS Art. 13, 15", _E
        ),
        MessageKind("Withdrawal", "Отзыв запроса", "CIS Art. 11", _R),
        *_answers("CIS Art. 10"),
    ),
    reservations=(
        Reservation(
            state="KZ",
            agreement="cis-enforcement",
            code="limits-article",
            article="CIS Art. 6 а)",
            text_ru=(
                "Республика Казахстан заявляет, что она оставляет за собой право применять "
                "положения подпункта а) статьи 6 настоящего Соглашения в части, не "
                "противоречащей ее законодательству."
            ),
        ),
    ),
)

RU_KZ_SUPREME_COURTS = AgreementProfile(
    id="ru-kz-supreme-courts",
    title_ru=(
        "Соглашение о сотрудничестве между Верховным Судом Российской Федерации и Верховным "
        "Судом Республики Казахстан"
    ),
    namespace="urn:cis-exchange:ru-kz-supreme-courts:1",
    schema_file="ru-kz-supreme-courts.xsd",
    language="ru",
    language_article="SC Art. 11",
    deadline=DeadlineRule(30, False, CalendarOf.REQUESTED, "SC Art. 6.1"),
    continues_after_termination=True,
    kinds=_kinds(
        MessageKind("Request", "Запрос", "SC Art. 5.1", _R, opens_conversation=True),
        MessageKind("Response", "Информация о результатах исполнения запроса", "SC Art. 6.1", _D),
        MessageKind("Refusal", "Отказ в исполнении запроса", "SC Art. 6.2", _D),
        MessageKind(
            "DelayNotice",
            "Уведомление об обстоятельствах, препятствующих исполнению",
            "SC Art. 6.1",
            _D,
        ),
        MessageKind("AdditionalInfoRequest", "Запрос дополнительных сведений", "SC Art. 6.1", _D),
        MessageKind("AdditionalInfoAnswer", "Дополнительные сведения", "SC Art. 6.1", _R),
        MessageKind(
            "UnsolicitedInformation",
            "Информация без запроса",
            "SC Art. 7",
            _E,
            opens_conversation=True,
        ),
        MessageKind(
            "AuthenticityConfirmationRequest", "Запрос подтверждения подлинности", "SC Art. 5.3", _D
        ),
        MessageKind("AuthenticityConfirmation", "Подтверждение подлинности", "SC Art. 5.3", _R),
        MessageKind(
            "ConsentRequest", "Запрос письменного согласия на раскрытие", "SC Art. 8.2", _E
        ),
        MessageKind("ConsentDecision", "Решение о согласии на раскрытие", "SC Art. 8.2", _E),
        MessageKind(
            "ConsultationRequest",
            "Предложение о консультациях по расходам на исполнение запроса",
            "SC Art. 9.2",
            _E,
        ),
        MessageKind("ConsultationAnswer", "Ответ в ходе консультаций", "SC Art. 9.2", _E),
        MessageKind("ConsultationRecord", "Запись о проведённых консультациях", "SC Art. 9.2", _E),
        MessageKind("Withdrawal", "Отзыв запроса", "SC Art. 5", _R),
        *_answers("SC Art. 5.1"),
    ),
)

PROFILES: Mapping[str, AgreementProfile] = MappingProxyType(
    {p.id: p for p in (CIS_ENFORCEMENT, RU_KZ_SUPREME_COURTS)}
)


def profile(agreement_id: str) -> AgreementProfile:
    try:
        return PROFILES[agreement_id]
    except KeyError:
        raise KeyError(
            f"unknown agreement {agreement_id!r}; known: {', '.join(PROFILES)}"
        ) from None


@dataclass(frozen=True, slots=True)
class Participation:
    """A state's (or a court's) participation in an agreement, as the depositary publishes it."""

    state: str
    agreement: str
    in_force_from: date | None
    """Entry into force for this party (CIS Art. 22–23; SC Art. 13.1); None: not yet."""
    withdrawn_from: date | None = None
    """Withdrawal (CIS Art. 24) or termination (SC Art. 13.2) takes effect on this date."""
