"""``python -m tests.app.purge.purge_child ARGS``: the ``gateway`` command with only this task's
commands registered (purge, holds, audit, jobs), so tests do not depend on the other commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway.cli import audit, holds, jobs, purge


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (audit, holds, jobs, purge):
        module.register(sub)
    args = parser.parse_args(list(argv))
    return int(args.handler(args) or 0)


def audit_main(argv: Sequence[str]) -> int:
    return main(["audit", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
