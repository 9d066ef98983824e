"""Smoke test of benchmarks/purge_bench.py on both stores: it seeds, purges and prints its
table and its JSON line, with the options this session added (``--ids``, ``--pending``). A
few hundred messages; the figures themselves are not judged."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa

from benchmarks import purge_bench


@pytest.mark.parametrize(
    ("db", "ids", "version"), [("sqlite", "time-ordered", 7), ("postgresql", "random", 4)]
)
def test_the_purge_benchmark_purges_all_but_the_undelivered(
    db: str, ids: str, version: int, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    seeded: list[str] = []
    seed = purge_bench._leave_undelivered

    def look(store, pending: int) -> None:  # the seeded ids, before the purge
        with store.read() as conn:
            seeded.extend(conn.execute(sa.text("SELECT message_id FROM messages")).scalars())
        seed(store, pending)

    monkeypatch.setattr(purge_bench, "_leave_undelivered", look)
    assert purge_bench.main(["--db", db, "--count", "300", "--pending", "12", "--ids", ids]) == 0

    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (last["store"], last["messages"], last["pending"]) == (db, 288, 12)
    assert last["ids"] == ids and last["calibration_s"] > 0
    assert {uuid.UUID(m).version for m in seeded} == {version} and len(seeded) == 300
