"""Every foreign key leads an index, in the metadata and in a migrated store.

Deleting a referenced row (a purge deletes messages and conversations) makes the database find
the referencing rows of every table pointing at it, once per deleted row: without an index on
the referencing columns each lookup reads the whole table, and a purge of N rows over a table
of R rows costs N × R (``resends.conversation_id`` did, until 0019).
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.store import Store
from gateway.store.tables import metadata


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
