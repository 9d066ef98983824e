"""The envelope header as plain data (docs/architecture.md, ``<env:Header>``).

Exchange code reads routing and conversation facts from a :class:`Header`, never from the raw
tree: the header is read only after the document has been verified and schema-validated
(``gateway.xml.header.read_header``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum


class Urgency(StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"
    """Cannot wait (SC Art. 5.2)."""


SEALED_FORMAT = "aes-256-gcm-segments-64k/1"
"""``env:Sealed/env:Format``: the sender's at-rest segments (gateway.crypto.segments) as sent."""


@dataclass(frozen=True, slots=True)
class PartSealing:
    """``env:Attachment/env:Sealed``: how a confidential conversation's part is sealed."""

    prefix: bytes
    """The segments' 8-byte nonce prefix."""
    sealed_as: str
    """The id bound into each segment's associated data (the sender's attachment id)."""
    wrapped_key: bytes
    """The part key as CMS AuthEnvelopedData (DER) to the recipient's encryption certificates."""


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    """One ``<env:Attachments>/<env:Attachment>``: a file sent beside the XML, as signed."""

    name: str
    media_type: str
    language: str | None
    size: int
    sha256: str
    """64 lower-case hex digits."""
    sealing: PartSealing | None = None
    """Set in a confidential conversation: the part travels sealed end to end."""
    title: str | None = None
    """What the file is, for the reader (absent: its name)."""
    translation_of: str | None = None
    """The name of the file of this list that this one translates into Russian (CIS Art. 19;
    SC Art. 11)."""
    register_extract: bool = False
    """A register extract or a document confirming rights: no translation (CIS Art. 5 para. 3)."""


@dataclass(frozen=True, slots=True)
class Header:
    """The fields of ``<env:Header>``, typed."""

    message_id: str
    """UUID (canonical lower-case string) of this message; receivers deduplicate by it."""
    conversation_id: str
    """UUID shared by every message of one conversation (a request and all that follows)."""
    in_reply_to: str | None
    """UUID of the message this one answers; None for a message that opens a conversation."""
    agreement: str
    """Profile id: ``cis-enforcement`` or ``ru-kz-supreme-courts``."""
    kind: str
    """Message kind, equal to the local name of the body's element."""
    sender: str
    """Body id of the sending body, e.g. ``RU-FSSP``."""
    recipient: str
    """Body id of the receiving body."""
    created: datetime
    """When the sender created the message; always timezone-aware."""
    confidential: bool
    """The requesting party asked for confidentiality (CIS Art. 16; SC Art. 8.1)."""
    urgency: Urgency
    requested_deadline: date | None
    """A shorter deadline the requesting party asks for (CIS Art. 12 para. 2); None: the
    agreement's own deadline."""
    language: str
    """Language of the document; the agreements require ``ru`` (CIS Art. 19; SC Art. 11)."""
    attachments: tuple[AttachmentRef, ...] = ()
    """Files sent beside the XML as parts of the same delivery (docs/attachments.md)."""
