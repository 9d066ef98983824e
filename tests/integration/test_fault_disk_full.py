"""A full disk under a SQLite node: submissions get 503 STORAGE_FULL naming what to do, the node
logs the error, nothing is half-written (``PRAGMA integrity_check``, every stored row belongs to
an accepted submission), and once space returns the same node accepts submissions again.

The full disk is the process's file-size limit (RLIMIT_FSIZE, set on the running ``gateway
serve`` with prlimit): every write that would grow a file fails with EFBIG, as a write on a
full filesystem fails with ENOSPC, without mounting anything. The node's output goes through a
pipe, which the limit does not touch."""

from __future__ import annotations

import resource
import sqlite3
from datetime import UTC, datetime

import sqlalchemy as sa

from gateway.config import NodeConfig
from gateway.demo.play import example
from gateway.demo.setup import DemoWorld
from gateway.store.tables import messages
from tests.integration.exchange_world import create_token, node_config, open_node_store
from tests.integration.faults_world import PipedServe, call

REQUEST = "cis-enforcement.Request"


def submitted_requests(store: sa.Engine) -> set[str]:
    with store.connect() as conn:
        return set(
            conn.execute(sa.select(messages.c.message_id).where(messages.c.kind == "Request"))
            .scalars()
            .all()
        )


def test_full_disk_is_a_clear_503_nothing_half_written_and_recovery_when_space_returns(
    world: DemoWorld,
) -> None:
    config = node_config(world, "RU-FSSP", "disk-full")
    store = open_node_store(config)
    token = create_token(store, datetime.now(UTC))
    database = NodeConfig.from_toml(config).database_url.removeprefix("sqlite:///")
    serve = PipedServe.start(config)
    accepted: set[str] = set()
    try:
        url = f"{serve.api_url}/messages"
        answer = call(url, token, example(REQUEST))
        assert answer.status == 202, answer.body
        accepted.add(answer.body["message_id"])

        # The disk fills up: no file of the node may grow by a byte.
        resource.prlimit(serve.process.pid, resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
        for _ in range(3):
            refused = call(url, token, example(REQUEST))
            assert refused.status == 503, refused.body
            assert refused.code == "STORAGE_FULL"
            assert "free space" in refused.body["error"]["message"]
            assert "Retry-After" in refused.headers
        assert "the store could not write (disk full?)" in serve.output()

        # Space returns; the same process accepts submissions again.
        resource.prlimit(serve.process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
        for _ in range(2):
            answer = call(url, token, example(REQUEST))
            assert answer.status == 202, answer.body
            accepted.add(answer.body["message_id"])
    finally:
        serve.stop()
        store.dispose()
    assert "Traceback" not in serve.output(), serve.output()

    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    reopened = sa.create_engine(f"sqlite:///{database}")
    try:
        assert submitted_requests(reopened) == accepted
    finally:
        reopened.dispose()
