"""The ``gateway`` program: every command, and the one place that puts the adapters together.

The adapters (:mod:`gateway.cli`, :mod:`gateway.web`, :mod:`gateway.jobs`, :mod:`gateway.demo`)
do not import each other; what needs several of them lives here: ``gateway serve`` runs the
servers with the scheduler, ``gateway demo`` runs the demo's world on those servers
(:mod:`gateway.main.serve`). The other commands are :mod:`gateway.cli`'s.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway import cli

COMMAND_MODULES = tuple(
    module
    for name in cli.COMMAND_MODULES
    for module in (("gateway.main.serve",) if name == "node" else ()) + (f"gateway.cli.{name}",)
)
"""Every module that adds commands, in the order ``--help`` lists their groups."""


def build_parser() -> argparse.ArgumentParser:
    return cli.build_parser(COMMAND_MODULES)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``gateway`` command; returns the exit code (never raises for a failure)."""
    return cli.run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
