"""``gateway audit``: check, export and checkpoint the hash-chained audit trail.

    gateway audit verify --config NODE.toml [--checkpoint FILE]...    (recorded: audit.verified)
    gateway audit show --config NODE.toml [--from A] [--to B] [--kind KIND] [--purposes]
    gateway audit export --config NODE.toml [--from A] [--to B] --out FILE [--purposes]
    gateway audit checkpoint --config NODE.toml [--out FILE]
    gateway audit verify-export FILE [--checkpoint FILE --seal CERT.pem [--ca CA.pem --crl CRL]]

``--from``/``--to`` are event numbers (``120``) or ISO 8601 times (``2026-11-01``); a time range
is ``from <= at < to``, a number range ``from <= seq <= to``.

``--purposes`` opens the purposes stated for reads (CIS Art. 9.1), sealed under the KEK ring in
each read's event (gateway.store.read_purposes), for an auditor: it needs the ``auditor`` role
(the command line's actor holds every role) and the node's keys, says on stderr how many it
opened, and is itself an audit event (``audit.purposes.read``). In an export the text goes in
each line's ``purpose`` field, beside ``details``, so the hashes still check.

Exit codes: 0 — intact / done; 1 — tampering found (the event's seq and the kind are printed);
2 — bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.errors import ExitCode, fail, report

if TYPE_CHECKING:
    from gateway.app.audit import PurposeReader
    from gateway.app.context import AppContext

EXIT_OK = ExitCode.OK
EXIT_TAMPERED = ExitCode.REFUSED
PURPOSES_HELP = (
    "расшифровать цели ознакомления (ст. 9.1 Соглашения СНГ) для аудитора; "
    "нужны ключи узла, расшифровка записывается в журнал"
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("audit", help="журнал аудита: проверка, выгрузка, контрольные точки")
    sub = p.add_subparsers(dest="audit_command", required=True)
    ver = sub.add_parser(
        "verify", help="проверить цепочку хешей и подписанные контрольные точки (0 — цела)"
    )
    ver.add_argument("--config", required=True, type=Path)
    ver.add_argument(
        "--checkpoint",
        action="append",
        type=Path,
        default=[],
        help="файл контрольных точек, хранимый вне узла (можно несколько)",
    )
    ver.set_defaults(handler=_verify)
    show = sub.add_parser("show", help="показать события журнала (цели ознакомления — аудитору)")
    show.add_argument("--config", required=True, type=Path)
    show.add_argument("--from", dest="start", help="номер события или время ISO 8601")
    show.add_argument("--to", dest="end", help="номер события или время ISO 8601")
    show.add_argument("--kind", help="только события этого вида (document.read)")
    show.add_argument("--purposes", action="store_true", help=PURPOSES_HELP)
    show.set_defaults(handler=_show)
    exp = sub.add_parser("export", help="выгрузить участок журнала (JSON Lines с хешами)")
    exp.add_argument("--config", required=True, type=Path)
    exp.add_argument("--from", dest="start", help="номер события или время ISO 8601")
    exp.add_argument("--to", dest="end", help="номер события или время ISO 8601")
    exp.add_argument("--out", required=True, type=Path, help="файл (не перезаписывается)")
    exp.add_argument("--purposes", action="store_true", help=PURPOSES_HELP)
    exp.set_defaults(handler=_export)
    cp = sub.add_parser("checkpoint", help="подписать печатью текущую вершину цепочки")
    cp.add_argument("--config", required=True, type=Path)
    cp.add_argument(
        "--out", type=Path, help="дописать контрольную точку в этот файл (храните вне узла)"
    )
    cp.set_defaults(handler=_checkpoint)
    ve = sub.add_parser("verify-export", help="проверить выгруженный участок без доступа к узлу")
    ve.add_argument("file", type=Path)
    ve.add_argument("--checkpoint", action="append", type=Path, default=[])
    ve.add_argument(
        "--seal",
        action="append",
        type=Path,
        default=[],
        metavar="CERT.pem",
        help="сертификат печати органа (из справочника органов); нужен с --checkpoint",
    )
    ve.add_argument(
        "--ca",
        action="append",
        type=Path,
        default=[],
        metavar="CA.pem",
        help="сертификат УЦ, выпустившего печать (и службы штампов времени): им проверяются "
        "списки отзыва и штампы времени контрольных точек",
    )
    ve.add_argument(
        "--crl",
        action="append",
        type=Path,
        default=[],
        metavar="CRL",
        help="список отзыва (СОС) УЦ печати, PEM или DER: печать, отозванная до даты "
        "контрольной точки, её не подтверждает; при компрометации ключа — и более ранние",
    )
    ve.set_defaults(handler=_verify_export)


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _open(path: Path) -> AppContext:
    from gateway.app.context import AppContext

    return AppContext.open(path)


def _read_checkpoint_files(paths: list[Path]) -> list[tuple[Any, str]]:
    from gateway.app.audit_checkpoints import parse_checkpoint_line

    found = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                where = f"{path}:{number}"
                found.append((parse_checkpoint_line(line, where), where))
    return found


def _verify(args: argparse.Namespace) -> int:
    from gateway.app.audit import verify
    from gateway.model.problems import GatewayError

    try:
        extra = _read_checkpoint_files(args.checkpoint)
        ctx = _open(args.config)
    except (GatewayError, OSError, ValueError) as exc:
        return report(exc)
    with ctx:
        try:
            result = verify(ctx, extra)
        except (GatewayError, OSError) as exc:  # the key folder's seal certificates
            return report(exc)
    print(result.summary())
    if result.intact and result.checkpoints_checked == 0:
        _say(
            "внимание: контрольных точек нет — обрезку и переписывание хвоста журнала "
            "обнаружить нечем (gateway audit checkpoint)"
        )
    return EXIT_OK if result.intact else EXIT_TAMPERED


def _open_range(args: argparse.Namespace) -> Any:
    """``--from``/``--to``, the context and (``--purposes``) the purpose reader of ``audit
    export`` and ``audit show``; or the exit code of the error already reported."""
    from gateway.app.audit import parse_bound
    from gateway.model.problems import GatewayError

    try:
        start, end = parse_bound(args.start), parse_bound(args.end)
    except ValueError:
        return fail(
            "--from/--to — номер события или время ISO 8601 (2026-11-01T00:00:00Z)",
            "INVALID_ARGUMENT",
        )
    try:
        ctx = _open(args.config)
    except (GatewayError, OSError) as exc:
        return report(exc)
    try:
        purposes = _purpose_reader(ctx) if args.purposes else None
    except (GatewayError, OSError) as exc:
        ctx.close()
        return report(exc)
    return start, end, ctx, purposes


def _purpose_reader(ctx: AppContext) -> tuple[PurposeReader, Any]:
    """The reader of sealed purposes (refused unless the actor may read the trail) and the key
    store holding its KEK ring, to close after."""
    from gateway.app.audit import PurposeReader
    from gateway.crypto.keys.kek_ring import load_kek_ring
    from gateway.crypto.keys.keystore import KeyStore

    assert ctx.config is not None
    keys = KeyStore.from_config(ctx.config)
    try:
        return PurposeReader(ctx, load_kek_ring(keys)), keys
    except BaseException:
        keys.close()
        raise


def _range(ctx: AppContext, start: Any, end: Any) -> Any:
    from gateway.app.audit import events_in_range

    (seq_from, time_from), (seq_to, time_to) = start, end
    return events_in_range(ctx, seq_from=seq_from, seq_to=seq_to, since=time_from, until=time_to)


def _said_purposes(reader: PurposeReader) -> None:
    _say(
        f"цели ознакомления расшифрованы для аудитора: {reader.opened}"
        + (f", не читаются: {reader.unreadable}" if reader.unreadable else "")
        + " (записано в журнал: audit.purposes.read)"
    )


def _export(args: argparse.Namespace) -> int:
    from gateway.app.audit import export_lines

    opened = _open_range(args)
    if isinstance(opened, int):
        return opened
    (seq_from, since), (seq_to, until), ctx, with_purposes = opened
    purposes = with_purposes[0] if with_purposes else None
    written = -1  # the header is not an event
    try:
        with open(args.out, "x", encoding="utf-8") as out:
            lines = export_lines(
                ctx, seq_from=seq_from, seq_to=seq_to, since=since, until=until, purposes=purposes
            )
            for line in lines:
                out.write(line + "\n")
                written += 1
        if purposes is not None:
            _said_purposes(purposes)
    except FileExistsError:
        return fail(f"файл {args.out} уже есть; он не перезаписывается", "FILE_EXISTS")
    finally:
        ctx.close()
        if with_purposes:
            with_purposes[1].close()
    _say(f"выгружено событий: {written} → {args.out} (записано в журнал: audit.exported)")
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from gateway.app.audit import unknown_kind

    if args.kind is not None and (why := unknown_kind(args.kind)) is not None:
        return fail(f"--kind: {why}", "INVALID_ARGUMENT")
    opened = _open_range(args)
    if isinstance(opened, int):
        return opened
    start, end, ctx, with_purposes = opened
    purposes = with_purposes[0] if with_purposes else None
    try:
        for e in _range(ctx, start, end):
            if args.kind is None or e.kind == args.kind:
                _print_event(e, purposes.text(e) if purposes else None)
        if purposes is not None:
            purposes.record("show")
            _said_purposes(purposes)
    finally:
        ctx.close()
        if with_purposes:
            with_purposes[1].close()
    return EXIT_OK


def _print_event(e: Any, purpose: str | None) -> None:
    from gateway.app.audit import SEALED_KEY

    subjects = " ".join(f"{k}={v}" for k, v in sorted(e.subjects.items()))
    shown = {k: ("(sealed)" if k == SEALED_KEY else v) for k, v in e.details.items()}
    details = json.dumps(shown, ensure_ascii=False, sort_keys=True)
    at = e.at.astimezone(UTC).isoformat(timespec="seconds")
    print(f"{e.seq} {at} {e.actor} {e.kind} {subjects} {details}".replace("  ", " "))
    if purpose is not None:
        print(f"    цель ознакомления (расшифрована): {purpose}")


def _verify_export(args: argparse.Namespace) -> int:
    from gateway.app.audit import off_node_seal, verify_export
    from gateway.crypto.certificates import load_pem_certificates
    from gateway.crypto.trust import load_crl

    if args.checkpoint and not args.seal:
        return fail(
            "--checkpoint: укажите сертификат печати органа (--seal CERT.pem, из справочника "
            "органов или `gateway keys publish --json`): сертификат, сохранённый рядом с "
            "контрольной точкой, сам по себе ничего не доказывает",
            "SEAL_CERTIFICATE_REQUIRED",
        )
    if args.crl and not args.ca:
        return fail(
            "--crl: укажите сертификат УЦ, подписавшего список отзыва (--ca CA.pem): список "
            "без проверки его подписи ничего не доказывает",
            "CA_CERTIFICATE_REQUIRED",
        )
    try:
        seal = [c for path in args.seal for c in load_pem_certificates(path.read_bytes())]
        authorities = [c for path in args.ca for c in load_pem_certificates(path.read_bytes())]
        crls = [load_crl(path.read_bytes()) for path in args.crl]
        checkpoints = _read_checkpoint_files(args.checkpoint)
        lines = args.file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        return report(exc)
    except ValueError as exc:
        return fail(
            f"--seal / --ca / --crl / --checkpoint: {exc}", "FILE_INVALID", ExitCode.REFUSED
        )
    try:
        known = off_node_seal(seal, authorities, crls)
    except ValueError as exc:
        return fail(
            f"--seal / --ca / --crl: {exc}; дайте сертификат УЦ, выпустившего печать, и его "
            "действующий список отзыва (из справочника органов или от УЦ)",
            "REVOCATION_UNKNOWN",
            ExitCode.REFUSED,
        )
    try:
        checked = verify_export(lines, checkpoints, known.signers, known.trust)
    except (ValueError, KeyError, IndexError) as exc:
        return fail(
            f"{args.file} — не выгрузка журнала аудита ({exc}); выгрузите участок командой "
            "`gateway audit export`",
            "EXPORT_INVALID",
            ExitCode.REFUSED,
        )
    if checked.broken_at is not None:
        print(f"участок журнала НАРУШЕН на событии {checked.broken_at}: {checked.reason}")
        return EXIT_TAMPERED
    if checked.reason:
        print(checked.reason)
        return EXIT_TAMPERED
    print(f"участок журнала цел: {checked.checked} событий")
    if checkpoints and known.revocations_as_of is not None:
        as_of = f"{known.revocations_as_of:%Y-%m-%d %H:%M} UTC"
        print(f"отзывы печати проверены по спискам отзыва от {as_of}")
        until = known.revocations_until
        if until is not None and until < datetime.now(UTC):
            _say(
                f"внимание: список отзыва устарел — следующий ожидался к {until:%Y-%m-%d %H:%M} "
                f"UTC; отзыв печати после {as_of} в нём не виден: возьмите действующий у УЦ"
            )
    elif checkpoints:
        _say(
            "внимание: отзывы печати не проверены — укажите --ca и --crl (сертификат УЦ печати и "
            "его список отзыва), иначе контрольная точка отозванной печати принимается"
        )
    return EXIT_OK


def _checkpoint(args: argparse.Namespace) -> int:
    from gateway.app.audit import checkpoint as sign_head
    from gateway.app.audit_checkpoints import checkpoint_file_line
    from gateway.crypto.keys.keystore import KeyStore
    from gateway.model.problems import GatewayError

    try:
        ctx = _open(args.config)
    except (GatewayError, OSError) as exc:
        return report(exc)
    with ctx:
        assert ctx.config is not None
        try:
            keys = KeyStore.from_config(ctx.config)
            seal = keys.seal()
        except (GatewayError, OSError) as exc:
            return report(exc)
        try:
            checkpoint = sign_head(ctx, seal)
        finally:
            keys.close()
    print(
        f"контрольная точка {checkpoint.checkpoint_id}: событие {checkpoint.seq}, хеш "
        f"{checkpoint.hash.hex()}, подписана печатью {seal.body_id}"
    )
    if args.out is not None:
        with open(args.out, "a", encoding="utf-8") as out:
            out.write(checkpoint_file_line(checkpoint) + "\n")
        _say(f"дописана в {args.out}")
    return EXIT_OK
