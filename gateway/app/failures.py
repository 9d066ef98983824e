"""What kind of failure an exception is, in one scheme for every adapter: the stable ``CODE``,
the Russian text and the :class:`ExitCode` (a command's exit code; the pre-flight checks'
verdict). :func:`explain` turns the library's exceptions (configuration, database, ports,
files, a token) into a :class:`Failure`; anything else is a bug.

This module imports nothing heavy: the command line loads it for ``gateway --help`` too.
"""

from __future__ import annotations

import errno
import sys
from enum import IntEnum


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


class Failure(Exception):
    """An expected failure: a Russian message, a stable code, an exit code (never a traceback)."""

    def __init__(self, message_ru: str, code: str, exit_code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(message_ru)
        self.message_ru = message_ru
        self.code = code
        self.exit_code = exit_code


def explain(exc: BaseException) -> Failure | None:
    """The :class:`Failure` an expected exception stands for; ``None`` for a bug.

    Library classes are recognised without importing their libraries (SQLAlchemy, the PKCS#11
    binding): if a handler never loaded them, its exception cannot be one of theirs.
    """
    if isinstance(exc, Failure):
        return exc
    for explainer in (_gateway_error, _schema_error, _database_error, _os_error, _zone_error):
        found = explainer(exc)
        if found is not None:
            return found
    return None


def _gateway_error(exc: BaseException) -> Failure | None:
    problems_module = sys.modules.get("gateway.model.problems")
    if problems_module is None:
        return None
    if isinstance(exc, problems_module.Refused):
        # An act refused as asked: the id names nothing known (fix the command line), or the
        # rules say no (the answer is no).
        field = exc.extra.get("field")
        unknown = exc.code.startswith("UNKNOWN_")
        return Failure(
            f"{field}: {exc.message_ru}" if field else exc.message_ru,
            exc.code,
            ExitCode.USAGE if unknown else ExitCode.REFUSED,
        )
    if isinstance(exc, problems_module.DocumentRejected):
        return Failure(one_line(exc), exc.code, ExitCode.REFUSED)
    if isinstance(exc, problems_module.ConfigurationError):
        return Failure(one_line(exc), "CONFIG_INVALID", ExitCode.USAGE)
    if isinstance(exc, problems_module.GatewayError):
        return Failure(one_line(exc), "REFUSED", ExitCode.REFUSED)
    pkcs11 = sys.modules.get("gateway.crypto.keys.pkcs11")
    if pkcs11 is not None and isinstance(exc, pkcs11.TokenError):
        return Failure(
            f"токен PKCS#11 недоступен: {one_line(exc)}", "TOKEN_UNAVAILABLE", ExitCode.UNAVAILABLE
        )
    return None


def _schema_error(exc: BaseException) -> Failure | None:
    engine = sys.modules.get("gateway.store.engine")
    if engine is None or not isinstance(exc, engine.StoreNotCurrent):
        return None
    # 3, not 2: neither the command line nor NODE.toml is wrong; the database is not usable
    # by this version until it is upgraded (or the newer gateway is installed).
    return Failure(one_line(exc), exc.code, ExitCode.UNAVAILABLE)


def _database_error(exc: BaseException) -> Failure | None:
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is None or not isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return None
    # The driver's own first line names the cause (refused, unknown database, cannot open the
    # file) without the SQL statement or SQLAlchemy's link.
    cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return Failure(
        f"база данных недоступна ({cause}); проверьте [database] url в NODE.toml, что сервер "
        "запущен и база создана, или права на каталог данных",
        "DATABASE_UNAVAILABLE",
        ExitCode.UNAVAILABLE,
    )


def _os_error(exc: BaseException) -> Failure | None:
    if not isinstance(exc, OSError):
        return None
    if exc.errno == errno.EADDRINUSE:
        return Failure(
            f"адрес уже занят другим процессом ({one_line(exc)}); остановите его или укажите "
            "другой port в NODE.toml",
            "PORT_IN_USE",
            ExitCode.UNAVAILABLE,
        )
    if exc.errno in (errno.EACCES, errno.EADDRNOTAVAIL) and "bind" in str(exc):
        return Failure(
            f"не удалось открыть адрес ({one_line(exc)}); порты ниже 1024 требуют прав, адрес "
            "должен принадлежать этой машине",
            "PORT_UNAVAILABLE",
            ExitCode.UNAVAILABLE,
        )
    name = exc.filename or ""
    if isinstance(exc, FileNotFoundError):
        return Failure(f"файла {name} нет; проверьте путь", "FILE_NOT_FOUND", ExitCode.UNAVAILABLE)
    if isinstance(exc, PermissionError):
        return Failure(
            f"нет прав на {name}; проверьте владельца и права доступа",
            "FILE_FORBIDDEN",
            ExitCode.UNAVAILABLE,
        )
    return Failure(
        f"ошибка ввода-вывода: {exc.strerror or exc} {name}".rstrip(),
        "IO_ERROR",
        ExitCode.UNAVAILABLE,
    )


def _zone_error(exc: BaseException) -> Failure | None:
    zoneinfo = sys.modules.get("zoneinfo")
    if zoneinfo is None or not isinstance(exc, zoneinfo.ZoneInfoNotFoundError):
        return None
    return Failure(
        f"неизвестный часовой пояс ({one_line(exc)}); укажите имя IANA, например Europe/Moscow",
        "TIMEZONE_UNKNOWN",
        ExitCode.USAGE,
    )


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.split()) if text else type(exc).__name__
