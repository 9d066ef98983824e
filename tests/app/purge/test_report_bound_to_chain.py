"""Issue finding (purge-trust): `purge.finished` did not carry the report's hash, so a deleted
or replaced report row passed `audit verify`. Now the closing event names the SHA-256 of the
signed report, and the trail check compares it with the stored report. Both stores."""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa

from gateway.app.audit_checkpoints import verify_trail
from gateway.app.purge import run_purge
from gateway.crypto.keys.generations import always_in_force
from gateway.crypto.keys.keystore import SigningKey
from gateway.store import Store
from gateway.store.tables import audit_events, purge_reports
from tests.app.purge.world import T0, after, one_policy


def _run(store: Store, seal: SigningKey) -> str:
    report = run_purge(store, one_policy("received"), after(T0, days=400), seal=seal, actor="t")
    return report.run_id


def test_the_closing_event_names_the_signed_report(store: Store, seal: SigningKey) -> None:
    run_id = _run(store, seal)
    with store.read() as conn:
        event = conn.execute(
            sa.select(audit_events).where(audit_events.c.kind == "purge.finished")
        ).one()
        stored = conn.execute(
            sa.select(purge_reports.c.report).where(purge_reports.c.run_id == run_id)
        ).scalar_one()
    details = event.details if isinstance(event.details, dict) else json.loads(event.details)
    assert details["report_sha256"] == hashlib.sha256(stored.encode()).hexdigest()
    assert verify_trail(store, always_in_force([seal.certificate])).intact


def test_a_deleted_report_is_found(store: Store, seal: SigningKey) -> None:
    run_id = _run(store, seal)
    with store.transaction() as conn:
        conn.execute(purge_reports.delete().where(purge_reports.c.run_id == run_id))
    result = verify_trail(store, always_in_force([seal.certificate]))
    assert not result.intact
    assert result.tampering == "report-deleted" and run_id in result.reason


def test_a_replaced_report_is_found(store: Store, seal: SigningKey) -> None:
    run_id = _run(store, seal)
    with store.transaction() as conn:
        stored = conn.execute(
            sa.select(purge_reports.c.report).where(purge_reports.c.run_id == run_id)
        ).scalar_one()
        conn.execute(
            purge_reports.update()
            .where(purge_reports.c.run_id == run_id)
            .values(report=stored.replace('"purged":0', '"purged":7'))
        )
    result = verify_trail(store, always_in_force([seal.certificate]))
    assert not result.intact
    assert result.tampering == "report-modified" and run_id in result.reason
