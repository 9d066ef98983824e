"""``gateway jobs list``: the node's scheduled jobs, their last run and their next one.

    gateway jobs list --config NODE.toml [--json]

Reads the store only (the job store's next run times, ``jobs_slots``): it works while
``gateway serve`` runs, and shows the runs of every process of the node. Exit codes: 0 — listed;
1 — the last run of some job failed (so that a monitoring check can call it); 2 — bad
configuration.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.cli.errors import ExitCode, report


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("jobs", help="плановые задания узла: последний и следующий запуск")
    sub = p.add_subparsers(dest="jobs_command", required=True)
    ls = sub.add_parser(
        "list", help="каждое задание: расписание, последний запуск и его исход, следующий запуск"
    )
    ls.add_argument("--config", required=True, type=Path, help="TOML-файл узла")
    ls.add_argument("--json", action="store_true", help="вывод в JSON (строка на задание)")
    ls.set_defaults(handler=_list)


def _list(args: argparse.Namespace) -> int:
    from gateway.app.jobs import job_rows
    from gateway.config import NodeConfig
    from gateway.model.problems import GatewayError

    try:
        config = NodeConfig.from_toml(args.config)
        rows = job_rows(config, datetime.now(UTC))
    except (GatewayError, OSError) as exc:
        return report(exc)
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
    else:
        print("job\tschedule\tlast_slot\toutcome\tstarted\tfinished\tcount\tlast_success\tnext_run")
        for r in rows:
            print(
                "\t".join(
                    str(v if v is not None else "-")
                    for v in (
                        r["job"],
                        r["schedule"],
                        r["last_slot"],
                        r["last_outcome"],
                        r["last_started"],
                        r["last_finished"],
                        r["last_count"],
                        r["last_success"],
                        r["next_run"] if r["enabled"] else "disabled",
                    )
                )
            )
    failed = any(r["last_outcome"] == "failed" for r in rows)
    return ExitCode.REFUSED if failed else ExitCode.OK
