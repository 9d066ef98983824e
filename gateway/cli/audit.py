"""``gateway audit``: check, export and checkpoint the hash-chained audit trail.

    gateway audit verify --config NODE.toml [--checkpoint FILE]...    (recorded: audit.verified)
    gateway audit show --config NODE.toml [--from A] [--to B] [--kind KIND] [--purposes]
    gateway audit export --config NODE.toml [--from A] [--to B] --out FILE [--purposes]
    gateway audit checkpoint --config NODE.toml [--out FILE]
    gateway audit verify-export FILE [--checkpoint FILE]

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
EXPORT_FORMAT = "gateway-audit-export/1"
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


def _bound(text: str | None) -> tuple[int | None, datetime | None]:
    if text is None:
        return None, None
    if text.isdigit():
        return int(text), None
    value = datetime.fromisoformat(text)
    return None, (value if value.tzinfo else value.replace(tzinfo=UTC))


def _open_range(args: argparse.Namespace) -> Any:
    """``--from``/``--to``, the context and (``--purposes``) the purpose reader of ``audit
    export`` and ``audit show``; or the exit code of the error already reported."""
    from gateway.model.problems import GatewayError

    try:
        start, end = _bound(args.start), _bound(args.end)
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


def _said_purposes(reader: PurposeReader, command: str) -> None:
    reader.record(command)
    _say(
        f"цели ознакомления расшифрованы для аудитора: {reader.opened}"
        + (f", не читаются: {reader.unreadable}" if reader.unreadable else "")
        + " (записано в журнал: audit.purposes.read)"
    )


def _export(args: argparse.Namespace) -> int:
    from gateway.app.audit import trail_head

    opened = _open_range(args)
    if isinstance(opened, int):
        return opened
    start, end, ctx, with_purposes = opened
    purposes = with_purposes[0] if with_purposes else None
    assert ctx.config is not None
    written = 0
    try:
        with open(args.out, "x", encoding="utf-8") as out:
            head = trail_head(ctx)
            out.write(
                json.dumps(
                    {
                        "format": EXPORT_FORMAT,
                        "body_id": ctx.config.node.body_id,
                        "exported_at": datetime.now(UTC).isoformat(),
                        "head_seq": head.seq,
                        "head_hash": head.hash.hex(),
                        "hash_rule": "sha256(prev_hash || canonical_json({seq, at, actor, kind, "
                        "subjects, details})); canonical: sorted keys, no spaces, UTF-8; at: "
                        "UTC ISO 8601 with microseconds",
                        "purposes_decrypted": purposes is not None,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
            for e in _range(ctx, start, end):
                out.write(_event_line(e, purposes.text(e) if purposes else None) + "\n")
                written += 1
        if purposes is not None:
            _said_purposes(purposes, "export")
    except FileExistsError:
        return fail(f"файл {args.out} уже есть; он не перезаписывается", "FILE_EXISTS")
    finally:
        ctx.close()
        if with_purposes:
            with_purposes[1].close()
    _say(f"выгружено событий: {written} → {args.out}")
    return EXIT_OK


def _event_line(e: Any, purpose: str | None = None) -> str:
    line = {
        "seq": e.seq,
        "at": e.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": e.actor,
        "kind": e.kind,
        "subjects": dict(e.subjects),
        "details": dict(e.details),
        "prev_hash": e.prev_hash.hex(),
        "hash": e.hash.hex(),
    }
    if purpose is not None:
        # Beside the details, not in them: the hash covers the sealed text, which stays.
        line["purpose"] = purpose
    return json.dumps(line, ensure_ascii=False, sort_keys=True)


def _show(args: argparse.Namespace) -> int:
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
            _said_purposes(purposes, "show")
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
    from gateway.app.audit import verify_export_lines
    from gateway.crypto.statements import verify_statement

    try:
        lines = args.file.read_text(encoding="utf-8").splitlines()
        header = json.loads(lines[0])
        if header.get("format") != EXPORT_FORMAT:
            raise ValueError(f"not a {EXPORT_FORMAT} file")
        checkpoints = _read_checkpoint_files(args.checkpoint)
        checked, broken, reason = verify_export_lines(lines)
    except (OSError, ValueError, KeyError, IndexError) as exc:
        return report(exc)
    if broken is not None:
        print(f"участок журнала НАРУШЕН на событии {broken}: {reason}")
        return EXIT_TAMPERED
    hashes = {}
    for line in lines[1:]:
        if line.strip():
            e = json.loads(line)
            hashes[int(e["seq"])] = e["hash"]
    for checkpoint, where in checkpoints:
        check = verify_statement(
            checkpoint.signed.statement, checkpoint.signed.signature, checkpoint.signed.certificate
        )
        if not check.ok:
            print(f"контрольная точка {where}: {check.reason}")
            return EXIT_TAMPERED
        if checkpoint.seq in hashes and hashes[checkpoint.seq] != checkpoint.hash.hex():
            print(
                f"участок журнала НАРУШЕН на событии {checkpoint.seq}: контрольная точка {where} "
                "подписала другой хеш (хвост переписан)"
            )
            return EXIT_TAMPERED
    print(f"участок журнала цел: {checked} событий")
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
