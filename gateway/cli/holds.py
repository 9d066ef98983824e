"""``gateway holds``: legal holds — nothing of a held conversation is purged (CIS Art. 9.6).

    gateway holds place   --config NODE.toml --conversation ID --reason "…"
    gateway holds release --config NODE.toml --conversation ID --reason "…"
    gateway holds list    --config NODE.toml [--all] [--conversation ID]

Placing and releasing are administrators' acts, done by :mod:`gateway.app.admin` as the local
API's ``/api/v1/holds`` routes do them: each is recorded in the audit trail (``hold.placed`` /
``hold.released``, with the reason and who ran the command). The reason is
the order or case reference (at most 128 characters, no personal data).

Exit codes: 0 — done; 1 — nothing to release; 2 — bad arguments, configuration or an unknown
conversation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.context import with_context
from gateway.cli.errors import ExitCode, fail

if TYPE_CHECKING:
    from gateway.app.context import AppContext

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
        cmd.set_defaults(handler=with_context(_place if name == "place" else _release))
    ls = sub.add_parser("list", help="действующие запреты (--all — и снятые)")
    ls.add_argument("--config", required=True, type=Path)
    ls.add_argument("--all", action="store_true")
    ls.add_argument("--conversation")
    ls.set_defaults(handler=with_context(_list))


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _place(args: argparse.Namespace, ctx: AppContext) -> int:
    from gateway.app import admin

    try:
        hold_id = admin.place_hold(ctx, args.conversation, args.reason)
    except admin.HoldRefused as exc:
        return fail(str(exc), "HOLD_REFUSED", ExitCode.REFUSED)
    print(f"запрет {hold_id} на уничтожение переписки {args.conversation} поставлен")
    return EXIT_OK


def _release(args: argparse.Namespace, ctx: AppContext) -> int:
    from gateway.app import admin

    try:
        released = admin.release_holds(ctx, args.conversation, args.reason)
    except admin.HoldRefused as exc:
        return fail(str(exc), "HOLD_REFUSED", ExitCode.REFUSED)
    except admin.NoActiveHold:
        _say(f"действующих запретов на переписку {args.conversation} нет")
        return EXIT_NOTHING
    print(f"сняты запреты {', '.join(map(str, released))} с переписки {args.conversation}")
    return EXIT_OK


def _list(args: argparse.Namespace, ctx: AppContext) -> int:
    from gateway.app import admin

    holds = admin.list_holds(ctx, active_only=not args.all, conversation_id=args.conversation)
    print("hold_id\tconversation_id\treason\tplaced_by\tplaced_at\treleased_by\treleased_at")
    for h in holds:
        released_at = h.released_at.isoformat() if h.released_at else "-"
        print(
            f"{h.hold_id}\t{h.conversation_id}\t{h.reference}\t{h.placed_by}\t"
            f"{h.placed_at.isoformat()}\t{h.released_by or '-'}\t{released_at}"
        )
    return EXIT_OK
