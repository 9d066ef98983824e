"""The new request form: a conversation opened from the console (CIS Art. 10–12; SC Art. 5).

Each field's name is its element's path below ``Request`` with ``-`` for ``/``
(``Debtor-Individual-Surname``), so a problem the node reports at
``/Envelope/Body/Request/Debtor/Individual/Surname`` lands next to the field that made it.
:func:`build_request` makes the JSON document the local service submits, mirroring the XSD (see
``gateway/schemas/examples/valid/*.Request*.json``); the schema and the rules are the node's to
check. This module refuses only what cannot be put into a document: a required field left
empty, a date that is not one, an identifier line without its kind, no subject asked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any

from gateway.model.bodies import state_of
from gateway.model.directory import Directory
from gateway.model.ids import time_ordered_uuid
from gateway.model.problems import Problem
from gateway.model.profiles import CIS_ENFORCEMENT, PROFILES, RU_KZ_SUPREME_COURTS
from gateway.web.console.actions import (
    FILE_SLOTS,
    UPLOAD_FIELDS,
    Field,
    FileSlot,
    Upload,
    attachment_fields,
    file_field,
    is_about_files,
    listed_files,
    read_fields,
    translation_problems,
)
from gateway.xml.labels import CODES_RU

_BODY_PATH = "/Envelope/Body/Request/"
_YES_NO = (("no", "Нет"), ("yes", "Да"))


def _codes(*codes: str) -> tuple[tuple[str, str], ...]:
    """Choices labelled as the documents show the codes (:data:`CODES_RU`, capitalised)."""
    return tuple((code, CODES_RU[code][:1].upper() + CODES_RU[code][1:]) for code in codes)


def _kind_choice(name: str, label: str) -> Field:
    return Field(
        name,
        label,
        "choice",
        required=True,
        choices=(("individual", "Физическое лицо"), ("legal-entity", "Юридическое лицо")),
    )


_IDENTIFIERS_HINT = (
    "Каждый с новой строки: вид, двоеточие, значение (например «ИИН: 810514300001»)."
)

_PROPERTY_HINT = (
    "Что это, затем через «;» данные, по которым его опознать, вида «вид: значение» (например "
    "«Автомобиль Toyota Camry 2018 г.; VIN: JTNB11HK103456789; госномер: 123ABC02»): ст. 8 "
    "Соглашения СНГ требует данных, позволяющих идентифицировать имущество."
)

CIS_FIELDS: tuple[Field, ...] = (
    Field("Recipient", "Запрашиваемый орган", "select", required=True),
    Field(
        "RequestedDeadline",
        "Просим исполнить к (необязательно)",
        "date",
        hint_ru="Орган может просить об исполнении в более короткий срок, чем 30 рабочих дней "
        "(ст. 12 Соглашения СНГ).",
    ),
    Field(
        "Confidential",
        "Просим обеспечить конфиденциальность запроса",
        "choice",
        choices=_YES_NO,
        hint_ru="Ст. 16 Соглашения СНГ.",
    ),
    Field("RequestingAuthority", "Запрашивающий орган (ст. 11 п. 1 а)", "text", required=True),
    Field(
        "RequestedAuthority",
        "Наименование запрашиваемого органа",
        "text",
        hint_ru="Пусто — наименование из справочника органов.",
    ),
    Field("section-proceeding", "Исполнительное производство и исполнительный документ", "section"),
    Field("Proceeding-Number", "Номер исполнительного производства", "text", required=True),
    Field("Proceeding-Opened", "Дата возбуждения", "date", required=True),
    Field(
        "EnforcementDocument-Title",
        "Вид исполнительного документа (исполнительный лист, судебный приказ…)",
        "text",
        required=True,
    ),
    Field("EnforcementDocument-Number", "Номер исполнительного документа", "text", required=True),
    Field("EnforcementDocument-Date", "Дата исполнительного документа", "date", required=True),
    Field(
        "EnforcementDocument-Issuer-Name",
        "Выдавший орган или должностное лицо",
        "text",
        required=True,
    ),
    Field(
        "EnforcementDocument-Issuer-Kind",
        "Кто выдал",
        "choice",
        required=True,
        choices=_codes("court", "authority", "official", "notary"),
        hint_ru="От этого зависят заявления Сторон о неприменении Соглашения (ст. 25).",
    ),
    Field("section-creditor", "Взыскатель (ст. 11 п. 1 в)", "section"),
    _kind_choice("CreditorKind", "Взыскатель —"),
    Field("Creditor-Individual-Surname", "Фамилия (физическое лицо)", "text"),
    Field("Creditor-Individual-Name", "Имя", "text"),
    Field("Creditor-Individual-Patronymic", "Отчество", "text"),
    Field("Creditor-Individual-Residence", "Место жительства или пребывания", "text"),
    Field("Creditor-LegalEntity-Name", "Наименование (юридическое лицо)", "text"),
    Field("Creditor-LegalEntity-RegisteredAddress", "Адрес регистрации", "text"),
    Field("section-debtor", "Должник (ст. 11 п. 1 в)", "section"),
    _kind_choice("DebtorKind", "Должник —"),
    Field("Debtor-Individual-Surname", "Фамилия (физическое лицо)", "text"),
    Field("Debtor-Individual-Name", "Имя", "text"),
    Field("Debtor-Individual-Patronymic", "Отчество", "text"),
    Field("Debtor-Individual-Residence", "Место жительства или пребывания", "text"),
    Field("Debtor-Individual-BirthDate", "Дата рождения", "date"),
    Field("Debtor-Individual-BirthPlace", "Место рождения", "text"),
    Field("Debtor-Individual-Workplace", "Место работы (если известно)", "text"),
    Field(
        "Debtor-Individual-PlaceOfStudy",
        "Место учёбы (если известно; вместо места работы)",
        "text",
    ),
    Field(
        "Debtor-Individual-OtherIdentifier",
        "Иные идентифицирующие данные",
        "lines",
        hint_ru=_IDENTIFIERS_HINT,
    ),
    Field("Debtor-LegalEntity-Name", "Наименование (юридическое лицо)", "text"),
    Field("Debtor-LegalEntity-RegisteredAddress", "Адрес регистрации", "text"),
    Field(
        "Debtor-LegalEntity-RegistrationNumber",
        "Учётный номер плательщика, ИНН или иной идентифицирующий номер",
        "lines",
        hint_ru=_IDENTIFIERS_HINT,
    ),
    Field("section-content", "Содержание запроса (ст. 11 п. 1 г–е)", "section"),
    Field(
        "OperativePart", "Резолютивная часть исполнительного документа", "textarea", required=True
    ),
    Field("Content", "Содержание запроса", "textarea", required=True),
    Field(
        "FactualCircumstances",
        "Фактические обстоятельства, послужившие основанием для запроса",
        "textarea",
        required=True,
    ),
    Field("OtherInformation", "Другие сведения, необходимые для исполнения", "textarea"),
    Field("section-subjects", "Какие сведения запрашиваются (ст. 3–8)", "section"),
    Field(
        "Assets-Kind",
        "Имущество и денежные средства должника (ст. 6)",
        "checks",
        choices=_codes("bank-accounts", "real-estate", "vehicles", "shares", "other"),
    ),
    Field("Assets-Details", "Что известно об имуществе (необязательно)", "textarea"),
    Field("EmploymentAndIncome-Period-From", "Место работы и доходы (ст. 7): период с", "date"),
    Field(
        "EmploymentAndIncome-Period-To",
        "по",
        "date",
        hint_ru="Не более трёх лет (ст. 7).",
    ),
    Field(
        "EmploymentAndIncome-Details",
        "Что известно о работе и доходах (необязательно)",
        "textarea",
    ),
    Field(
        "LocateDebtor",
        "Местонахождение должника (ст. 8 а, б)",
        "choice",
        choices=_YES_NO,
    ),
    Field(
        "Location-Property",
        "Местонахождение имущества (ст. 8 в): каждое имущество с новой строки, конкретно",
        "lines",
        hint_ru=_PROPERTY_HINT,
    ),
    Field(
        "Explanations-Party",
        "Разъяснения стороны исполнительного производства (ст. 5 п. 2)",
        "choice",
        choices=_codes("debtor", "creditor"),
    ),
    Field(
        "Explanations-Questions",
        "Вопросы стороне (каждый с новой строки; ст. 11 п. 2)",
        "lines",
    ),
    Field("Documents-From", "Сведения и документы (ст. 5 п. 1): от кого", "text"),
    Field("Documents-Document", "Какие документы (каждый с новой строки)", "lines"),
    Field(
        "Proceedings-Details",
        "Сведения об исполнительных производствах в отношении должника (ст. 4)",
        "textarea",
    ),
    Field("Other-Details", "Иные сведения, необходимые для исполнения (ст. 3)", "textarea"),
    Field("section-files", "Приложение (например, копия исполнительного документа)", "section"),
    *attachment_fields(cis=True),
)
"""The CIS request (Art. 11): the header's choices, then the body in the schema's order."""

SC_FIELDS: tuple[Field, ...] = (
    Field("Recipient", "Запрашиваемая сторона", "select", required=True),
    Field(
        "Urgent",
        "Срочный запрос",
        "choice",
        choices=_YES_NO,
        hint_ru="Ст. 5.2 Соглашения Верховных Судов.",
    ),
    Field(
        "Confidential",
        "Просим обеспечить конфиденциальность",
        "choice",
        choices=_YES_NO,
        hint_ru="Ст. 8.1 Соглашения Верховных Судов.",
    ),
    Field("RequestingParty", "Запрашивающая сторона (ст. 5.1 а)", "text", required=True),
    Field(
        "RequestedParty",
        "Наименование запрашиваемой стороны",
        "text",
        hint_ru="Пусто — наименование из справочника органов.",
    ),
    Field(
        "Topic",
        "Форма сотрудничества",
        "choice",
        required=True,
        choices=_codes(
            "legislation",
            "case-law",
            "statistics",
            "court-administration",
            "international-cooperation",
            "consultation",
            "other",
        ),
    ),
    Field("Basis", "Основание запроса (ст. 5.1 в)", "textarea", required=True),
    Field("Purpose", "Цель запроса", "textarea", required=True),
    Field("Content", "Содержание запроса", "textarea", required=True),
    Field("ExpectedBy", "Желательный срок получения ответа (ст. 5.1 г)", "date", required=True),
    Field("OtherInformation", "Иная информация (ст. 5.1 д)", "textarea"),
    Field("SignedBy-Name", "Подписывает: фамилия, имя, отчество", "text", required=True),
    Field("SignedBy-Position", "Должность", "text", required=True),
    Field(
        "section-oral",
        "Письменное подтверждение устного запроса (ч. 2 ст. 5.1), если запрос был устным",
        "section",
    ),
    Field("ConfirmsOralRequest-MadeOn", "Дата устного запроса", "date"),
    Field(
        "ConfirmsOralRequest-Means",
        "Как передан",
        "choice",
        choices=_codes("telephone", "video-conference", "meeting"),
    ),
    Field("ConfirmsOralRequest-MadeTo", "Кому передан", "text"),
    Field(
        "ConfirmsOralRequest-ConfirmationAskedOn",
        "Когда запрашиваемая сторона попросила подтвердить письменно",
        "date",
    ),
    Field("section-files", "Приложение", "section"),
    *attachment_fields(cis=False),
)
"""The Supreme Courts' request (Art. 5.1), signed by the head or the person authorised."""

FIELDS: Mapping[str, tuple[Field, ...]] = MappingProxyType(
    {CIS_ENFORCEMENT.id: CIS_FIELDS, RU_KZ_SUPREME_COURTS.id: SC_FIELDS}
)

FORM_ONLY = frozenset(
    {
        "Recipient",
        "RequestedDeadline",
        "Urgent",
        "Confidential",
        "CreditorKind",
        "DebtorKind",
        "LocateDebtor",
        *(name for slot in FILE_SLOTS for name in (slot.title, slot.language)),
        *(slot.register_extract for slot in FILE_SLOTS),
        *UPLOAD_FIELDS,
    }
)
"""Fields that fill no element of the body: the header's choices, a party's kind, whether the
debtor's whereabouts are asked (its ``Location`` target follows the debtor's kind), the file
beside the request and what is said of it (the header's list)."""
SUBJECT_KINDS = (
    "Proceedings",
    "Documents",
    "Explanations",
    "Assets",
    "EmploymentAndIncome",
    "Location",
    "Other",
)
"""The kinds of information a CIS request asks (``Subject``'s choice, Art. 3–8)."""

_KIND_BRANCHES = {"individual": "Individual", "legal-entity": "LegalEntity"}
_REQUIRED_IN_BRANCH = {
    ("Creditor", "Individual"): ("Surname", "Name", "Residence"),
    ("Creditor", "LegalEntity"): ("Name", "RegisteredAddress"),
    ("Debtor", "Individual"): ("Surname", "Name", "Residence", "BirthDate", "BirthPlace"),
    ("Debtor", "LegalEntity"): ("Name", "RegisteredAddress", "RegistrationNumber"),
}
"""What the schema requires of a creditor or debtor of each kind (common.xsd)."""
MAX_PROPERTY_IDENTIFIERS = 10
"""``PropertyIdentification/Identifier``'s maxOccurs (cis-enforcement.xsd)."""
_IDENTIFIER = re.compile(r"^\s*([^:]{1,64}?)\s*:\s*(.+?)\s*$")


@dataclass(frozen=True, slots=True)
class Recipient:
    body_id: str
    name: str


@dataclass(frozen=True, slots=True)
class RequestForm:
    """What the operator entered (to show again) and what was wrong with it."""

    raw: Mapping[str, str]
    values: Mapping[str, Any]
    errors: Mapping[str, tuple[str, ...]]


def recipients(directory: Directory | None, agreement: str, own_body: str) -> tuple[Recipient, ...]:
    """The bodies of other states that exchange under ``agreement``, as the directory says."""
    if directory is None:
        return ()
    own_state = state_of(own_body)
    return tuple(
        Recipient(body.id, body.name("ru"))
        for body in directory.bodies
        if body.state != own_state and agreement in body.to_body().agreements
    )


def agreements_of(directory: Directory | None, own_body: str) -> tuple[str, ...]:
    """The agreements our body exchanges under and has someone to send to."""
    ours = next((b for b in (directory.bodies if directory else ()) if b.id == own_body), None)
    if ours is None:
        return ()
    return tuple(
        a for a in PROFILES if a in ours.to_body().agreements and recipients(directory, a, own_body)
    )


def fields_for(agreement: str, offered: Sequence[Recipient]) -> tuple[Field, ...]:
    """The agreement's fields, the recipient's choices the ``offered`` bodies (its id,
    labelled with its name and id)."""
    choices = tuple((r.body_id, f"{r.name} ({r.body_id})") for r in offered)
    return tuple(
        replace(f, choices=choices) if f.name == "Recipient" else f for f in FIELDS[agreement]
    )


def initial_form(agreement: str, own_name: str) -> RequestForm:
    """The empty form, our body's name filled in as the requesting one."""
    own = "RequestingAuthority" if agreement == CIS_ENFORCEMENT.id else "RequestingParty"
    return RequestForm(raw={own: own_name}, values={}, errors={})


def read_request_form(
    agreement: str,
    form: Mapping[str, str],
    offered: Sequence[Recipient],
    upload_errors: Mapping[str, str] | None = None,
    uploads: Mapping[str, Upload] | None = None,
) -> RequestForm:
    """The posted form, checked for what a document cannot be built without;
    ``upload_errors``: why a file field's file was not taken in; ``uploads``: the files that
    were (a translation needs its file)."""
    fields = fields_for(agreement, offered)
    raw, values, errors = read_fields(fields, form, lambda item: item.choices, upload_errors)
    for name, texts in translation_problems(uploads or {}).items():
        errors.setdefault(name, []).extend(texts)
    if not offered:
        errors.setdefault("Recipient", []).append(
            "В справочнике органов нет органа, которому можно направить запрос по этому "
            "соглашению; обратитесь к администратору."
        )
    if agreement == CIS_ENFORCEMENT.id:
        _check_parties(values, errors)
        _check_identifiers(values, errors)
        _check_properties(values, errors)
        if not _subjects(values):
            errors.setdefault("section-subjects", []).append(
                "Укажите хотя бы одно: какие сведения запрашиваются (ст. 3–8)."
            )
        if values.get("Explanations-Questions") and not values.get("Explanations-Party"):
            errors.setdefault("Explanations-Party", []).append(
                "Укажите, какой стороне адресованы вопросы."
            )
    return RequestForm(raw, values, {k: tuple(v) for k, v in errors.items()})


def _check_parties(values: Mapping[str, Any], errors: dict[str, list[str]]) -> None:
    """The chosen kind's fields the schema requires (CIS Art. 11.1 в)."""
    for party in ("Creditor", "Debtor"):
        branch = _KIND_BRANCHES.get(values.get(f"{party}Kind") or "")
        for element in _REQUIRED_IN_BRANCH.get((party, branch or ""), ()):
            name = f"{party}-{branch}-{element}"
            if not values.get(name) and name not in errors:
                errors.setdefault(name, []).append("Заполните это поле.")


def _check_identifiers(values: Mapping[str, Any], errors: dict[str, list[str]]) -> None:
    for name in ("Debtor-Individual-OtherIdentifier", "Debtor-LegalEntity-RegistrationNumber"):
        if any(not _IDENTIFIER.fullmatch(line) for line in values.get(name) or ()):
            errors.setdefault(name, []).append(
                "Каждая строка: вид, двоеточие, значение (например «ИНН: 770000000001»)."
            )


def _identifiers(lines: Sequence[str]) -> list[dict[str, str]]:
    found = (_IDENTIFIER.fullmatch(line) for line in lines)
    return [{"Kind": m.group(1), "Value": m.group(2)} for m in found if m]


def _property_parts(line: str) -> tuple[str, list[str]]:
    """A property's line: its description, then ``;``-separated ``kind: value`` identifiers."""
    description, *identifiers = (part.strip() for part in line.split(";"))
    return description, [part for part in identifiers if part]


def _check_properties(values: Mapping[str, Any], errors: dict[str, list[str]]) -> None:
    """CIS Art. 8 para. 2: each property named with the data that identify it, in a shape the
    schema's ``Property`` (a description, at most ten identifiers) takes."""
    for number, line in enumerate(values.get("Location-Property") or (), start=1):
        description, identifiers = _property_parts(line)
        wrong = [part for part in identifiers if not _IDENTIFIER.fullmatch(part)]
        if wrong:
            errors.setdefault("Location-Property", []).append(
                f"Строка {number}: «{wrong[0]}» — после «;» пишутся данные вида «вид: значение» "
                "(например «VIN: JTNB11HK103456789»); точку с запятой в описании замените "
                "запятой."
            )
        elif len(identifiers) > MAX_PROPERTY_IDENTIFIERS:
            errors.setdefault("Location-Property", []).append(
                f"Строка {number}: не больше {MAX_PROPERTY_IDENTIFIERS} идентифицирующих данных "
                "на одно имущество."
            )
        elif not description and not identifiers:
            errors.setdefault("Location-Property", []).append(
                f"Строка {number}: опишите имущество или укажите данные, по которым его опознать."
            )


def _property(line: str) -> dict[str, Any]:
    description, identifiers = _property_parts(line)
    listed: dict[str, Any] = {"Description": description} if description else {}
    if identifiers:
        listed["Identifier"] = _identifiers(identifiers)
    return listed


def _subjects(v: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What is asked, in the schema's order of the kinds (Art. 3–8)."""
    subjects: list[dict[str, Any]] = []
    if v.get("Proceedings-Details"):
        subjects.append({"Proceedings": {"Details": v["Proceedings-Details"]}})
    if v.get("Documents-Document"):
        subjects.append(
            {
                "Documents": {
                    "From": v.get("Documents-From", ""),
                    "Document": v["Documents-Document"],
                }
            }
        )
    if v.get("Explanations-Questions"):
        questions = {"Question": v["Explanations-Questions"]}
        subjects.append(
            {"Explanations": {"Party": v.get("Explanations-Party", ""), "Questions": questions}}
        )
    if v.get("Assets-Kind"):
        subjects.append({"Assets": _with_details({"Kind": v["Assets-Kind"]}, v, "Assets")})
    start, end = v.get("EmploymentAndIncome-Period-From"), v.get("EmploymentAndIncome-Period-To")
    if start or end:
        period = {"Period": {"From": _iso(start), "To": _iso(end)}}
        subjects.append({"EmploymentAndIncome": _with_details(period, v, "EmploymentAndIncome")})
    if v.get("LocateDebtor") == "yes":
        target = (
            "debtor-legal-entity" if v.get("DebtorKind") == "legal-entity" else "debtor-individual"
        )
        subjects.append({"Location": {"Target": target}})
    if v.get("Location-Property"):
        listed = [_property(line) for line in v["Location-Property"]]
        subjects.append({"Location": {"Target": "property", "Property": listed}})
    if v.get("Other-Details"):
        subjects.append({"Other": {"Details": v["Other-Details"]}})
    return subjects


def _with_details(subject: dict[str, Any], v: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """``subject`` with what the operator knows of it (its optional ``Details``)."""
    details = v.get(f"{kind}-Details")
    return {**subject, "Details": details} if details else subject


def _iso(value: date | None) -> str:
    return value.isoformat() if value else ""


def _party(values: Mapping[str, Any], party: str) -> dict[str, Any]:
    branch = _KIND_BRANCHES.get(values.get(f"{party}Kind") or "", "Individual")
    prefix = f"{party}-{branch}-"
    fields: dict[str, Any] = {}
    for name, value in values.items():
        if not name.startswith(prefix) or value in (None, "", []):
            continue
        element = name[len(prefix) :]
        if element in ("OtherIdentifier", "RegistrationNumber"):
            value = _identifiers(value)
        fields[element] = value.isoformat() if isinstance(value, date) else value
    return {branch: fields}


def _cis_body(v: Mapping[str, Any], recipient: Recipient) -> dict[str, Any]:
    body: dict[str, Any] = {
        "RequestingAuthority": v["RequestingAuthority"],
        "RequestedAuthority": v.get("RequestedAuthority") or recipient.name,
        "Proceeding": {"Number": v["Proceeding-Number"], "Opened": _iso(v["Proceeding-Opened"])},
        "EnforcementDocument": {
            "Title": v["EnforcementDocument-Title"],
            "Number": v["EnforcementDocument-Number"],
            "Date": _iso(v["EnforcementDocument-Date"]),
            "Issuer": {
                "Name": v["EnforcementDocument-Issuer-Name"],
                "Kind": v["EnforcementDocument-Issuer-Kind"],
            },
        },
        "Creditor": _party(v, "Creditor"),
        "Debtor": _party(v, "Debtor"),
        "OperativePart": v["OperativePart"],
        "Content": v["Content"],
        "FactualCircumstances": v["FactualCircumstances"],
    }
    if v.get("OtherInformation"):
        body["OtherInformation"] = v["OtherInformation"]
    body["Subjects"] = {"Subject": _subjects(v)}
    return body


def _sc_body(
    v: Mapping[str, Any], recipient: Recipient, uploads: Mapping[str, Upload]
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "RequestingParty": v["RequestingParty"],
        "RequestedParty": v.get("RequestedParty") or recipient.name,
        "Topic": v["Topic"],
        "Basis": v["Basis"],
        "Purpose": v["Purpose"],
        "Content": v["Content"],
        "ExpectedBy": _iso(v["ExpectedBy"]),
    }
    if v.get("OtherInformation"):
        body["OtherInformation"] = v["OtherInformation"]
    body["SignedBy"] = {"Name": v["SignedBy-Name"], "Position": v["SignedBy-Position"]}
    documents = [_sc_document(v, slot, uploads) for slot in FILE_SLOTS if slot.file in uploads]
    if documents:
        body["Documents"] = {"Document": documents}
    oral = {
        element: _iso(value) if isinstance(value, date) else value
        for element in ("MadeOn", "Means", "MadeTo", "ConfirmationAskedOn")
        if (value := v.get(f"ConfirmsOralRequest-{element}"))
    }
    if oral:
        body["ConfirmsOralRequest"] = oral
    return body


def build_request(
    agreement: str,
    form: RequestForm,
    *,
    sender: str,
    recipient: Recipient,
    now: datetime,
    uploads: Mapping[str, Upload] | None = None,
) -> dict[str, Any]:
    """The Request opening a new conversation (JSON mirroring the XSD), from us to
    ``recipient``, with the form's files (``uploads``, streamed in already) beside it; the
    node gives it its deadline and signs it."""
    v = form.values
    sc = agreement == RU_KZ_SUPREME_COURTS.id
    header: dict[str, Any] = {
        "MessageId": time_ordered_uuid(),
        "ConversationId": time_ordered_uuid(),
        "Agreement": agreement,
        "Kind": "Request",
        "Sender": sender,
        "Recipient": recipient.body_id,
        "Created": now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "Confidential": v.get("Confidential") == "yes",
        "Urgency": "urgent" if sc and v.get("Urgent") == "yes" else "normal",
    }
    deadline = v.get("ExpectedBy") if sc else v.get("RequestedDeadline")
    if deadline:
        header["RequestedDeadline"] = deadline.isoformat()
    header["Language"] = PROFILES[agreement].language
    body = _sc_body(v, recipient, uploads or {}) if sc else _cis_body(v, recipient)
    document: dict[str, Any] = {"header": header, "body": {"Request": body}}
    if uploads:
        document["attachments"] = listed_files(v, uploads)
    return document


def _sc_document(
    v: Mapping[str, Any], slot: FileSlot, uploads: Mapping[str, Upload]
) -> dict[str, str]:
    """SC Art. 5.1: a document attached to the request, in its language, with the Russian
    translation the requesting party makes of one that is not in Russian."""
    document = {
        "OriginalLanguage": v.get(slot.language) or PROFILES[RU_KZ_SUPREME_COURTS.id].language,
        "Original": uploads[slot.file].file_name,
    }
    if slot.translation in uploads:
        document["Translation"] = uploads[slot.translation].file_name
    return document


_HEADER_FIELDS = MappingProxyType(
    {
        "Recipient": "Recipient",
        "Confidential": "Confidential",
        "Urgency": "Urgent",
        "RequestedDeadline": "RequestedDeadline",
    }
)
"""The header's elements the form sets, and their fields."""


def problems_by_field(
    agreement: str, problems: Sequence[Problem], uploads: Mapping[str, Upload]
) -> dict[str, tuple[Problem, ...]]:
    """The node's problems keyed by form field (``""``: the document as a whole): the field
    whose element is the problem's, or holds it, or (an element left out) lies below it; a
    file's, the field it was sent in (``uploads``)."""
    result: dict[str, list[Problem]] = {}
    for problem in problems:
        name = file_field(problem.path, uploads) if is_about_files(problem) else ""
        result.setdefault(name or _field_of(agreement, problem.path, uploads), []).append(problem)
    return {k: tuple(v) for k, v in result.items()}


def _field_of(agreement: str, path: str, uploads: Mapping[str, Upload]) -> str:
    sc = agreement == RU_KZ_SUPREME_COURTS.id
    if path.startswith("/Envelope/Header/"):
        name = _HEADER_FIELDS.get(path.split("/")[3].split("[", 1)[0], "")
        return "ExpectedBy" if sc and name == "RequestedDeadline" else name
    if not path.startswith(_BODY_PATH):
        return ""
    below = re.sub(r"\[\d+\]", "", path[len(_BODY_PATH) :])
    paths = {f.name: element_path(f.name) for f in FIELDS[agreement]}
    holding = [n for n, p in paths.items() if p and (below == p or below.startswith(p + "/"))]
    if holding:
        return max(holding, key=len)
    if sc and below.startswith("Documents/Document"):  # SC Art. 5.1: the file it names
        return _document_field(path, below, uploads)
    if below in ("Subjects", "Subjects/Subject"):
        return "section-subjects"  # the list itself: which subject is not said
    within = [n for n, p in paths.items() if p and below and p.startswith(below + "/")]
    if within:
        return within[0]
    return "section-subjects" if below.startswith("Subjects") else ""


def _document_field(path: str, below: str, uploads: Mapping[str, Upload]) -> str:
    """The file field of the ``Documents/Document[n]`` a problem is about: the n-th slot that
    sent a file (the body lists them in slot order)."""
    found = re.search(r"/Documents/Document\[(\d+)\]", path)
    sent = [slot for slot in FILE_SLOTS if slot.file in uploads] or [FILE_SLOTS[0]]
    number = int(found.group(1)) if found else 1
    slot = sent[number - 1] if 1 <= number <= len(sent) else sent[0]
    return slot.translation if below.endswith("/Translation") else slot.file


def element_path(name: str) -> str | None:
    """The element below ``Request`` a field fills (``Subjects/Subject/Assets/Kind``), or None
    for a field of the form alone (the header's choices, a person's kind, a heading)."""
    if name in FORM_ONLY or name.startswith("section-"):
        return None
    path = name.replace("-", "/")
    return f"Subjects/Subject/{path}" if path.split("/", 1)[0] in SUBJECT_KINDS else path
