"""``gateway disclose``: hand a received document to someone, as the agreements allow.

    gateway disclose --config NODE.toml MESSAGE_ID --to "…" \\
        --category creditor|debtor|third-party --purpose "…" [--out DIR]

The rule is :func:`gateway.exchange.disclosure.may_disclose` (CIS Art. 9.2–9.3, 16; SC Art.
8.1–8.2). Allowed: the disclosure is recorded (recipient and purpose sealed), audited as
``document.disclosed``, and the signed document, byte for byte as stored, is written to
``DIR/<MESSAGE_ID>.xml`` (mode 0600, never over an existing file). Refused: audited as
``disclosure.refused``; the article, the reason and what to do are printed.

``gateway disclosures --config NODE.toml (--message MESSAGE_ID | --to NAME) [--show-recipients]``
lists what was recorded; decrypting the recipients, or searching by one, is audited
(``disclosure.records.read``).

Exit codes: 0 — disclosed (listed); 1 — refused by the rule; 2 — cannot be judged (bad arguments,
configuration, unknown message, the output file exists).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.errors import ExitCode, fail, report

if TYPE_CHECKING:
    from gateway.app.context import AppContext

EXIT_DISCLOSED = ExitCode.OK
EXIT_REFUSED = ExitCode.REFUSED

CATEGORIES = ("creditor", "debtor", "third-party")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "disclose",
        help="раскрыть полученный документ (ст. 9.2–9.3 Соглашения СНГ; ст. 8.2 Соглашения ВС)",
        description=(
            "Проверяет, допускает ли соглашение раскрытие документа получателю, записывает "
            "раскрытие (получатель и цель — в зашифрованном виде) и событие аудита и сохраняет "
            "подписанный документ в файл DIR/<MESSAGE_ID>.xml. Код выхода: 0 — раскрыт, "
            "1 — раскрытие не допускается, 2 — ошибка входных данных."
        ),
    )
    p.add_argument("--config", required=True, type=Path, help="TOML-файл узла")
    p.add_argument("message_id", metavar="MESSAGE_ID", help="идентификатор сообщения (UUID)")
    p.add_argument("--to", required=True, help="получатель: наименование или Ф. И. О.")
    p.add_argument("--category", required=True, choices=CATEGORIES, help="категория получателя")
    p.add_argument("--purpose", required=True, help="цель раскрытия (ст. 9.1 Соглашения СНГ)")
    p.add_argument(
        "--out", type=Path, default=Path("."), help="каталог для файла документа (по умолчанию .)"
    )
    p.set_defaults(handler=_disclose)

    q = subparsers.add_parser(
        "disclosures",
        help="журнал раскрытий: по сообщению или по получателю",
        description=(
            "Показывает записанные раскрытия документа (--message) или раскрытия получателю "
            "(--to; сравнение после нормализации имени). Получатель и цель хранятся "
            "зашифрованными и показываются только с --show-recipients; такой просмотр и поиск "
            "по получателю записываются в журнал аудита."
        ),
    )
    q.add_argument("--config", required=True, type=Path, help="TOML-файл узла")
    which = q.add_mutually_exclusive_group(required=True)
    which.add_argument("--message", metavar="MESSAGE_ID", help="раскрытия этого сообщения")
    which.add_argument("--to", metavar="NAME", help="раскрытия этому получателю")
    q.add_argument("--show-recipients", action="store_true", help="расшифровать получателя и цель")
    q.set_defaults(handler=_list)


def _write_exclusive(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600; refuse if it exists (never overwrite evidence)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _uuid(text: str) -> object:
    import uuid  # not for ``gateway --help``

    return uuid.UUID(text)


def _disclose(args: argparse.Namespace) -> int:
    from gateway.app import disclosures

    try:
        # A message id names the output file: only a canonical UUID may, no path in it.
        message_id = str(_uuid(args.message_id))
        if message_id != args.message_id.lower():
            raise ValueError
    except ValueError:
        return fail(
            "MESSAGE_ID должен быть UUID вида 8-4-4-4-12 шестнадцатеричных цифр",
            "INVALID_ARGUMENT",
        )
    target = args.out / f"{message_id}.xml"
    if not args.out.is_dir():
        return fail(
            f"каталога {args.out} нет; создайте его или укажите другой (--out)",
            "FILE_NOT_FOUND",
            ExitCode.UNAVAILABLE,
        )
    if target.exists():
        return fail(
            f"файл {target} уже есть; он не перезаписывается — укажите другой --out",
            "FILE_EXISTS",
        )
    opened = _open_node(args.config)
    if isinstance(opened, int):
        return opened
    ctx, keys = opened
    try:
        result = disclosures.disclose(
            ctx, message_id, recipient=args.to, category=args.category, purpose=args.purpose
        )
    except disclosures.DisclosureRefused as refused:
        d = refused.decision
        remedy = f"; что сделать: {d.remedy_ru}" if d.remedy_ru else ""
        return fail(
            f"раскрытие не допускается ({d.article}): {d.reason_ru}{remedy}", d.code, EXIT_REFUSED
        )
    except disclosures.DisclosureError as exc:
        return report(exc)
    finally:
        ctx.close()
        keys.close()
    try:
        _write_exclusive(target, result.document)
    except OSError as exc:
        # Recorded but not written: say so plainly; the record stays (it was handed to us).
        return fail(
            f"раскрытие {result.disclosure_id} записано, но файл {target} не создан "
            f"({exc.strerror}); повторите с другим --out",
            "FILE_UNWRITABLE",
            ExitCode.UNAVAILABLE,
        )
    d = result.decision
    where = f" ({d.article})" if d.article else ""
    print(f"раскрытие {result.disclosure_id} записано{where}: {d.reason_ru}")
    if d.consent_request_id:
        print(f"основание: согласие по запросу {d.consent_request_id}")
    for condition in result.conditions:
        print(f"условие согласия (сообщите получателю): {condition}")
    if result.procedure:
        # CIS Art. 9.3 para. 2: the providing body said where the creditor must apply.
        print("порядок получения информации взыскателем (ст. 9.3): " + "; ".join(result.procedure))
    print(f"документ: {target}")
    return EXIT_DISCLOSED


def _open_node(path: Path) -> tuple[AppContext, Any] | int:
    """The node's context (with its KEK ring) and key store; or the exit code of the error
    reported."""
    from dataclasses import replace

    from gateway.app.context import AppContext
    from gateway.config import NodeConfig
    from gateway.crypto.keys.kek_ring import load_kek_ring
    from gateway.crypto.keys.keystore import KeyStore
    from gateway.model.problems import GatewayError

    try:
        config = NodeConfig.from_toml(path)
        keys = KeyStore.from_config(config)
        ring = load_kek_ring(keys)
    except (GatewayError, OSError) as exc:
        return report(exc)
    if config.database_url.startswith("sqlite") and not config.node.data_dir.is_dir():
        keys.close()
        return fail(
            f"каталога данных {config.node.data_dir} нет: узел ещё не запускался",
            "NODE_NOT_INITIALISED",
            ExitCode.UNAVAILABLE,
        )
    try:
        return replace(AppContext.from_config(config), kek_ring=ring), keys
    except BaseException:
        keys.close()
        raise


def _list(args: argparse.Namespace) -> int:
    from gateway.app import disclosures

    if args.message is not None:
        try:
            message_id = str(_uuid(args.message))
        except ValueError:
            return fail(
                "--message должен быть UUID вида 8-4-4-4-12 шестнадцатеричных цифр",
                "INVALID_ARGUMENT",
            )
    opened = _open_node(args.config)
    if isinstance(opened, int):
        return opened
    ctx, keys = opened
    try:
        with ctx:
            found = disclosures.read(
                ctx,
                message_id=message_id if args.message is not None else None,
                recipient=args.to,
                show_recipients=bool(args.show_recipients),
            )
    except disclosures.DisclosureStoreError as exc:
        return fail(str(exc), "DISCLOSURE_RECORD_INVALID", ExitCode.REFUSED)
    finally:
        keys.close()
    records, opened = found.records, found.opened
    if not records:
        print("раскрытий нет")
    for index, r in enumerate(records):
        consent = f" согласие {r.consent_request_id}" if r.consent_request_id else ""
        print(
            f"{r.disclosed_at:%Y-%m-%d %H:%M:%S} UTC {r.disclosure_id} сообщение {r.message_id} "
            f"{r.category} {r.article or '-'}{consent} {r.actor}"
        )
        if opened:
            print(f"    получатель: {opened[index].recipient}; цель: {opened[index].purpose}")
    return EXIT_DISCLOSED
