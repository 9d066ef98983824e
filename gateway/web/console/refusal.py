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

FORM_FIELDS = ("Ground", "Circumstances", "ConsultationsHeld", "Extent", "Reasons", "RefusedPart")
"""Form field names are the element names, so a problem's path names its field."""

_BODY_PATH = "/Envelope/Body/Refusal/"


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
    errors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Field name -> Russian messages; ``""`` holds those of no one field."""


def read_refusal_form(
    agreement: str, form: Mapping[str, str], grounds: Sequence[str]
) -> RefusalForm:
    """The posted form, checked for what a document cannot be built without."""
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
    if agreement == "cis-enforcement":
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
        errors={k: tuple(v) for k, v in errors.items()},
    )


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


def build_refusal(view: ConversationView, form: RefusalForm, now: datetime) -> dict[str, Any]:
    """The Refusal document (JSON mirroring the XSD) answering ``view``'s request.

    We are the requested party: the refusal goes from it to the requesting party, in reply to
    the request, with the conversation's confidentiality (CIS Art. 16; SC Art. 8.1).
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
    return {"header": header, "body": {"Refusal": body}}


def problems_by_field(problems: Sequence[Problem]) -> dict[str, tuple[Problem, ...]]:
    """The service's problems keyed by form field (``""``: the document as a whole)."""
    result: dict[str, list[Problem]] = {}
    for problem in problems:
        name = ""
        if problem.path.startswith(_BODY_PATH):
            first = problem.path[len(_BODY_PATH) :].split("/", 1)[0].split("[", 1)[0]
            if first in FORM_FIELDS:
                name = first
        result.setdefault(name, []).append(problem)
    return {k: tuple(v) for k, v in result.items()}
