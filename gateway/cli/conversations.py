"""``gateway conversations reindex``: fill the conversation list's case number and debtor, and
the search index, for conversations recorded before migration 0012 (docs/console.md).

    gateway conversations reindex --config NODE.toml

New conversations are indexed as they are recorded; this is needed once after upgrading a store
that already holds conversations, and is harmless again (it touches only those without).
Exit codes: 0 — done; 2 — configuration; 3 — the database or the KEK cannot be reached.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.cli.errors import ExitCode, report


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "conversations", help="переписка: индекс поиска по номеру производства и должнику"
    )
    sub = p.add_subparsers(dest="conversations_command", required=True)
    reindex = sub.add_parser(
        "reindex",
        help="заполнить номер производства, должника и индекс поиска для старых переписок",
    )
    reindex.add_argument("--config", required=True, type=Path)
    reindex.set_defaults(handler=_reindex)


def _reindex(args: argparse.Namespace) -> int:
    from gateway.app import conversations
    from gateway.app.context import AppContext
    from gateway.config import NodeConfig
    from gateway.crypto.keys.keystore import KeyStore
    from gateway.model.problems import GatewayError

    try:
        config = NodeConfig.from_toml(args.config)
        keys = KeyStore.from_config(config)
        try:
            with AppContext.from_config(config) as ctx:
                done = conversations.reindex(ctx, keys)
        finally:
            keys.close()
    except (GatewayError, OSError) as exc:
        return report(exc)
    print(f"проиндексировано переписок: {done}")
    return int(ExitCode.OK)
