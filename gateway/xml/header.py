"""Read the typed :class:`~gateway.model.envelope.Header` from a validated envelope."""

from __future__ import annotations

import base64
from datetime import date, datetime

from lxml import etree

from gateway.model.envelope import AttachmentRef, Header, PartSealing, Urgency
from gateway.model.profiles import ENVELOPE_NAMESPACE

_NS = {"env": ENVELOPE_NAMESPACE}


def read_header(root: etree._Element) -> Header:
    """The header of a parsed envelope that has passed :func:`gateway.xml.validate.validate`.

    Call it only on a verified, schema-valid tree (the schema guarantees every field's
    presence and lexical form; this function only converts). On anything else it raises
    ``ValueError`` naming the field, which is a programming error, not a peer's.
    """
    header = root.find("env:Header", _NS)
    if header is None:
        raise ValueError("no env:Header: validate the document before reading its header")

    def text(name: str) -> str | None:
        node = header.find(f"env:{name}", _NS)
        return None if node is None else (node.text or "")

    def required(name: str) -> str:
        value = text(name)
        if value is None:
            raise ValueError(f"env:Header/env:{name} is missing: validate the document first")
        return value

    # xs:dateTime, xs:date and xs:boolean collapse whitespace; the string types do not.
    deadline = text("RequestedDeadline")
    created = datetime.fromisoformat(required("Created").strip())
    if created.tzinfo is None:
        raise ValueError("env:Header/env:Created has no time zone: validate the document first")
    return Header(
        message_id=required("MessageId"),
        conversation_id=required("ConversationId"),
        in_reply_to=text("InReplyTo"),
        agreement=required("Agreement"),
        kind=required("Kind"),
        sender=required("Sender"),
        recipient=required("Recipient"),
        created=created,
        confidential=required("Confidential").strip() in ("true", "1"),
        urgency=Urgency(required("Urgency")),
        requested_deadline=None if deadline is None else date.fromisoformat(deadline.strip()),
        language=required("Language"),
        attachments=_attachments(header),
    )


def _attachments(header: etree._Element) -> tuple[AttachmentRef, ...]:
    def text(item: etree._Element, name: str) -> str | None:
        node = item.find(f"env:{name}", _NS)
        return None if node is None else (node.text or "")

    refs = []
    for item in header.iterfind("env:Attachments/env:Attachment", _NS):
        refs.append(
            AttachmentRef(
                name=text(item, "Name") or "",
                media_type=text(item, "MediaType") or "",
                language=text(item, "Language"),
                size=int((text(item, "Size") or "").strip()),
                sha256=text(item, "Sha256") or "",
                sealing=_sealing(item.find("env:Sealed", _NS)),
                title=text(item, "Title"),
                translation_of=text(item, "TranslationOf"),
                register_extract=(text(item, "RegisterExtract") or "").strip() in ("true", "1"),
            )
        )
    return tuple(refs)


def _sealing(sealed: etree._Element | None) -> PartSealing | None:
    if sealed is None:
        return None

    def text(name: str) -> str:
        return "".join((sealed.findtext(f"env:{name}", "", _NS) or "").split())

    return PartSealing(
        prefix=bytes.fromhex(text("SegmentPrefix")),
        sealed_as=text("SealedAs"),
        wrapped_key=base64.b64decode(text("WrappedKey")),
    )
