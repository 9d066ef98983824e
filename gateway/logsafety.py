"""Keep third-party libraries from logging document content.

At DEBUG, signxml logs every canonicalised document it signs or verifies, and xmlschema logs
refused values with their text. Both would put personal data (CIS Art. 9.4) into logs. A filter
on those exact loggers drops their records below WARNING, whatever level an operator sets:
a filter on a parent logger would not see a child's records, so each logger gets its own.
"""

from __future__ import annotations

import logging

CHATTY_LOGGERS = (
    "signxml",
    "signxml.processor",
    "signxml.signer",
    "signxml.verifier",
    "signxml.xades",
    "signxml.xades.xades",
    "xmlschema",
    "xmlschema.validators",
    "xmlschema.validators.validation",
    "xmlschema.validators.schemas",
)


class _WarningsAndAbove(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


_FILTER = _WarningsAndAbove()


def install() -> None:
    """Idempotent; called when :mod:`gateway` is imported."""
    for name in CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
