"""``gateway db status`` and ``gateway db upgrade``: the store's schema, changed only on purpose.

Every other command refuses a store at another schema revision (``STORE_UPGRADE_NEEDED``, exit
code 3) rather than change it on the side: upgrading a store that holds data is the operator's
decision, made after a backup (docs/operations.md, Upgrades). ``gateway serve`` upgrades the
store itself before it starts, and logs that it did. A store that does not exist yet (a new
node) gets the current schema from whichever command opens it first.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.config import NodeConfig


def register(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="the store's schema: status, upgrade")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    status = db_sub.add_parser("status", help="the store's schema revision against the newest")
    status.add_argument("--config", required=True, type=Path, help="the node's TOML file")
    status.add_argument("--json", action="store_true", help="JSON instead of text")
    status.set_defaults(handler=_status)
    upgrade = db_sub.add_parser(
        "upgrade", help="bring the store to the newest schema (take a backup first)"
    )
    upgrade.add_argument("--config", required=True, type=Path, help="the node's TOML file")
    upgrade.set_defaults(handler=_upgrade)


def _status(args: argparse.Namespace) -> int:
    from gateway.app.database import schema_status_of
    from gateway.config import NodeConfig

    config = NodeConfig.from_toml(args.config)
    _dialect, status = schema_status_of(config.database_url)
    if args.json:
        print(
            json.dumps(
                {
                    "current": status.current,
                    "head": status.head,
                    "state": status.state.value,
                    "pending": list(status.pending),
                }
            )
        )
        return 0
    print(f"текущая: {status.current or '—'}")
    print(f"последняя: {status.head}")
    print(f"состояние: {status.state.value}")
    if status.pending:
        print(f"gateway db upgrade применит: {', '.join(status.pending)}")
    return 0


def _upgrade(args: argparse.Namespace) -> int:
    from gateway.config import NodeConfig

    upgrade_store(NodeConfig.from_toml(args.config), print)
    return 0


def upgrade_store(config: NodeConfig, say: Any) -> None:
    """Bring ``config``'s store to the newest revision, telling ``say`` what was done
    (:func:`gateway.app.database.upgrade_store`)."""
    from gateway.app.database import upgrade_store as upgrade

    upgrade(config.database_url, say)
