"""``gateway check-config``: everything a node needs, checked before it is started
(:mod:`gateway.app.checks`).

One line per check (``ok``, ``warn`` or ``FAIL``, the check's name, what was found and, on a
failure, what to do and the error code); then, if anything failed, the usual error line and the
exit code of the first failure (2: NODE.toml must change, 3: a file, the database or a port is
unavailable). Nothing is changed: the database is not migrated, no file is created.

``gateway serve`` runs the same checks (:func:`gateway.app.checks.refuse_on_failure`) before it
binds anything or touches the store, and does not start if one fails.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.errors import ExitCode, Failure, explain

if TYPE_CHECKING:
    from gateway.app.checks import Finding


def register(subparsers: Any) -> None:
    check = subparsers.add_parser(
        "check-config",
        help="check NODE.toml: files, key permissions, keys, certificates, directory, database, "
        "time zone, ports (changes nothing)",
    )
    check.add_argument("--config", required=True, type=Path, help="the node's TOML file")
    check.set_defaults(handler=_check_config)


def _check_config(args: argparse.Namespace) -> int:
    from gateway.app.checks import failed, ok, run_checks
    from gateway.config import NodeConfig

    try:
        config = NodeConfig.from_toml(args.config)
    except Exception as exc:
        explained = explain(exc)
        if explained is None:
            raise
        print(failed("config", explained.message_ru, explained.code, explained.exit_code).line())
        raise _summary(1) from None
    print(ok("config", str(config.path)).line(), flush=True)
    failures = [f for f in run_checks(config) if _printed(f).state == "FAIL"]
    if failures:
        raise _summary(len(failures), failures[0].exit_code)
    return 0


def _printed(finding: Finding) -> Finding:
    print(finding.line(), flush=True)
    return finding


def _summary(count: int, exit_code: ExitCode = ExitCode.USAGE) -> Failure:
    return Failure(
        f"проверка конфигурации не пройдена: {count} (строки FAIL выше; исправьте и повторите)",
        "CONFIG_CHECK_FAILED",
        exit_code,
    )
