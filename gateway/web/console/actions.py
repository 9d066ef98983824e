"""The console's actions on a conversation, each a plain form that builds one document.

An *action* is one kind of document a person sends within a conversation: answer the request,
ask for additional information, announce a delay, postpone or set conditions, announce that
confidentiality cannot be kept, the requesting party's decisions, consent to disclosure, the
withdrawal. (The refusal has its own module, :mod:`gateway.web.console.refusal`.)

Which actions a page offers is derived, never listed by hand: our role in the conversation
(we sent its opening document: requesting; we received it: requested) and the node's own rule,
:func:`gateway.exchange.conversation.may_send` (the agreement's kinds and who may send each, the
table of transitions for the conversation's state), say which kinds (and which decisions) we
may send now — the same function the node applies when the document is submitted.

The form's fields are named after the XSD elements (the document shapes mirror
``gateway/schemas/examples/valid/*.json``), so a problem the node reports at
``/Envelope/Body/<Kind>/<Element>…`` is shown next to its field. The node does all the
checking (schema, rules, protocol); this module refuses only what cannot even be put into a
document (a required field left empty, a date that is not a date, a choice not offered).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any

from gateway.exchange.conversation import Role as Side
from gateway.exchange.conversation import State, may_send
from gateway.exchange.service import ConversationView, MessageSummary
from gateway.model.ids import time_ordered_uuid
from gateway.model.problems import Problem
from gateway.model.profiles import PROFILES
from gateway.web.xmlchars import field_error_ru, without_forbidden
from gateway.xml.labels import LANGUAGES_RU

MAX_TEXT_CHARS = 10_000
"""Longest text one field takes: the schema's ``c:Text`` maximum (common.xsd). A longer value
could never be sent, so the form says so at once instead of after a round trip."""

MAX_LINES = 50
"""Most questions or conditions one field takes (AdditionalInfoRequest/Question maxOccurs)."""

DEFAULT_MEDIA_TYPE = "application/octet-stream"
_MEDIA_TYPE = re.compile(r"^[a-z]{1,20}/[a-z0-9][a-z0-9.+\-]{0,78}$")
"""The schema's ``c:MediaType`` (at most 100 characters)."""
_FILE_NAME_BAD = re.compile(r'[/\\:*?"<>|]')
MAX_FILE_NAME_CHARS = 255
"""The schema's ``c:FileName`` maximum."""

MAX_TITLE_CHARS = 500
"""The schema's ``c:Line`` maximum (an attachment's title)."""

_BODY_PATH = "/Envelope/Body/"
_LISTED_FILES = "/Envelope/Header/Attachments"
_FILE_CODES = frozenset({"ATTACHMENT_TOO_LARGE", "ATTACHMENT_UNKNOWN"})
"""Refusals of the file itself, which name no path (the recipient's published limit)."""

_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,15})\.[0-9]{2}")
"""The schema's ``c:Amount``: digits, a point, two decimals."""


# --- specifications ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    """One input of an action's form."""

    name: str
    """Form field name; the XSD element's name wherever there is one."""
    label_ru: str
    widget: str
    """``text``, ``textarea``, ``lines`` (one item a line), ``date``, ``choice`` (radio),
    ``checks`` (several of the choices), ``select`` (a list; the first choice preselected),
    ``message`` (choose a document of this conversation), ``file``; ``section`` is a heading
    between fields, no input."""
    required: bool = False
    choices: tuple[tuple[str, str], ...] = ()
    """``choice``: (value, Russian label)."""
    hint_ru: str = ""
    elements: tuple[str, ...] = ()
    """Element names (first below the kind) whose problems belong to this field; its own name
    is always one."""


@dataclass(frozen=True, slots=True)
class Upload:
    """A file the operator attached: streamed into the node as it came (hashed and encrypted,
    never held whole), to travel beside the XML (docs/attachments.md)."""

    file_name: str
    attachment_id: str
    """The node's id of the upload, which the submission lists."""


Values = Mapping[str, Any]
Builder = Callable[[Values], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    name: str
    """The action's address segment, e.g. ``respond``."""
    kind: str
    sender: Side
    """Who may send it in the conversation (the protocol's role)."""
    title_ru: str
    article: str
    fields: tuple[Field, ...]
    build: Builder
    decisions: tuple[str, ...] = ()
    """Protocol decisions refining the table key (``PostponementDecision:accept``); the form's
    ``Decision`` choices are those the table allows now."""
    reply_to: tuple[str, ...] = ()
    """Received kinds this answers (the latest of them is ``InReplyTo``); else the opening."""
    submit_ru: str = "Подписать и отправить"

    @property
    def uploads(self) -> bool:
        return any(f.widget == "file" for f in self.fields)

    def field_for(self, element: str) -> str:
        for f in self.fields:
            if element == f.name or element in f.elements:
                return f.name
        return ""


# --- document bodies ---------------------------------------------------------------------------


def _optional(**items: Any) -> dict[str, Any]:
    """Only the items with a value: an empty optional element is left out, not sent empty."""
    return {k: v for k, v in items.items() if v not in (None, "", [], ())}


_YES_NO = (("yes", "Да"), ("no", "Нет"))
_BOTH: Mapping[str, list[str]] = MappingProxyType(
    {
        "both": ["authenticity", "content"],
        "both-topics": ["protection-measures", "retention-periods"],
    }
)
"""A single choice standing for both values of a repeatable code (the schema allows two)."""
FILES_PER_FORM = 3
"""Files a console form sends beside its document, each with its own title, language, and
translation (CIS Art. 19, SC Art. 11); a case system sends more through the local API."""


@dataclass(frozen=True, slots=True)
class FileSlot:
    """One file of a form and the names of the fields that describe it. The first keeps the
    plain names (``Attachment``, ``Translation``, ``AttachmentTitle`` …); the next add their
    number (``Attachment2`` …): :func:`file_slot`."""

    number: int
    title: str
    language: str
    register_extract: str
    file: str
    translation: str

    def fields(self, cis: bool) -> tuple[Field, ...]:
        """Title and language first: a browser posts fields in this order, so the files,
        streamed as they arrive, come after them and their language is known. CIS: whether
        it is a register extract, which travels without translation (Art. 5 para. 3; the
        node's language rule reads the header list's ``RegisterExtract``; the Supreme Courts'
        agreement has no such exemption, so their forms do not ask)."""
        which = "" if self.number == 1 else f" {self.number}"
        heading = (
            ()
            if self.number == 1
            else (Field(f"section-file-{self.number}", f"Приложение{which}", "section"),)
        )
        extract = (
            Field(
                self.register_extract,
                f"Приложение{which} — выписка из реестра или документ, подтверждающий права",
                "choice",
                choices=_YES_NO,
                hint_ru="Такие документы передаются без перевода (п. 3 ст. 5 Соглашения СНГ).",
            ),
        )
        return (
            *heading,
            Field(self.title, f"Название приложения{which}", "text"),
            Field(
                self.language,
                f"Язык приложения{which}",
                "select",
                choices=tuple(LANGUAGES_RU.items()),
                hint_ru="Файл не на русском языке передаётся с переводом на русский язык "
                "(ст. 19 Соглашения СНГ; ст. 11 Соглашения Верховных Судов).",
            ),
            *(extract if cis else ()),
            Field(
                self.file,
                f"Приложение{which} (файл, необязательно)",
                "file",
                hint_ru="Файл любого размера в пределах, которые опубликовал получатель; он "
                "передаётся рядом с документом, подписанным вместе с ним.",
            ),
            Field(
                self.translation,
                f"Перевод приложения{which} на русский язык (файл)",
                "file",
                hint_ru="Нужен, если приложение не на русском языке; передаётся рядом с ним.",
            ),
        )


def file_slot(number: int) -> FileSlot:
    def named(base: str) -> str:
        return base if number == 1 else f"{base}{number}"

    return FileSlot(
        number,
        *(named(b) for b in ("AttachmentTitle", "AttachmentLanguage", "RegisterExtract")),
        *(named(b) for b in ("Attachment", "Translation")),
    )


FILE_SLOTS = tuple(file_slot(n) for n in range(1, FILES_PER_FORM + 1))
"""A form's files, in the order they are listed in the signed header."""


def attachment_fields(cis: bool) -> tuple[Field, ...]:
    """Every file slot's fields, in order (:meth:`FileSlot.fields`)."""
    return tuple(f for slot in FILE_SLOTS for f in slot.fields(cis))


UPLOAD_FIELDS = tuple(name for slot in FILE_SLOTS for name in (slot.file, slot.translation))
"""The form's file fields."""


def slot_of(field_name: str) -> FileSlot | None:
    """The file slot a file, title, language or register-extract field belongs to."""
    for slot in FILE_SLOTS:
        if field_name in (
            slot.file,
            slot.translation,
            slot.title,
            slot.language,
            slot.register_extract,
        ):
            return slot
    return None


def listed_order(uploads: Mapping[str, Upload]) -> list[str]:
    """The file fields in the order their files are listed in the signed header: each slot's
    file, then its translation (one without its file is refused before)."""
    return [
        name
        for slot in FILE_SLOTS
        if slot.file in uploads
        for name in (slot.file, slot.translation)
        if name in uploads
    ]


def _decision(
    name: str,
    kind: str,
    title_ru: str,
    article: str,
    decisions: dict[str, tuple[str, str]],
    *,
    reply_to: str,
) -> ActionSpec:
    """The requesting side's decision on what the requested side asked (``reply_to``): one
    choice and a comment. ``decisions``: the protocol's decision (the table key) → the value
    the document carries and the choice's label."""

    def build(v: Values) -> dict[str, Any]:
        value = decisions[v["Decision"]][0]
        return {kind: {"Decision": value, **_optional(Comment=v["Comment"])}}

    choices = tuple((key, label) for key, (_, label) in decisions.items())
    return ActionSpec(
        name,
        kind,
        Side.REQUESTING,
        title_ru,
        article,
        (
            Field("Decision", "Решение", "choice", required=True, choices=choices),
            Field("Comment", "Комментарий", "textarea"),
        ),
        build,
        decisions=tuple(decisions),
        reply_to=(reply_to,),
    )


def _specs(agreement: str) -> tuple[ActionSpec, ...]:
    cis = agreement == "cis-enforcement"
    requesting, requested = Side.REQUESTING, Side.REQUESTED

    def response(v: Values) -> dict[str, Any]:
        body: dict[str, Any] = {"Summary": v["Summary"], "Complete": v["Complete"] == "yes"}
        if cis:
            # CIS Response needs its results (Art. 4–8); free text goes into "Other" (Art. 6 д).
            body["Results"] = {"Result": [{"Other": {"Details": v["Information"]}}]}
        elif v["Information"]:
            body["Information"] = v["Information"]
        return {"Response": body}

    def ask(v: Values) -> dict[str, Any]:
        return {
            "AdditionalInfoRequest": {"Question": v["Question"], **_optional(Reason=v["Reason"])}
        }

    def answer(v: Values) -> dict[str, Any]:
        return {
            "AdditionalInfoAnswer": {
                "Information": v["Information"],
            }
        }

    def delay(v: Values) -> dict[str, Any]:
        expected = v["ExpectedDate"].isoformat() if v["ExpectedDate"] else None
        if cis:
            return {"DelayNotice": {"Reason": v["Reason"], "ExpectedDate": expected}}
        return {"DelayNotice": _optional(Obstacle=v["Reason"], ExpectedDate=expected)}

    def postpone(v: Values) -> dict[str, Any]:
        body: dict[str, Any] = {"Reason": v["Reason"]}
        if v["Mode"] == "conditions":
            body["Conditions"] = {"Condition": v["Condition"]}
        else:
            expected = v["ExpectedDate"].isoformat() if v["ExpectedDate"] else None
            body["UntilRemoved"] = _optional(
                Circumstances=v["Circumstances"], ExpectedDate=expected
            )
        body["ConsultationsHeld"] = v["ConsultationsHeld"] == "yes"
        return {"Postponement": body}

    def confidentiality(v: Values) -> dict[str, Any]:
        return {"ConfidentialityNotice": {"Reason": v["Reason"]}}

    def consent_request(v: Values) -> dict[str, Any]:
        return {
            "ConsentRequest": {
                "ThirdParty": _optional(Name=v["ThirdPartyName"], Role=v["ThirdPartyRole"]),
                "Purpose": v["Purpose"],
                "Information": v["Information"],
                **_optional(ProvidedInMessageId=v["ProvidedInMessageId"]),
            }
        }

    def consent_decision(v: Values) -> dict[str, Any]:
        return {
            "ConsentDecision": {
                "Decision": v["Decision"],
                **_optional(Condition=v["Condition"], Reason=v["Reason"]),
            }
        }

    def authenticity_request(v: Values) -> dict[str, Any]:
        return {
            "AuthenticityConfirmationRequest": {
                "DoubtAbout": _BOTH.get(v["DoubtAbout"], [v["DoubtAbout"]]),
                "Details": v["Details"],
            }
        }

    def authenticity(v: Values) -> dict[str, Any]:
        return {
            "AuthenticityConfirmation": {
                "Confirmed": v["Confirmed"] == "yes",
                "Statement": v["Statement"],
                "ConfirmedBy": {"Name": v["ConfirmedByName"], "Position": v["ConfirmedByPosition"]},
            }
        }

    def protection_inquiry(v: Values) -> dict[str, Any]:
        return {
            "ProtectionMeasuresInquiry": {
                "Topic": _BOTH.get(v["Topic"], [v["Topic"]]),
                **_optional(Question=v["Question"]),
            }
        }

    def protection_answer(v: Values) -> dict[str, Any]:
        period = _optional(
            Information=v["RetentionInformation"],
            Term=v["RetentionTerm"],
            LegalBasis=v["RetentionLegalBasis"],
        )
        return {
            "ProtectionMeasuresAnswer": _optional(
                Measures=v["Measures"], RetentionPeriod=[period] if period else None
            )
        }

    def withdraw(v: Values) -> dict[str, Any]:
        return {"Withdrawal": {"Reason": v["Reason"]}}

    def consult(v: Values) -> dict[str, Any]:
        if cis:
            return {
                "ConsultationRequest": {
                    "Topic": v["Topic"],
                    "Circumstances": v["Circumstances"],
                    "Question": v["Question"],
                    **_optional(ProposedCondition=v["ProposedCondition"]),
                }
            }
        total = {"Amount": v["Amount"], "Currency": v["Currency"]}
        return {
            "ConsultationRequest": {
                "Topic": "substantial-costs",
                "EstimatedCosts": {"Total": total, **_optional(Breakdown=v["Breakdown"])},
                "Question": v["Question"],
                **_optional(ProposedCondition=v["ProposedCondition"]),
            }
        }

    def consult_answer(v: Values) -> dict[str, Any]:
        if cis:
            body = {"Answer": v["Answer"]}
        else:
            body = _optional(
                Answer=v["Answer"],
                CostCoverage=v["CostCoverage"],
                CoverageTerms=v["CoverageTerms"],
            )
        return {"ConsultationAnswer": body}

    def consult_record(v: Values) -> dict[str, Any]:
        body: dict[str, Any] = {
            "Topic": v["Topic"] if cis else "substantial-costs",
            "HeldOn": v["HeldOn"].isoformat() if v["HeldOn"] else None,
            "Means": v["Means"],
            "Participants": v["Participants"],
            "Outcome": v["Outcome"],
            **_optional(AgreedCondition=v["AgreedCondition"]),
        }
        if not cis:
            body.update(_optional(CostCoverage=v["CostCoverage"], CoverageTerms=v["CoverageTerms"]))
        return {"ConsultationRecord": body}

    consultation_article = "CIS Art. 13, 15" if cis else "SC Art. 9.2"
    if cis:
        consultation_fields: tuple[Field, ...] = (
            Field(
                "Topic",
                "Предмет консультаций",
                "choice",
                required=True,
                choices=(
                    ("refusal", "До решения об отказе в исполнении запроса (ст. 13)"),
                    (
                        "postponement-or-conditions",
                        "До отложения исполнения или определения условий (ст. 15)",
                    ),
                ),
            ),
            Field(
                "Circumstances",
                "Обстоятельства, препятствующие исполнению",
                "textarea",
                required=True,
            ),
        )
        answer_fields: tuple[Field, ...] = (
            Field("Answer", "Ответ", "textarea", required=True),
            *attachment_fields(cis),
        )
    else:
        consultation_fields = (
            Field(
                "Amount",
                "Предполагаемые расходы, сумма",
                "text",
                required=True,
                hint_ru="С двумя знаками после точки, например 1250000.00.",
                elements=("EstimatedCosts",),
            ),
            Field(
                "Currency",
                "Валюта",
                "choice",
                required=True,
                choices=(("KZT", "тенге (KZT)"), ("RUB", "российский рубль (RUB)")),
            ),
            Field("Breakdown", "Состав расходов", "textarea"),
        )
        answer_fields = (
            Field("Answer", "Ответ", "textarea", required=True),
            Field(
                "CostCoverage",
                "Порядок покрытия расходов",
                "choice",
                choices=(
                    ("each-party-own", "Каждая Сторона несёт свои расходы (ст. 9.1)"),
                    ("requesting-party", "Расходы покрывает запрашивающая Сторона"),
                    ("shared", "Расходы распределяются между Сторонами"),
                    ("not-agreed", "Не согласовано"),
                ),
            ),
            Field(
                "CoverageTerms",
                "Условия покрытия расходов",
                "textarea",
                hint_ru="Обязательно, если расходы покрывает запрашивающая Сторона или они "
                "распределяются (ст. 9 Соглашения Верховных Судов).",
            ),
        )

    information_label = (
        "Сведения, полученные при исполнении запроса (ст. 4–8 Соглашения СНГ)"
        if cis
        else "Сведения (ст. 6.1 Соглашения Верховных Судов)"
    )
    specs = [
        ActionSpec(
            "respond",
            "Response",
            requested,
            "Ответ на запрос",
            "CIS Art. 4–8" if cis else "SC Art. 6.1",
            (
                Field("Summary", "Итог исполнения запроса", "textarea", required=True),
                Field(
                    "Complete",
                    "Запрос исполнен полностью",
                    "choice",
                    required=True,
                    choices=_YES_NO,
                ),
                Field(
                    "Information",
                    information_label,
                    "textarea",
                    required=cis,
                    elements=("Results",),
                ),
                *attachment_fields(cis),
            ),
            response,
            submit_ru="Подписать и отправить ответ",
        ),
        ActionSpec(
            "ask",
            "AdditionalInfoRequest",
            requested,
            "Запрос дополнительных сведений",
            "CIS Art. 14" if cis else "SC Art. 6.1",
            (
                Field(
                    "Question",
                    "Вопросы (каждый с новой строки)",
                    "lines",
                    required=True,
                ),
                Field("Reason", "Почему нужны сведения", "textarea"),
            ),
            ask,
        ),
        ActionSpec(
            "answer-questions",
            "AdditionalInfoAnswer",
            requesting,
            "Дополнительные сведения",
            "CIS Art. 14" if cis else "SC Art. 6.1",
            (
                Field("Information", "Сведения в ответ на вопросы", "textarea", required=True),
                *attachment_fields(cis),
            ),
            answer,
            reply_to=("AdditionalInfoRequest",),
        ),
        ActionSpec(
            "delay",
            "DelayNotice",
            requested,
            "Уведомление о невозможности исполнить в срок",
            "CIS Art. 12" if cis else "SC Art. 6.1",
            (
                Field(
                    "Reason",
                    "Причина задержки" if cis else "Обстоятельства, препятствующие исполнению",
                    "textarea",
                    required=True,
                    elements=("Obstacle",),
                ),
                Field(
                    "ExpectedDate",
                    "Ожидаемая дата исполнения",
                    "date",
                    required=cis,
                    hint_ru="ГГГГ-ММ-ДД",
                ),
            ),
            delay,
        ),
        ActionSpec(
            "postpone",
            "Postponement",
            requested,
            "Отложение исполнения или условия исполнения",
            "CIS Art. 15",
            (
                Field("Reason", "Основание (ст. 15 Соглашения СНГ)", "textarea", required=True),
                Field(
                    "Mode",
                    "Что предлагается",
                    "choice",
                    required=True,
                    choices=(
                        ("conditions", "Исполнить на условиях"),
                        ("until-removed", "Отложить до устранения обстоятельств"),
                    ),
                ),
                Field(
                    "Condition",
                    "Условия исполнения (каждое с новой строки)",
                    "lines",
                    elements=("Conditions",),
                ),
                Field(
                    "Circumstances",
                    "Обстоятельства, до устранения которых исполнение отложено",
                    "textarea",
                    elements=("UntilRemoved",),
                ),
                Field("ExpectedDate", "Ожидаемая дата устранения", "date", hint_ru="ГГГГ-ММ-ДД"),
                Field(
                    "ConsultationsHeld",
                    "Проводились ли консультации",
                    "choice",
                    required=True,
                    choices=_YES_NO,
                ),
            ),
            postpone,
        ),
        ActionSpec(
            "confidentiality-notice",
            "ConfidentialityNotice",
            requested,
            "Уведомление о невозможности сохранить конфиденциальность",
            "CIS Art. 16",
            (
                Field(
                    "Reason",
                    "Почему запрос нельзя исполнить с сохранением конфиденциальности",
                    "textarea",
                    required=True,
                ),
            ),
            confidentiality,
        ),
        _decision(
            "postponement-decision",
            "PostponementDecision",
            "Решение по отложению или условиям исполнения",
            "CIS Art. 15",
            {
                "accept": ("accept", "Согласиться (исполнение продолжается)"),
                "decline": ("decline", "Не соглашаться (запрос отзывается)"),
            },
            reply_to="Postponement",
        ),
        _decision(
            "confidentiality-decision",
            "ConfidentialityDecision",
            "Решение: исполнять без сохранения конфиденциальности или отозвать",
            "CIS Art. 16",
            {
                "proceed": (
                    "proceed-without-confidentiality",
                    "Исполнять без сохранения конфиденциальности",
                ),
                "withdraw": ("withdraw", "Отозвать запрос"),
            },
            reply_to="ConfidentialityNotice",
        ),
        ActionSpec(
            "consent-request",
            "ConsentRequest",
            requesting,  # placeholder; consent is asked by either side (see available_actions)
            "Запрос согласия на передачу сведений третьей стороне",
            "CIS Art. 9.2" if cis else "SC Art. 8.2",
            (
                Field(
                    "ThirdPartyName",
                    "Кому передать сведения",
                    "text",
                    required=True,
                    elements=("ThirdParty",),
                ),
                Field("ThirdPartyRole", "В каком качестве выступает получатель", "text"),
                Field("Purpose", "Цель передачи", "textarea", required=True),
                Field("Information", "Какие сведения передать", "textarea", required=True),
                Field("ProvidedInMessageId", "Документ, которым сведения получены", "message"),
            ),
            consent_request,
        ),
        ActionSpec(
            "consent-decision",
            "ConsentDecision",
            requesting,  # placeholder, as above
            "Решение о согласии на передачу сведений",
            "CIS Art. 9.2" if cis else "SC Art. 8.2",
            (
                Field("ConsentRequestId", "Запрос согласия", "message", required=True),
                Field(
                    "Decision",
                    "Решение",
                    "choice",
                    required=True,
                    choices=(("granted", "Согласие дано"), ("refused", "В согласии отказано")),
                ),
                Field("Condition", "Условия (каждое с новой строки)", "lines"),
                Field("Reason", "Причина отказа", "textarea"),
            ),
            consent_decision,
        ),
        ActionSpec(
            "authenticity-request",
            "AuthenticityConfirmationRequest",
            requested,
            "Запрос подтверждения подлинности или содержания запроса",
            "SC Art. 5.3",
            (
                Field(
                    "DoubtAbout",
                    "Что вызывает сомнение",
                    "choice",
                    required=True,
                    choices=(
                        ("authenticity", "Подлинность запроса"),
                        ("content", "Содержание запроса"),
                        ("both", "Подлинность и содержание запроса"),
                    ),
                ),
                Field("Details", "В чём состоят сомнения", "textarea", required=True),
            ),
            authenticity_request,
        ),
        ActionSpec(
            "authenticity-confirm",
            "AuthenticityConfirmation",
            requesting,
            "Подтверждение подлинности запроса",
            "SC Art. 5.3",
            (
                Field(
                    "Confirmed",
                    "Запрос подтверждается",
                    "choice",
                    required=True,
                    choices=_YES_NO,
                ),
                Field("Statement", "Текст подтверждения", "textarea", required=True),
                Field(
                    "ConfirmedByName",
                    "Кто подтверждает (фамилия, имя, отчество)",
                    "text",
                    required=True,
                    elements=("ConfirmedBy",),
                ),
                Field("ConfirmedByPosition", "Должность", "text", required=True),
            ),
            authenticity,
            reply_to=("AuthenticityConfirmationRequest",),
        ),
        ActionSpec(
            "protection-inquiry",
            "ProtectionMeasuresInquiry",
            requesting,  # placeholder: either party may ask (see available_actions)
            "Запрос сведений о мерах защиты информации и сроках её хранения",
            "CIS Art. 9.5",
            (
                Field(
                    "Topic",
                    "О чём запрашиваются сведения",
                    "choice",
                    required=True,
                    choices=(
                        ("protection-measures", "О мерах защиты информации"),
                        ("retention-periods", "О сроках хранения"),
                        ("both-topics", "О мерах защиты и сроках хранения"),
                    ),
                ),
                Field("Question", "Вопрос", "textarea"),
            ),
            protection_inquiry,
        ),
        ActionSpec(
            "protection-answer",
            "ProtectionMeasuresAnswer",
            requested,  # placeholder: whoever was asked answers (see available_actions)
            "Сведения о мерах защиты информации и сроках её хранения",
            "CIS Art. 9.5",
            (
                Field("Measures", "Принимаемые меры защиты", "textarea", required=True),
                Field(
                    "RetentionInformation",
                    "Какая информация хранится",
                    "text",
                    elements=("RetentionPeriod",),
                ),
                Field("RetentionTerm", "Срок хранения", "text"),
                Field("RetentionLegalBasis", "Основание срока хранения", "text"),
            ),
            protection_answer,
            reply_to=("ProtectionMeasuresInquiry",),
        ),
        ActionSpec(
            "consult",
            "ConsultationRequest",
            requested,  # SC: either party may ask (see available_actions)
            "Предложение о проведении консультаций" if cis else "Консультации о расходах",
            consultation_article,
            (
                *consultation_fields,
                Field("Question", "Вопросы (каждый с новой строки)", "lines", required=True),
                Field("ProposedCondition", "Предлагаемые условия (каждое с новой строки)", "lines"),
            ),
            consult,
        ),
        ActionSpec(
            "consult-answer",
            "ConsultationAnswer",
            requesting,  # SC: whoever was asked answers (see available_actions)
            "Ответ в ходе консультаций",
            consultation_article,
            (
                Field(
                    "ConsultationRequestId",
                    "Предложение о консультациях",
                    "message",
                    required=True,
                ),
                *answer_fields,
            ),
            consult_answer,
        ),
        ActionSpec(
            "consult-record",
            "ConsultationRecord",
            requested,  # placeholder: either party records (see available_actions)
            "Запись о проведённых консультациях",
            consultation_article,
            (
                Field(
                    "ConsultationRequestId",
                    "Предложение о консультациях (если было)",
                    "message",
                ),
                *(consultation_fields[:1] if cis else ()),
                Field("HeldOn", "Дата проведения", "date", required=True),
                Field(
                    "Means",
                    "Способ проведения",
                    "choice",
                    required=True,
                    choices=(
                        ("telephone", "По телефону"),
                        ("video-conference", "По видеосвязи"),
                        ("meeting", "На встрече"),
                    ),
                ),
                Field("Participants", "Участники", "textarea", required=True),
                Field("Outcome", "Итоги", "textarea", required=True),
                Field("AgreedCondition", "Согласованные условия (каждое с новой строки)", "lines"),
                *(() if cis else answer_fields[1:]),
            ),
            consult_record,
        ),
        ActionSpec(
            "withdraw",
            "Withdrawal",
            requesting,
            "Отзыв запроса",
            "",
            (Field("Reason", "Причина отзыва", "textarea", required=True),),
            withdraw,
        ),
    ]
    kinds = PROFILES[agreement].kinds if agreement in PROFILES else {}
    return tuple(s for s in specs if s.kind in kinds)


SPECS: Mapping[str, Mapping[str, ActionSpec]] = MappingProxyType(
    {a: MappingProxyType({s.name: s for s in _specs(a)}) for a in PROFILES}
)
"""Agreement -> action name -> specification (only the kinds the agreement has)."""

DISCLOSURE = ActionSpec(
    "disclose",
    "",  # not a document sent to the other party: the node records the disclosure
    Side.REQUESTING,  # placeholder: whoever received the document
    "Раскрытие полученных сведений",
    "",  # two agreements, two articles: the fields name them
    (
        Field("MessageId", "Какой полученный документ раскрывается", "message", required=True),
        Field("Recipient", "Кому раскрываются сведения", "text", required=True),
        Field(
            "Category",
            "Получатель",
            "choice",
            required=True,
            choices=(
                ("debtor", "Должник (ст. 9.2 Соглашения СНГ)"),
                ("creditor", "Взыскатель (ст. 9.3 Соглашения СНГ)"),
                ("third-party", "Иное лицо — только с согласием предоставившей стороны"),
            ),
            hint_ru="По Соглашению Верховных Судов (ст. 8.2) любое раскрытие — только с "
            "предварительного письменного согласия.",
        ),
        Field("Purpose", "Цель раскрытия", "textarea", required=True),
    ),
    lambda v: {},
    submit_ru="Записать раскрытие",
)
"""Disclosure of a received document to others (CIS Art. 9.2–9.3; SC Art. 8.2): a form like
the others, but the node records it (:func:`gateway.app.disclosures.disclose`, as ``gateway
disclose`` and the local API) instead of sending anything; the agreement's rule decides, and a
refusal comes back naming the article and what to do (e.g. ask consent first)."""

ACTION_NAMES = tuple(
    sorted({name for specs in SPECS.values() for name in specs} | {DISCLOSURE.name})
)
SIDE_KINDS = frozenset(
    {
        "ConsentRequest",
        "ConsentDecision",
        "ProtectionMeasuresInquiry",
        "ProtectionMeasuresAnswer",
        "ConsultationRequest",
        "ConsultationAnswer",
        "ConsultationRecord",
    }
)
"""Kinds run beside the main conversation (consent to disclosure, the protection-measures
inquiry, consultations); the agreement's profile says which side may send each."""

_NOT_CONTENT = frozenset({"Receipt", "Rejection"})


# --- what may be done now ----------------------------------------------------------------------


def our_side(view: ConversationView) -> Side | None:
    """We opened the conversation (sent its opening document): requesting; else requested."""
    for message in view.messages:
        if message.kind == view.summary.opening_kind:
            return Side.REQUESTING if message.direction == "out" else Side.REQUESTED
    return None


def _unsettled(
    view: ConversationView, kind: str, settled_by: Collection[str], *, received: bool = True
) -> tuple[MessageSummary, ...]:
    """The ``kind`` documents no ``settled_by`` document answers yet; ``received``: only those
    the other party sent, settled only by what we sent."""
    settled = {
        m.in_reply_to
        for m in view.messages
        if m.kind in settled_by and (not received or m.direction == "out")
    }
    return tuple(
        m
        for m in view.messages
        if m.kind == kind and (not received or m.direction == "in") and m.message_id not in settled
    )


def pending_consents(view: ConversationView) -> tuple[MessageSummary, ...]:
    """Consent requests the other party sent that we have not decided yet."""
    return _unsettled(view, "ConsentRequest", ("ConsentDecision",))


def pending_inquiries(view: ConversationView) -> tuple[MessageSummary, ...]:
    """Protection-measures inquiries the other party sent that we have not answered yet."""
    return _unsettled(view, "ProtectionMeasuresInquiry", ("ProtectionMeasuresAnswer",))


def pending_consultations(view: ConversationView) -> tuple[MessageSummary, ...]:
    """Consultation requests the other party sent that we have not answered yet."""
    return _unsettled(view, "ConsultationRequest", ("ConsultationAnswer",))


def open_consultations(view: ConversationView) -> tuple[MessageSummary, ...]:
    """Consultation requests of either party not yet answered or recorded: what a record of a
    consultation held orally may settle."""
    return _unsettled(
        view, "ConsultationRequest", ("ConsultationAnswer", "ConsultationRecord"), received=False
    )


def received_content(view: ConversationView) -> tuple[MessageSummary, ...]:
    """Documents the other party sent with content (what consent may be asked about)."""
    return tuple(m for m in view.messages if m.direction == "in" and m.kind not in _NOT_CONTENT)


def allowed_decisions(
    spec: ActionSpec, agreement: str, state: State, side: Side
) -> tuple[str, ...]:
    return tuple(d for d in spec.decisions if may_send(agreement, state, spec.kind, side, d))


def available_actions(view: ConversationView) -> tuple[ActionSpec, ...]:
    """The actions the conversation's state and our role allow now, in the form's order: the
    node's own rule (:func:`gateway.exchange.conversation.may_send`), then what only the
    conversation's documents tell (an undecided consent request to decide, an unanswered
    inquiry or consultation to answer)."""
    side = our_side(view)
    try:
        state = State(view.summary.state)
    except ValueError:
        return ()
    if side is None:
        return ()
    agreement = view.summary.agreement
    result = []
    for spec in SPECS.get(agreement, {}).values():
        if not may_send(agreement, state, spec.kind, side):
            continue
        if spec.kind in SIDE_KINDS:
            if spec.kind == "ConsentDecision" and not pending_consents(view):
                continue
            if spec.kind == "ProtectionMeasuresAnswer" and not pending_inquiries(view):
                continue
            if spec.kind == "ConsultationAnswer" and not pending_consultations(view):
                continue
            # After the request is closed, a record only settles a consultation still open.
            if spec.kind == "ConsultationRecord" and state.closed and not open_consultations(view):
                continue
        elif spec.sender is not side or (
            spec.decisions and not allowed_decisions(spec, agreement, state, side)
        ):
            continue
        result.append(spec)
    return tuple(result)


def disclosure_offered(view: ConversationView) -> bool:
    """The disclosure form is offered once the other party has sent us a document with content:
    only received information is disclosed under the agreements' rules."""
    return our_side(view) is not None and bool(received_content(view))


def message_choices(
    spec: ActionSpec,
    view: ConversationView,
    field_name: str,
    shown_at: Callable[[datetime], str] = lambda t: f"{t.astimezone(UTC):%d.%m.%Y %H:%M} (UTC)",
) -> tuple[tuple[str, str], ...]:
    """(message id, label) a ``message`` field offers: the kind's title and its time as
    ``shown_at`` writes it (the console passes the node's zone)."""
    if spec.kind == "ConsentDecision":
        messages = pending_consents(view)
    elif spec.kind == "ConsultationAnswer":
        messages = pending_consultations(view)
    elif spec.kind == "ConsultationRecord":
        messages = open_consultations(view)
    else:
        messages = received_content(view)
    return tuple(
        (m.message_id, f"{_kind_title(m.kind)} от {shown_at(m.created)}") for m in messages
    )


def _kind_title(kind: str) -> str:
    for profile in PROFILES.values():
        if kind in profile.kinds:
            return profile.kinds[kind].title_ru
    return kind


def choices_of(
    spec: ActionSpec,
    view: ConversationView,
    item: Field,
    shown_at: Callable[[datetime], str] | None = None,
) -> tuple[tuple[str, str], ...]:
    """The choices a field offers on this conversation now (``shown_at``: how a message's time
    reads in its label)."""
    if item.widget == "message":
        if shown_at is None:
            return message_choices(spec, view, item.name)
        return message_choices(spec, view, item.name, shown_at)
    if item.name == "Decision" and spec.decisions:
        side = our_side(view)
        try:
            state = State(view.summary.state)
        except ValueError:
            return ()
        agreement = view.summary.agreement
        allowed = set(allowed_decisions(spec, agreement, state, side)) if side else set()
        return tuple(c for c in item.choices if c[0] in allowed)
    return item.choices


# --- reading the form --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionForm:
    """What the operator entered (to show again) and what was wrong with it."""

    raw: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)
    uploads: Mapping[str, Upload] = field(default_factory=dict)
    """File field name -> the file streamed into the node for it."""
    errors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Field name -> Russian messages; ``""``: the document as a whole."""


def _clean_text(value: str) -> str:
    # Line breaks and tabs stay (Text allows several lines); other control characters would
    # make the XML unserialisable or hide text from the reader.
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(
        c for c in value if c in "\n\t" or unicodedata.category(c) not in {"Cc", "Cf", "Cs", "Co"}
    ).strip()


def _one_line(value: str) -> str:
    return " ".join(_clean_text(value).split())


def clean_file_name(name: str) -> str:
    """A bare file name the schema accepts (no folders, no characters file systems refuse)."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _FILE_NAME_BAD.sub("_", _one_line(name))
    name = name.lstrip(".") or "file"
    return name[:MAX_FILE_NAME_CHARS]


def clean_media_type(value: str | None) -> str:
    """The browser's media type when it is a plain ``type/subtype``; else octet-stream."""
    media_type = (value or "").split(";", 1)[0].strip().lower()
    return media_type if _MEDIA_TYPE.fullmatch(media_type) else DEFAULT_MEDIA_TYPE


def read_action_form(
    spec: ActionSpec,
    view: ConversationView,
    form: Mapping[str, str],
    uploads: Mapping[str, Upload] | None = None,
    upload_errors: Mapping[str, str] | None = None,
) -> ActionForm:
    """The posted form, cleaned, with the errors that stop a document from being built.
    ``uploads``/``upload_errors``: per file field, the file streamed in or why it was not."""
    raw, values, errors = read_fields(
        spec.fields, form, lambda item: choices_of(spec, view, item), upload_errors or {}
    )
    uploads = dict(uploads or {})
    _cross_checks(spec, values, errors)
    for name, texts in translation_problems(uploads).items():
        errors.setdefault(name, []).extend(texts)
    return ActionForm(
        raw=raw,
        values=values,
        uploads=uploads,
        errors={k: tuple(v) for k, v in errors.items()},
    )


def read_fields(
    fields: Sequence[Field],
    form: Mapping[str, str],
    choices: Callable[[Field], tuple[tuple[str, str], ...]],
    upload_errors: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], dict[str, Any], dict[str, list[str]]]:
    """Each field's text as typed (to show again), its cleaned value, and what is wrong with
    it; ``choices``: what a choice field offers now. A ``checks`` field's values come joined
    by commas."""
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    raw: dict[str, str] = {}
    for item in fields:
        if item.widget == "section":
            continue
        if item.widget == "file":
            if upload_errors and item.name in upload_errors:
                errors.setdefault(item.name, []).append(upload_errors[item.name])
            continue
        text = form.get(item.name, "")
        text = text if isinstance(text, str) else ""
        forbidden = field_error_ru(text)
        if forbidden is not None:
            # Checked before anything is built: the form comes back without those characters.
            errors.setdefault(item.name, []).append(forbidden)
            text = without_forbidden(text)
        raw[item.name] = text[:MAX_TEXT_CHARS]
        if len(text) > MAX_TEXT_CHARS:
            errors.setdefault(item.name, []).append(
                f"Текст длиннее {MAX_TEXT_CHARS} символов; изложите короче."
            )
        value, missing = _field_value(item, text, choices, errors)
        if item.required and missing and item.name not in errors:
            errors.setdefault(item.name, []).append(
                "Выберите один из вариантов."
                if item.widget in ("choice", "message", "checks")
                else "Заполните это поле."
            )
        values[item.name] = value
    return raw, values, errors


def _field_value(
    item: Field,
    text: str,
    choices: Callable[[Field], tuple[tuple[str, str], ...]],
    errors: dict[str, list[str]],
) -> tuple[Any, bool]:
    """The field's value from its text, and whether it is missing."""
    value: Any
    if item.widget == "lines":
        value = [_one_line(line) for line in text.splitlines() if line.strip()]
        if len(value) > MAX_LINES:
            errors.setdefault(item.name, []).append(f"Не больше {MAX_LINES} строк.")
            value = value[:MAX_LINES]
        return value, not value
    if item.widget == "date":
        cleaned = text.strip()
        value = None
        if cleaned:
            try:
                value = date.fromisoformat(cleaned)
            except ValueError:
                errors.setdefault(item.name, []).append("Дата в виде ГГГГ-ММ-ДД.")
        return value, not cleaned
    if item.widget == "select":
        value = text.strip() or item.choices[0][0]
        if value not in {c[0] for c in item.choices}:
            errors.setdefault(item.name, []).append("Выберите из списка.")
            value = item.choices[0][0]
        return value, False
    if item.widget in ("choice", "message"):
        value = text.strip()
        if value and value not in {c[0] for c in choices(item)}:
            errors.setdefault(item.name, []).append("Выберите из предложенного.")
            value = ""
        return value, not value
    if item.widget == "checks":
        offered = [c[0] for c in choices(item)]
        chosen = {v.strip() for v in text.split(",") if v.strip()}
        if chosen - set(offered):
            errors.setdefault(item.name, []).append("Выберите из предложенного.")
        value = [code for code in offered if code in chosen]  # the offered order
        return value, not value
    if item.widget == "text":
        value = _one_line(text)[:MAX_TITLE_CHARS]
        return value, not value
    value = _clean_text(text)[:MAX_TEXT_CHARS]
    return value, not value


def _cross_checks(spec: ActionSpec, values: dict[str, Any], errors: dict[str, list[str]]) -> None:
    """What depends on another field's choice."""
    if spec.kind == "Postponement":
        if values.get("Mode") == "conditions" and not values.get("Condition"):
            errors.setdefault("Condition", []).append(
                "Перечислите условия исполнения (ст. 15 Соглашения СНГ)."
            )
        if values.get("Mode") == "until-removed" and not values.get("Circumstances"):
            errors.setdefault("Circumstances", []).append(
                "Опишите обстоятельства, до устранения которых исполнение отложено."
            )
    if spec.kind == "ConsultationRequest" and values.get("Amount"):
        amount = values["Amount"].replace(" ", "").replace("\u00a0", "").replace(",", ".")
        if not _AMOUNT.fullmatch(amount):
            errors.setdefault("Amount", []).append(
                "Сумма цифрами с двумя знаками после точки, например 1250000.00."
            )
        values["Amount"] = amount
    if (
        spec.kind in ("ConsultationAnswer", "ConsultationRecord")
        and values.get("CostCoverage") in ("requesting-party", "shared")
        and not values.get("CoverageTerms")
    ):
        errors.setdefault("CoverageTerms", []).append(
            "Укажите условия покрытия расходов (ст. 9 Соглашения Верховных Судов)."
        )
    refused = spec.kind == "ConsentDecision" and values.get("Decision") == "refused"
    if refused and values.get("Condition"):
        errors.setdefault("Condition", []).append("Условия указываются только при согласии.")


# --- the document ------------------------------------------------------------------------------


def _latest_received(view: ConversationView, kinds: Sequence[str]) -> str | None:
    found = [m for m in view.messages if m.direction == "in" and m.kind in kinds]
    return max(found, key=lambda m: m.created).message_id if found else None


def _opening(view: ConversationView) -> str | None:
    for message in view.messages:
        if message.kind == view.summary.opening_kind:
            return message.message_id
    return None


def build_document(
    spec: ActionSpec, view: ConversationView, form: ActionForm, now: datetime
) -> dict[str, Any]:
    """The JSON document (``{"header", "body"}``, mirroring the XSD) the service submits."""
    summary = view.summary
    side = our_side(view) or spec.sender
    if spec.kind == "ConsentDecision":
        in_reply_to = form.values.get("ConsentRequestId") or None
    elif spec.kind == "ConsultationAnswer":
        in_reply_to = form.values.get("ConsultationRequestId") or None
    elif spec.kind == "ConsultationRecord":
        in_reply_to = form.values.get("ConsultationRequestId") or _opening(view)
    elif spec.kind == "ConsentRequest":
        in_reply_to = form.values.get("ProvidedInMessageId") or _opening(view)
    else:
        in_reply_to = (_latest_received(view, spec.reply_to) if spec.reply_to else None) or (
            _opening(view)
        )
    ours, theirs = (
        (summary.requesting_party, summary.requested_party)
        if side is Side.REQUESTING
        else (summary.requested_party, summary.requesting_party)
    )
    header: dict[str, Any] = {
        "MessageId": time_ordered_uuid(),
        "ConversationId": summary.conversation_id,
    }
    if in_reply_to:
        header["InReplyTo"] = in_reply_to
    header.update(
        {
            "Agreement": summary.agreement,
            "Kind": spec.kind,
            "Sender": ours,
            "Recipient": theirs,
            "Created": now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "Confidential": summary.confidential,
            "Urgency": "normal",
            "Language": "ru",
        }
    )
    document: dict[str, Any] = {"header": header, "body": spec.build(form.values)}
    if form.uploads:
        document["attachments"] = listed_files(form.values, form.uploads)
    return document


def listed_files(values: Mapping[str, Any], uploads: Mapping[str, Upload]) -> list[dict[str, Any]]:
    """A form's files as the submission lists them (their language was given at upload), in
    :func:`listed_order`: each file, titled (a register extract marked so, CIS), then its
    Russian translation naming it (``translation_of``)."""
    listed: list[dict[str, Any]] = []
    for slot in FILE_SLOTS:
        original = uploads.get(slot.file)
        if original is None:
            continue
        title = values.get(slot.title) or original.file_name
        item: dict[str, Any] = {"id": original.attachment_id, "title": title}
        if values.get(slot.register_extract) == "yes":
            item["register_extract"] = True
        listed.append(item)
        translation = uploads.get(slot.translation)
        if translation is not None:
            listed.append(
                {
                    "id": translation.attachment_id,
                    "title": f"Перевод на русский язык: {title}"[:MAX_TITLE_CHARS],
                    "translation_of": original.file_name,
                }
            )
    return listed


def translation_problems(uploads: Mapping[str, Upload]) -> dict[str, list[str]]:
    """A translation sent without the file it translates, per field."""
    return {
        slot.translation: [
            "Перевод прикладывается вместе с самим приложением: выберите и его файл."
        ]
        for slot in FILE_SLOTS
        if slot.translation in uploads and slot.file not in uploads
    }


CONSOLE_REMEDIES_RU: Mapping[str, str] = MappingProxyType(
    {
        "RULE_ATTACHMENT_TRANSLATION_MISSING": "Выберите файл перевода в поле «Перевод "
        "приложения на русский язык»; если сам файл на русском, укажите язык «русский»; "
        "выписку из реестра по Соглашению СНГ отметьте как таковую (п. 3 ст. 5).",
        "RULE_ATTACHMENT_NAME_REPEATED": "Назовите файл перевода иначе, чем файл приложения.",
    }
)
"""What to do about a file rule, said in the form's words: the node's remedy names the local
API's fields (``translation_of``, ``register_extract``), which the operator never sees."""


def in_form_words(problem: Problem) -> Problem:
    """``problem`` with the console's remedy where the form has its own way to mend it."""
    remedy = CONSOLE_REMEDIES_RU.get(problem.code)
    return problem if remedy is None else dataclasses.replace(problem, remedy_ru=remedy)


def file_field(path: str, uploads: Mapping[str, Upload]) -> str:
    """The file field a problem of the header's list is about: its entry's number is the
    field's place in :func:`listed_order`; the first file's when the path names none."""
    order = listed_order(uploads) or [UPLOAD_FIELDS[0]]
    found = re.match(re.escape(_LISTED_FILES) + r"/Attachment\[(\d+)\]", path)
    number = int(found.group(1)) if found else 1
    return order[number - 1] if 1 <= number <= len(order) else order[0]


def is_about_files(problem: Problem) -> bool:
    """A problem of the header's list of files, or of a file itself (no path)."""
    return problem.path.startswith(_LISTED_FILES) or problem.code in _FILE_CODES


def problems_by_field(
    spec: ActionSpec, problems: Sequence[Problem], uploads: Mapping[str, Upload]
) -> dict[str, tuple[Problem, ...]]:
    """The node's problems keyed by form field (``""``: the document as a whole); a file's by
    the field it was sent in (``uploads``)."""
    prefix = f"{_BODY_PATH}{spec.kind}/"
    result: dict[str, list[Problem]] = {}
    for problem in problems:
        name = ""
        if problem.path.startswith(prefix):
            first = problem.path[len(prefix) :].split("/", 1)[0].split("[", 1)[0]
            name = spec.field_for(first)
        elif is_about_files(problem):
            name = spec.field_for(file_field(problem.path, uploads))
        result.setdefault(name, []).append(problem)
    return {k: tuple(v) for k, v in result.items()}
