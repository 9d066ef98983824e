"""Fixtures: a running pair of nodes per test (a copy of the module's world, fresh databases)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.demo.setup import DemoWorld, build_world
from tests.integration.confidentiality.harness import (
    BODIES,
    Pair,
    copy_world,
    start_pair,
    stop_pair,
)
from tests.integration.confidentiality.leakcheck import CapturingHandler


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> DemoWorld:
    """A demo world (keys, directory, configurations) whose nodes never ran: no databases."""
    return build_world(
        tmp_path_factory.mktemp("idle") / "world", now=datetime.now(UTC), bodies=BODIES
    )


@pytest.fixture
async def pair(world: DemoWorld, tmp_path: Path) -> AsyncIterator[Pair]:
    """Two nodes on fresh databases, on a copy of the module's world (built once)."""
    running = await start_pair(copy_world(world, tmp_path / "world"))
    try:
        yield running
    finally:
        await stop_pair(running)


DEBUG_LOGGERS = (
    "aiohttp",
    "aiohttp.access",
    "gateway.access",
    "aiohttp.client",
    "aiohttp.internal",
    "aiohttp.server",
    "aiohttp.web",
    "sqlalchemy",
    "sqlalchemy.engine",
    "sqlalchemy.engine.Engine",
    "sqlalchemy.pool",
    "sqlalchemy.orm",
    "alembic",
    "asyncio",
    "gateway",
    "apscheduler",
    "signxml",
    "xmlschema",
    "pyhanko",
    "pyhanko_certvalidator",
    "fontTools",
    "urllib3",
)
"""Loggers set to DEBUG explicitly: SQLAlchemy sets its own to WARNING on import, so the root's
level alone would not reach them; the rest are named so that a logger created later (at a
node's start) is already at DEBUG too."""


@pytest.fixture
def debug_logs() -> Iterator[CapturingHandler]:
    """Every logger at DEBUG, enabled and captured (with tracebacks and ``extra`` fields)."""
    handler = CapturingHandler()
    root = logging.getLogger()
    existing = [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    named = [logging.getLogger(name) for name in DEBUG_LOGGERS]
    loggers = {id(lg): lg for lg in (*existing, *named)}.values()
    saved = [(lg, lg.level, lg.disabled, lg.propagate) for lg in loggers]
    saved_root = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        if not logger.propagate:
            logger.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_root)
        for logger, level, disabled, _ in saved:
            logger.setLevel(level)
            logger.disabled = disabled
            if handler in logger.handlers:
                logger.removeHandler(handler)
