"""Log lines an operator can read and a collector can parse (docs/operations.md, Logs).

Two formats, chosen by ``[logging] format`` in NODE.toml:

``text``
    ``2026-12-05T09:30:00.123Z INFO  RU-FSSP gateway.web.runtime: directory version 3 in force``
``json``
    one JSON object a line: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``node`` (this node's
    body id), ``message``, and the structured fields a record carries (:data:`FIELDS`: the
    access log's ``site``, ``method``, ``path``, ``status``, ``duration_ms``, ``peer``, and
    ``message_id`` where a record is about one message).

Only what the code puts in a record is written: the access loggers of the three sites give the
route, never the query string or a header, and no log call passes document content or a token
(CIS Art. 9.4; :mod:`gateway.logsafety` quietens the libraries that would). Standard library only.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

FIELDS = ("site", "method", "path", "status", "duration_ms", "peer", "message_id")
"""Structured fields a record may carry (``logger.info(..., extra={...})``); JSON writes them."""

ACCESS_LOGGER = "gateway.access"
"""The access log of the peer endpoint, the API and the console (one line per request)."""

_HANDLER_NAME = "gateway"


def _utc_iso(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """``<UTC time> <LEVEL> <node> <logger>: <message>``, the traceback (if any) below."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{_utc_iso(record)} {record.levelname:<7} {self.node} {record.name}: "
            f"{record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line (JSON Lines), keys in a fixed order."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _utc_iso(record),
            "level": record.levelname,
            "logger": record.name,
            "node": self.node,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if record.__dict__.get(name) is not None:
                entry[name] = record.__dict__[name]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(
    *,
    node: str,
    level: str = "INFO",
    fmt: str = "text",
    levels: dict[str, str] | None = None,
    stream: TextIO | None = None,
) -> None:
    """Send every record at ``level`` and above to ``stream`` (stderr: journald or the container
    runtime collects it) in format ``fmt``; ``levels`` sets single loggers' levels
    (``{"gateway.access": "WARNING"}`` silences the access log). Replaces an earlier call's
    handler, so calling it twice does not double the lines."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(TextFormatter(node) if fmt == "text" else JsonFormatter(node))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name, value in (levels or {}).items():
        logging.getLogger(name).setLevel(value)
    # aiohttp's own access logger stays quiet: the sites log through ACCESS_LOGGER instead.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def access(
    site: str,
    method: str,
    path: str,
    status: int,
    seconds: float,
    *,
    peer: str | None = None,
) -> None:
    """One access-log line. ``path`` is a route (template or name), never the request line:
    the query string may hold a stated purpose or a filter, which belong to the audit trail."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not logger.isEnabledFor(logging.INFO):
        return
    duration_ms = round(seconds * 1000, 1)
    fields: dict[str, Any] = {
        "site": site,
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": duration_ms,
    }
    if peer is not None:
        fields["peer"] = peer
    logger.info(
        "%s %s %s %s %.1fms%s",
        site,
        method,
        path,
        status,
        duration_ms,
        f" peer={peer}" if peer is not None else "",
        extra=fields,
    )
