"""``gateway purge``: the retention purge by hand (CIS Art. 9.6), its runs and signed reports.

    gateway purge --config NODE.toml --dry-run [--now TIME]   what would go, and why
    gateway purge --config NODE.toml [--now TIME]             purge (progress on a terminal)
    gateway purge runs --config NODE.toml                     the latest runs
    gateway purge report --config NODE.toml RUN_ID [--out DIR]  show / export a signed report
    gateway purge verify-report --config NODE.toml RUN_ID     check its seal signature

Exit codes: 0 — done (or the report verifies); 1 — the run had errors, or the report does not
verify; 2 — bad arguments or configuration; 3 — another node holds the purge lock.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.context import with_context
from gateway.cli.errors import ExitCode, fail, report
from gateway.cli.progress import ProgressPrinter

if TYPE_CHECKING:
    from gateway.app.context import AppContext

EXIT_OK = ExitCode.OK
EXIT_FAILED = ExitCode.REFUSED
EXIT_LOCKED = ExitCode.UNAVAILABLE
PROGRESS_WIDTH = 30
"""Characters of the progress bar: fits an 80-column terminal with the counts beside it."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "purge",
        help="уничтожение сообщений по срокам хранения (ст. 9.6 Соглашения СНГ)",
        description=(
            "Без подкоманды: удаляет сообщения, срок хранения которых истёк (надгробная запись, "
            "уничтожение ключа данных), и сохраняет подписанный печатью отчёт. --dry-run только "
            "показывает, что и почему будет удалено."
        ),
    )
    p.add_argument("--config", type=Path, help="TOML-файл узла")
    p.add_argument("--dry-run", action="store_true", help="только показать, ничего не удалять")
    p.add_argument("--now", help="момент оценки сроков, ISO 8601 (по умолчанию — сейчас)")
    p.add_argument("--json", action="store_true", help="вывод в JSON (строка на сообщение)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="сообщений в одной транзакции (1–10000; по умолчанию 10000)",
    )
    p.set_defaults(handler=_purge)
    sub = p.add_subparsers(dest="purge_command")
    runs = sub.add_parser("runs", help="последние запуски и их отчёты")
    runs.add_argument("--config", required=True, type=Path)
    runs.add_argument("--limit", type=int, default=20)
    runs.set_defaults(handler=with_context(_runs))
    rep = sub.add_parser("report", help="показать подписанный отчёт; --out — выгрузить")
    rep.add_argument("--config", required=True, type=Path)
    rep.add_argument("run_id", metavar="RUN_ID")
    rep.add_argument(
        "--out", type=Path, help="каталог: report.json, report.sig, seal.pem (для openssl)"
    )
    rep.set_defaults(handler=with_context(_report))
    ver = sub.add_parser("verify-report", help="проверить подпись печатью под отчётом")
    ver.add_argument("--config", required=True, type=Path)
    ver.add_argument("run_id", metavar="RUN_ID")
    ver.set_defaults(handler=with_context(_verify_report))


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def parse_now(text: str | None) -> datetime:
    """``--now``: an ISO 8601 time (a date alone is its midnight UTC; no zone means UTC)."""
    if not text:
        return datetime.now(UTC)
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def cli_actor() -> str:
    """``cli:<login>``: who ran a command, for the audit trail."""
    from gateway.app.context import command_line_actor

    return command_line_actor().name


def _open(args: argparse.Namespace) -> AppContext:
    from gateway.app.context import AppContext

    return AppContext.open(args.config)


def _purge(args: argparse.Namespace) -> int:
    from gateway.model.problems import GatewayError

    if args.config is None:
        return fail("укажите --config NODE.toml", "INVALID_ARGUMENT")
    try:
        now = parse_now(args.now)
    except ValueError:
        return fail(
            f"--now {args.now!r} — не время ISO 8601 (например 2031-01-01T00:00:00Z)",
            "INVALID_ARGUMENT",
        )
    try:
        ctx = _open(args)
    except (GatewayError, OSError) as exc:
        return report(exc)
    with ctx:
        try:
            if args.dry_run:
                return _dry_run(ctx, now, as_json=args.json)
            return _real_run(ctx, now, as_json=args.json, batch_size=args.batch_size)
        except GatewayError as exc:  # a bad retention policy
            return report(exc)


def _dry_run(ctx: AppContext, now: datetime, *, as_json: bool) -> int:
    from gateway.app.purge import Action, Decision, plan_purge

    counts: dict[str, int] = {}
    examined = 0
    if not as_json:
        print(f"# пробный запуск на {now.isoformat()}: ничего не удаляется")
        print("# message_id\tkind\tdirection\tparty\tpolicy\texpired_at\taction")
    for item in plan_purge(ctx, now):
        if not isinstance(item, Decision):
            examined += item
            continue
        counts[item.action] = counts.get(item.action, 0) + 1
        if as_json:
            print(
                json.dumps(
                    {
                        "message_id": item.message_id,
                        "conversation_id": item.conversation_id,
                        "kind": item.kind,
                        "direction": item.direction,
                        "party": item.party,
                        "policy": item.policy,
                        "expired_at": item.expires_at.isoformat(),
                        "action": item.action,
                    },
                    ensure_ascii=False,
                )
            )
        else:
            print(
                f"{item.message_id}\t{item.kind}\t{item.direction}\t{item.party}\t"
                f"{item.policy}\t{item.expires_at.isoformat()}\t{item.action}"
            )
    summary = (
        f"# просмотрено {examined}; будет удалено {counts.get(Action.PURGE, 0)}, "
        f"удерживается (legal hold) {counts.get(Action.HELD, 0)}, "
        f"не доставлено {counts.get(Action.UNDELIVERED, 0)}"
    )
    print(summary, file=sys.stderr if as_json else sys.stdout)
    return EXIT_OK


class _PurgePrinter(ProgressPrinter):
    def __call__(self, p: Any) -> None:
        share = min(p.examined / max(p.total, p.examined, 1), 1.0)
        self.show(
            share,
            f"просмотрено {p.examined}/{p.total}, удалено {p.purged}",
            f"purge: просмотрено {p.examined}/{p.total} ({share:.0%}), удалено {p.purged}",
        )


def _real_run(
    ctx: AppContext, now: datetime, *, as_json: bool, batch_size: int | None = None
) -> int:
    from gateway.app.purge import (
        MAX_PURGE_BATCH,
        PURGE_BATCH,
        PurgeLocked,
        PurgeRefused,
        run_purge_now,
    )
    from gateway.crypto.keys.keystore import KeyStore

    assert ctx.config is not None
    batch_size = batch_size or PURGE_BATCH
    if not 1 <= batch_size <= MAX_PURGE_BATCH:
        return fail(f"--batch-size должно быть от 1 до {MAX_PURGE_BATCH}", "INVALID_ARGUMENT")
    keys = KeyStore.from_config(ctx.config)
    printer = _PurgePrinter(sys.stderr, PROGRESS_WIDTH)
    try:
        report = run_purge_now(ctx, keys, now, batch_size=batch_size, progress=printer)
    except PurgeRefused as refused:
        if refused.code == "PURGE_NOW_IN_FUTURE":
            return fail(
                f"--now {now.isoformat()} позже текущего момента: запуск уничтожает только то, "
                "чей срок хранения истёк сейчас (ст. 9.6 Соглашения СНГ); что будет уничтожено "
                "к этой дате, покажет gateway purge --dry-run --now …",
                refused.code,
            )
        what = (
            "ключ шифрования узла (KEK) не загружен; без него ключи периодов хранения нечем "
            "уничтожить (docs/purge-and-audit.md)"
            if refused.code == "KEK_UNAVAILABLE"
            else "печать органа не загружена; отчёт о запуске нечем подписать"
        )
        return fail(f"{what} ({refused})", refused.code)
    except PurgeLocked:
        return fail(
            "уничтожение уже выполняется на другом узле (блокировка purge занята)",
            "PURGE_LOCKED",
            EXIT_LOCKED,
        )
    finally:
        printer.done()
        keys.close()
    if as_json:
        print(report.report)
    else:
        print(f"запуск {report.run_id}: {report.state}, удалено {report.purged}")
        for policy, count in sorted(report.purged_by_policy.items()):
            print(f"  {policy}: {count}")
        held = sum(report.held_by_policy.values())
        print(f"удерживается: {held}; не доставлено: {report.undelivered}")
        print(f"длительность: {report.duration_ms} мс; ошибки: {report.errors or 'нет'}")
        print(
            "отчёт подписан печатью органа: gateway purge verify-report --config … " + report.run_id
        )
    return EXIT_OK if not report.errors else EXIT_FAILED


def _runs(args: argparse.Namespace, ctx: AppContext) -> int:
    from gateway.app.purge import list_runs

    listed = list_runs(ctx, limit=args.limit)
    print("run_id\tstarted_at\tstate\tpurged\theld\terror\treport")
    for item in listed:
        r = item.run
        print(
            f"{r.run_id}\t{r.started_at.isoformat()}\t{r.state}\t{r.purged}\t{r.held}\t"
            f"{r.error_code or '-'}\t{'signed' if item.signed else 'none'}"
        )
    return EXIT_OK


def _report(args: argparse.Namespace, ctx: AppContext) -> int:
    from gateway.app.purge import report_files

    files = report_files(ctx, args.run_id)
    if files is None:
        return fail(
            f"отчёта запуска {args.run_id} нет (gateway purge runs покажет запуски)",
            "REPORT_NOT_FOUND",
            ExitCode.REFUSED,
        )
    print(json.dumps(json.loads(files.report_json), ensure_ascii=False, indent=2))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.json").write_bytes(files.report_json)
        (args.out / "report.sig").write_bytes(files.signature)
        (args.out / "seal.pem").write_bytes(files.seal_pem)
        _say(
            f"выгружено в {args.out}: report.json (подписанные байты), report.sig (DER), "
            "seal.pem; проверка: openssl x509 -in seal.pem -pubkey -noout > seal.pub && "
            "openssl dgst -sha256 -verify seal.pub -signature report.sig report.json"
        )
        if files.timestamp is not None:
            (args.out / "report.tst").write_bytes(files.timestamp)
            _say(
                "и report.tst (штамп времени над подписью, RFC 3161); проверка: openssl ts "
                "-verify -token_in -in report.tst -data report.sig -CAfile <сертификат УЦ "
                "службы штампов>"
            )
    return EXIT_OK


def _verify_report(args: argparse.Namespace, ctx: AppContext) -> int:
    from gateway.app.purge import check_report
    from gateway.model.problems import GatewayError

    try:
        check = check_report(ctx, args.run_id)
    except (GatewayError, OSError) as exc:
        return report(exc)
    if check.ok:
        print(
            f"отчёт запуска {args.run_id}: подпись печатью верна "
            f"({check.report.get('body_id')}, удалено {check.report.get('purged')})"
        )
        return EXIT_OK
    print(f"отчёт запуска {args.run_id}: НЕ ПОДТВЕРЖДЁН — {check.reason}")
    return EXIT_FAILED
