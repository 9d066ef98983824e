"""``gateway users``: the console's users (issue "The operator and administrator console").

    gateway users add USERNAME --role operator [--role ...] --config NODE.toml [--password-file F]
    gateway users disable USERNAME --config NODE.toml
    gateway users list --config NODE.toml [--json]

The password never comes from the command line (it would sit in the shell history and in
``ps``): it is read from ``--password-file`` (first line), else from the environment variable
GATEWAY_USER_PASSWORD, else from a prompt (typed twice, not echoed). The acts themselves are
:mod:`gateway.app.users`: adding and disabling are recorded in the audit trail as done by
``cli:<login name>``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.context import with_context
from gateway.cli.errors import ExitCode, fail

if TYPE_CHECKING:
    from gateway.app.context import AppContext

EXIT_OK = ExitCode.OK
EXIT_FAILED = ExitCode.REFUSED
"""The action was refused (name taken, no such user, weak password)."""

USER_ROLES = {
    "operator": "Оператор",
    "confidential-reader": "Допуск к конфиденциальным документам",
    "administrator": "Администратор",
    "auditor": "Аудитор",
}
""":class:`gateway.exchange.service.Role` values with their console labels (tests/cli checks
they agree): spelled out so that building the parser does not load the console."""

PASSWORD_ENV = "GATEWAY_USER_PASSWORD"  # noqa: S105 - a variable name, not a secret


def register(subparsers: Any) -> None:
    users = subparsers.add_parser(
        "users", help="пользователи консоли (добавить, отключить, список)"
    )
    sub = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)

    def add_parser(name: str, help_text: str) -> argparse.ArgumentParser:
        # No abbreviations: "--password SECRET" must not pass as "--password-file SECRET".
        p = sub.add_parser(name, help=help_text, allow_abbrev=False)
        p.add_argument("--config", required=True, type=Path, metavar="NODE.toml")
        return p

    p = add_parser("add", "добавить пользователя (пароль — из файла, переменной или запроса)")
    p.add_argument("username", metavar="USERNAME")
    p.add_argument(
        "--role",
        action="append",
        required=True,
        choices=list(USER_ROLES),
        help="роль (можно несколько раз): "
        + ", ".join(f"{role} — {label}" for role, label in USER_ROLES.items()),
    )
    p.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help=f"файл с паролем (первая строка); иначе переменная {PASSWORD_ENV} или запрос",
    )
    p.set_defaults(handler=with_context(_add))

    p = add_parser("disable", "отключить пользователя (его сеансы завершатся)")
    p.add_argument("username", metavar="USERNAME")
    p.set_defaults(handler=with_context(_disable))

    p = add_parser("list", "список пользователей")
    p.add_argument("--json", action="store_true", help="в машиночитаемом виде (JSON)")
    p.set_defaults(handler=with_context(_list))


def read_password(password_file: Path | None) -> str:
    """The new user's password: file, environment or prompt (never an argument)."""
    from gateway.app.passwords import MAX_PASSWORD_CHARS

    if password_file is not None:
        with password_file.open(encoding="utf-8") as stream:
            return stream.readline(MAX_PASSWORD_CHARS + 2).rstrip("\r\n")
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env is not None:
        return from_env
    if not sys.stdin.isatty():
        raise ValueError(
            f"нет пароля: укажите --password-file или переменную {PASSWORD_ENV}, "
            "либо запустите команду в терминале"
        )
    first = getpass.getpass("Пароль: ")
    second = getpass.getpass("Пароль ещё раз: ")
    if first != second:
        raise ValueError("пароли не совпадают")
    return first


def _add(args: argparse.Namespace, ctx: AppContext) -> int:
    from gateway.app import users
    from gateway.app.passwords import hash_password, password_problem

    try:
        password = read_password(args.password_file)
    except OSError as exc:
        # Not the path itself: a password typed where the path belongs must not be printed.
        return fail(
            f"файл пароля не прочитать ({exc.strerror})",
            "PASSWORD_FILE_UNREADABLE",
            ExitCode.UNAVAILABLE,
        )
    except ValueError as exc:
        return fail(str(exc), "PASSWORD_MISSING", ExitCode.USAGE)
    try:
        users.new_user_roles(args.username, args.role)
    except users.UserRefused as exc:
        return fail(str(exc), exc.code, EXIT_FAILED)
    if users.username_taken(ctx, args.username):  # before hashing: a taken name is said at once
        return fail(f"имя {args.username!r} уже занято", "USERNAME_TAKEN", EXIT_FAILED)
    problem = password_problem(password)
    if problem is not None:
        return fail(str(problem), "PASSWORD_WEAK", EXIT_FAILED)
    try:
        user = users.add_user(ctx, args.username, hash_password(password), args.role)
    except users.UserRefused as exc:
        return fail(str(exc), exc.code, EXIT_FAILED)
    print(f"Пользователь {user.username} добавлен; роли: {', '.join(sorted(user.roles))}")
    return EXIT_OK


def _disable(args: argparse.Namespace, ctx: AppContext) -> int:
    from gateway.app import users

    try:
        users.disable_user(ctx, args.username)
    except users.UserRefused:
        return fail(f"пользователя {args.username!r} нет", "USER_NOT_FOUND", EXIT_FAILED)
    print(f"Пользователь {args.username} отключён")
    return EXIT_OK


def _list(args: argparse.Namespace, ctx: AppContext) -> int:
    from gateway.app import users as app_users

    users = app_users.list_users(ctx)
    now = ctx.clock()
    if args.json:
        rows = [app_users.user_row(u, now) for u in users]
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return EXIT_OK
    if not users:
        print("Пользователей нет")
        return EXIT_OK
    for u in users:
        state = "отключён" if u.disabled else ("заблокирован" if u.locked(now) else "активен")
        last = u.last_login_at.strftime("%Y-%m-%d %H:%M") if u.last_login_at else "—"
        print(f"{u.username:<24} {state:<12} вход: {last:<16} роли: {', '.join(sorted(u.roles))}")
    return EXIT_OK
