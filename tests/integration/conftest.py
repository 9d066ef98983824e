"""One demo world per test session (PKI per state, depositary, signed directory, node configs);
each module runs its nodes on a data folder (or PostgreSQL schema) of its own.

PostgreSQL comes from ``GATEWAY_TEST_PG_URL`` (default: the local trust-auth server, database
``test``); each use gets a fresh schema, dropped afterwards. Without a reachable server the
PostgreSQL tests are skipped locally and fail in CI (``CI=true``).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from gateway.demo.setup import DemoWorld, NodePorts, build_world
from gateway.model.bodies import DEMO_BODIES
from tests.tooling import IN_CI

WORLD_AGE = timedelta(days=2)
"""The world's PKI is made this long before the tests run, so that a certificate can be valid at
a signing time in the past and expired now (its CA must be valid then too). Well inside the demo
CRLs' week of validity, which TLS and signature checks need (fail closed)."""

PG_URL = os.environ.get("GATEWAY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> DemoWorld:
    """The four demo bodies (RU-FSSP, KZ-MJ, RU-VS, KZ-VS), built once (~5 s).

    Modules start and stop nodes of this world many times (in-process and as ``gateway serve``
    processes), so its directory lists fixed peer ports, reserved by :func:`reserve_port`."""
    ports = {body.id: NodePorts(peer=reserve_port()) for body in DEMO_BODIES}
    return build_world(
        tmp_path_factory.mktemp("world"), now=datetime.now(UTC) - WORLD_AGE, ports=ports
    )


def reserve_port() -> int:
    """A loopback port no other socket will be given for a minute, yet free for a server.

    Binding port 0 and closing leaves a window in which any process may take the port. Instead
    the port is left in TIME_WAIT by a connection the listening side closes first: the kernel
    then hands it to nobody asking for port 0, while a server binding it with SO_REUSEADDR (as
    asyncio's servers do) gets it at once."""
    with socket.socket() as listener:
        # The TIME_WAIT entry keeps this flag: only then may a SO_REUSEADDR server bind over it.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = int(listener.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = listener.accept()
            accepted.close()  # the server side closes first: its end goes to TIME_WAIT
            client.recv(1)
    return port


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    engine = sa.create_engine(PG_URL, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        message = (
            f"PostgreSQL at {PG_URL} is not reachable ({type(exc.orig).__name__}); "
            "start it or set GATEWAY_TEST_PG_URL"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def pg_schema(pg_admin: sa.Engine) -> Iterator[Callable[[str], str]]:
    """Make fresh schemas: ``pg_schema("sender")`` → a database URL working in it. Every
    schema made is dropped when the module is done."""
    made: list[str] = []

    def make(label: str) -> str:
        schema = f"gw_integration_{label}_{os.getpid()}_{secrets.token_hex(4)}"
        with pg_admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        made.append(schema)
        return f"{PG_URL}?options=-csearch_path%3D{schema}"

    yield make
    with pg_admin.begin() as conn:
        for schema in made:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
