"""A store created at the first schema revision (0001), holding messages as that schema held
them, is refused by ``gateway audit verify`` until ``gateway db upgrade`` brings it to the newest
revision; then its data reads: the audit trail verifies and every message decrypts. On SQLite
and on PostgreSQL.

The old rows are made by a node of today and copied, column by column of the 0001 tables, into a
store migrated to 0001 only: a column today's code wrote that revision did not have would make
the copy fail, so the rows are exactly what a 0001 store could hold."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from gateway.config import NodeConfig
from gateway.crypto import at_rest
from gateway.crypto.keys.kek_ring import load_kek_ring
from gateway.crypto.keys.keystore import KeyStore
from gateway.demo.setup import DemoWorld
from gateway.exchange.local_service import LocalNodeService
from gateway.exchange.node import Node
from gateway.exchange.receiving import Disposition
from gateway.store import Store, current_revision, migrate, open_store, period_keys
from tests.cli.conftest import gateway
from tests.integration.exchange_world import OPERATOR, READ_PURPOSE, node_config, padded_request

FIRST_REVISION = "0001"


def _nodes(world: DemoWorld, tag: str, urls: dict[str, str]) -> dict[str, Node]:
    return {
        body: Node.from_config(
            NodeConfig.from_toml(
                node_config(world, body, f"{tag}-{body}", database_url=urls.get(body, ""))
            )
        )
        for body in ("RU-FSSP", "KZ-MJ")
    }


def _received(world: DemoWorld, tag: str, urls: dict[str, str]) -> tuple[str, list[str]]:
    """KZ-MJ receives three messages from RU-FSSP; its database URL and the message ids."""
    nodes = _nodes(world, tag, urls)
    ru, kz = nodes["RU-FSSP"], nodes["KZ-MJ"]
    try:
        ids = []
        for _ in range(3):
            header, _ = ru.submit(padded_request(), actor="test")
            (claim,) = [c for c in ru.claim_due("w") if c.message_id == header.message_id]
            outcome = kz.receive(ru.body_id, ru.outgoing(claim).wire)
            assert outcome.disposition is Disposition.ACCEPTED
            ids.append(header.message_id)
        return kz.config.database_url, ids
    finally:
        ru.close()
        kz.close()


def _keys_as_before_period_keys(source: Store, config: NodeConfig) -> dict[str, dict[str, Any]]:
    """Each message's data key wrapped directly by the node's KEK, as 0001 stored it (today's
    code wraps it under a retention period key, a table 0001 did not have)."""
    keys = KeyStore.from_config(config)
    try:
        ring = load_kek_ring(keys)
        with source.read() as conn:
            rows = conn.execute(period_keys.data_key_columns()).all()
        old_shape = {}
        for row in rows:
            wrapped = at_rest.wrap_data_key(period_keys.data_key_of(row, ring), ring)
            old_shape[row.message_id] = {"kek_id": wrapped.kek_id, "wrapped_dek": wrapped.blob}
        return old_shape
    finally:
        keys.close()


def _copy_into_first_revision(source_url: str, target_url: str, config: NodeConfig) -> int:
    """Copy every row of the 0001 tables from a store at head into one at 0001; rows copied."""
    source, target = open_store(source_url), open_store(target_url)
    try:
        old_keys = _keys_as_before_period_keys(source, config)
        migrate(target.engine, FIRST_REVISION)
        assert current_revision(target.engine) == FIRST_REVISION
        old = sa.MetaData()
        old.reflect(target.engine)
        new = sa.MetaData()
        new.reflect(source.engine)
        copied = 0
        with source.engine.connect() as read, target.engine.begin() as write:
            for table in old.sorted_tables:
                # debtor_tags (0001, never written) gave way to search_tags in 0013; 0001's
                # attachments table (never written either) was replaced by another shape in 0015.
                if table.name in ("alembic_version", "attachments") or table.name not in new.tables:
                    continue
                columns = [new.tables[table.name].c[c.name] for c in table.columns]
                rows = [dict(r) for r in read.execute(sa.select(*columns)).mappings()]
                if table.name == "message_keys":
                    rows = [{**r, **old_keys[r["message_id"]]} for r in rows]
                write.execute(table.delete())  # the rows 0001 seeds (the audit chain's head)
                if rows:
                    write.execute(table.insert(), rows)
                    copied += len(rows)
                _advance_sequences(write, table)
        return copied
    finally:
        source.dispose()
        target.dispose()


def _advance_sequences(conn: sa.Connection, table: sa.Table) -> None:
    """PostgreSQL: a serial column's sequence past the copied ids, as a store that made them."""
    if conn.dialect.name != "postgresql":
        return
    for column in table.primary_key.columns:
        sequence = conn.execute(
            sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}
        ).scalar_one()
        if sequence is not None:
            highest = conn.execute(sa.select(sa.func.max(column))).scalar_one() or 0
            conn.execute(sa.text("SELECT setval(:s, :v, false)"), {"s": sequence, "v": highest + 1})


async def _bodies(node: Node, ids: list[str]) -> dict[str, Any]:
    service = LocalNodeService(node, ThreadPoolExecutor(1))
    return {m: (await service.message(m, actor=OPERATOR, purpose=READ_PURPOSE)).body for m in ids}


def _upgrade_and_read(world: DemoWorld, source_url: str, ids: list[str], target: Path) -> None:
    with_source = asyncio.run(_read(world, source_url, ids))
    assert all(body is not None for body in with_source.values())

    # Only an explicit upgrade changes a store that holds data; other commands refuse it.
    refused = gateway("audit", "verify", "--config", str(target))
    assert refused.code == 3 and "[STORE_UPGRADE_NEEDED]" in refused.err, refused
    upgrade = gateway("db", "upgrade", "--config", str(target))
    assert upgrade.code == 0 and "обновлена до" in upgrade.out, upgrade
    audit = gateway("audit", "verify", "--config", str(target))
    assert audit.code == 0, audit.out + audit.err
    node = Node.from_config(NodeConfig.from_toml(target))
    try:
        head = current_revision(node.store.engine)
        assert head is not None and head > FIRST_REVISION
        assert asyncio.run(_bodies(node, ids)) == with_source
    finally:
        node.close()
    # The list's case numbers and debtors need the KEK, which the migration lacks.
    reindexed = gateway("conversations", "reindex", "--config", str(target))
    assert (
        reindexed.code == 0 and reindexed.out.strip() == f"проиндексировано переписок: {len(ids)}"
    )


async def _read(world: DemoWorld, url: str, ids: list[str]) -> dict[str, Any]:
    node = Node.from_config(
        NodeConfig.from_toml(node_config(world, "KZ-MJ", "upgrade-read", database_url=url))
    )
    try:
        return await _bodies(node, ids)
    finally:
        node.close()


def test_a_sqlite_store_of_the_first_revision_upgrades_and_reads(world: DemoWorld) -> None:
    source_url, ids = _received(world, "upgrade-sqlite", {})
    target = node_config(world, "KZ-MJ", "upgrade-old-sqlite")
    config = NodeConfig.from_toml(target)
    assert _copy_into_first_revision(source_url, config.database_url, config) > len(ids)
    _upgrade_and_read(world, source_url, ids, target)


def test_a_postgresql_store_of_the_first_revision_upgrades_and_reads(
    world: DemoWorld, pg_schema: Callable[[str], str]
) -> None:
    urls = {"RU-FSSP": pg_schema("upgrade-sender"), "KZ-MJ": pg_schema("upgrade-new")}
    source_url, ids = _received(world, "upgrade-pg", urls)
    old_url = pg_schema("upgrade-old")
    target = node_config(world, "KZ-MJ", "upgrade-old-pg", database_url=old_url)
    assert _copy_into_first_revision(source_url, old_url, NodeConfig.from_toml(target)) > len(ids)
    _upgrade_and_read(world, source_url, ids, target)
