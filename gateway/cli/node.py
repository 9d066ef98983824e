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
    add.set_defaults(handler=_tokens_add)

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
    import signal

    from gateway.config import NodeConfig
    from gateway.exchange.node import Node
    from gateway.web.runtime import NodeRuntime

    config = NodeConfig.from_toml(args.config)
    node = Node.from_config(config)

    async def main() -> None:
        runtime = NodeRuntime(node)
        await runtime.start(scheduler=True)
        console = (
            f", консоль http://{config.console.host}:{runtime.console_port}"
            if runtime.console_port is not None
            else ""
        )
        # The bound ports, not the configured ones: port 0 in NODE.toml picks free ones.
        print(
            f"узел {node.body_id}: peer https://{config.peer.host}:{runtime.peer_port}, "
            f"API http://{config.api.host}:{runtime.api_port}/api/v1{console}",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runtime.stop()

    asyncio.run(main())
    return 0


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
    import secrets

    from gateway.config import NodeConfig
    from gateway.store import audit, migrate, open_store, tokens

    config = NodeConfig.from_toml(args.config)
    store = open_store(config.database_url)
    migrate(store.engine)
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with store.transaction() as conn:
        token_id = tokens.create(conn, token, label=args.label, scopes=args.role, now=now)
        audit.append(
            conn,
            now=now,
            actor="cli",
            kind="token.created",
            subjects={"token": str(token_id)},
            details={"label": args.label[:64], "roles": ",".join(sorted(args.role))},
        )
    store.dispose()
    print(token)
    return 0


def _directory_show(args: argparse.Namespace) -> int:
    from gateway.config import NodeConfig
    from gateway.exchange.node import load_directory

    config = NodeConfig.from_toml(args.config)
    directory = load_directory(config, at=datetime.now(UTC))
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
    from gateway.config import NodeConfig
    from gateway.crypto.trust import TrustList
    from gateway.exchange.directory import check_update
    from gateway.exchange.directory_signing import verify_directory
    from gateway.exchange.node import load_directory

    config = NodeConfig.from_toml(args.config)
    now = datetime.now(UTC)
    if config.trust.depositary_ca_file is None or config.trust.directory_file is None:
        raise CommandError(
            f"{config.path}: в [trust] нужны depositary_ca_file и directory_file",
            "CONFIG_INVALID",
            ExitCode.USAGE,
        )
    trust = TrustList.from_pem_files(config.trust.depositary_ca_file, require_revocation=False)
    data = args.file.read_bytes()
    new = verify_directory(data, trust, at=now)
    current = load_directory(config, at=now) if config.trust.directory_file.exists() else None
    check_update(current, new, now=now)
    target = config.trust.directory_file
    temporary = target.with_suffix(".new")
    temporary.write_bytes(data)
    temporary.replace(target)  # atomic: a node reading it sees the old or the new, never half
    _audit_directory_change(config, new.version, now)
    print(f"справочник версии {new.version} принят и установлен: {target}")
    return 0


def _audit_directory_change(config: NodeConfig, version: int, now: datetime) -> None:
    from gateway.store import audit, migrate, open_store

    store = open_store(config.database_url)
    migrate(store.engine)
    with store.transaction() as conn:
        audit.append(
            conn,
            now=now,
            actor="cli",
            kind="directory.imported",
            details={"version": version},
        )
    store.dispose()
