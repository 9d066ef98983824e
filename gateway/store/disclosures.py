"""The record of disclosures: which document went to whom, when, on what ground and by whom.

A disclosure's recipient (a person's or an organisation's name) and the stated purpose are
personal data (CIS Art. 9.4), so they are never stored in clear:

* they are sealed together (JSON, AES-256-GCM) under the store's **disclosure key**, a 256-bit
  secret kept in ``secret_keys`` wrapped by the KEK — so KEK rotation re-wraps it with the
  other secrets (``gateway.store.keys.rewrap_batch``) and a stolen database file without the
  KEK reveals nothing; the associated data names the disclosure id, so a sealed value moved to
  another row fails authentication;
* the recipient is findable through ``recipient_tag``, an HMAC-SHA-256 of the normalised name
  under a key derived from the same secret: "what did we disclose to X?" is one indexed query,
  and the tag cannot be reversed by guessing names without the key.

Encryption and MAC keys are derived from the one secret with HKDF (distinct ``info`` labels),
so neither key is used for two purposes. The trade-off against a data key per row: destroying
one disclosure's text alone (crypto-shredding) is not possible; deleting its row is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.engine import Connection

from gateway.crypto import at_rest
from gateway.crypto.keys.kek import KekRing
from gateway.store import keys as store_keys
from gateway.store.tables import CODE_LENGTH, disclosures

DISCLOSURE_KEY = "disclosure-records"
"""Name of the secret in ``secret_keys`` behind the sealed recipients and their tags."""
MAX_RECIPIENT_CHARS = 500
"""A recipient is one line naming a person or an organisation (the schema's ``c:Line`` is 500
characters, and a ConsentRequest names its third party in one)."""
MAX_PURPOSE_CHARS = 500
"""Same bound as the local API's X-Purpose: a sentence, not a document."""
MAX_LIST = 1000
"""Records one listing returns: a message disclosed a thousand times is a fault to look at."""
CATEGORIES = frozenset({"creditor", "debtor", "third-party"})

_AAD_DOMAIN = "gateway:disclosure:v1"
_ENC_INFO = b"gateway:disclosure:v1:enc"
_MAC_INFO = b"gateway:disclosure:v1:tag"


class DisclosureStoreError(Exception):
    """A disclosure could not be recorded or opened (bad arguments, altered row)."""


@dataclass(frozen=True, slots=True)
class DisclosureRecord:
    """One recorded disclosure, as stored: no personal data (see :func:`open_sealed`)."""

    disclosure_id: str
    message_id: str
    conversation_id: str
    agreement: str
    category: str
    """``creditor``, ``debtor`` or ``third-party``."""
    article: str
    """The article that allowed it, e.g. ``CIS Art. 9.2``."""
    consent_request_id: str | None
    """The ConsentRequest whose granted decision allowed it, if consent was needed."""
    actor: str
    disclosed_at: datetime
    document_sha256: bytes
    """SHA-256 of the signed bytes handed over: proves what exactly was disclosed."""
    recipient_tag: bytes


@dataclass(frozen=True, slots=True)
class SealedFacts:
    """The personal part of a record, once opened with the KEK."""

    recipient: str
    purpose: str


@dataclass(frozen=True, slots=True)
class _Keys:
    enc: bytes
    mac: bytes


def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def _keys(conn: Connection, keys: KekRing, now: datetime) -> _Keys:
    """The disclosure secret, made on first use (that call must be in a write transaction)."""
    secret = store_keys.secret(conn, DISCLOSURE_KEY, keys, now)
    return _Keys(_derive(secret, _ENC_INFO), _derive(secret, _MAC_INFO))


def _aad(disclosure_id: str) -> bytes:
    return f"{_AAD_DOMAIN}\x00{disclosure_id}".encode()


def _tag(mac_key: bytes, recipient: str) -> bytes:
    name = at_rest.normalise_debtor_name(recipient)
    if not name:
        raise DisclosureStoreError("the recipient is empty after normalisation")
    return hmac.new(mac_key, name.encode("utf-8"), hashlib.sha256).digest()


def record(
    conn: Connection,
    keys: KekRing,
    *,
    disclosure_id: str,
    message_id: str,
    conversation_id: str,
    agreement: str,
    category: str,
    article: str,
    consent_request_id: str | None,
    actor: str,
    recipient: str,
    purpose: str,
    document_sha256: bytes,
    now: datetime,
) -> DisclosureRecord:
    """Record one disclosure in the caller's (write) transaction; recipient and purpose sealed."""
    if category not in CATEGORIES:
        raise DisclosureStoreError(f"category must be one of {', '.join(sorted(CATEGORIES))}")
    if not recipient.strip() or len(recipient) > MAX_RECIPIENT_CHARS:
        raise DisclosureStoreError(f"the recipient must be 1..{MAX_RECIPIENT_CHARS} characters")
    if not purpose.strip() or len(purpose) > MAX_PURPOSE_CHARS:
        raise DisclosureStoreError(f"the purpose must be 1..{MAX_PURPOSE_CHARS} characters")
    if not actor or len(actor) > CODE_LENGTH or len(article) > CODE_LENGTH:
        raise DisclosureStoreError(f"actor and article must be at most {CODE_LENGTH} characters")
    derived = _keys(conn, keys, now)
    plaintext = json.dumps(
        {"recipient": recipient, "purpose": purpose}, ensure_ascii=False, sort_keys=True
    ).encode("utf-8")
    nonce = secrets.token_bytes(at_rest.NONCE_BYTES)
    sealed = AESGCM(derived.enc).encrypt(nonce, plaintext, _aad(disclosure_id))
    row = {
        "disclosure_id": disclosure_id,
        "message_id": message_id,
        "conversation_id": conversation_id,
        "agreement": agreement,
        "category": category,
        "article": article,
        "consent_request_id": consent_request_id,
        "actor": actor,
        "disclosed_at": now,
        "document_sha256": document_sha256,
        "recipient_tag": _tag(derived.mac, recipient),
        "sealed_nonce": nonce,
        "sealed": sealed,
    }
    conn.execute(disclosures.insert().values(**row))
    return _record(row)


def _record(values: Mapping[str, Any]) -> DisclosureRecord:
    return DisclosureRecord(**{f: values[f] for f in _FIELDS})


_FIELDS = tuple(f.name for f in fields(DisclosureRecord))
_RECORD_COLUMNS = [c for c in disclosures.c if c.name not in {"id", "sealed", "sealed_nonce"}]


def _records(conn: Connection, where: sa.ColumnElement[bool]) -> list[DisclosureRecord]:
    """The records ``where`` selects, oldest first, at most :data:`MAX_LIST`."""
    rows = conn.execute(
        sa.select(*_RECORD_COLUMNS)
        .where(where)
        .order_by(disclosures.c.disclosed_at, disclosures.c.id)
        .limit(MAX_LIST)
    )
    return [_record(r._mapping) for r in rows]


def list_for_message(conn: Connection, message_id: str) -> list[DisclosureRecord]:
    """Disclosures of one message, oldest first (no decryption)."""
    return _records(conn, disclosures.c.message_id == message_id)


def find_by_recipient(
    conn: Connection, keys: KekRing, recipient: str, now: datetime
) -> list[DisclosureRecord]:
    """Disclosures to ``recipient`` (matched by its normalised name's tag), oldest first.

    The first call on a new store creates the disclosure key: call it in a write transaction.
    """
    tag = _tag(_keys(conn, keys, now).mac, recipient)
    return _records(conn, disclosures.c.recipient_tag == tag)


def open_sealed(conn: Connection, keys: KekRing, disclosure_id: str, now: datetime) -> SealedFacts:
    """Decrypt a record's recipient and purpose (for an auditor; the caller audits the read)."""
    row = conn.execute(
        sa.select(disclosures.c.sealed_nonce, disclosures.c.sealed).where(
            disclosures.c.disclosure_id == disclosure_id
        )
    ).first()
    if row is None:
        raise DisclosureStoreError(f"no disclosure {disclosure_id}")
    derived = _keys(conn, keys, now)
    try:
        plaintext = AESGCM(derived.enc).decrypt(row.sealed_nonce, row.sealed, _aad(disclosure_id))
    except InvalidTag:
        raise DisclosureStoreError(
            f"disclosure {disclosure_id}: the sealed recipient failed authentication "
            "(the row was altered or moved); restore it from a backup"
        ) from None
    data = json.loads(plaintext)
    return SealedFacts(recipient=data["recipient"], purpose=data["purpose"])
