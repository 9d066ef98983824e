"""Fuzzing campaign: ``.venv/bin/python benchmarks/fuzz.py [--examples N] [--surface NAME]
[--pg-url URL] [--seed N]``.

Drives a real node (a fresh demo world in a temporary folder) with the strategies of
``tests/integration/fuzzing.py``, N examples per surface:

* ``bytes``      arbitrary bytes to the receive path (what the peer endpoint runs);
* ``mutations``  byte-level mutations of a valid signed envelope;
* ``documents``  tree-level mutations of valid envelopes, signed with the sender's real keys;
* ``api``        mutated JSON (and raw bodies) to ``POST /api/v1/messages`` of a running node;
* ``console``    the console's forms (refuse, delay, purpose) with hostile values, signed in.

Unlike the CI run (``tests/integration/test_fuzz.py``: 25 fixed examples each) the campaign
does not stop at the first violation: it counts every outcome (``"422 SCHEMA_INVALID"``…) and
every violation of the property (an escaping exception, a 5xx, a refusal without a code, the
store changing on a refusal), and prints a table and, as the very last line, one JSON object:
``{"fuzz": {"bytes": {"examples": …, "outcomes": {…}, "unhandled": 0, …}, …}}``.
The receive path runs on SQLite, and also on PostgreSQL when ``--pg-url`` is given.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import sqlalchemy as sa  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.integration.fuzzing import (  # noqa: E402
    PropertyViolated,
    Tally,
    api_target,
    byte_mutation,
    console_forms,
    console_target,
    mutated_tree,
    receive_target,
    submission_bodies,
    world_for_fuzzing,
)

SURFACES = ("bytes", "mutations", "documents", "api", "console")


def campaign(
    strategy: st.SearchStrategy[Any], check: Callable[[Any], str], examples: int, start: int
) -> Tally:
    """Run ``check`` on ``examples`` inputs drawn from ``strategy``; count, never stop."""
    tally = Tally()

    @seed(start)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(value: Any) -> None:
        try:
            tally.add(check(value))
        except PropertyViolated as violation:
            tally.add("VIOLATION")
            tally.violations.append(str(violation)[:500])
            print(f"VIOLATION: {str(violation)[:500]}", file=sys.stderr, flush=True)

    run()
    return tally


def pg_schema_url(pg_url: str, stack: ExitStack) -> str:
    engine = sa.create_engine(pg_url, poolclass=sa.NullPool)
    schema = f"gw_fuzz_{secrets.token_hex(4)}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()

    stack.callback(drop)
    return f"{pg_url}?options=-csearch_path%3D{schema}"


def runs(args: argparse.Namespace, stack: ExitStack) -> Iterator[tuple[str, Tally]]:
    world = world_for_fuzzing(Path(stack.enter_context(tempfile.TemporaryDirectory())) / "w")
    stores = [("sqlite", "")]
    if args.pg_url:
        stores.append(("postgresql", pg_schema_url(args.pg_url, stack)))
    for store, url in stores:
        target = stack.enter_context(receive_target(world, f"fuzz-{store}", url))
        strategies = {
            "bytes": st.binary(max_size=2048),
            "mutations": byte_mutation(target.valid("cis-enforcement.Request")),
            "documents": mutated_tree(target),
        }
        for name, strategy in strategies.items():
            if name in args.surface:
                tally = campaign(strategy, target.check, args.examples, args.seed)
                yield f"{name} ({store})", tally
    if "api" in args.surface:
        api = stack.enter_context(api_target(world, "fuzz-api"))
        yield "api (sqlite)", campaign(submission_bodies(), api.check, args.examples, args.seed)
    if "console" in args.surface:
        console = stack.enter_context(console_target(world, "fuzz-console"))
        yield "console (sqlite)", campaign(console_forms(), console.check, args.examples, args.seed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000, help="inputs per surface")
    parser.add_argument("--surface", action="append", choices=SURFACES, help="repeatable")
    parser.add_argument("--pg-url", default="", help="also fuzz the receive path on PostgreSQL")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    args.surface = args.surface or list(SURFACES)
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        for name, tally in runs(args, stack):
            results[name] = tally.as_json()
            print(
                f"{name:24} {results[name]['examples']:6} examples  "
                f"{results[name]['unhandled']} unhandled  top: "
                + ", ".join(f"{k} ×{v}" for k, v in list(results[name]["outcomes"].items())[:6]),
                file=sys.stderr,
                flush=True,
            )
    print(json.dumps({"fuzz": results, "seed": args.seed}, ensure_ascii=False))
    return 1 if any(r["unhandled"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
