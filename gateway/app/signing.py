"""One envelope from a file: sign it with the node's keys (``gateway sign``), verify it against
the node's trust and records (``gateway verify``).

Verification consults the node's records: when the node holds the document (same MessageId,
same SHA-256) and its signed receipt or an audit checkpoint after it, that is the proof of
existence that keeps the signatures valid after a later revocation or expiry of the signer's
certificate (docs/key-rotation.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from gateway.app.context import AppContext
from gateway.app.existence import MessageNotStored, stored_with_proof
from gateway.app.failures import Failure
from gateway.config import NodeConfig
from gateway.crypto.algorithms import suite_name
from gateway.crypto.keys.kek_ring import load_kek_ring
from gateway.crypto.keys.keystore import KeyRole, KeyStore
from gateway.crypto.report import ExistenceProof
from gateway.crypto.trust import TrustList
from gateway.crypto.xades import VerifiedDocument, sign_document, verify_document
from gateway.model.problems import DocumentRejected
from gateway.xml.header import read_header
from gateway.xml.parsing import parse_untrusted


def timestamper(config: NodeConfig) -> Any:
    """The RFC 3161 client of ``[tsa] url`` (pyHanko's), or None when there is none."""
    if not config.tsa.url:
        return None
    from pyhanko.sign.timestamps import HTTPTimeStamper

    return HTTPTimeStamper(config.tsa.url)


def sign_file(config: NodeConfig, data: bytes, at: datetime, *, official: str | None) -> bytes:
    """``data`` (an unsigned envelope) signed by the official named ``official`` (``""``: the
    one ``[keys] official`` names; None: seal only, for machine documents) and the seal.
    :class:`DocumentRejected` names what is wrong with it."""
    keys = KeyStore.from_config(config)
    try:
        signer = None if official is None else keys.official(official or None)
        return sign_document(data, signer, keys.seal(), at, timestamper=timestamper(config))
    finally:
        keys.close()


def verify_file(
    config: NodeConfig,
    data: bytes | None,
    message_id: str | None,
    at: datetime,
    *,
    expected_sender: str | None,
    require_official: bool,
    note: Callable[[str], None],
) -> tuple[VerifiedDocument, dict[str, str]]:
    """Verify ``data`` (or the document the node stored as ``message_id``) as of ``at``, with
    the node's proof of its existence when it has one; returns the verification and each
    signature's suite by role."""
    trust = TrustList.from_config(config)
    document, existence = _from_records(config, data, message_id, note)
    verified = verify_document(
        document,
        trust,
        at,
        expected_sender=expected_sender,
        require_official=require_official,
        existence=existence,
    )
    suites = {s.role: suite_name(s.signature_algorithm) for s in verified.report.signatures}
    return verified, suites


def _from_records(
    config: NodeConfig, data: bytes | None, message_id: str | None, note: Callable[[str], None]
) -> tuple[bytes, ExistenceProof | None]:
    """The document (``data``, or the stored one) and the node's proof of its existence, if
    the node stores exactly this document (its MessageId and SHA-256) and holds a proof. A
    file is verified even when the records cannot be read (``note`` says so)."""
    if data is None:
        if message_id is None:
            raise ValueError("a document or a message id")
        return _stored(config, message_id, None)
    try:
        message_id = read_header(parse_untrusted(data)).message_id
    except (DocumentRejected, ValueError):
        return data, None  # not readable: the verification says why
    if config.database_url.startswith("sqlite") and not config.node.data_dir.is_dir():
        return data, None  # the node never ran: it has no records
    try:
        return _stored(config, message_id, data)
    except Failure:
        return data, None  # the node does not store it: no record of it
    except Exception as exc:  # records unreadable (database down, no KEK): verify without
        note(
            f"ПРИМЕЧАНИЕ: записи узла не прочитаны ({type(exc).__name__}: {exc}); "
            "проверка без доказательства существования"
        )
        return data, None


def _stored(
    config: NodeConfig, message_id: str, data: bytes | None
) -> tuple[bytes, ExistenceProof | None]:
    """From the node's store: the document (``data`` if given, else the stored one) and its
    proof of existence — None unless the stored document is exactly ``data``."""
    if config.database_url.startswith("sqlite") and not config.node.data_dir.is_dir():
        raise Failure(
            f"каталога данных {config.node.data_dir} нет: узел ещё не запускался",
            "NODE_NOT_INITIALISED",
        )
    keys = KeyStore.from_config(config)
    try:
        with AppContext.from_config(config) as ctx:
            return stored_with_proof(
                ctx,
                load_kek_ring(keys),
                message_id,
                data,
                keys.signers(KeyRole.SEAL),
                TrustList.configured(config),
            )
    except MessageNotStored:
        raise Failure(
            f"--message {message_id}: узел не хранит такого сообщения", "MESSAGE_NOT_FOUND"
        ) from None
    finally:
        keys.close()
