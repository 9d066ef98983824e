"""``gateway originals``: the original by post of a document (CIS Art. 10 para. 1).

    gateway originals sent --config NODE.toml --message ID --sent-on 2027-03-02 \\
        --tracking "EMS RA123456789RU"
    gateway originals received --config NODE.toml --message ID --received-on 2027-03-10
    gateway originals list --config NODE.toml [--conversation ID] [--not-sent]

The exchange goes by machine-readable documents over protected channels (Art. 10 para. 3),
"с последующим направлением оригинала почтой в разумный срок" (para. 1): the office posts the
signed and sealed paper original and records here the date and the carrier's tracking number;
the receiving office records when it arrived (or the sender, when the carrier reports
delivery). Dates are the node's (``[node] timezone``). Each mark is set once and audited
(``original.sent``, ``original.received``); the rules are gateway.rules.originals, the record
gateway.app.originals — the same store calls the local API and the console use.

Exit codes: 0 — recorded or listed; 1 — refused (the message names the field and the article);
2 — bad arguments, configuration or an unknown message.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.errors import ExitCode, fail

if TYPE_CHECKING:
    from gateway.app.context import AppContext


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "originals", help="оригиналы документов почтой: отправка, трек-номер, получение (ст. 10)"
    )
    sub = p.add_subparsers(dest="originals_command", required=True)
    sent = sub.add_parser("sent", help="отметить отправку оригинала нашего документа почтой")
    sent.add_argument("--config", required=True, type=Path)
    sent.add_argument("--message", required=True, help="идентификатор документа (UUID)")
    sent.add_argument("--sent-on", required=True, help="дата отправки (ГГГГ-ММ-ДД)")
    sent.add_argument("--tracking", required=True, help="почтовая служба и трек-номер")
    sent.set_defaults(handler=_sent)
    received = sub.add_parser("received", help="отметить получение оригинала")
    received.add_argument("--config", required=True, type=Path)
    received.add_argument("--message", required=True, help="идентификатор документа (UUID)")
    received.add_argument("--received-on", required=True, help="дата получения (ГГГГ-ММ-ДД)")
    received.set_defaults(handler=_received)
    listing = sub.add_parser("list", help="документы с оригиналом почтой и отметки о нём")
    listing.add_argument("--config", required=True, type=Path)
    listing.add_argument("--conversation", help="только эта переписка")
    listing.add_argument(
        "--not-sent", action="store_true", help="только наши, чей оригинал ещё не отправлен"
    )
    listing.set_defaults(handler=_list)


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        return None


def _record(args: argparse.Namespace, mark: Callable[[AppContext], Any], what_ru: str) -> int:
    """Run ``mark`` on the node; a refusal (:class:`gateway.rules.originals.OriginalRefused`)
    is reported by :func:`gateway.cli.run` like every failure, naming the field."""
    from gateway.app.context import AppContext

    with AppContext.open(args.config) as ctx:
        row = mark(ctx)
    print(f"документ {row.message_id}: {what_ru}; {_line(row)}")
    return int(ExitCode.OK)


def _sent(args: argparse.Namespace) -> int:
    from gateway.app import originals

    sent_on = _date(args.sent_on)
    if sent_on is None:
        return fail(f"--sent-on {args.sent_on!r}: нужна дата ГГГГ-ММ-ДД", "USAGE")
    return _record(
        args,
        lambda ctx: originals.mark_sent(ctx, args.message, sent_on, args.tracking),
        "отправка оригинала отмечена",
    )


def _received(args: argparse.Namespace) -> int:
    from gateway.app import originals

    received_on = _date(args.received_on)
    if received_on is None:
        return fail(f"--received-on {args.received_on!r}: нужна дата ГГГГ-ММ-ДД", "USAGE")
    return _record(
        args,
        lambda ctx: originals.mark_received(ctx, args.message, received_on),
        "получение оригинала отмечено",
    )


def _line(row: Any) -> str:
    side = "наш" if row.outgoing else "получен"
    return (
        f"{row.kind} ({side}, {row.created.date().isoformat()}): "
        f"отправлен {row.sent_on.isoformat() if row.sent_on else '—'}"
        f"{' ' + row.tracking if row.tracking else ''}, "
        f"получен {row.received_on.isoformat() if row.received_on else '—'}"
    )


def _list(args: argparse.Namespace) -> int:
    from gateway.app.context import AppContext
    from gateway.app.originals import list_originals

    with AppContext.open(args.config) as ctx:
        rows = list_originals(ctx, args.conversation)
    if args.not_sent:
        rows = [r for r in rows if r.outgoing and r.sent_on is None]
    for row in rows:
        print(f"{row.conversation_id} {row.message_id} {_line(row)}")
    return int(ExitCode.OK)
