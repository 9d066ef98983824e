"""A node whose start fails at any stage leaves nothing behind: every server it opened is closed
(no socket of this process is left), the store's engine is disposed, the thread pools are shut
down and no task of it is pending. Each stage of NodeRuntime (gateway.web.runtime: an aiohttp
``cleanup_ctx`` stage each) is made to fail for real: its port taken by another socket, or a
scheduler setting it refuses."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.config import NodeConfig
from gateway.demo.setup import DemoWorld, build_world
from gateway.exchange.node import Node
from gateway.jobs.scheduler import scheduler_for
from gateway.web.runtime import NodeRuntime


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> DemoWorld:
    root = tmp_path_factory.mktemp("lifecycle")
    return build_world(root / "world", now=datetime.now(UTC), bodies=("RU-FSSP", "KZ-MJ"))


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port another socket listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def _sockets() -> int:
    """This process's open sockets (servers, clients, database connections)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed between listing and reading
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def _config(world: DemoWorld, tmp_path: Path, stage: str, port: int) -> NodeConfig:
    config = NodeConfig.from_toml(world.nodes["RU-FSSP"].config_path)
    config = replace(config, node=replace(config.node, data_dir=tmp_path / "data"))
    if stage == "peer":
        return replace(config, peer=replace(config.peer, port=port))
    if stage == "api":
        return replace(config, api=replace(config.api, port=port))
    if stage == "console":
        return replace(config, console=replace(config.console, port=port))
    assert stage == "scheduler"
    return replace(config, extra={**config.extra, "scheduler": {"purge": "every night"}})


def _released(runtime: NodeRuntime, sockets_before: int, tasks_before: set[Any]) -> None:
    assert _sockets() == sockets_before, "a server or connection was left open"
    pool = runtime.node.store.engine.pool
    assert pool.checkedout() == 0 and pool.checkedin() == 0, "the engine was not disposed"
    for executor in (runtime.executor, runtime.peer_executor, runtime.api_executor):
        assert executor._shutdown, "a thread pool was left running"
    pending = asyncio.all_tasks() - tasks_before - {asyncio.current_task()}
    assert pending == set(), pending


@pytest.mark.parametrize("stage", ["peer", "api", "console", "scheduler"])
async def test_a_failed_start_releases_everything(
    world: DemoWorld, tmp_path: Path, taken: int, stage: str
) -> None:
    tasks_before = asyncio.all_tasks()
    sockets_before = _sockets()
    runtime = NodeRuntime(Node.from_config(_config(world, tmp_path, stage, taken)))
    # Open a database connection first, so that a store left undisposed would show.
    with runtime.node.store.read():
        pass
    with pytest.raises(Exception) as failed:
        await runtime.start(console=True, scheduler=scheduler_for)
    if stage == "scheduler":
        assert "[scheduler]" in str(failed.value)
    else:
        assert isinstance(failed.value, OSError), failed.value
    _released(runtime, sockets_before, tasks_before)
    await runtime.stop()  # a second release is harmless


async def test_a_started_node_stops_releasing_everything(world: DemoWorld, tmp_path: Path) -> None:
    """The same check passes after a real start and stop (so the failures above are not
    passing for want of anything to release)."""
    tasks_before = asyncio.all_tasks()
    sockets_before = _sockets()
    config = NodeConfig.from_toml(world.nodes["RU-FSSP"].config_path)
    config = replace(config, node=replace(config.node, data_dir=tmp_path / "data"))
    runtime = NodeRuntime(Node.from_config(config))
    await runtime.start(console=True, scheduler=scheduler_for)
    assert runtime.console_port and runtime.scheduler is not None
    assert _sockets() > sockets_before + 2  # peer, API and console listening at least
    assert asyncio.all_tasks() - tasks_before - {asyncio.current_task()}
    await runtime.stop()
    _released(runtime, sockets_before, tasks_before)
