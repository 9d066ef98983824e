"""``gateway holds``: legal holds — nothing of a held conversation is purged (CIS Art. 9.6).

    gateway holds place   --config NODE.toml --conversation ID --reason "…"
    gateway holds release --config NODE.toml --conversation ID --reason "…"
    gateway holds list    --config NODE.toml [--all] [--conversation ID]

Placing and releasing are administrators' acts: each is recorded in the audit trail
(``hold.placed`` / ``hold.released``, with the reason and who ran the command). The reason is
the order or case reference (at most 128 characters, no personal data).

Exit codes: 0 — done; 1 — nothing to release; 2 — bad arguments, configuration or an unknown
conversation.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.cli.errors import ExitCode, fail, report

EXIT_OK = ExitCode.OK
EXIT_NOTHING = ExitCode.REFUSED


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "holds", help="запреты на уничтожение (legal hold) переписок — ст. 9.6 Соглашения СНГ"
    )
    sub = p.add_subparsers(dest="holds_command", required=True)
    for name, text in (
        ("place", "поставить запрет на уничтожение переписки"),
        ("release", "снять запреты с переписки"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--config", required=True, type=Path)
        cmd.add_argument("--conversation", required=True, help="идентификатор переписки (UUID)")
        cmd.add_argument(
            "--reason", required=True, help="основание: реквизиты решения/дела (до 128 знаков)"
        )
        cmd.set_defaults(handler=_place if name == "place" else _release)
    ls = sub.add_parser("list", help="действующие запреты (--all — и снятые)")
    ls.add_argument("--config", required=True, type=Path)
    ls.add_argument("--all", action="store_true")
    ls.add_argument("--conversation")
    ls.set_defaults(handler=_list)


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _open(path: Path) -> Any:
    from gateway.config import NodeConfig
    from gateway.store import migrate, open_store

    config = NodeConfig.from_toml(path)
    store = open_store(config.database_url)
    migrate(store.engine)
    return store


def _place(args: argparse.Namespace) -> int:
    from gateway.cli.purge import cli_actor
    from gateway.model.problems import GatewayError
    from gateway.store import purge

    try:
        store = _open(args.config)
    except (GatewayError, OSError) as exc:
        return report(exc)
    try:
        with store.transaction() as conn:
            hold_id = purge.place_hold(
                conn, args.conversation, args.reason, cli_actor(), datetime.now(UTC)
            )
    except purge.HoldRefused as exc:
        return fail(str(exc), "HOLD_REFUSED", ExitCode.REFUSED)
    finally:
        store.dispose()
    print(f"запрет {hold_id} на уничтожение переписки {args.conversation} поставлен")
    return EXIT_OK


def _release(args: argparse.Namespace) -> int:
    from gateway.cli.purge import cli_actor
    from gateway.model.problems import GatewayError
    from gateway.store import purge

    try:
        store = _open(args.config)
    except (GatewayError, OSError) as exc:
        return report(exc)
    try:
        with store.transaction() as conn:
            released = purge.release_conversation_holds(
                conn, args.conversation, cli_actor(), datetime.now(UTC), args.reason
            )
    except purge.HoldRefused as exc:
        return fail(str(exc), "HOLD_REFUSED", ExitCode.REFUSED)
    finally:
        store.dispose()
    if not released:
        _say(f"действующих запретов на переписку {args.conversation} нет")
        return EXIT_NOTHING
    print(f"сняты запреты {', '.join(map(str, released))} с переписки {args.conversation}")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    from gateway.model.problems import GatewayError
    from gateway.store import purge

    try:
        store = _open(args.config)
    except (GatewayError, OSError) as exc:
        return report(exc)
    try:
        with store.read() as conn:
            holds = purge.list_holds(
                conn, active_only=not args.all, conversation_id=args.conversation
            )
    finally:
        store.dispose()
    print("hold_id\tconversation_id\treason\tplaced_by\tplaced_at\treleased_by\treleased_at")
    for h in holds:
        released_at = h.released_at.isoformat() if h.released_at else "-"
        print(
            f"{h.hold_id}\t{h.conversation_id}\t{h.reference}\t{h.placed_by}\t"
            f"{h.placed_at.isoformat()}\t{h.released_by or '-'}\t{released_at}"
        )
    return EXIT_OK
