"""The refusal form: grounds chosen from the agreement (CIS Art. 13, 25; SC Art. 6.2).

:func:`read_refusal_form` turns the posted form into a :class:`RefusalForm` (what the operator
typed, to show again on error); :func:`build_refusal` makes the JSON document the local
service submits (``{"header": {...}, "body": {"Refusal": {...}}}``, mirroring the XSD: see
``gateway/schemas/examples/valid/*Refusal.json``). The schema and the rules are the service's to
check; this module only refuses what cannot even be put into a document (an unknown ground, a
missing choice) and maps the service's problems back to the form's fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from gateway.exchange.service import ConversationView
from gateway.model.ids import time_ordered_uuid
from gateway.model.problems import Problem
from gateway.web.console.render import header_files
from gateway.web.xmlchars import field_error_ru, without_forbidden

MAX_TEXT_CHARS = 4000
"""Longest text the form takes in one field: a refusal's circumstances are a paragraph or two;
the schema has its own limits, this one only keeps a post from carrying a book."""


@dataclass(frozen=True, slots=True)
class Ground:
    code: str
    """The XSD enumeration value (``RefusalGround``)."""
    label_ru: str
    article: str


REFUSAL_GROUNDS: Mapping[str, tuple[Ground, ...]] = MappingProxyType(
    {
        "cis-enforcement": (
            Ground("sovereignty", "Ущерб суверенитету запрашиваемой Стороны", "CIS Art. 13"),
            Ground("security", "Ущерб безопасности запрашиваемой Стороны", "CIS Art. 13"),
            Ground(
                "contrary-to-law",
                "Противоречит законодательству запрашиваемой Стороны",
                "CIS Art. 13",
            ),
            Ground(
                "international-obligations",
                "Противоречит международным обязательствам запрашиваемой Стороны",
                "CIS Art. 13",
            ),
            Ground(
                "non-application-declaration",
                "Исполнительный документ, в отношении которого заявлено о неприменении "
                "Соглашения (статья 25)",
                "CIS Art. 13, 25",
            ),
        ),
        "ru-kz-supreme-courts": (
            Ground("sovereignty", "Ущерб суверенитету государства", "SC Art. 6.2"),
            Ground("security", "Ущерб безопасности государства", "SC Art. 6.2"),
            Ground("public-order", "Ущерб общественному порядку", "SC Art. 6.2"),
            Ground("contrary-to-law", "Противоречит законодательству государства", "SC Art. 6.2"),
            Ground(
                "international-obligations",
                "Противоречит международным обязательствам государства",
                "SC Art. 6.2",
            ),
            Ground(
                "rights-violation",
                "Повлечёт нарушение прав, свобод и законных интересов граждан, организаций",
                "SC Art. 6.2",
            ),
        ),
    }
)
"""The grounds each agreement allows, in the agreement's order; the codes are the XSD's
``RefusalGround`` enumeration of the profile (a test holds them equal)."""

EXTENTS: Mapping[str, str] = MappingProxyType({"full": "Полностью", "partial": "Частично"})
"""SC Art. 6.2: a request may be refused fully or in part (``RefusalExtent``)."""

TEXT_FIELD: Mapping[str, str] = MappingProxyType(
    {"cis-enforcement": "Circumstances", "ru-kz-supreme-courts": "Reasons"}
)
"""The element holding the written reasons: CIS Art. 13 para. 2 "обстоятельства, которые
препятствуют исполнению"; SC Art. 6.2 "о причинах такого отказа письменно уведомляется"."""

FORM_FIELDS = (
    "Ground",
    "Circumstances",
    "ConsultationsHeld",
    "ReturnedDocuments",
    "Extent",
    "Reasons",
    "RefusedPart",
)
"""Form field names are the element names, so a problem's path names its field."""

RETURNED_FIELD = "ReturnedDocuments"
"""The field of the files returned with a CIS refusal; the header's list of files is theirs."""

_BODY_PATH = "/Envelope/Body/Refusal/"
_LISTED_FILES = "/Envelope/Header/Attachments"


@dataclass(frozen=True, slots=True)
class RequestFile:
    """A file that came beside the request, as its signed header lists it: what the refusal
    can return (CIS Art. 13), described as it came."""

    number: int
    """1-based, the request's list order (what the node opens it by)."""
    name: str
    title: str
    media_type: str
    size: int
    language: str | None = None
    translation_of: str | None = None
    register_extract: bool = False


def request_files(header: Mapping[str, Any]) -> tuple[RequestFile, ...]:
    """The files listed in a received request's signed header (``MessageView.header``)."""
    return tuple(
        RequestFile(
            number=number,
            name=str(item["Name"]),
            title=str(item.get("Title") or item["Name"]),
            media_type=str(item.get("MediaType", "")),
            size=int(item.get("Size", 0)),
            language=item.get("Language"),
            translation_of=item.get("TranslationOf"),
            register_extract=bool(item.get("RegisterExtract", False)),
        )
        for number, item in enumerate(header_files(header), start=1)
    )


@dataclass(frozen=True, slots=True)
class RefusalForm:
    """What the operator entered (kept to show the form again)."""

    grounds: tuple[str, ...] = ()
    text: str = ""
    """Circumstances (CIS) or Reasons (SC)."""
    consultations_held: bool | None = None
    """CIS only."""
    extent: str = ""
    """SC only: ``full`` or ``partial``."""
    refused_part: str = ""
    """SC only, for a partial refusal."""
    returned: tuple[int, ...] = ()
    """CIS only: the numbers of the request's files returned with the refusal (Art. 13)."""
    errors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Field name -> Russian messages; ``""`` holds those of no one field."""


def read_refusal_form(
    agreement: str,
    form: Mapping[str, str],
    grounds: Sequence[str],
    returned: Sequence[str] = (),
    offered: Sequence[RequestFile] = (),
) -> RefusalForm:
    """The posted form, checked for what a document cannot be built without; ``returned``:
    the numbers of the ``offered`` request files ticked to go back with it (CIS)."""
    errors: dict[str, list[str]] = {}
    allowed = {g.code for g in REFUSAL_GROUNDS.get(agreement, ())}
    chosen = tuple(dict.fromkeys(grounds))
    if not chosen:
        errors.setdefault("Ground", []).append("Выберите хотя бы одно основание отказа.")
    elif any(g not in allowed for g in chosen):
        errors.setdefault("Ground", []).append(
            "Выбрано основание, которого нет в соглашении; выберите из списка."
        )
        chosen = tuple(g for g in chosen if g in allowed)
    text_field = TEXT_FIELD.get(agreement, "Circumstances")
    text = _xml_text(form, text_field, errors)
    if len(text) > MAX_TEXT_CHARS:
        errors.setdefault(text_field, []).append(
            f"Текст длиннее {MAX_TEXT_CHARS} символов; изложите короче."
        )
        text = text[:MAX_TEXT_CHARS]
    consultations: bool | None = None
    extent = ""
    refused_part = ""
    chosen_files: tuple[int, ...] = ()
    if agreement == "cis-enforcement":
        chosen_files = _returned(returned, offered, errors)
        consultations = {"yes": True, "no": False}.get(form.get("ConsultationsHeld", ""))
        if consultations is None:
            errors.setdefault("ConsultationsHeld", []).append(
                "Укажите, проводились ли консультации (ст. 13 Соглашения СНГ)."
            )
    else:
        extent = form.get("Extent", "")
        if extent not in EXTENTS:
            errors.setdefault("Extent", []).append("Укажите, полностью или частично отказано.")
            extent = ""
        refused_part = _xml_text(form, "RefusedPart", errors)[:MAX_TEXT_CHARS]
        if extent == "partial" and not refused_part.strip():
            errors.setdefault("RefusedPart", []).append(
                "При частичном отказе укажите, в исполнении какой части отказано."
            )
    return RefusalForm(
        grounds=chosen,
        text=text,
        consultations_held=consultations,
        extent=extent,
        refused_part=refused_part,
        returned=chosen_files,
        errors={k: tuple(v) for k, v in errors.items()},
    )


def _returned(
    returned: Sequence[str], offered: Sequence[RequestFile], errors: dict[str, list[str]]
) -> tuple[int, ...]:
    numbers = {str(f.number): f.number for f in offered}
    if any(value not in numbers for value in returned):
        errors.setdefault(RETURNED_FIELD, []).append(
            "Выбран файл, которого нет среди поступивших с запросом; выберите из списка."
        )
    return tuple(sorted({numbers[v] for v in returned if v in numbers}))


def _xml_text(form: Mapping[str, str], name: str, errors: dict[str, list[str]]) -> str:
    """A text field, checked for characters XML 1.0 cannot carry (named at the field; the
    form is shown again without them) before anything is built from it."""
    text = form.get(name, "")
    error = field_error_ru(text)
    if error is None:
        return text
    errors.setdefault(name, []).append(error)
    return without_forbidden(text)


def opening_message_id(view: ConversationView) -> str | None:
    """The request this refusal answers: the conversation's received opening document."""
    for message in view.messages:
        if message.kind == view.summary.opening_kind and message.direction == "in":
            return message.message_id
    return None


def build_refusal(
    view: ConversationView,
    form: RefusalForm,
    now: datetime,
    returned: Sequence[tuple[RequestFile, str]] = (),
) -> dict[str, Any]:
    """The Refusal document (JSON mirroring the XSD) answering ``view``'s request.

    We are the requested party: the refusal goes from it to the requesting party, in reply to
    the request, with the conversation's confidentiality (CIS Art. 16; SC Art. 8.1).
    ``returned``: the request's files going back with it (CIS Art. 13), each with the id of
    its copy taken in by the node, listed as they came and named in ``ReturnedDocuments``.
    """
    summary = view.summary
    header: dict[str, Any] = {
        "MessageId": time_ordered_uuid(),
        "ConversationId": summary.conversation_id,
    }
    in_reply_to = opening_message_id(view)
    if in_reply_to is not None:
        header["InReplyTo"] = in_reply_to
    header.update(
        {
            "Agreement": summary.agreement,
            "Kind": "Refusal",
            "Sender": summary.requested_party,
            "Recipient": summary.requesting_party,
            "Created": now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "Confidential": summary.confidential,
            "Urgency": "normal",
            "Language": "ru",
        }
    )
    body: dict[str, Any]
    if summary.agreement == "ru-kz-supreme-courts":
        body = {"Extent": form.extent, "Ground": list(form.grounds), "Reasons": form.text}
        if form.refused_part.strip():
            body["RefusedPart"] = form.refused_part
    else:
        body = {
            "Ground": list(form.grounds),
            "Circumstances": form.text,
            "ConsultationsHeld": bool(form.consultations_held),
        }
    document: dict[str, Any] = {"header": header, "body": {"Refusal": body}}
    if returned:
        body[RETURNED_FIELD] = {"FileName": [file.name for file, _ in returned]}
        document["attachments"] = _listed_returned(returned)
    return document


def _listed_returned(returned: Sequence[tuple[RequestFile, str]]) -> list[dict[str, Any]]:
    """The returned files as the submission lists them: described as the request listed them
    (a translation names its original only when that goes back too)."""
    names = {file.name for file, _ in returned}
    listed: list[dict[str, Any]] = []
    for file, attachment_id in returned:
        item: dict[str, Any] = {"id": attachment_id, "title": file.title}
        if file.translation_of in names:
            item["translation_of"] = file.translation_of
        if file.register_extract:
            item["register_extract"] = True
        listed.append(item)
    return listed


def problems_by_field(problems: Sequence[Problem]) -> dict[str, tuple[Problem, ...]]:
    """The service's problems keyed by form field (``""``: the document as a whole)."""
    result: dict[str, list[Problem]] = {}
    for problem in problems:
        name = ""
        if problem.path.startswith(_BODY_PATH):
            first = problem.path[len(_BODY_PATH) :].split("/", 1)[0].split("[", 1)[0]
            if first in FORM_FIELDS:
                name = first
        elif problem.path.startswith(_LISTED_FILES):
            name = RETURNED_FIELD  # the only files a refusal lists are the returned ones
        result.setdefault(name, []).append(problem)
    return {k: tuple(v) for k, v in result.items()}
