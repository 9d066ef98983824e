"""``gateway backup`` and ``gateway restore``: a node's state in one private folder
(:mod:`gateway.app.backup` says what it holds and how a restore stays safe)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    backup = subparsers.add_parser(
        "backup",
        help="copy the store (consistent snapshot), keys and NODE.toml into a new private folder",
    )
    backup.add_argument("--config", required=True, type=Path, help="the node's TOML file")
    backup.add_argument("--out", required=True, type=Path, help="a folder that does not exist")
    backup.set_defaults(handler=_backup)
    restore = subparsers.add_parser(
        "restore",
        help="bring a backup back into the store and key folder NODE.toml names (both empty)",
    )
    restore.add_argument("--config", required=True, type=Path, help="the node's TOML file")
    restore.add_argument("--from", dest="source", required=True, type=Path, help="backup folder")
    restore.set_defaults(handler=_restore)


def _backup(args: argparse.Namespace) -> int:
    from gateway.app.backup import backup
    from gateway.config import NodeConfig

    config = NodeConfig.from_toml(args.config)
    manifest = backup(config, args.out)
    print(
        f"резервная копия узла {config.node.body_id} (схема {manifest['revision']}, файлов "
        f"{len(manifest['files'])}): {args.out}; храните её и пароль ключей раздельно"
    )
    return 0


def _restore(args: argparse.Namespace) -> int:
    from gateway.app.backup import restore
    from gateway.config import NodeConfig

    config = NodeConfig.from_toml(args.config)
    manifest = restore(config, args.source)
    print(
        f"узел {config.node.body_id} восстановлен из {args.source} (копия от "
        f"{manifest['created_at']}, схема {manifest['revision']}); проверьте: gateway "
        f"check-config --config {config.path} и gateway audit verify --config {config.path}"
    )
    return 0
