"""``gateway serve``, ``gateway demo``, ``gateway tokens``, ``gateway directory``."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.errors import CommandError, ExitCode

if TYPE_CHECKING:
    from gateway.config import NodeConfig

SERVICE_SCOPES = ("operator", "confidential-reader", "administrator", "auditor")


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

    tok = subparsers.add_parser("tokens", help="API tokens of the local API")
    tok_sub = tok.add_subparsers(dest="tokens_command", required=True)
    add = tok_sub.add_parser("add", help="create a token; it is printed once, only its hash kept")
    add.add_argument("--config", required=True, type=Path)
    add.add_argument("--label", required=True, help="who uses it, e.g. case-system")
    add.add_argument(
        "--role",
        action="append",
        choices=SERVICE_SCOPES,
        required=True,
        help="role (repeatable): operator, confidential-reader, administrator, auditor",
    )
    add.add_argument(
        "--expires-in-days",
        type=int,
        default=None,
        metavar="N",
        help="the token stops working after N days (default: until revoked)",
    )
    add.set_defaults(handler=_tokens_add)
    lst = tok_sub.add_parser("list", help="every token: id, label, roles, state (never the token)")
    lst.add_argument("--config", required=True, type=Path)
    lst.add_argument("--json", action="store_true", help="JSON instead of text")
    lst.set_defaults(handler=_tokens_list)
    rev = tok_sub.add_parser("revoke", help="stop a token at once (by its id from `tokens list`)")
    rev.add_argument("--config", required=True, type=Path)
    rev.add_argument("token_id", type=int, metavar="ID")
    rev.set_defaults(handler=_tokens_revoke)

    dirp = subparsers.add_parser("directory", help="the directory of bodies (CIS Art. 18)")
    dir_sub = dirp.add_subparsers(dest="directory_command", required=True)
    show = dir_sub.add_parser("show", help="the verified directory this node uses")
    show.add_argument("--config", required=True, type=Path)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_directory_show)
    imp = dir_sub.add_parser(
        "import", help="verify a new signed directory and make it this node's (no rollback)"
    )
    imp.add_argument("--config", required=True, type=Path)
    imp.add_argument("file", type=Path)
    imp.set_defaults(handler=_directory_import)


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from gateway.cli.check import refuse_on_failure
    from gateway.cli.db import upgrade_store
    from gateway.config import NodeConfig
    from gateway.exchange.node import Node

    if args.workers < 1:
        raise CommandError(
            "--workers: нужен хотя бы один процесс", "USAGE", exit_code=ExitCode.USAGE
        )
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

    from gateway.web.runtime import NodeRuntime

    config = node.config
    runtime = NodeRuntime(node)
    await runtime.start(scheduler=scheduler, listeners=listeners)
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
        return run(workdir, configs, keep_running=args.keep_running)


def _tokens_add(args: argparse.Namespace) -> int:
    from gateway.app import admin
    from gateway.app.context import AppContext

    with AppContext.open(args.config) as ctx:
        try:
            issued = admin.add_token(ctx, args.label, args.role, args.expires_in_days)
        except admin.TokenRefused as exc:
            raise CommandError(
                f"{exc} (--label, --role, --expires-in-days)",
                "INVALID_ARGUMENT",
                exit_code=ExitCode.USAGE,
            ) from None
    print(issued.token)
    return 0


def _tokens_list(args: argparse.Namespace) -> int:
    from gateway.app import admin
    from gateway.app.context import AppContext

    with AppContext.open(args.config) as ctx:
        found = admin.list_tokens(ctx)
    now = datetime.now(UTC)
    rows = [
        {
            "id": t.token_id,
            "label": t.label,
            "roles": sorted(t.scopes),
            "state": (
                "revoked"
                if t.revoked_at is not None
                else "expired"
                if not t.active(now)
                else "active"
            ),
            "created_at": t.created_at.isoformat(),
            "expires_at": t.expires_at.isoformat() if t.expires_at else None,
            "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
            "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
        }
        for t in found
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for row in rows:
        ends = f", до {row['expires_at']}" if row["expires_at"] else ""
        print(
            f"{row['id']:>4}  {row['state']:<8} {row['label']:<24} {','.join(row['roles'])}"
            f"{ends}; последнее использование: {row['last_used_at'] or '—'}"
        )
    return 0


def _tokens_revoke(args: argparse.Namespace) -> int:
    from gateway.app import admin
    from gateway.app.context import AppContext

    with AppContext.open(args.config) as ctx:
        try:
            admin.revoke_token(ctx, args.token_id)
        except admin.TokenRefused:
            raise CommandError(
                f"токена {args.token_id} нет или он уже отозван (см. gateway tokens list)",
                "TOKEN_NOT_FOUND",
                exit_code=ExitCode.REFUSED,
            ) from None
    print(f"токен {args.token_id} отозван: запросы с ним получают 401 сразу")
    return 0


def _directory_show(args: argparse.Namespace) -> int:
    from gateway.app.directory import current_directory
    from gateway.config import NodeConfig

    config = NodeConfig.from_toml(args.config)
    directory = current_directory(config, datetime.now(UTC))
    if args.json:
        print(json.dumps(_directory_json(directory), ensure_ascii=False, indent=2))
        return 0
    print(
        f"Справочник органов, версия {directory.version}, "
        f"выпущен {directory.issued_at:%Y-%m-%d %H:%M} UTC, депозитарий {directory.depositary}"
    )
    for body in directory.bodies:
        agreements = ", ".join(
            f"{p.agreement} с {p.in_force_from}"
            + (f" до {p.withdrawn_from}" if p.withdrawn_from else "")
            for p in body.participations
        )
        print(f"  {body.id:12} {body.level.value:11} {body.name()}")
        print(f"      {body.endpoint}; {agreements or 'не участвует'}")
        for reservation in body.reservations:
            print(f"      оговорка: {reservation.article}")
    return 0


def _directory_json(directory: Any) -> dict[str, Any]:
    return {
        "version": directory.version,
        "issued_at": directory.issued_at.isoformat(),
        "depositary": directory.depositary,
        "bodies": [
            {
                "id": b.id,
                "state": b.state,
                "level": b.level.value,
                "name": b.name(),
                "endpoint": b.endpoint,
                "certificates": [
                    {"role": c.role.value, "sha256": c.sha256} for c in b.certificates
                ],
                "participations": [
                    {
                        "agreement": p.agreement,
                        "in_force_from": str(p.in_force_from),
                        "withdrawn_from": str(p.withdrawn_from) if p.withdrawn_from else None,
                    }
                    for p in b.participations
                ],
                "reservations": [r.article for r in b.reservations],
            }
            for b in directory.bodies
        ],
    }


def _directory_import(args: argparse.Namespace) -> int:
    from gateway.app.context import AppContext
    from gateway.app.directory import import_directory

    data = args.file.read_bytes()
    with AppContext.open(args.config) as ctx:
        imported = import_directory(ctx, data)
    if imported.already:
        print(f"справочник версии {imported.version} уже установлен: {imported.path}")
    else:
        print(f"справочник версии {imported.version} принят и установлен: {imported.path}")
    return 0
