"""The one way a command opens the node: :func:`with_context` reads ``--config``, opens the
store migrated (:meth:`gateway.app.context.AppContext.open`) with the command line's actor, runs
the handler with it and closes it. A failure to open reaches :func:`gateway.cli.main`, which
reports it in the house style."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.app.context import AppContext

Handler = Callable[[argparse.Namespace, "AppContext"], int]


def with_context(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """``handler(args, ctx)`` as an argparse handler over ``args.config``."""

    def run(args: argparse.Namespace) -> int:
        from gateway.app.context import AppContext

        with AppContext.open(args.config) as ctx:
            return int(handler(args, ctx))

    return run
