"""The submission planner: the case system's JSON to an unsigned document and the conversation's
next state, decided without I/O.

The shell (:mod:`gateway.exchange.sending`) reads the conversation first, asks the planner, and
signs only a plan the protocol allows: a document the conversation refuses costs no signature.
Errors are raised as :class:`~gateway.model.problems.DocumentRejected` (invalid) or
:class:`~gateway.exchange.conversation.ProtocolError` (does not fit the conversation).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lxml import etree

from gateway.exchange import conversation as machine
from gateway.exchange import documents
from gateway.exchange.directory import DirectoryIndex
from gateway.exchange.inbound import event_of, parties_context, reject, role
from gateway.model.envelope import SEALED_FORMAT, AttachmentRef, Header
from gateway.model.problems import DocumentRejected, Problem, Severity
from gateway.model.profiles import PROFILES
from gateway.rules.agreement import agreement_problems
from gateway.rules.clock import Calendars, requested_term_problems
from gateway.rules.content import check_content
from gateway.store import conversations as conv_store
from gateway.xml.convert import json_to_xml
from gateway.xml.header import read_header
from gateway.xml.schemas import SchemaRegistry
from gateway.xml.validate import validate


@dataclass(frozen=True, slots=True)
class ListedUpload:
    """One upload a submission sends beside the XML, with what the case system says of it
    (docs/attachments.md): the signed header lists it so."""

    attachment_id: str
    title: str | None = None
    translation_of: str | None = None
    """The name of the upload of the same submission that this one translates into Russian."""
    register_extract: bool = False


@dataclass(frozen=True, slots=True)
class Draft:
    """The case system's document split into what the planner needs to look things up."""

    header: dict[str, Any]
    body: Any
    attachments: tuple[ListedUpload, ...] = ()
    """Uploaded attachments (POST /api/v1/attachments) to send beside the XML, in order."""

    @property
    def attachment_ids(self) -> tuple[str, ...]:
        return tuple(a.attachment_id for a in self.attachments)

    @property
    def opens_conversation(self) -> bool:
        agreement = PROFILES.get(str(self.header.get("Agreement", "")))
        kind = agreement.kinds.get(str(self.header.get("Kind", ""))) if agreement else None
        return bool(kind and kind.opens_conversation)

    @property
    def is_refusal(self) -> bool:
        return self.header.get("Kind") == "Refusal"

    @property
    def conversation_id(self) -> str | None:
        value = self.header.get("ConversationId")
        return str(value) if value else None


@dataclass(frozen=True, slots=True)
class Plan:
    root: etree._Element
    """The unsigned envelope, schema-valid."""
    header: Header
    requesting: str
    requested: str
    step: machine.Step
    signed_by_official: bool
    warnings: tuple[Problem, ...]


def draft_of(document: Any) -> Draft:
    if not isinstance(document, dict) or not isinstance(document.get("header"), dict):
        raise reject(
            "JSON_SHAPE",
            "Документ должен быть объектом JSON с полями header и body.",
            'the document must be a JSON object {"header": {...}, "body": {...}}',
            "См. docs/documents.md: форма JSON документа.",
        )
    if "Attachments" in document["header"]:
        # The node lists what it will send, from what it stored: a list typed by the case
        # system would sign files that never travel.
        raise reject(
            "JSON_SHAPE",
            "Список файлов в заголовке (header.Attachments) составляет узел.",
            "header.Attachments is the node's to write: name the uploads in attachments",
            "Загрузите файлы (POST /api/v1/attachments) и перечислите их в поле attachments "
            "рядом с header и body (docs/attachments.md).",
        )
    return Draft(
        dict(document["header"]), document.get("body"), _listed_uploads(document.get("attachments"))
    )


MAX_ATTACHMENTS = 50
"""As many as ``env:Attachments`` takes (envelope.xsd)."""

_UPLOAD_TEXTS = ("title", "translation_of")
_UPLOAD_KEYS = frozenset({"id", *_UPLOAD_TEXTS, "register_extract"})


def _listed_uploads(value: Any) -> tuple[ListedUpload, ...]:
    """``attachments``: each item an upload's id, or ``{"id", "title", "translation_of",
    "register_extract"}`` (all but ``id`` optional)."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_ATTACHMENTS:
        raise _bad_attachments(
            f"список не длиннее {MAX_ATTACHMENTS}", f"a list of at most {MAX_ATTACHMENTS}"
        )
    listed = tuple(_listed_upload(item, number) for number, item in enumerate(value, start=1))
    ids = [item.attachment_id for item in listed]
    if len(set(ids)) != len(ids):
        raise _bad_attachments("каждое вложение один раз", "each upload once")
    return listed


def _listed_upload(item: Any, number: int) -> ListedUpload:
    where_ru, where_en = f"элемент {number}: ", f"item {number}: "
    if isinstance(item, str):
        item = {"id": item}
    if not isinstance(item, dict):
        raise _bad_attachments(
            where_ru + "строка id или объект {id, title, …}",
            where_en + "an id string or an object {id, title, ...}",
        )
    unknown = sorted(set(item) - _UPLOAD_KEYS)
    if unknown:
        raise _bad_attachments(
            where_ru + f"неизвестные поля {', '.join(unknown)}",
            where_en + f"unknown fields {', '.join(unknown)}",
        )
    attachment_id, extract = item.get("id"), item.get("register_extract", False)
    texts = {key: item.get(key) for key in _UPLOAD_TEXTS}
    if not isinstance(attachment_id, str) or not attachment_id:
        raise _bad_attachments(where_ru + "id — непустая строка", where_en + "id: a string")
    for key, text in texts.items():
        if text is not None and not isinstance(text, str):
            raise _bad_attachments(where_ru + f"{key} — строка", where_en + f"{key}: a string")
    if not isinstance(extract, bool):
        raise _bad_attachments(
            where_ru + "register_extract — true или false", where_en + "register_extract: a boolean"
        )
    return ListedUpload(
        attachment_id, texts["title"] or None, texts["translation_of"] or None, extract
    )


def _bad_attachments(rule_ru: str, rule_en: str) -> DocumentRejected:
    return reject(
        "JSON_SHAPE",
        f"Поле attachments: {rule_ru}.",
        f"attachments: {rule_en}",
        "Загрузите файлы через POST /api/v1/attachments и перечислите их id, по желанию с "
        "title, translation_of и register_extract (docs/attachments.md).",
    )


def plan_submission(
    draft: Draft,
    stored: conv_store.Conversation | None,
    state: machine.Conversation | None,
    *,
    body_id: str,
    index: DirectoryIndex,
    registry: SchemaRegistry,
    now: datetime,
    calendars: Calendars,
    request: tuple[str | None, set[str]] | None = None,
    attachments: Sequence[AttachmentRef] = (),
    seal: Callable[[str, Sequence[AttachmentRef]], Sequence[AttachmentRef]] | None = None,
) -> Plan:
    """Build, validate and judge one outgoing document against the conversation as stored.
    ``request``: for a refusal, the refused request's facts (Art. 25 ground, CIS Art. 13).
    ``attachments``: the uploads the draft names, listed in the signed header. ``seal``: in a
    confidential conversation, the list with each part key wrapped to the recipient (given
    the recipient's id); the parts then travel sealed end to end, as the document does."""
    opens = draft.opens_conversation
    if not opens and stored is None:
        raise reject(
            "UNKNOWN_CONVERSATION",
            "Для ответа укажите ConversationId существующей беседы.",
            "a reply needs the ConversationId of an existing conversation",
            "Возьмите ConversationId из запроса, на который отвечаете.",
        )
    completed = documents.complete_header(
        draft.header, sender=body_id, now=now, opens_conversation=opens
    )
    if stored is not None:
        completed["Confidential"] = stored.confidential or bool(completed.get("Confidential"))
    if attachments and completed.get("Confidential"):
        if seal is None:
            raise ValueError("a confidential document's attachments must be sealed")
        attachments = seal(str(completed["Recipient"]), attachments)
    if attachments:
        completed["Attachments"] = {"Attachment": [_listed(a) for a in attachments]}
    root = json_to_xml({"header": completed, "body": draft.body}, registry)
    problems = validate(root, registry)
    if problems:
        raise DocumentRejected(problems)
    header = read_header(root)
    requesting = stored.requesting_party if stored else header.sender
    requested = stored.requested_party if stored else header.recipient
    found = list(check_content(root, header))
    found += agreement_problems(
        root,
        header,
        parties_context(index, header.agreement, requesting, requested, stored, request),
        now.date(),
    )
    if stored is None:
        # CIS Art. 12 para. 2: a shorter term must lie ahead, judged as the requested party
        # will (its local date, its calendar), counting from today as the day it is sent.
        found += requested_term_problems(
            header.agreement, requested, header.requested_deadline, now, calendars
        )
    errors = [p for p in found if p.severity is Severity.ERROR]
    if errors:
        raise DocumentRejected(errors)
    current = state or machine.new_conversation(header.conversation_id, header.agreement)
    step = machine.apply(current, event_of(header, root, role(body_id, requesting)))
    kind = PROFILES[header.agreement].kind(header.kind)
    return Plan(
        root=root,
        header=header,
        requesting=requesting,
        requested=requested,
        step=step,
        signed_by_official=kind.signed_by_official,
        warnings=tuple(p for p in found if p.severity is Severity.WARNING),
    )


def _listed(ref: AttachmentRef) -> dict[str, Any]:
    item: dict[str, Any] = {"Name": ref.name}
    if ref.title:
        item["Title"] = ref.title
    item["MediaType"] = ref.media_type
    if ref.language:
        item["Language"] = ref.language
    if ref.translation_of is not None:
        item["TranslationOf"] = ref.translation_of
    if ref.register_extract:
        item["RegisterExtract"] = True
    item |= {"Size": ref.size, "Sha256": ref.sha256}
    if ref.sealing is not None:
        item["Sealed"] = {
            "Format": SEALED_FORMAT,
            "SegmentPrefix": ref.sealing.prefix.hex().upper(),
            "SealedAs": ref.sealing.sealed_as,
            "WrappedKey": base64.b64encode(ref.sealing.wrapped_key).decode(),
        }
    return item
