"""``gateway proceedings``: mark the proceeding of a conversation closed (CIS Art. 9.6).

    gateway proceedings close --config NODE.toml --conversation ID \\
        --closed-at 2027-03-01T10:00:00+03:00 --reference "постановление № 123 от 01.03.2027"

Information received is kept in the proceeding until it is destroyed under the requesting
party's law (CIS Art. 9.6): retention policies with ``counts_from = "proceeding-closed"`` start
counting at the date given here. The date is set once; the act is recorded in the audit trail
(``proceeding.closed``, with the reference and who ran the command). The reference names the
act that closed the proceeding (at most 128 characters, no personal data). The case system does
the same through the local API (``POST /api/v1/conversations/{id}/proceeding-closed``).

Exit codes: 0 — marked; 1 — refused (already closed, a date in the future or before the
conversation, no reference); 2 — bad arguments, configuration or an unknown conversation.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.cli.errors import ExitCode, fail


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "proceedings", help="производства: отметка о закрытии (начало срока хранения, ст. 9.6)"
    )
    sub = p.add_subparsers(dest="proceedings_command", required=True)
    close = sub.add_parser("close", help="отметить производство по переписке закрытым")
    close.add_argument("--config", required=True, type=Path)
    close.add_argument("--conversation", required=True, help="идентификатор переписки (UUID)")
    close.add_argument(
        "--closed-at",
        required=True,
        help="когда производство закрыто: дата и время с часовым поясом (ISO 8601)",
    )
    close.add_argument(
        "--reference", required=True, help="основание: реквизиты акта (до 128 знаков)"
    )
    close.set_defaults(handler=_close)


def _close(args: argparse.Namespace) -> int:
    from gateway.app.context import AppContext
    from gateway.app.proceedings import close_proceeding

    try:
        closed_at = datetime.fromisoformat(args.closed_at)
    except ValueError:
        closed_at = None
    if closed_at is None or closed_at.tzinfo is None:
        return fail(
            f"--closed-at {args.closed_at!r}: нужны дата и время с часовым поясом, например "
            "2027-03-01T10:00:00+03:00",
            "USAGE",
        )
    # A refusal (ProceedingCloseRefused) is reported by gateway.cli.run like every failure.
    with AppContext.open(args.config) as ctx:
        close_proceeding(ctx, args.conversation, closed_at, args.reference)
    print(
        f"производство по переписке {args.conversation} отмечено закрытым "
        f"{closed_at.isoformat()}; срок хранения «proceeding-closed» считается от этой даты"
    )
    return int(ExitCode.OK)
