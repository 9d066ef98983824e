"""``gateway tokens``, ``gateway directory``."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.errors import ExitCode, Failure

if TYPE_CHECKING:
    pass

SERVICE_SCOPES = ("operator", "confidential-reader", "administrator", "auditor")


def register(subparsers: Any) -> None:
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


def _tokens_add(args: argparse.Namespace) -> int:
    from gateway.app import admin
    from gateway.app.context import AppContext

    with AppContext.open(args.config) as ctx:
        try:
            issued = admin.add_token(ctx, args.label, args.role, args.expires_in_days)
        except admin.TokenRefused as exc:
            raise Failure(
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
    rows = [admin.token_row(t, now) for t in found]
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
            raise Failure(
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
    from gateway.model.limits import MAX_DIRECTORY_BYTES

    with args.file.open("rb") as stream:  # more than the limit is refused, naming it, by the app
        data = stream.read(MAX_DIRECTORY_BYTES + 1)
    with AppContext.open(args.config) as ctx:
        imported = import_directory(ctx, data)
    if imported.already:
        print(f"справочник версии {imported.version} уже установлен: {imported.path}")
    else:
        print(f"справочник версии {imported.version} принят и установлен: {imported.path}")
    return 0
