"""SIGKILL at each named crash point (gateway/crashpoints.py), then a restart: nothing accepted is
lost, nothing is delivered or stored twice, nothing is half-applied, and both audit chains verify.

Two real ``gateway serve`` processes, RU-FSSP (sender) and KZ-MJ (receiver), each on a store of
its own (SQLite or a PostgreSQL schema). The victim starts with ``GATEWAY_CRASH_AT`` naming the
point; the test submits a few documents through the sender's API until the victim kills itself
(exit by SIGKILL), restarts it without the variable, lets time pass (the dead worker's lease and
the retry back-off run out: their ends are moved, the processes' clocks cannot be pinned), waits
until every outbox row is finished and stops both nodes. Then, for every document the sender
stored (each one the API answered 202 for among them):

* the sender: one outbox row, delivered; one accepted receipt recorded, one Receipt document,
  its verification report; one ``message.submitted`` and one ``message.delivered`` event;
* the receiver: the document once, its verification report, one Receipt document (the very one
  the sender recorded), one ``message.received`` event; and no document the sender never
  stored;
* the conversation in progress on both sides;
* ``gateway audit verify`` exits 0 on both nodes.

Every point runs on both stores: ``POINT_VICTIMS`` lists which node each point kills (a test
checks that it covers gateway.crashpoints.POINTS).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.crashpoints import ENV_VAR, POINTS
from gateway.demo.play import example
from gateway.demo.setup import DemoWorld
from gateway.store import Store
from gateway.store.tables import (
    audit_events,
    conversations,
    messages,
    outbox,
    receipts,
    verification_reports,
)
from tests.integration.exchange_world import (
    GATEWAY,
    ServeProcess,
    create_token,
    node_config,
    open_node_store,
    start_serve,
)

SENDER, RECEIVER = "RU-FSSP", "KZ-MJ"

ROOT = Path(__file__).resolve().parents[2]

POINT_VICTIMS: dict[str, str] = {
    "submit.signed": SENDER,
    "submit.write": SENDER,
    "submit.committed": SENDER,
    "claim.committed": SENDER,
    "deliver.posting": SENDER,
    "deliver.answered": SENDER,
    "record.write": SENDER,
    "record.committed": SENDER,
    "receive.verified": RECEIVER,
    "receipt.signed": RECEIVER,
    "receive.write": RECEIVER,
    "receive.committed": RECEIVER,
    "receipt.answering": RECEIVER,
    # The receiver's first group commit is a receive's; the sender's a submission's.
    "commit.batch": RECEIVER,
    "commit.done": RECEIVER,
}
"""The node each point kills: the one whose code path reaches it first."""

FULL_MATRIX = os.environ.get("GATEWAY_CRASH_MATRIX", "") == "full"
"""``GATEWAY_CRASH_MATRIX=full``: every point on both stores (30 cases). Otherwise every point
once, the stores alternating down the table (15 cases, both stores covered; ~5 min on a shared
2-core machine): what CI runs."""

CASES = [
    pytest.param(dialect, point, id=f"{dialect}-{point}")
    for number, point in enumerate(POINT_VICTIMS)
    for dialect in ("sqlite", "postgresql")
    if FULL_MATRIX or dialect == ("sqlite", "postgresql")[number % 2]
]

SUBMISSIONS = 3
"""Documents submitted per case: the first reaches every point; those after it find the node dead
or arrive during recovery, so the exactly-once check covers more than one row."""

WAIT_SECONDS = 90.0
"""Upper bound for each thing awaited (the kill, the deliveries) on a loaded 2-core machine."""


ELSEWHERE: dict[str, tuple[str, str]] = {
    "purge.batch": ("`gateway purge`", "tests/app/purge/test_purge_crash_point.py"),
    "purge.committed": ("`gateway purge`", "tests/app/purge/test_purge_crash_point.py"),
    "rewrap.batch": ("`gateway keys rewrap`", "tests/crypto/rotation/test_rewrap_crash_points.py"),
    "rewrap.committed": (
        "`gateway keys rewrap`",
        "tests/crypto/rotation/test_rewrap_crash_points.py",
    ),
    "rotation.generated": (
        "`gateway keys rotate`",
        "tests/crypto/rotation/test_rotation_crash_points.py",
    ),
    "rotation.activated": (
        "`gateway keys activate`",
        "tests/crypto/rotation/test_rotation_crash_points.py",
    ),
    "directory.written": (
        "`gateway directory import`",
        "tests/integration/test_directory_crash_points.py",
    ),
    "directory.swapped": (
        "`gateway directory import`",
        "tests/integration/test_directory_crash_points.py",
    ),
}
"""Points outside the exchange: the command killed there, and the test that kills it."""


def test_every_point_is_exercised() -> None:
    assert set(POINT_VICTIMS).isdisjoint(ELSEWHERE)
    assert set(POINT_VICTIMS) | set(ELSEWHERE) == set(POINTS)
    for point, (_, test) in ELSEWHERE.items():
        assert f'"{point}"' in (ROOT / test).read_text("utf-8"), f"{test} does not kill {point}"


def test_every_point_is_placed_once_and_documented() -> None:
    """The table in gateway/crashpoints.py, the ``crash_point("…")`` calls in gateway/ and the
    table in docs/operations.md name the same points: a point listed but never reached would
    pass its case by failing to kill; one reached but unlisted would never be tested."""
    calls = Counter(
        name
        for source in (ROOT / "gateway").rglob("*.py")
        if source.name != "crashpoints.py"  # its docstring shows a call
        for name in re.findall(r'crash_point\("([^"]+)"\)', source.read_text("utf-8"))
    )
    assert calls == Counter(set(POINTS)), "each point called exactly once in gateway/"
    doc = (ROOT / "docs" / "operations.md").read_text("utf-8")
    section = doc.split("## Crash points", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `([a-z]+\.[a-z]+)` \| ([^|]+?) \|", section, re.MULTILINE)
    killed = {SENDER: "sender", RECEIVER: "receiver"}
    killed |= {point: command for point, (command, _) in ELSEWHERE.items()}
    assert documented == [(p, killed[POINT_VICTIMS.get(p, p)]) for p in POINTS], (
        "docs/operations.md lists each point, in the table's order, with the node it kills"
    )


@pytest.mark.slow
@pytest.mark.parametrize(("dialect", "point"), CASES)
def test_crash_point_loses_and_duplicates_nothing(
    world: DemoWorld, dialect: str, point: str, request: pytest.FixtureRequest
) -> None:
    tag = f"cp-{dialect}-{point.replace('.', '-')}"
    configs = {
        body: node_config(
            world,
            body,
            f"{tag}-{body}",
            database_url=request.getfixturevalue("pg_schema")(f"cp_{body[:2].lower()}")
            if dialect == "postgresql"
            else "",
        )
        for body in (SENDER, RECEIVER)
    }
    stores = {body: open_node_store(path) for body, path in configs.items()}
    token = create_token(stores[SENDER], datetime.now(UTC))
    victim = POINT_VICTIMS[point]
    processes: dict[str, ServeProcess] = {}
    try:
        processes.update(_start_both(configs, victim, point))
        accepted = _submit(processes[SENDER].api_url, token)

        killed = processes[victim]
        try:
            killed.process.wait(timeout=WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{point}: the {victim} node never reached the point\n{killed.output()}")
        assert killed.process.returncode == -9, killed.output()

        if victim == SENDER:
            _expire_leases(stores[SENDER])
        processes[victim] = start_serve(configs[victim])
        # One more after the restart: the node works again, and a crash that kept nothing
        # (submit.signed, submit.write) still leaves a document to follow.
        accepted += _submit(processes[SENDER].api_url, token, 1)
        _await_deliveries(stores[SENDER])
    finally:
        _stop_all(processes.values())

    try:
        stored = _check_sender(stores[SENDER], accepted)
        # Submissions go one at a time: only the one in flight when the sender died may be
        # stored unanswered (submit.committed); none while only the receiver died.
        assert len(stored - set(accepted)) <= (1 if victim == SENDER else 0)
        _check_receiver(stores[RECEIVER], stored, stores[SENDER])
        verifying = {
            body: subprocess.Popen(
                [str(GATEWAY), "audit", "verify", "--config", str(path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for body, path in configs.items()
        }
        for body, verifier in verifying.items():
            output, _ = verifier.communicate(timeout=120)
            assert verifier.returncode == 0, f"{body}: {output}"
    finally:
        for store in stores.values():
            store.dispose()


def _start_both(configs: dict[str, Path], victim: str, point: str) -> dict[str, ServeProcess]:
    """Both nodes, started side by side (a start is mostly imports and keys: seconds each);
    the victim armed. Whatever started is stopped again if the other fails."""
    with ThreadPoolExecutor(len(configs)) as pool:
        futures = {
            body: pool.submit(start_serve, path, env={ENV_VAR: point} if body == victim else {})
            for body, path in configs.items()
        }
    started = {body: f.result() for body, f in futures.items() if f.exception() is None}
    failed = [f.exception() for f in futures.values() if f.exception() is not None]
    if failed:
        _stop_all(started.values())
        raise failed[0]  # type: ignore[misc]
    return started


def _stop_all(processes: Iterable[ServeProcess]) -> None:
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(ServeProcess.stop, processes))


def _submit(api_url: str, token: str, count: int = SUBMISSIONS) -> list[str]:
    """Submit ``count`` documents or until the node dies; the ids of those answered 202."""
    accepted = []
    url = urllib.parse.urlsplit(api_url)
    for _ in range(count):
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=WAIT_SECONDS)
        try:
            connection.request(
                "POST",
                f"{url.path}/messages",
                body=json.dumps(example("cis-enforcement.Request")).encode(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            response = connection.getresponse()
            answer = response.read()
        except ConnectionError:
            break  # the sender died: what it answered before counts
        finally:
            connection.close()
        assert response.status == 202, answer
        accepted.append(json.loads(answer)["message_id"])
    return accepted


def _expire_leases(store: Store) -> None:
    """Time passes for the dead sender: its claims' leases and its back-off run out."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    with store.transaction() as conn:
        conn.execute(
            outbox.update()
            .where(outbox.c.state == "pending")
            .values(claim_expires_at=past, next_attempt_at=past)
        )


def _await_deliveries(store: Store) -> None:
    """Until no outbox row is pending; meanwhile bring every unclaimed row's retry forward (a
    claimed row is in flight with a live worker and is left alone)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        with store.transaction() as conn:
            conn.execute(
                outbox.update()
                .where(outbox.c.state == "pending", outbox.c.claimed_by.is_(None))
                .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
            )
            pending = conn.execute(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.state == "pending")
            ).scalar_one()
        if not pending:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{pending} outbox rows still pending after {WAIT_SECONDS} s")
        time.sleep(0.5)


def _requests_sent(store: Store) -> set[str]:
    with store.read() as conn:
        return set(
            conn.execute(
                sa.select(messages.c.message_id).where(
                    messages.c.kind == "Request", messages.c.direction == "out"
                )
            ).scalars()
        )


def _per_message(store: Store, query: sa.Select) -> Counter[str]:
    with store.read() as conn:
        return Counter(conn.execute(query).scalars())


def _events(store: Store, kind: str) -> Counter[str]:
    with store.read() as conn:
        rows = conn.execute(
            sa.select(audit_events.c.subjects).where(audit_events.c.kind == kind)
        ).scalars()
        return Counter(json.loads(subjects)["message"] for subjects in rows)


def _receipts(store: Store, direction: str) -> dict[str, tuple[str, str]]:
    with store.read() as conn:
        rows = conn.execute(sa.select(receipts).where(receipts.c.direction == direction)).all()
    return {r.message_id: (r.receipt_message_id, r.outcome) for r in rows}


def _receipt_documents(store: Store) -> Counter[str]:
    return _per_message(
        store, sa.select(messages.c.in_reply_to).where(messages.c.kind == "Receipt")
    )


def _reports(store: Store) -> Counter[str]:
    return _per_message(store, sa.select(verification_reports.c.message_id))


def _states(store: Store, message_ids: set[str]) -> set[str]:
    with store.read() as conn:
        return set(
            conn.execute(
                sa.select(conversations.c.state)
                .join(messages, messages.c.conversation_id == conversations.c.conversation_id)
                .where(messages.c.message_id.in_(message_ids))
            ).scalars()
        )


def _check_sender(store: Store, accepted: list[str]) -> set[str]:
    """The sender's side; returns the ids of the documents it stored."""
    stored = _requests_sent(store)
    assert set(accepted) <= stored, "a document answered 202 was lost"
    once = Counter(stored)
    with store.read() as conn:
        rows = conn.execute(sa.select(outbox.c.message_id, outbox.c.state)).all()
    assert sorted(rows) == sorted((m, "delivered") for m in stored)
    recorded = _receipts(store, "in")
    assert set(recorded) == stored
    assert {outcome for _, outcome in recorded.values()} == {"accepted"}
    assert _receipt_documents(store) == once, "one Receipt document per delivered document"
    assert _reports(store) == Counter(r for r, _ in recorded.values()), "a receipt's report"
    assert _events(store, "message.submitted") == once
    assert _events(store, "message.delivered") == once
    assert _states(store, stored) == {"in-progress"}
    return stored


def _check_receiver(store: Store, sent: set[str], sender: Store) -> None:
    with store.read() as conn:
        received = Counter(
            conn.execute(
                sa.select(messages.c.message_id).where(
                    messages.c.kind == "Request", messages.c.direction == "in"
                )
            ).scalars()
        )
    once = Counter(sent)
    assert received == once, "each document stored exactly once, none the sender lacks"
    assert _reports(store) == once, "each stored document has its verification report"
    issued = _receipts(store, "out")
    assert set(issued) == sent
    assert _receipt_documents(store) == once
    assert {m: r for m, (r, _) in issued.items()} == {
        m: r for m, (r, _) in _receipts(sender, "in").items()
    }, "the sender recorded the very receipt the receiver stored"
    assert _events(store, "message.received") == once
    assert _states(store, sent) == {"in-progress"}
