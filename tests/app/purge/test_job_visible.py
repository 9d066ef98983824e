"""Issue #20 (the job is invisible): the purge run through the real scheduler path (lock, slot
claim, body, record) is listed by ``gateway jobs list`` with its slot, outcome, count and next
run, its gauges reach ``/metrics``' exposition, and the same slot replayed is skipped. Both
stores."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gateway.app import slots
from gateway.app.scheduled import PURGE
from gateway.config import NodeConfig
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.keystore import KeyStore
from gateway.jobs.scheduler import JOB_NAMES, JobOutcome, Outcome, scheduler_for
from gateway.store import Store
from gateway.store import purge as purge_store
from gateway.web.metrics import GatewayMetrics
from tests.app.purge.purge_child import main
from tests.app.purge.world import T0, JobNode, add_conversation, after

RUN_AT = after(T0, days=400)


def test_a_purge_run_is_listed_measured_and_never_replayed(
    store: Store, ring: KekRing, node_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = NodeConfig.from_toml(node_toml)
    with store.transaction() as conn:
        add_conversation(conn, ring, T0, count=4)
    outcomes: list[JobOutcome] = []
    metrics = GatewayMetrics()
    keys = KeyStore.from_config(config)
    scheduler = scheduler_for(
        config,
        JobNode(store, keys, "RU-FSSP", ring),
        clock=lambda: RUN_AT,
        on_outcome=outcomes.append,
    )
    assert scheduler is not None
    try:
        slots.ensure_table(scheduler.engine)
        asyncio.run(scheduler._run(PURGE, RUN_AT))
        asyncio.run(scheduler._run(PURGE, RUN_AT))  # the same slot again: a restart's replay
        with scheduler.engine.connect() as conn:
            metrics.job_status(slots.status(conn, JOB_NAMES))
    finally:
        scheduler.engine.dispose()
        scheduler._store_engine.dispose()
        keys.close()
    assert [(o.outcome, o.count) for o in outcomes] == [(Outcome.RAN, 4), (Outcome.SKIPPED, None)]
    assert "slot already taken" in outcomes[1].detail
    with store.read() as conn:
        (run,) = purge_store.list_runs(conn)
        signed = json.loads(purge_store.get_report(conn, run.run_id).report)
    assert signed["scheduled_for"] == RUN_AT.isoformat()  # a catch-up run can be told apart
    for outcome in outcomes:
        metrics.job_outcome(outcome.job, outcome.outcome.value)

    text = metrics.exposition().decode()
    (success,) = [
        line
        for line in text.splitlines()
        if line.startswith('gateway_job_last_success_timestamp_seconds{job="purge"}')
    ]
    assert float(success.split()[-1]) == RUN_AT.timestamp()
    assert 'gateway_job_last_count{job="purge"} 4.0' in text
    assert 'gateway_job_last_run_failed{job="purge"} 0.0' in text
    assert 'gateway_job_runs_total{job="purge",outcome="ran"} 1.0' in text
    assert 'gateway_job_runs_total{job="purge",outcome="skipped"} 1.0' in text

    code = main(["jobs", "list", "--config", str(node_toml), "--json"])
    listed = {row["job"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert code == 0
    assert set(listed) == set(JOB_NAMES)
    purge = listed[PURGE]
    assert purge["schedule"] == "30 2 * * *"
    assert purge["last_slot"] == RUN_AT.isoformat(timespec="seconds")
    assert (purge["last_outcome"], purge["last_count"]) == ("succeeded", 4)
    assert purge["last_success"] == RUN_AT.isoformat(timespec="seconds")
    assert purge["next_run"] is not None
    assert listed["outbox-retry"]["last_outcome"] is None

    code = main(["jobs", "list", "--config", str(node_toml)])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("job\tschedule\tlast_slot\toutcome")
    assert "purge\t30 2 * * *\t" in out and "\tsucceeded\t" in out


def test_every_job_metric_is_documented() -> None:
    """docs/local-api.md's metrics table lists each job series the registry has, and no other."""
    from prometheus_client.parser import text_string_to_metric_families

    metrics = GatewayMetrics()
    metrics.job_outcome(PURGE, "ran")
    families = {
        f.name
        for f in text_string_to_metric_families(metrics.exposition().decode())
        if f.name.startswith("gateway_job_") and not f.name.endswith("_created")
    }
    doc = (Path(__file__).resolve().parents[3] / "docs" / "local-api.md").read_text("utf-8")
    documented = {
        cell.strip("` ").removesuffix("_total")
        for line in doc.splitlines()
        if line.startswith("| `gateway_job_")
        for cell in [line.split("|")[1]]
    }
    assert families == documented


def test_jobs_list_before_any_run_writes_nothing(
    store: Store, node_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlalchemy as sa

    code = main(["jobs", "list", "--config", str(node_toml), "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and [r["job"] for r in rows] == list(JOB_NAMES)
    assert all(r["last_outcome"] is None and r["next_run"] for r in rows)
    assert not sa.inspect(store.engine).has_table(slots.SLOT_TABLE)
