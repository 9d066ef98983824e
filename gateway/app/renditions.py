"""The signed PDF rendition of a document file (``gateway render``): the same rendition the
local API serves for a stored document (:func:`gateway.exchange.node.signed_rendition`), with
this body's seal, time-stamped (PAdES B-T) when ``[tsa] url`` is set.

The PDF shows every field of the document in Russian, the sender and recipient, the signatures
found in it and — for a confidential document — «Конфиденциально» on every page: the
"original" of CIS Art. 10.
"""

from __future__ import annotations

from datetime import datetime

from gateway.app.signing import timestamper
from gateway.config import NodeConfig
from gateway.crypto.keys.keystore import KeyStore
from gateway.exchange.node import signed_rendition


def render_document(config: NodeConfig, document: bytes, at: datetime) -> bytes:
    """``document`` (XML) as a PDF signed with the node's seal in force at ``at``."""
    keys = KeyStore.from_config(config)
    try:
        return signed_rendition(
            document, keys.seal(at=at), config.node.body_id, at, timestamper(config)
        )
    finally:
        keys.close()
