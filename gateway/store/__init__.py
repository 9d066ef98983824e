"""The store: SQLAlchemy Core tables, Alembic migrations, repositories.

SQLite is the embedded default, PostgreSQL (psycopg 3) serves several processes; the same code
runs on both. Repositories are modules of small functions taking a ``Connection`` and the time
(``now``) as parameters::

    store = open_store("sqlite:///node-data/gateway.db")
    migrate(store.engine)
    with store.transaction() as conn:
        conversations.open_conversation(conn, ...)
        messages.insert_received(conn, header, signed_bytes, ring, now)
        audit.append(conn, now=now, actor="peer:KZ-MJ", kind="message.received", ...)

Several units of work (several received documents) share one commit with ``store.batch()``,
a savepoint per unit; audit events are written once per transaction, at commit.
"""

from gateway.store.engine import (
    SchemaState,
    SchemaStatus,
    Store,
    StoreNotCurrent,
    current_revision,
    head_revision,
    migrate,
    open_current,
    open_current_store,
    open_store,
    schema_status,
)

__all__ = [
    "SchemaState",
    "SchemaStatus",
    "Store",
    "StoreNotCurrent",
    "current_revision",
    "head_revision",
    "migrate",
    "open_current",
    "open_current_store",
    "open_store",
    "schema_status",
]
