"""Migration 0011 fills the new ``conversations.urgent`` from what each conversation's machine
recorded (SC Art. 5.2), on SQLite and PostgreSQL, so older urgent requests are marked and reminded
like new ones."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.store import migrate, open_store

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_urgent_is_filled_from_the_machine(dialect: str, tmp_path: Path, pg_schema) -> None:
    url = pg_schema("urgent") if dialect == "postgresql" else f"sqlite:///{tmp_path / 'g.db'}"
    store = open_store(url)
    try:
        migrate(store.engine, "0010")
        conversations = sa.table(
            "conversations",
            *(
                sa.column(name)
                for name in (
                    "conversation_id",
                    "agreement",
                    "requesting_party",
                    "requested_party",
                    "opening_kind",
                    "last_kind",
                    "state",
                    "confidential",
                    "opened_at",
                    "updated_at",
                )
            ),
        )
        machines = sa.table(
            "conversation_machines",
            sa.column("conversation_id"),
            sa.column("machine"),
            sa.column("updated_at"),
        )
        with store.engine.begin() as conn:
            for cid, urgent in (("c-urgent", True), ("c-plain", False)):
                conn.execute(
                    conversations.insert().values(
                        conversation_id=cid,
                        agreement="ru-kz-supreme-courts",
                        requesting_party="RU-VS",
                        requested_party="KZ-VS",
                        opening_kind="Request",
                        last_kind="Request",
                        state="in-progress",
                        confidential=False,
                        opened_at=NOW,
                        updated_at=NOW,
                    )
                )
                conn.execute(
                    machines.insert().values(
                        conversation_id=cid,
                        machine=json.dumps({"urgent": urgent, "state": "in-progress"}),
                        updated_at=NOW,
                    )
                )

        migrate(store.engine)

        with store.engine.connect() as conn:
            rows = dict(
                conn.execute(sa.text("SELECT conversation_id, urgent FROM conversations")).all()
            )
        assert {cid: bool(value) for cid, value in rows.items()} == {
            "c-urgent": True,
            "c-plain": False,
        }
    finally:
        store.dispose()
