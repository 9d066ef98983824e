"""The labelled model of documents: Russian labels, Russian names of codes, and field types from
the XSD — one model for every place a person reads a document (the console's document view and
the PDF rendition, CIS Art. 19; SC Art. 11).

Labels are keyed by the element's local name, or by (parent local name, local name) where one
name means different things under different parents (a person's ``Name`` is a first name, an
issuer's a title). A name without a label is shown as it is, so a field the schema gains later
is never dropped (a test holds every element of the schemas to having a label).

Types come from the schema, never from element names or the look of a value:
:func:`field_type` reads the XSD declaration (xmlschema) and says whether a leaf is text, a
date, a date and time, a number, a yes/no, base64 bytes, a code of an enumeration or a language
code. :func:`child_declaration` walks the declarations alongside a document (XML or its JSON),
so each leaf is formatted by what the schema says it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, tzinfo
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from gateway.model.profiles import PROFILES
from gateway.model.zones import zone_label

if TYPE_CHECKING:
    from xmlschema.validators import XsdElement

    from gateway.xml.schemas import SchemaRegistry

__all__ = [
    "CODES_RU",
    "LABELS_RU",
    "LANGUAGES_RU",
    "FieldType",
    "child_declaration",
    "compact_value",
    "field_type",
    "format_datetime",
    "format_value",
    "header_declaration",
    "kind_declaration",
    "label_for",
    "undeclared_type",
]

LABELS_RU: dict[str, str] = {
    # envelope header (gateway/schemas/envelope.xsd)
    "MessageId": "Идентификатор сообщения",
    "ConversationId": "Идентификатор переписки",
    "InReplyTo": "В ответ на сообщение",
    "Agreement": "Соглашение",
    "Kind": "Вид",
    "Sender": "Отправитель",
    "Recipient": "Получатель",
    "Created": "Дата и время создания",
    "Confidential": "Конфиденциальный документ",
    "Urgency": "Срочность",
    "RequestedDeadline": "Запрашиваемый срок исполнения",
    "Language": "Язык",
    # persons, organisations, officials (gateway/schemas/common.xsd)
    "Individual": "Физическое лицо",
    "LegalEntity": "Юридическое лицо",
    "Surname": "Фамилия",
    "Name": "Наименование",
    "Patronymic": "Отчество",
    "Residence": "Место жительства",
    "BirthDate": "Дата рождения",
    "BirthPlace": "Место рождения",
    "Workplace": "Место работы",
    "PlaceOfStudy": "Место учёбы",
    "OtherIdentifier": "Иной идентификатор",
    "Identifier": "Идентификатор",
    "Value": "Значение",
    "RegisteredAddress": "Адрес регистрации",
    "ActualAddress": "Фактический адрес",
    "RegistrationNumber": "Регистрационный номер",
    "Address": "Адрес",
    "Position": "Должность",
    "Official": "Уполномоченное лицо",
    "SignedBy": "Подписал",
    "ConfirmedBy": "Подтвердил",
    "ThirdParty": "Третье лицо",
    "Role": "Роль",
    "Amount": "Сумма",
    "Currency": "Валюта",
    "Period": "Период",
    "From": "С",
    "To": "По",
    # attachments
    "Attachments": "Вложения",
    "Attachment": "Вложение",
    "Title": "Наименование",
    "MediaType": "Тип",
    "FileName": "Имя файла",
    "TranslationOf": "Перевод файла",
    "RegisterExtract": "Выписка из реестра (без перевода)",
    "ConfirmsOralRequest": "Письменное подтверждение устного запроса",
    "MadeOn": "Дата устного запроса",
    "Means": "Способ передачи",
    "MadeTo": "Кому передан",
    "ConfirmationAskedOn": "Дата просьбы о письменном подтверждении",
    "Size": "Размер, байт",
    "Sha256": "SHA-256",
    "Sealed": "Зашифровано для получателя",
    "Format": "Формат",
    "SegmentPrefix": "Префикс nonce сегментов",
    "SealedAs": "Идентификатор сегментов",
    "WrappedKey": "Ключ файла, зашифрованный для получателя",
    "Content": "Содержание запроса",
    # CIS enforcement request (CIS Art. 11)
    "RequestingAuthority": "Запрашивающий орган",
    "RequestedAuthority": "Запрашиваемый орган",
    "Proceeding": "Исполнительное производство",
    "Number": "Номер",
    "Opened": "Дата возбуждения",
    "EnforcementDocument": "Исполнительный документ",
    "Date": "Дата",
    "Issuer": "Орган (лицо), выдавший документ",
    "Creditor": "Взыскатель",
    "Debtor": "Должник",
    "OperativePart": "Резолютивная часть",
    "FactualCircumstances": "Фактические обстоятельства",
    "OtherInformation": "Иные сведения",
    "Subjects": "Запрашиваемые сведения",
    "Subject": "Предмет",
    "Proceedings": "Исполнительные производства в отношении должника",
    "Documents": "Документы",
    "Document": "Документ",
    "Explanations": "Разъяснения сторон",
    "Party": "Сторона исполнительного производства",
    "Questions": "Перечень вопросов",
    "Question": "Вопрос",
    "Answer": "Ответ",
    "Item": "Вопрос и ответ",
    "Assets": "Имущественное положение должника",
    "EmploymentAndIncome": "Место работы и доходы",
    "Location": "Местонахождение",
    "Target": "Что установить",
    "Property": "Имущество",
    "Description": "Описание",
    "Details": "Подробности",
    "Other": "Иные сведения",
    # CIS answers and notices
    "Summary": "Краткое содержание",
    "Complete": "Сведения предоставлены полностью",
    "Results": "Результаты",
    "Result": "Результат",
    "Requirement": "Требование",
    "Stage": "Стадия",
    "Recovered": "Взыскано",
    "SeizedProperty": "Арестованное имущество",
    "PropertyForSale": "Имущество, переданное на реализацию",
    "Note": "Примечание",
    "BankAccount": "Банковский счёт",
    "Bank": "Банк",
    "AccountNumber": "Номер счёта",
    "Balance": "Остаток",
    "RealEstate": "Недвижимое имущество",
    "CadastralNumber": "Кадастровый номер",
    "Right": "Вид права",
    "Vehicle": "Транспортное средство",
    "RegistrationPlate": "Государственный регистрационный знак",
    "Vin": "VIN",
    "Share": "Доля (акции) в организации",
    "Company": "Организация",
    "OtherAsset": "Иное имущество",
    "Employer": "Работодатель",
    "IndividualEntrepreneur": "Индивидуальный предприниматель",
    "Income": "Доход",
    "Source": "Источник",
    "PropertyLocation": "Местонахождение имущества",
    "DisclosureProcedure": "Порядок получения сведений взыскателем",
    "Authority": "Орган",
    "Procedure": "Порядок",
    "Ground": "Основание",
    "Circumstances": "Обстоятельства",
    "ConsultationsHeld": "Консультации проведены",
    "ReturnedDocuments": "Возвращаемые документы",
    "Reason": "Причина",
    "ExpectedDate": "Ожидаемая дата",
    "UntilRemoved": "До устранения обстоятельств",
    "Conditions": "Условия",
    "Condition": "Условие",
    "Decision": "Решение",
    "Comment": "Комментарий",
    "Topic": "Тема",
    "Measures": "Меры защиты информации",
    "RetentionPeriod": "Срок хранения",
    "Information": "Сведения",
    "Term": "Срок",
    "LegalBasis": "Правовое основание",
    "Purpose": "Цель",
    "ProvidedInMessageId": "Предоставлено в сообщении",
    # consultations (CIS Art. 13, 15; SC Art. 9)
    "ProposedCondition": "Предлагаемое условие",
    "HeldOn": "Дата проведения",
    "Participants": "Участники",
    "Outcome": "Итоги",
    "AgreedCondition": "Согласованное условие",
    "EstimatedCosts": "Предполагаемые расходы",
    "Total": "Всего",
    "Breakdown": "Состав расходов",
    "CostCoverage": "Порядок покрытия расходов",
    "CoverageTerms": "Условия покрытия расходов",
    # supreme courts (SC Art. 5-8)
    "RequestingParty": "Запрашивающая Сторона",
    "RequestedParty": "Запрашиваемая Сторона",
    "Basis": "Основание запроса",
    "ExpectedBy": "Ожидаемый срок ответа",
    "OriginalLanguage": "Язык оригинала",
    "Original": "Оригинал",
    "Translation": "Перевод",
    "Extent": "Объём отказа",
    "Reasons": "Мотивы",
    "RefusedPart": "Часть, в которой отказано",
    "Obstacle": "Препятствующие обстоятельства",
    "LegalInterest": "Правовой интерес",
    "DoubtAbout": "Сомнение относительно",
    "Confirmed": "Подлинность подтверждена",
    "Statement": "Заявление",
    # receipts and rejections
    "ReceivedMessageId": "Идентификатор полученного сообщения",
    "ReceivedSha256": "SHA-256 полученного сообщения",
    "Received": "Получено",
    "Code": "Код",
    "ReasonRu": "Причина",
    "ReasonEn": "Причина (англ.)",
    "RejectedMessageId": "Идентификатор отклонённого сообщения",
    # the envelope's own structure
    "Envelope": "Конверт",
    "Header": "Реквизиты документа",
    "Body": "Содержание документа",
    "Signatures": "Электронные подписи",
    "Seal": "Электронная печать органа",
    "Id": "Идентификатор",
}
"""Russian labels for element (and attribute) local names of gateway/schemas/*.xsd; unknown
names are shown as they are, so a field the schema gains later is never dropped."""

_CONTEXT_LABELS_RU: dict[tuple[str, str], str] = {
    # The same local name means different things under different parents.
    ("Header", "Kind"): "Вид документа",
    ("Individual", "Name"): "Имя",
    ("Identifier", "Kind"): "Вид идентификатора",
    ("OtherIdentifier", "Kind"): "Вид идентификатора",
    ("RegistrationNumber", "Kind"): "Вид номера",
    ("Issuer", "Kind"): "Вид органа",
    ("Issuer", "Name"): "Наименование",
    ("Assets", "Kind"): "Вид имущества",
    ("Share", "Size"): "Размер доли",
    ("EnforcementDocument", "Title"): "Вид документа",
    ("Request", "Content"): "Содержание запроса",
    ("Documents", "From"): "От кого получить документы",
    ("Attachment", "Content"): "Содержимое файла",
    ("Original", "Content"): "Содержимое файла",
    ("Translation", "Content"): "Содержимое файла",
    ("Request", "Subject"): "Предмет",
    ("UnsolicitedInformation", "Subject"): "Тема",
    ("Proceedings", "Proceeding"): "Исполнительное производство",
    ("ProceedingInfo", "EnforcementDocument"): "Исполнительный документ",
    ("Employer", "Name"): "Наименование",
    ("ThirdParty", "Name"): "Наименование (Ф. И. О.)",
    ("Official", "Name"): "Ф. И. О.",
    ("SignedBy", "Name"): "Ф. И. О.",
    ("ConfirmedBy", "Name"): "Ф. И. О.",
    ("PropertyLocation", "Property"): "Имущество",
    ("RetentionPeriod", "Information"): "Сведения",
    ("ConsultationRequest", "Topic"): "Предмет консультаций",
    ("ConsultationRecord", "Topic"): "Предмет консультаций",
    ("ConsultationRecord", "Means"): "Способ проведения",
    ("ConsultationRequest", "Question"): "Вопрос",
}
"""Labels keyed by (parent local name, local name), consulted before :data:`LABELS_RU`."""

CODES_RU: dict[str, str] = {
    # enumerations of gateway/schemas/*.xsd (a test holds every one to a name here)
    "creditor": "взыскатель",
    "debtor": "должник",
    "bank-accounts": "денежные средства на счетах (ст. 6 а)",
    "real-estate": "недвижимое имущество (ст. 6 б)",
    "vehicles": "транспортные средства (ст. 6 в)",
    "shares": "доли, паи, акции (ст. 6 г)",
    "debtor-individual": "должник — физическое лицо (ст. 8 а)",
    "debtor-legal-entity": "должник — юридическое лицо (ст. 8 б)",
    "property": "имущество должника (ст. 8 в)",
    "sovereignty": "ущерб суверенитету",
    "security": "ущерб безопасности",
    "public-order": "противоречие публичному порядку",
    "contrary-to-law": "противоречие законодательству",
    "international-obligations": "противоречие международным обязательствам",
    "non-application-declaration": "заявление о неприменении (ст. 25)",
    "rights-violation": "нарушение прав и законных интересов",
    "accept": "принять",
    "decline": "отклонить",
    "proceed-without-confidentiality": "исполнить без сохранения конфиденциальности",
    "withdraw": "отозвать запрос",
    "protection-measures": "меры защиты информации",
    "retention-periods": "сроки хранения",
    "court": "суд",
    "authority": "орган",
    "official": "должностное лицо",
    "notary": "нотариус",
    "granted": "согласие дано",
    "refused": "в согласии отказано",
    "legislation": "законодательство",
    "case-law": "судебная практика",
    "telephone": "по телефону",
    "video-conference": "по видеосвязи",
    "meeting": "на встрече",
    "statistics": "статистика",
    "court-administration": "организация работы судов",
    "international-cooperation": "международное сотрудничество",
    "consultation": "консультации",
    "refusal": "до решения об отказе в исполнении (ст. 13)",
    "postponement-or-conditions": "до отложения исполнения или определения условий (ст. 15)",
    "substantial-costs": "существенные расходы на исполнение (ст. 9.2)",
    "each-party-own": "каждая Сторона несёт свои расходы (ст. 9.1)",
    "requesting-party": "расходы покрывает запрашивающая Сторона",
    "shared": "расходы распределяются между Сторонами",
    "not-agreed": "не согласовано",
    "full": "полностью",
    "partial": "частично",
    "authenticity": "подлинность",
    "content": "содержание",
    "other": "иное",
    "normal": "обычная",
    "urgent": "срочно",
    "cis-enforcement": "Соглашение СНГ о принудительном исполнении",
    "ru-kz-supreme-courts": "Соглашение Верховных Судов РФ и РК",
    "header": "реквизиты документа",
    "body": "содержание документа",
    "aes-256-gcm-segments-64k/1": "AES-256-GCM, сегменты по 64 КиБ",
}
"""Russian names of enumeration codes."""


LANGUAGES_RU: dict[str, str] = {
    "ru": "русский",
    "kk": "казахский",
    "be": "белорусский",
    "hy": "армянский",
    "az": "азербайджанский",
    "ky": "киргизский",
    "tg": "таджикский",
    "uz": "узбекский",
    "tk": "туркменский",
    "ro": "румынский",
    "en": "английский",
}
"""Names of the language codes (ISO 639-1) the agreements' documents come in: Russian, the
working language (CIS Art. 19; SC Art. 11), the state languages of the parties, and English.
The console offers them for a file it sends; a file in another than Russian travels with its
Russian translation."""

_KIND_TITLES: Mapping[str, str] = MappingProxyType(
    {name: kind.title_ru for profile in PROFILES.values() for name, kind in profile.kinds.items()}
)


def label_for(name: str, parent: str = "") -> str:
    """The Russian label of an element (or attribute) local name under ``parent``; a kind's
    element is labelled with the kind's title; an unknown name is shown as it is."""
    return (
        _CONTEXT_LABELS_RU.get((parent, name))
        or LABELS_RU.get(name)
        or _KIND_TITLES.get(name)
        or name
    )


# --- types from the schema ----------------------------------------------------------------------


class FieldType(StrEnum):
    """What a leaf of a document is, by its XSD type."""

    TEXT = "text"
    DATE = "date"
    DATETIME = "datetime"
    NUMBER = "number"
    BOOLEAN = "boolean"
    BINARY = "binary"
    """``xs:base64Binary`` (attachment bytes): measured and hashed, never printed."""
    CODE = "code"
    """A string restricted to an enumeration: shown by its Russian name."""
    LANGUAGE = "language"
    """``c:LanguageCode``: shown by the language's name."""


_PRIMITIVE_TYPES: Mapping[str, FieldType] = MappingProxyType(
    {
        "date": FieldType.DATE,
        "dateTime": FieldType.DATETIME,
        "decimal": FieldType.NUMBER,
        "float": FieldType.NUMBER,
        "double": FieldType.NUMBER,
        "boolean": FieldType.BOOLEAN,
        "base64Binary": FieldType.BINARY,
    }
)
_LANGUAGE_TYPES = frozenset({"LanguageCode", "language"})


def field_type(decl: XsdElement | None) -> FieldType:
    """The type of a leaf element by its declaration; an undeclared element is text."""
    if decl is None:
        return FieldType.TEXT
    xsd_type: Any = decl.type  # xmlschema's unions of simple and complex types
    if xsd_type.is_complex():
        if not xsd_type.has_simple_content():
            return FieldType.TEXT
        xsd_type = xsd_type.content
    if getattr(xsd_type, "enumeration", None):
        return FieldType.CODE
    base: Any = xsd_type
    while base is not None:
        if base.local_name in _LANGUAGE_TYPES:
            return FieldType.LANGUAGE
        base = getattr(base, "base_type", None)
    primitive = getattr(xsd_type, "primitive_type", None)
    name = primitive.local_name if primitive is not None else ""
    return _PRIMITIVE_TYPES.get(name or "", FieldType.TEXT)


def child_declaration(decl: XsdElement | None, name: str) -> XsdElement | None:
    """The declaration of the child ``name`` (local name) of an element declared ``decl``, or
    None (unknown, or ``decl`` is None). Children of one type have distinct local names in
    our schemas, so a JSON key (a local name) finds its declaration as an XML tag does."""
    if decl is None:
        return None
    xsd_type: Any = decl.type  # xmlschema's unions of simple and complex types
    if not xsd_type.is_complex() or xsd_type.has_simple_content():
        return None
    for child in xsd_type.content.iter_elements():
        if child.local_name == name:
            return cast("XsdElement", child)
    return None


def _registry(registry: SchemaRegistry | None) -> SchemaRegistry:
    from gateway.xml.schemas import default_registry  # the registry imports the schemas only

    return registry or default_registry()


def kind_declaration(
    agreement: str, kind: str, registry: SchemaRegistry | None = None
) -> XsdElement | None:
    """The declaration of a kind's body element, or None for an unknown agreement or kind."""
    profile = PROFILES.get(agreement)
    if profile is None:
        return None
    return _registry(registry).kind_element(profile, kind)


def header_declaration(registry: SchemaRegistry | None = None) -> XsdElement | None:
    """The declaration of ``env:Header``."""
    envelope = _registry(registry).envelope_element()
    return child_declaration(envelope, "Header")


# --- values --------------------------------------------------------------------------------------

_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def format_value(
    value: Any,
    kind: FieldType,
    *,
    timezone: tzinfo | None = None,
    zone_name: str = "",
    with_code: bool = False,
) -> str:
    """A leaf's value as a person reads it, by its schema type: yes/no, DD.MM.YYYY, dates and
    times in ``timezone`` (named ``zone_name``) or as written, Russian names of codes (followed
    by the code in brackets when ``with_code``) and of languages. Text is returned as it is
    (escaping and control characters are the caller's: HTML and PDF differ); a value that does
    not parse as its type is shown as sent. Binary content is the caller's to summarise."""
    if isinstance(value, bool):
        return "да" if value else "нет"
    text = str(value).strip()
    if kind is FieldType.BOOLEAN:
        return {"true": "да", "1": "да", "false": "нет", "0": "нет"}.get(text, text)
    if kind is FieldType.DATE:
        m = _DATE_RE.fullmatch(text)
        return f"{m[3]}.{m[2]}.{m[1]}" if m else text
    if kind is FieldType.DATETIME:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
        if timezone is not None and moment.tzinfo is not None:
            moment = moment.astimezone(timezone)
            return f"{moment:%d.%m.%Y %H:%M:%S} ({zone_label(zone_name or 'UTC', moment)})"
        return format_datetime(moment)
    if kind is FieldType.CODE:
        name = CODES_RU.get(text)
        if name is None:
            return text
        return f"{name} ({text})" if with_code else name
    if kind is FieldType.LANGUAGE:
        language = LANGUAGES_RU.get(text)
        if language is None:
            return text
        return f"{language} ({text})" if with_code else language
    return str(value) if not isinstance(value, str) else value


def format_datetime(moment: datetime) -> str:
    """DD.MM.YYYY HH:MM:SS and the moment's own offset (UTC, UTC+03:00)."""
    offset = moment.utcoffset()
    if offset is None:
        zone = ""
    elif not offset:
        zone = " UTC"
    else:
        total = int(offset.total_seconds()) // 60
        sign = "+" if total >= 0 else "-"
        zone = f" UTC{sign}{abs(total) // 60:02d}:{abs(total) % 60:02d}"
    return moment.strftime("%d.%m.%Y %H:%M:%S") + zone


_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def undeclared_type(value: str) -> FieldType:
    """The type of a value whose element the schema does not declare — only an invalid
    document has one (the rendition still shows it): by the value's shape alone."""
    v = value.strip()
    if v in ("true", "false"):
        return FieldType.BOOLEAN
    if _DATE_RE.fullmatch(v):
        return FieldType.DATE
    if _DATETIME_RE.fullmatch(v):
        return FieldType.DATETIME
    if v in CODES_RU:
        return FieldType.CODE
    return FieldType.TEXT


def compact_value(parts: Mapping[str, Any], decl: XsdElement | None) -> str | None:
    """One-line forms of small structures, the same on every page: money («4812300.00 RUB»)
    and periods («с 01.01.2026 по 31.12.2026»); None for anything else. ``parts``: the
    structure's leaves by local name; ``decl``: its declaration, which types them."""
    if set(parts) == {"Amount", "Currency"}:
        return f"{parts['Amount']} {parts['Currency']}"
    if set(parts) == {"From", "To"}:
        start = format_value(parts["From"], field_type(child_declaration(decl, "From")))
        end = format_value(parts["To"], field_type(child_declaration(decl, "To")))
        return f"с {start} по {end}"
    return None
