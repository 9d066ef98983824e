"""``gateway serve`` and ``gateway demo``: the commands that put the adapters together — the
servers (:mod:`gateway.web.runtime`) with the scheduler (:mod:`gateway.jobs.scheduler`), the
demo's world (:mod:`gateway.demo`) on those servers."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.errors import ExitCode, Failure

if TYPE_CHECKING:
    from gateway.config import NodeConfig


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser(
        "serve", help="run a node: peer endpoint (mTLS), local API, delivery worker"
    )
    serve.add_argument("--config", required=True, type=Path, help="the node's TOML file")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes serving the node's ports, the console's included (default 1); the first "
        "also runs the scheduler",
    )
    serve.set_defaults(handler=_serve)

    demo = subparsers.add_parser(
        "demo", help="four demo nodes on loopback exchange signed documents (DEMO keys)"
    )
    demo.add_argument(
        "--workdir", type=Path, help="leave everything here for inspection (default: a temp dir)"
    )
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="after the scenario keep the nodes (and their consoles) running until Ctrl-C",
    )
    demo.set_defaults(handler=_demo)


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from gateway.app.checks import refuse_on_failure
    from gateway.cli.db import upgrade_store
    from gateway.config import NodeConfig
    from gateway.exchange.node import Node

    if args.workers < 1:
        raise Failure("--workers: нужен хотя бы один процесс", "USAGE", exit_code=ExitCode.USAGE)
    config = NodeConfig.from_toml(args.config)
    _configure_logging(config)
    # check-config's every check before anything is bound or written: a node that would fail
    # later (a key, the directory, a port, the clock) does not half start.
    refuse_on_failure(config)
    upgrade_store(config, logging.getLogger("gateway.store").info)
    # Opened once here, so the workers find the store at its current revision.
    node = Node.from_config(config)
    if args.workers == 1:
        asyncio.run(_serve_worker(node, None, scheduler=True))
        return 0
    node.close()
    return _serve_workers(config, args.workers)


def _configure_logging(config: NodeConfig) -> None:
    from gateway.logs import configure

    section = config.logging
    configure(
        node=config.node.body_id, level=section.level, fmt=section.format, levels=section.levels
    )


async def _serve_worker(node: Any, listeners: Any, *, scheduler: bool) -> None:
    import asyncio
    import signal

    from gateway.jobs.scheduler import scheduler_for
    from gateway.web.runtime import NodeRuntime

    config = node.config
    runtime = NodeRuntime(node)
    await runtime.start(scheduler=scheduler_for if scheduler else None, listeners=listeners)
    if listeners is None:
        console = (
            f", консоль {_scheme(config.console)}://{config.console.host}:{runtime.console_port}"
            if runtime.console_port is not None
            else ""
        )
        # The bound ports, not the configured ones: port 0 in NODE.toml picks free ones.
        print(
            f"узел {node.body_id}: peer https://{config.peer.host}:{runtime.peer_port}, "
            f"API {_scheme(config.api)}://{config.api.host}:{runtime.api_port}/api/v1{console}",
            flush=True,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runtime.stop()


def _serve_workers(config: NodeConfig, workers: int) -> int:
    """Bind the node's ports once, then fork ``workers`` processes that all serve them (each
    with its own interpreter, so CPU work is not serialised by one GIL). Every worker serves
    the console (sessions are in the store); the first also runs the scheduler. A worker that
    dies stops the others: the service manager restarts the node whole."""
    import asyncio
    import contextlib
    import os
    import signal
    import traceback

    from gateway.exchange.node import Node
    from gateway.web.runtime import Listeners, listen

    peer = listen(config.peer.host, config.peer.port, reuse_port=config.peer.reuse_port)
    api = listen(config.api.host, config.api.port)
    console = listen(config.console.host, config.console.port)
    children: list[int] = []
    for number in range(workers):
        pid = os.fork()
        if pid == 0:  # the worker
            status = 0
            try:
                listeners = Listeners(peer, api, console)
                asyncio.run(
                    _serve_worker(Node.from_config(config), listeners, scheduler=number == 0)
                )
            except BaseException:
                traceback.print_exc()
                status = 1
            finally:
                os._exit(status)
        children.append(pid)
    print(
        f"узел {config.node.body_id}: {workers} процесса(ов), peer "
        f"https://{config.peer.host}:{peer.getsockname()[1]}, "
        f"API {_scheme(config.api)}://{config.api.host}:{api.getsockname()[1]}/api/v1, "
        f"консоль {_scheme(config.console)}://{config.console.host}:{console.getsockname()[1]}",
        flush=True,
    )
    stopping = False

    def stop_all(*_: Any) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    failed = False
    while children:
        pid, status = os.wait()
        children.remove(pid)
        if not stopping and status != 0:
            failed = True
            stop_all()
    return 1 if failed else 0


def _scheme(section: Any) -> str:
    return "https" if section.tls else "http"


def _demo(args: argparse.Namespace) -> int:
    import contextlib
    import tempfile

    from gateway.demo.play import run
    from gateway.demo.setup import build_world
    from gateway.web.runtime import NodeRuntime

    with contextlib.ExitStack() as stack:
        workdir = args.workdir
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gw-demo-")))
        workdir = workdir.resolve()
        print("ДЕМОНСТРАЦИЯ — демонстрационные ключи, НЕ ДЛЯ ЭКСПЛУАТАЦИИ")
        print(f"Каталог демо: {workdir}")
        world = build_world(workdir, now=datetime.now(UTC))
        print("Создано: УЦ России и Казахстана, ключ депозитария, подписанный справочник органов")
        configs = {b: n.config_path for b, n in world.nodes.items()}
        return run(workdir, configs, NodeRuntime, keep_running=args.keep_running)
