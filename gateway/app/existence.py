"""A stored document and the node's proof that it existed, as ``gateway verify --message``
reads them from the node's store."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from gateway.app.context import AppContext
from gateway.crypto.keys.generations import Signer
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.report import ExistenceProof
from gateway.crypto.trust import TrustList
from gateway.exchange.existence import proof_of_existence
from gateway.store import messages

__all__ = ["ExistenceProof", "MessageNotStored", "stored_with_proof"]


class MessageNotStored(LookupError):
    """The node stores no message of that id."""


def stored_with_proof(
    ctx: AppContext,
    ring: KekRing,
    message_id: str,
    data: bytes | None,
    seal_signers: Sequence[Signer] = (),
    trust: TrustList | None = None,
) -> tuple[bytes, ExistenceProof | None]:
    """The document (``data`` if given, else the stored one) and its proof of existence — None
    unless the stored document is exactly ``data``. ``seal_signers``: every seal
    generation of this node (a checkpoint proves existence only when signed by one not
    revoked for key compromise, within its window)."""
    with ctx.store.read() as conn:
        stored = messages.get(conn, message_id)
        if stored is None:
            raise MessageNotStored(message_id)
        if data is None:
            data = messages.read_document(conn, message_id, ring)
        if hashlib.sha256(data).digest() != stored.document_sha256:
            return data, None  # another document under a stored id: no record of it
        return data, proof_of_existence(
            conn, message_id, stored.document_sha256, ring, stored.stored_at, seal_signers, trust
        )
