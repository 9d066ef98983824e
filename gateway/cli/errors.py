"""One error style and one exit-code scheme for every ``gateway`` command (docs/operations.md).

Exit codes::

    0  done (the document is valid, the signature verifies, the report is intact)
    1  refused or invalid: the input was read and judged, and the answer is no
    2  usage or configuration: the command line or NODE.toml must change
    3  a dependency is unavailable: the database, a port, a file, a PKCS#11 token
    4  an internal error (a bug): the traceback is printed; please report it

Every expected failure is one line on stderr, ``ошибка: <Russian text> [CODE]``, the English
``CODE`` stable for scripts and searches; no traceback unless ``gateway --debug`` (or
``GATEWAY_DEBUG=1``) asks for one. Command handlers either return :func:`fail` or raise
:class:`CommandError`; :func:`explain` turns the library's exceptions into the same form at the
one boundary (:func:`gateway.cli.main`), so no handler needs its own ``try``/``print``.

This module imports nothing heavy: it runs for ``gateway --help`` too.
"""

from __future__ import annotations

import errno
import sys
from enum import IntEnum
from typing import TextIO


class ExitCode(IntEnum):
    """The process exit codes of every ``gateway`` command."""

    OK = 0
    REFUSED = 1
    """Refused or invalid: a document, a signature, a request the rules do not allow."""
    USAGE = 2
    """Usage or configuration: fix the command line or NODE.toml."""
    UNAVAILABLE = 3
    """A dependency is unavailable: database, port, file, token. Retrying later may work."""
    INTERNAL = 4
    """A bug: the traceback is printed."""


class CommandError(Exception):
    """An expected failure a handler raises: printed by :func:`fail`, never as a traceback."""

    def __init__(self, message_ru: str, code: str, exit_code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(message_ru)
        self.message_ru = message_ru
        self.code = code
        self.exit_code = exit_code


def fail(
    message_ru: str,
    code: str,
    exit_code: ExitCode = ExitCode.USAGE,
    *,
    stream: TextIO | None = None,
) -> int:
    """Print ``ошибка: <message_ru> [CODE]`` to stderr and return ``exit_code`` (as an int)."""
    print(f"ошибка: {message_ru} [{code}]", file=stream or sys.stderr, flush=True)
    return int(exit_code)


def explain(exc: BaseException) -> CommandError | None:
    """The :class:`CommandError` an expected exception stands for; ``None`` for a bug.

    Library classes are recognised without importing their libraries (SQLAlchemy, the PKCS#11
    binding): if a handler never loaded them, its exception cannot be one of theirs.
    """
    if isinstance(exc, CommandError):
        return exc
    for explainer in (_gateway_error, _schema_error, _database_error, _os_error, _zone_error):
        found = explainer(exc)
        if found is not None:
            return found
    return None


def _gateway_error(exc: BaseException) -> CommandError | None:
    problems_module = sys.modules.get("gateway.model.problems")
    if problems_module is None:
        return None
    if isinstance(exc, problems_module.DocumentRejected):
        return CommandError(_one_line(exc), exc.code, ExitCode.REFUSED)
    if isinstance(exc, problems_module.ConfigurationError):
        return CommandError(_one_line(exc), "CONFIG_INVALID", ExitCode.USAGE)
    if isinstance(exc, problems_module.GatewayError):
        return CommandError(_one_line(exc), "REFUSED", ExitCode.REFUSED)
    pkcs11 = sys.modules.get("gateway.crypto.keys.pkcs11")
    if pkcs11 is not None and isinstance(exc, pkcs11.TokenError):
        return CommandError(
            f"токен PKCS#11 недоступен: {_one_line(exc)}", "TOKEN_UNAVAILABLE", ExitCode.UNAVAILABLE
        )
    return None


def _schema_error(exc: BaseException) -> CommandError | None:
    engine = sys.modules.get("gateway.store.engine")
    if engine is None or not isinstance(exc, engine.StoreNotCurrent):
        return None
    # 3, not 2: neither the command line nor NODE.toml is wrong; the database is not usable
    # by this version until it is upgraded (or the newer gateway is installed).
    return CommandError(_one_line(exc), exc.code, ExitCode.UNAVAILABLE)


def _database_error(exc: BaseException) -> CommandError | None:
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is None or not isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return None
    # The driver's own first line names the cause (refused, unknown database, cannot open the
    # file) without the SQL statement or SQLAlchemy's link.
    cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return CommandError(
        f"база данных недоступна ({cause}); проверьте [database] url в NODE.toml, что сервер "
        "запущен и база создана, или права на каталог данных",
        "DATABASE_UNAVAILABLE",
        ExitCode.UNAVAILABLE,
    )


def _os_error(exc: BaseException) -> CommandError | None:
    if not isinstance(exc, OSError):
        return None
    if exc.errno == errno.EADDRINUSE:
        return CommandError(
            f"адрес уже занят другим процессом ({_one_line(exc)}); остановите его или укажите "
            "другой port в NODE.toml",
            "PORT_IN_USE",
            ExitCode.UNAVAILABLE,
        )
    if exc.errno in (errno.EACCES, errno.EADDRNOTAVAIL) and "bind" in str(exc):
        return CommandError(
            f"не удалось открыть адрес ({_one_line(exc)}); порты ниже 1024 требуют прав, адрес "
            "должен принадлежать этой машине",
            "PORT_UNAVAILABLE",
            ExitCode.UNAVAILABLE,
        )
    name = exc.filename or ""
    if isinstance(exc, FileNotFoundError):
        return CommandError(
            f"файла {name} нет; проверьте путь", "FILE_NOT_FOUND", ExitCode.UNAVAILABLE
        )
    if isinstance(exc, PermissionError):
        return CommandError(
            f"нет прав на {name}; проверьте владельца и права доступа",
            "FILE_FORBIDDEN",
            ExitCode.UNAVAILABLE,
        )
    return CommandError(
        f"ошибка ввода-вывода: {exc.strerror or exc} {name}".rstrip(),
        "IO_ERROR",
        ExitCode.UNAVAILABLE,
    )


def _zone_error(exc: BaseException) -> CommandError | None:
    zoneinfo = sys.modules.get("zoneinfo")
    if zoneinfo is None or not isinstance(exc, zoneinfo.ZoneInfoNotFoundError):
        return None
    return CommandError(
        f"неизвестный часовой пояс ({_one_line(exc)}); укажите имя IANA, например Europe/Moscow",
        "TIMEZONE_UNKNOWN",
        ExitCode.USAGE,
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.split()) if text else type(exc).__name__


def report(exc: BaseException) -> int:
    """Print an exception a handler caught, in the house style; returns its exit code.

    An exception that is not an expected failure is printed as an internal error (code 4)."""
    explained = explain(exc) or CommandError(
        f"внутренняя ошибка {type(exc).__name__}: {_one_line(exc)}", "INTERNAL", ExitCode.INTERNAL
    )
    return fail(explained.message_ru, explained.code, explained.exit_code)
