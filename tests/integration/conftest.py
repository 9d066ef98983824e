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
import tomllib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from gateway.demo.setup import DemoWorld, NodePorts, build_world
from gateway.model.bodies import DEMO_BODIES
from tests.integration.exchange_world import write_toml
from tests.tooling import IN_CI

WORLD_AGE = timedelta(days=2)
"""The world's PKI is made this long before the tests run, so that a certificate can be valid at
a signing time in the past and expired now (its CA must be valid then too). Well inside the demo
CRLs' week of validity, which TLS and signature checks need (fail closed)."""

PG_URL = os.environ.get("GATEWAY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoWorld]:
    """The four demo bodies (RU-FSSP, KZ-MJ, RU-VS, KZ-VS), built once (~5 s).

    Modules start and stop nodes of this world many times (in-process and as ``gateway serve``
    processes), so its directory lists fixed peer ports: each is held for the whole session by
    :func:`hold_port`, and the nodes bind it beside the holder (``[peer] reuse_port``)."""
    held = {body.id: hold_port() for body in DEMO_BODIES}
    try:
        ports = {body_id: NodePorts(peer=sock.getsockname()[1]) for body_id, sock in held.items()}
        built = build_world(
            tmp_path_factory.mktemp("world"), now=datetime.now(UTC) - WORLD_AGE, ports=ports
        )
        for node in built.nodes.values():
            raw = tomllib.loads(node.config_path.read_text(encoding="utf-8"))
            raw["peer"]["reuse_port"] = True
            write_toml(node.config_path, raw)
        yield built
    finally:
        for sock in held.values():
            sock.close()


def hold_port() -> socket.socket:
    """A loopback port (bound to port 0, read back) kept from every other socket until closed.

    The socket is bound with SO_REUSEPORT and never listens: a node's server binding the port
    with SO_REUSEPORT too (same user) joins it, and only listening sockets are given
    connections, so a peer finds the port refused while no node runs, as it would in the field.
    Any other bind of the port, port 0 included, passes it by."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


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
