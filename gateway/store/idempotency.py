"""Idempotency keys of local submissions: the first answer to a key, replayed for a retry.

A case system that lost the answer to a submission without its own MessageId cannot tell whether
the document was stored; sending it again would make a second document. With an
``Idempotency-Key`` the key, the request's SHA-256 and the answer are written in the submission's
own transaction (:func:`record`), so either both the document and its key are kept or neither;
a retry finds the key (:func:`find`) and gets the same answer. Keys are per actor (``scope``) and
kept for KEY_TTL: long enough for any retry loop, short enough that the table stays small.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.dialect import insert_if_absent
from gateway.store.tables import idempotency_keys

KEY_TTL = timedelta(hours=24)
"""How long a key is remembered: a case system retries a lost answer within minutes; a day covers
an outage overnight. After it the same key is a new submission."""


class KeyTaken(Exception):
    """Another submission recorded this key first (they ran at the same time): the caller reads
    the key again and answers from it."""


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    scope: str
    """Whose key: the actor's name, so two case systems never share a key."""
    key: str
    request_sha256: str
    """SHA-256 of the request as the case system sent it (its canonical JSON)."""


@dataclass(frozen=True, slots=True)
class Remembered:
    request_sha256: str
    answer: dict[str, Any]


def find(conn: Connection, key: IdempotencyKey, now: datetime) -> Remembered | None:
    """The live record of ``key`` (younger than KEY_TTL), if any."""
    row = conn.execute(
        sa.select(idempotency_keys.c.request_sha256, idempotency_keys.c.answer).where(
            idempotency_keys.c.scope == key.scope,
            idempotency_keys.c.idempotency_key == key.key,
            idempotency_keys.c.created_at > now - KEY_TTL,
        )
    ).first()
    return None if row is None else Remembered(row.request_sha256, json.loads(row.answer))


def record(conn: Connection, key: IdempotencyKey, answer: dict[str, Any], now: datetime) -> None:
    """Remember ``answer`` for ``key`` in the caller's transaction; :class:`KeyTaken` if a live
    record of the key exists (an expired one is replaced)."""
    conn.execute(
        idempotency_keys.delete().where(
            idempotency_keys.c.scope == key.scope,
            idempotency_keys.c.idempotency_key == key.key,
            idempotency_keys.c.created_at <= now - KEY_TTL,
        )
    )
    row = {
        "scope": key.scope,
        "idempotency_key": key.key,
        "request_sha256": key.request_sha256,
        "answer": json.dumps(answer, ensure_ascii=False, sort_keys=True),
        "created_at": now,
    }
    if not insert_if_absent(conn, idempotency_keys, ["scope", "idempotency_key"], row):
        raise KeyTaken(key.key)


def prune(conn: Connection, now: datetime) -> int:
    """Forget the keys older than KEY_TTL; how many."""
    result = conn.execute(
        idempotency_keys.delete().where(idempotency_keys.c.created_at <= now - KEY_TTL)
    )
    return result.rowcount or 0


__all__ = ["KEY_TTL", "IdempotencyKey", "KeyTaken", "Remembered", "find", "prune", "record"]
