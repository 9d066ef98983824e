"""PostgreSQL restarted in the middle of a load: two ``gateway serve`` nodes (RU-FSSP sends,
KZ-MJ receives) on a private cluster of the test's own; a thread submits requests through
RU-FSSP's local API while the cluster is stopped (fast shutdown) and started again.

While the database is down the API answers 503 DATABASE_UNAVAILABLE with Retry-After, never 500,
and neither node logs a traceback. After the restart the same processes (never restarted) accept
submissions again, and every accepted submission reaches KZ-MJ exactly once."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime

import sqlalchemy as sa

from gateway.demo.play import example
from gateway.demo.setup import DemoWorld
from gateway.store.tables import messages
from tests.integration.exchange_world import create_token, node_config, open_node_store
from tests.integration.faults_world import Answer, PipedServe, PrivateCluster, call

REQUEST = "cis-enforcement.Request"
WAIT_SECONDS = 120.0
"""Upper bound for each thing awaited (submissions after the restart, the deliveries: a
delivery that failed in the outage is retried after the backoff's first step, ~10 s)."""
LOAD_BACKOFF_SECONDS = 0.2
OUTAGE_SECONDS = 2.0
"""How long the database stays down while the load runs."""


class Load:
    """Submissions one after another from a thread, every answer kept."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            answer = call(self.url, self.token, example(REQUEST))
            self.answers.append(answer)
            if answer.status == 503:  # a case system backs off (less briefly: Retry-After)
                time.sleep(LOAD_BACKOFF_SECONDS)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=WAIT_SECONDS)

    def accepted(self) -> set[str]:
        return {a.body["message_id"] for a in list(self.answers) if a.status == 202}


def until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def received_requests(engine: sa.Engine) -> list[str]:
    """Message ids of the Requests a node stored, one entry per row."""
    with engine.connect() as conn:
        return list(
            conn.execute(sa.select(messages.c.message_id).where(messages.c.kind == "Request"))
            .scalars()
            .all()
        )


def test_nodes_ride_out_a_postgres_restart_under_load(world: DemoWorld) -> None:
    cluster = PrivateCluster.create()
    serves: list[PipedServe] = []
    engines: list[sa.Engine] = []
    try:
        configs = {
            body: node_config(
                world,
                body,
                "pg-restart",
                database_url=cluster.create_database(body.lower().replace("-", "_")),
            )
            for body in ("RU-FSSP", "KZ-MJ")
        }
        store = open_node_store(configs["RU-FSSP"])
        token = create_token(store, datetime.now(UTC))
        store.dispose()
        serves = [PipedServe.start(configs[body]) for body in ("KZ-MJ", "RU-FSSP")]
        receiver, sender = serves
        load = Load(f"{sender.api_url}/messages", token)
        load.start()
        until(lambda: len(load.accepted()) >= 3, "submissions before the restart")

        cluster.stop()
        try:
            down = call(f"{sender.api_url}/messages", token, example(REQUEST))
            listed = call(f"{sender.api_url}/conversations", token)
            time.sleep(OUTAGE_SECONDS)
        finally:
            cluster.start()
        for answer in (down, listed):
            assert answer.status == 503, answer.body
            assert answer.code == "DATABASE_UNAVAILABLE"
            assert "Retry-After" in answer.headers
        before = len(load.accepted())
        until(lambda: len(load.accepted()) >= before + 3, "submissions after the restart")
        load.stop()

        statuses = {(a.status, a.code) for a in load.answers}
        assert statuses <= {(202, ""), (503, "DATABASE_UNAVAILABLE")}, statuses
        accepted = load.accepted()
        engines = [sa.create_engine(serve_url) for serve_url in (cluster.url("kz_mj"),)]
        delivered = engines[0]
        until(lambda: accepted <= set(received_requests(delivered)), "every delivery")
        received = received_requests(delivered)
        assert len(received) == len(set(received))  # exactly once
        logs = receiver.output() + sender.output()
        assert "Traceback" not in logs and '  File "' not in logs, logs
        assert not re.search(r"gateway\.access: .* 500 ", logs), logs  # API and peer endpoint
        assert "the store is unavailable" in logs  # the outage was met, and logged
    finally:
        for serve in serves:
            serve.stop()
        for engine in engines:
            engine.dispose()
        cluster.destroy()
