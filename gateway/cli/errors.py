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
:class:`~gateway.app.failures.Failure`; :func:`~gateway.app.failures.explain` turns the
library's exceptions into the same form at the one boundary (:func:`gateway.cli.run`), so no
handler needs its own ``try``/``print``.

This module imports nothing heavy: it runs for ``gateway --help`` too.
"""

from __future__ import annotations

import sys
from typing import TextIO

from gateway.app.failures import ExitCode, Failure, explain, one_line

__all__ = ["ExitCode", "Failure", "explain", "fail", "report"]


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


def report(exc: BaseException) -> int:
    """Print an exception a handler caught, in the house style; returns its exit code.

    An exception that is not an expected failure is printed as an internal error (code 4)."""
    explained = explain(exc) or Failure(
        f"внутренняя ошибка {type(exc).__name__}: {one_line(exc)}", "INTERNAL", ExitCode.INTERNAL
    )
    return fail(explained.message_ru, explained.code, explained.exit_code)
