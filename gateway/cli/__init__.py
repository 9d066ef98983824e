"""The ``gateway`` command's parts: a module a group of commands, each parsing its arguments,
calling the application layer (:mod:`gateway.app`) and printing. ``gateway.main`` puts them
together with the commands that start the servers (``serve``, ``demo``) into the program.

Each module named in :data:`COMMAND_MODULES` defines ``register(subparsers)`` and adds its
commands, so a layer's commands live next to each other, not in one big file. Every handler
returns the process exit code (:class:`gateway.cli.errors.ExitCode`).

Start-up is kept cheap: building the parser imports only these modules, which import nothing
beyond the standard library at module level; a handler imports its stack (lxml, cryptography,
SQLAlchemy, aiohttp, the PDF libraries) when it runs. ``gateway --help`` therefore loads no
third-party package (tests/cli/test_startup.py keeps it so).

Failures reach :func:`run` as exceptions and leave it as one line, ``ошибка: … [CODE]``, with
the exit code of :mod:`gateway.cli.errors`; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from gateway.cli.errors import ExitCode, explain, fail

COMMAND_MODULES = (
    "audit",
    "backup",
    "check",
    "conversations",
    "db",
    "disclose",
    "documents",
    "holds",
    "jobs",
    "keys",
    "node",
    "originals",
    "proceedings",
    "purge",
    "render",
    "signing",
    "users",
)
"""Modules of this package that add commands, in the order ``--help`` lists their groups
(``gateway.main.COMMAND_MODULES`` adds its own among them)."""

DISTRIBUTION = "cis-exchange-gateway"
"""The name ``pip`` knows the gateway by (pyproject.toml)."""

PRIVATE_UMASK = 0o077
"""Files and folders a command creates (the store, its WAL, exports, keys, the data directory)
are the node account's alone: 0600 and 0700."""


def version() -> str:
    """The installed version, from the package metadata (``pip show cis-exchange-gateway``)."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown (not installed: run from a checkout without pip install)"


class _Parser(argparse.ArgumentParser):
    """argparse in the house style: a usage error is ``ошибка: … [USAGE]``, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"ошибка: неверный вызов: {message} [USAGE]\n")


def build_parser(modules: Sequence[str]) -> argparse.ArgumentParser:
    """The parser of the commands that ``modules`` (full module names) register."""
    parser = _Parser(
        prog="gateway",
        description="Secure document-exchange gateway (CIS enforcement; RU-KZ supreme courts).",
        epilog="Exit codes: 0 ok; 1 refused or invalid; 2 usage or configuration; "
        "3 a dependency unavailable (database, port, file); 4 internal error. "
        "See docs/operations.md.",
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="print the installed version and exit"
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=os.environ.get("GATEWAY_DEBUG", "") not in ("", "0"),
        help="print the traceback of a failure too (or set GATEWAY_DEBUG=1)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


class _VersionAction(argparse.Action):
    """``--version``: reads the package metadata only when asked (it costs milliseconds)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"gateway {version()}")
        parser.exit()


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Run one command of ``parser``; returns the exit code (never raises for a failure)."""
    args = parser.parse_args(argv)
    previous_umask = os.umask(PRIVATE_UMASK)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return fail("прервано (Ctrl-C)", "INTERRUPTED", ExitCode.UNAVAILABLE)
    except Exception as exc:
        return _report(exc, debug=args.debug)
    finally:
        os.umask(previous_umask)


def _report(exc: Exception, *, debug: bool) -> int:
    import traceback

    explained = explain(exc)
    if explained is None:
        traceback.print_exc()
        return fail(
            f"внутренняя ошибка {type(exc).__name__}: {exc}; это ошибка программы — сообщите "
            "о ней, приложив вывод выше",
            "INTERNAL",
            ExitCode.INTERNAL,
        )
    if debug:
        traceback.print_exc()
    return fail(explained.message_ru, explained.code, explained.exit_code)
