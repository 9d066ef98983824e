"""One demo world per test session (PKI per state, depositary, signed directory, node configs);
each module runs its nodes on a data folder (or PostgreSQL schema) of its own.

PostgreSQL schemas come from ``pg_schema`` (tests/conftest.py).
"""

from __future__ import annotations

import socket
import tomllib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from gateway.demo.setup import DemoWorld, NodePorts, build_world
from gateway.model.bodies import DEMO_BODIES
from gateway.web.peer_client import PeerClient
from tests.integration.exchange_world import Signer, tls_client, write_toml

WORLD_AGE = timedelta(days=2)
"""The world's PKI is made this long before the tests run, so that a certificate can be valid at
a signing time in the past and expired now (its CA must be valid then too). Well inside the demo
CRLs' week of validity, which TLS and signature checks need (fail closed)."""


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


@pytest.fixture(scope="module")
def sender(world: DemoWorld) -> Signer:
    """RU-FSSP's signing keys: documents as its node would sign them."""
    return Signer.of(world, "RU-FSSP")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sender_client(world: DemoWorld) -> AsyncIterator[PeerClient]:
    """RU-FSSP's own TLS identity, as its node would connect."""
    keys = world.nodes["RU-FSSP"].config_path.parent / "keys"
    async with PeerClient(tls_client(keys, world)) as client:
        yield client
