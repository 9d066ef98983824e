"""Every foreign key leads an index, in the metadata and in a migrated store; ids compared in
byte order (PostgreSQL, migration 0021) still use their indexes.

Deleting a referenced row (a purge deletes messages and conversations) makes the database find
the referencing rows of every table pointing at it, once per deleted row: without an index on
the referencing columns each lookup reads the whole table, and a purge of N rows over a table
of R rows costs N × R (``resends.conversation_id`` did, until 0019).
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from gateway.store import Store
from gateway.store.dialect import in_text_set
from gateway.store.tables import (
    conversations,
    message_keys,
    messages,
    metadata,
    period_keys,
    tombstones,
)


def _led(columns: list[str], indexes: list[list[str]]) -> bool:
    return any(index[: len(columns)] == columns for index in indexes)


def test_every_foreign_key_leads_an_index_in_the_metadata() -> None:
    missing = []
    for table in metadata.sorted_tables:
        indexes = [[c.name for c in table.primary_key.columns]]
        indexes += [[c.name for c in index.columns] for index in table.indexes]
        indexes += [
            [c.name for c in constraint.columns]
            for constraint in table.constraints
            if isinstance(constraint, sa.UniqueConstraint)
        ]
        indexes += [[c.name] for c in table.columns if c.unique]
        for fk in table.foreign_key_constraints:
            columns = [c.name for c in fk.columns]
            if not _led(columns, indexes):
                missing.append(f"{table.name}({', '.join(columns)})")
    assert missing == [], f"foreign keys without an index: {missing}"


def test_every_foreign_key_leads_an_index_in_a_migrated_store(store: Store) -> None:
    inspector = sa.inspect(store.engine)
    missing = []
    for name in inspector.get_table_names():
        if name == "alembic_version":
            continue
        indexes = [inspector.get_pk_constraint(name)["constrained_columns"]]
        indexes += [list(i["column_names"]) for i in inspector.get_indexes(name)]
        indexes += [list(u["column_names"]) for u in inspector.get_unique_constraints(name)]
        for fk in inspector.get_foreign_keys(name):
            if not _led(list(fk["constrained_columns"]), indexes):
                missing.append(f"{name}({', '.join(fk['constrained_columns'])})")
    assert missing == [], f"foreign keys without an index: {missing}"


def _probed_indexes(conn: sa.Connection, stmt: sa.Executable) -> set[str]:
    """The indexes ``stmt``'s plan probes with a condition (``Index Cond``); a sequential scan
    is named ``seq scan on <table>``."""
    compiled = stmt.compile(conn)
    (plan,) = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).one()
    found, nodes = set(), [plan[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        nodes.extend(node.get("Plans", []))
        if "Index Cond" in node:
            found.add(node["Index Name"])
        if node["Node Type"] == "Seq Scan":
            found.add(f"seq scan on {node['Relation Name']}")
    return found


def test_ids_in_byte_order_keep_their_indexes_usable(store: Store) -> None:
    """PostgreSQL, ids ``COLLATE "C"`` (migration 0021): compared with a parameter, with a set of
    ids sent as one string (``in_text_set``: ``ANY(string_to_array(…))``, of the default
    collation, which gives way to the column's), in a keyset page, and joined id to id, each
    probes the index of the id, and none fails with "could not determine which collation to
    use". Sequential and bitmap scans are disabled, so that on these tiny tables the planner
    probes an index whenever it can (it would otherwise read a whole small index or table)."""
    if store.dialect != "postgresql":
        pytest.skip("SQLite compares text bytewise by default: 0021 changes nothing there")
    ids = [str(uuid.uuid4()) for _ in range(3)]
    m, t, c, k, p = messages.c, tombstones.c, conversations.c, message_keys.c, period_keys.c
    with store.read() as conn:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        plans = {
            "parameter": (
                "uq_messages_message_id",
                sa.select(m.id).where(m.message_id == ids[0]),
            ),
            "set": (
                "uq_messages_message_id",
                sa.select(m.id).where(in_text_set(conn, m.message_id, ids)),
            ),
            "keyset page": (
                "pk_tombstones",
                sa.select(t.message_id)
                .where(t.message_id > ids[0])
                .order_by(t.message_id)
                .limit(5),
            ),
            "conversations of a set of messages": (
                "pk_conversations",
                sa.select(c.conversation_id).where(
                    c.conversation_id
                    == sa.any_(
                        sa.func.array(
                            sa.select(m.conversation_id)
                            .where(in_text_set(conn, m.message_id, ids))
                            .scalar_subquery()
                        )
                    )
                ),
            ),
            "message to its conversation": (
                "pk_conversations",
                sa.select(c.confidential)
                .select_from(messages.join(conversations, c.conversation_id == m.conversation_id))
                .where(m.message_id == ids[0]),
            ),
            "message to its key": (
                "pk_message_keys",
                sa.select(k.kek_id)
                .select_from(messages.join(message_keys, k.message_id == m.message_id))
                .where(m.message_id == ids[0]),
            ),
            "key to its period key": (
                "pk_period_keys",
                sa.select(p.kek_id)
                .select_from(message_keys.join(period_keys, p.key_id == k.period_key_id))
                .where(k.message_id == ids[0]),
            ),
        }
        probed = {name: _probed_indexes(conn, stmt) for name, (_, stmt) in plans.items()}
    unused = {
        name: indexes
        for name, indexes in probed.items()
        if plans[name][0] not in indexes or any(i.startswith("seq scan") for i in indexes)
    }
    assert unused == {}
