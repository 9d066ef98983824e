"""Two ``gateway serve`` processes of the same body on one PostgreSQL database, under load: every
message is delivered exactly once, and no message is ever in flight from both at once; the
conversation counts kept at each commit equal a scan.

RU-FSSP runs twice (one peer port each; the directory names the first), sharing a schema: both
take submissions through their local APIs and both deliver from the one outbox, claiming rows with
``FOR UPDATE SKIP LOCKED``. KZ-MJ receives, on a schema of its own. Its per-peer limits (8
requests in flight, PeerLimits) are below what two senders open (8 connections each), so some
deliveries are refused with 429 and retried: those retries are justified; any other second
attempt is not.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from gateway.demo.play import example
from gateway.demo.setup import DemoWorld
from gateway.store import Store, open_store
from gateway.store.tables import conversations, delivery_attempts, messages, outbox, receipts
from gateway.web.peer_client import RETRYABLE_STATUSES
from tests.integration.exchange_world import (
    ServeProcess,
    audit_rows,
    counts_and_scan,
    create_token,
    node_config,
    open_node_store,
    start_serve,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

MESSAGES = 200
SUBMITTING_AT_ONCE = 16
"""Concurrent submissions, like a case system's worker pool."""
DELIVERY_WAIT_SECONDS = 180.0
"""All deliveries, 429 retries included (base back-off 10 s), on a loaded 2-core machine."""
RETRYABLE_TRANSPORT = {"CONNECT_FAILED", "TIMEOUT", "CONNECTION_LOST", "TLS_FAILED"}


def _all(store: Store, statement: Any) -> list[sa.Row]:
    with store.read() as conn:
        return conn.execute(statement).all()


async def _submit(
    http: aiohttp.ClientSession, api: str, token: str, gate: asyncio.Semaphore
) -> str:
    async with (
        gate,
        http.post(
            f"{api}/messages",
            json=example("cis-enforcement.Request"),
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        assert response.status == 202, await response.text()
        return str((await response.json())["message_id"])


async def test_two_processes_of_one_body_deliver_each_message_once(
    world: DemoWorld, pg_schema: Callable[[str], str]
) -> None:
    sender_db, receiver_db = pg_schema("sender"), pg_schema("receiver")
    first = node_config(world, "RU-FSSP", "pg-a", database_url=sender_db)
    # Peers never call the second instance: any free port will do (0: the OS picks one).
    second = node_config(world, "RU-FSSP", "pg-b", database_url=sender_db, peer_port=0)
    receiving = node_config(world, "KZ-MJ", "pg", database_url=receiver_db)
    sender_store = open_node_store(first)  # migrated before either process starts
    receiver_store = open_store(receiver_db)
    token = create_token(sender_store, datetime.now(UTC))
    processes: list[ServeProcess] = []
    try:
        processes += await asyncio.gather(
            *(asyncio.to_thread(start_serve, c) for c in (receiving, first, second))
        )
        loop_time = asyncio.get_running_loop().time
        started = loop_time()
        apis = [processes[1].api_url, processes[2].api_url]
        gate = asyncio.Semaphore(SUBMITTING_AT_ONCE)
        async with aiohttp.ClientSession() as http:
            submitted = await asyncio.gather(
                *(
                    _submit(http, api, token, gate)
                    for api, _ in zip(itertools.cycle(apis), range(MESSAGES), strict=False)
                )
            )
        assert len(set(submitted)) == MESSAGES
        print(f"\nsubmitted in {loop_time() - started:.1f} s")

        loop = asyncio.get_running_loop()
        deadline = loop.time() + DELIVERY_WAIT_SECONDS
        pending = sa.select(sa.func.count()).select_from(outbox).where(outbox.c.state == "pending")
        while _all(sender_store, pending)[0][0]:
            assert loop.time() < deadline, "deliveries did not finish in time"
            await asyncio.sleep(0.5)

        print(f"delivered in {loop_time() - started:.1f} s")
        # The sender: every row delivered, one accepted receipt each.
        rows = _all(sender_store, sa.select(outbox))
        assert sorted(r.message_id for r in rows) == sorted(submitted)
        assert {r.state for r in rows} == {"delivered"}
        accepted = _all(sender_store, sa.select(receipts.c.message_id, receipts.c.outcome))
        assert sorted(r.message_id for r in accepted) == sorted(submitted)
        assert {r.outcome for r in accepted} == {"accepted"}
        states = _all(sender_store, sa.select(conversations.c.state))
        assert len(states) == MESSAGES and {s.state for s in states} == {"in-progress"}

        # No message was ever in flight twice: attempts follow one another, each earlier one
        # failed for a reason worth a retry, the last one delivered.
        attempts = _all(
            sender_store,
            sa.select(delivery_attempts).order_by(
                delivery_attempts.c.outbox_id, delivery_attempts.c.attempt
            ),
        )
        retried = 0
        by_row = itertools.groupby(attempts, key=lambda a: a.outbox_id)
        for outbox_id, group in by_row:
            tries = list(group)
            assert [t.attempt for t in tries] == list(range(1, len(tries) + 1)), outbox_id
            assert tries[-1].outcome == "delivered"
            for earlier, later in itertools.pairwise(tries):
                assert earlier.outcome == "failed"
                assert (
                    earlier.http_status in RETRYABLE_STATUSES
                    or earlier.error_code in RETRYABLE_TRANSPORT
                ), earlier
                assert earlier.finished_at is not None
                assert earlier.finished_at <= later.started_at, (earlier, later)
            retried += len(tries) > 1
        workers = {a.worker_id for a in attempts if a.outcome == "delivered"}
        assert len(workers) == 2, "both processes delivered"
        print(f"\n{MESSAGES} messages, {len(attempts)} attempts, {retried} retried (429)")

        # The receiver: each message stored and processed once.
        received = _all(
            receiver_store,
            sa.select(messages.c.message_id).where(
                messages.c.kind == "Request", messages.c.direction == "in"
            ),
        )
        assert sorted(r.message_id for r in received) == sorted(submitted)
        audited = [r["subjects"]["message"] for r in audit_rows_of(receiver_store)]
        assert sorted(audited) == sorted(submitted)
        receipts_signed = _all(
            receiver_store, sa.select(messages.c.in_reply_to).where(messages.c.kind == "Receipt")
        )
        assert sorted(r.in_reply_to for r in receipts_signed) == sorted(submitted)
        # The counts kept at each commit, by two processes at once, equal a scan on both sides.
        for store in (sender_store, receiver_store):
            counted, scanned = counts_and_scan(store)
            assert counted == scanned
    finally:
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in processes))
        sender_store.dispose()
        receiver_store.dispose()


def audit_rows_of(store: Store) -> list[dict[str, Any]]:
    return audit_rows(store, "message.received")
