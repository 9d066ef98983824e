"""Test data: headers, signed-looking documents with personal values, conversations."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from gateway.store import conversations
from gateway.store.messages import MessageHeader

# Byte-exactness matters: CRLF, a tab, trailing spaces, Cyrillic, an odd attribute order.
DEBTOR_NAME = "Қасымов Ерлан Маратұлы"
DEBTOR_BIRTH = "1981-04-17"
DEBTOR_ACCOUNT = "KZ86125KZT5004100100"
PERSONAL_VALUES = (DEBTOR_NAME, DEBTOR_BIRTH, DEBTOR_ACCOUNT, "Маратұлы", "КАСЫМОВ")


def signed_document(message_id: str, debtor: str = DEBTOR_NAME) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\r\n'
        '<env:Envelope xmlns:env="urn:cis-exchange:envelope:1">'
        f'<env:Header Id="header"><env:MessageId>{message_id}</env:MessageId></env:Header>\r\n'
        '<env:Body Id="body">'
        '<cis:Request xmlns:cis="urn:cis-exchange:cis-enforcement:1" b="2" a="1">'
        f"<Debtor>\t{debtor}  </Debtor><BirthDate>{DEBTOR_BIRTH}</BirthDate>"
        f"<Account>{DEBTOR_ACCOUNT}</Account><Surname>КАСЫМОВ</Surname>"
        "</cis:Request></env:Body>"
        '<env:Signatures><env:Seal><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">'
        "<ds:SignatureValue>MEUCIQDx/+==</ds:SignatureValue></ds:Signature></env:Seal>"
        "</env:Signatures></env:Envelope>"
    ).encode()


def new_id() -> str:
    return str(uuid.uuid4())


def header(
    conversation_id: str,
    created: datetime,
    *,
    message_id: str | None = None,
    kind: str = "Request",
    sender: str = "KZ-MJ",
    recipient: str = "RU-FSSP",
    confidential: bool = False,
) -> MessageHeader:
    return MessageHeader(
        message_id=message_id or new_id(),
        conversation_id=conversation_id,
        agreement="cis-enforcement",
        kind=kind,
        sender=sender,
        recipient=recipient,
        created=created,
        confidential=confidential,
    )


def open_conversation(
    conn: Connection, now: datetime, conversation_id: str | None = None, **overrides
) -> str:
    cid = conversation_id or new_id()
    values = {
        "agreement": "cis-enforcement",
        "requesting_party": "KZ-MJ",
        "requested_party": "RU-FSSP",
        "opening_kind": "Request",
        "state": "received",
        "confidential": False,
        "deadline": (now + timedelta(days=42)).date(),
    }
    values.update(overrides)
    conversations.open_conversation(conn, conversation_id=cid, now=now, **values)
    return cid
