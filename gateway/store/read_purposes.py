"""The stated purpose of a read (CIS Art. 9.1), sealed inside the audit event that records it.

A reader's purpose is their own words and may name a person or a proceeding, so it is never
written in clear. It is sealed with the same envelope encryption as a stored message
(:func:`gateway.crypto.at_rest.seal_payload`: a fresh data key, AES-256-GCM, the key wrapped by
the store's active KEK) and the sealed text goes into the event's ``details``: the hash chain
covers the ciphertext, so altering it breaks ``gateway audit verify``, and the associated data
names the event's kind, actor, subjects and the purpose's SHA-256 (kept in clear beside it, as
before), so a sealed purpose moved to another event fails to open.

An auditor reads it with ``gateway audit show --purposes`` (or ``audit export --purposes``),
which needs the KEK ring; a purpose sealed under a KEK since destroyed can no longer be read
(its digest still can be compared).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping

from gateway.crypto import at_rest
from gateway.crypto.at_rest import SealedPayload
from gateway.crypto.keys.kek import KekRing

SEALED_KEY = "purpose_sealed"
"""The details key holding the sealed purpose."""
DIGEST_KEY = "purpose_sha256"
"""The details key holding the purpose's SHA-256 (hex), as before sealing existed."""
_AAD_DOMAIN = "gateway:audit-purpose:v1"
_FORMAT = "v1"


class PurposeUnreadable(at_rest.AtRestError):
    """A sealed purpose is malformed, was altered or its KEK is gone."""


def _aad(kind: str, actor: str, subjects: Mapping[str, str], digest: str) -> bytes:
    where = json.dumps(dict(subjects), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{_AAD_DOMAIN}\x00{kind}\x00{actor}\x00{where}\x00{digest}".encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def purpose_details(
    purpose: str, keys: KekRing, *, kind: str, actor: str, subjects: Mapping[str, str]
) -> dict[str, str]:
    """The details entries recording ``purpose`` for one audit event: its digest and its
    sealed text (``v1.<kek id>.<wrapped key>.<nonce>.<ciphertext>``, base64 parts)."""
    digest = hashlib.sha256(purpose.encode()).hexdigest()
    sealed = at_rest.seal_payload(purpose.encode(), keys, _aad(kind, actor, subjects, digest))
    text = ".".join(
        (
            _FORMAT,
            sealed.kek_id,
            _b64(sealed.wrapped_dek),
            _b64(sealed.nonce),
            _b64(sealed.ciphertext),
        )
    )
    return {DIGEST_KEY: digest, SEALED_KEY: text}


def has_sealed_purpose(details: Mapping[str, object]) -> bool:
    return isinstance(details.get(SEALED_KEY), str)


def open_purpose(
    details: Mapping[str, object],
    keys: KekRing,
    *,
    kind: str,
    actor: str,
    subjects: Mapping[str, str],
) -> str:
    """The purpose sealed in an event's details; :class:`PurposeUnreadable` when it cannot be
    opened (altered, moved to another event, or its KEK is not in ``keys``)."""
    text, digest = details.get(SEALED_KEY), details.get(DIGEST_KEY)
    parts = text.split(".") if isinstance(text, str) else []
    if len(parts) != 5 or parts[0] != _FORMAT or not isinstance(digest, str):
        raise PurposeUnreadable("the sealed purpose is malformed")
    try:
        wrapped, nonce, ciphertext = (base64.b64decode(p, validate=True) for p in parts[2:])
        sealed = SealedPayload(ciphertext, nonce, wrapped, parts[1])
        plain = at_rest.open_payload(sealed, keys, _aad(kind, actor, subjects, digest))
    except (ValueError, at_rest.AtRestError) as exc:
        raise PurposeUnreadable(f"the sealed purpose cannot be opened: {exc}") from None
    purpose = plain.decode()
    if hashlib.sha256(plain).hexdigest() != digest:
        raise PurposeUnreadable("the sealed purpose does not match its digest")
    return purpose
