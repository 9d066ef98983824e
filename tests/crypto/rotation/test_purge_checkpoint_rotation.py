"""The scheduled purge ends by signing an audit checkpoint. A seal rotation whose activation
falls while the purge runs (a long run at 02:30, a switch planned for 03:00) must not leave
the node with a checkpoint that ``gateway audit verify`` calls forged: the checkpoint is
signed by the generation in force when it is signed, so it must state that time, not the
run's start (before that generation came into force)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.app import keys as app_keys
from gateway.app.audit_checkpoints import verify_trail
from gateway.app.context import AppContext, command_line_actor
from gateway.app.scheduled import job_bodies
from gateway.crypto.keys.kek_ring import load_kek_ring
from gateway.crypto.keys.keystore import KeyRole, KeyStore
from gateway.jobs.scheduler import JobRun
from tests.app.purge.world import JobNode


def _switch_seal_soon(ctx: AppContext, keys: KeyStore, ca_dir: Any) -> None:
    """A new seal generation, in force two seconds from now; returns once it is."""
    made = app_keys.rotate(ctx, keys, KeyRole.SEAL, demo_ca=ca_dir)
    switch = datetime.now(UTC) + timedelta(seconds=2)
    app_keys.activate(ctx, keys, KeyRole.SEAL, "", made.generation, switch, force="test")
    while datetime.now(UTC) <= switch + timedelta(milliseconds=100):
        time.sleep(0.1)


def test_a_rotation_during_the_scheduled_purge_leaves_a_verifiable_checkpoint(
    node_on_each_store: Any,
) -> None:
    node, store = node_on_each_store
    config = node.config
    keys = node.keystore()
    try:
        ctx = AppContext(store, command_line_actor(), config)
        started = datetime.now(UTC)  # the run starts under generation 1 ...
        _switch_seal_soon(ctx, keys, node.ca_dir)  # ... and generation 2 takes over during it
        bodies = job_bodies(config, JobNode(store, keys, "RU-FSSP", load_kek_ring(keys)))
        bodies["purge"](JobRun("purge", started, started, "RU-FSSP@test:1"))
        result = verify_trail(store, keys.signers(KeyRole.SEAL))
    finally:
        keys.close()
    assert result.intact, result.summary()
    assert result.checkpoints_checked == 1


def test_a_run_by_hand_at_a_time_before_the_rotation_signs_a_report_that_verifies(
    node_on_each_store: Any,
) -> None:
    """``gateway purge --now T`` with T in the past (a missed night redone: it destroys only what
    had expired by T) after the seal was rotated since T: the signed report must verify."""
    from gateway.app.purge import check_report, run_purge_now

    node, store = node_on_each_store
    config = node.config
    keys = node.keystore()
    try:
        ctx = AppContext(store, command_line_actor(), config)
        before = datetime.now(UTC)  # the night the purge did not run
        _switch_seal_soon(ctx, keys, node.ca_dir)
        report = run_purge_now(ctx, keys, before)
        check = check_report(ctx, report.run_id)
    finally:
        keys.close()
    assert check.ok, check.reason
