"""``gateway audit``: check, export and checkpoint the hash-chained audit trail.

    gateway audit verify --config NODE.toml [--checkpoint FILE]...
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
    from gateway.config import NodeConfig

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


def _open(path: Path) -> tuple[NodeConfig, Any]:
    from gateway.app.context import AppContext

    ctx = AppContext.open(path)
    assert ctx.config is not None
    return ctx.config, ctx.store


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
    from gateway.app.audit_checkpoints import verify_trail
    from gateway.cli.purge import _seal_certificates
    from gateway.model.problems import GatewayError

    try:
        config, store = _open(args.config)
        expected = _seal_certificates(config)
        extra = _read_checkpoint_files(args.checkpoint)
    except (GatewayError, OSError, ValueError) as exc:
        return report(exc)
    try:
        result = verify_trail(store, expected, extra)
    finally:
        store.dispose()
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
    """``--from``/``--to``, the store and (``--purposes``) the purpose reader of ``audit export``
    and ``audit show``; or the exit code of the error already reported."""
    from gateway.model.problems import GatewayError

    try:
        start, end = _bound(args.start), _bound(args.end)
    except ValueError:
        return fail(
            "--from/--to — номер события или время ISO 8601 (2026-11-01T00:00:00Z)",
            "INVALID_ARGUMENT",
        )
    try:
        config, store = _open(args.config)
    except (GatewayError, OSError) as exc:
        return report(exc)
    try:
        purposes = _PurposeReader.open(config) if args.purposes else None
    except (GatewayError, OSError) as exc:
        store.dispose()
        return report(exc)
    return start, end, config, store, purposes


def _export(args: argparse.Namespace) -> int:
    from gateway.store import audit

    opened = _open_range(args)
    if isinstance(opened, int):
        return opened
    (seq_from, time_from), (seq_to, time_to), config, store, purposes = opened
    written = 0
    try:
        with open(args.out, "x", encoding="utf-8") as out, store.read() as conn:
            head_seq, head_hash = audit.head(conn)
            out.write(
                json.dumps(
                    {
                        "format": EXPORT_FORMAT,
                        "body_id": config.node.body_id,
                        "exported_at": datetime.now(UTC).isoformat(),
                        "head_seq": head_seq,
                        "head_hash": head_hash.hex(),
                        "hash_rule": "sha256(prev_hash || canonical_json({seq, at, actor, kind, "
                        "subjects, details})); canonical: sorted keys, no spaces, UTF-8; at: "
                        "UTC ISO 8601 with microseconds",
                        "purposes_decrypted": purposes is not None,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
            after = (seq_from - 1) if seq_from else 0
            while True:
                page = audit.events_in_range(
                    conn, after_seq=after, up_to_seq=seq_to, since=time_from, until=time_to
                )
                for e in page:
                    out.write(_event_line(e, purposes.text(e) if purposes else None) + "\n")
                    written += 1
                if len(page) < audit.VERIFY_BATCH:
                    break
                after = page[-1].seq
        if purposes is not None:
            purposes.record(store, "export")
    except FileExistsError:
        return fail(f"файл {args.out} уже есть; он не перезаписывается", "FILE_EXISTS")
    finally:
        store.dispose()
        if purposes is not None:
            purposes.close()
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


class _PurposeReader:
    """Opens the purposes sealed in read events for an auditor and counts what it opened."""

    def __init__(self, keys: Any, ring: Any) -> None:
        self.keys = keys
        self.ring = ring
        self.opened = 0
        self.unreadable = 0

    @classmethod
    def open(cls, config: NodeConfig) -> _PurposeReader:
        """Refuse unless the command line's actor may read the audit trail; load the KEK ring."""
        from gateway.app.context import command_line_actor
        from gateway.crypto.kek_rotation import load_kek_ring
        from gateway.crypto.keystore import KeyStore
        from gateway.exchange.service import Action, access_refusal

        refusal = access_refusal(command_line_actor(), Action.READ_AUDIT)
        if refusal is not None:
            raise refusal
        keys = KeyStore.from_config(config)
        try:
            return cls(keys, load_kek_ring(keys))
        except BaseException:
            keys.close()
            raise

    def text(self, e: Any) -> str | None:
        """The event's purpose in clear; None when it records none; a note when it cannot be
        opened (altered, or sealed under a KEK since destroyed)."""
        from gateway.store import read_purposes

        if not read_purposes.has_sealed_purpose(e.details):
            return None
        try:
            purpose = read_purposes.open_purpose(
                e.details, self.ring, kind=e.kind, actor=e.actor, subjects=e.subjects
            )
        except read_purposes.PurposeUnreadable as exc:
            self.unreadable += 1
            return f"[не читается: {exc}]"
        self.opened += 1
        return purpose

    def record(self, store: Any, command: str) -> None:
        """Reading the purposes is a use of personal data too: recorded, and said."""
        from gateway.app.context import command_line_actor
        from gateway.store import audit

        with store.transaction() as conn:
            audit.append(
                conn,
                now=datetime.now(UTC),
                actor=command_line_actor().name,
                kind="audit.purposes.read",
                subjects={},
                details={
                    "command": command,
                    "opened": self.opened,
                    "unreadable": self.unreadable,
                },
            )
        _say(
            f"цели ознакомления расшифрованы для аудитора: {self.opened}"
            + (f", не читаются: {self.unreadable}" if self.unreadable else "")
            + " (записано в журнал: audit.purposes.read)"
        )

    def close(self) -> None:
        self.keys.close()


def _show(args: argparse.Namespace) -> int:
    from gateway.store import audit

    opened = _open_range(args)
    if isinstance(opened, int):
        return opened
    (seq_from, time_from), (seq_to, time_to), _config, store, purposes = opened
    try:
        with store.read() as conn:
            after = (seq_from - 1) if seq_from else 0
            while True:
                page = audit.events_in_range(
                    conn, after_seq=after, up_to_seq=seq_to, since=time_from, until=time_to
                )
                for e in page:
                    if args.kind is None or e.kind == args.kind:
                        _print_event(e, purposes.text(e) if purposes else None)
                if len(page) < audit.VERIFY_BATCH:
                    break
                after = page[-1].seq
        if purposes is not None:
            purposes.record(store, "show")
    finally:
        store.dispose()
        if purposes is not None:
            purposes.close()
    return EXIT_OK


def _print_event(e: Any, purpose: str | None) -> None:
    subjects = " ".join(f"{k}={v}" for k, v in sorted(e.subjects.items()))
    from gateway.store.read_purposes import SEALED_KEY

    shown = {k: ("(sealed)" if k == SEALED_KEY else v) for k, v in e.details.items()}
    details = json.dumps(shown, ensure_ascii=False, sort_keys=True)
    at = e.at.astimezone(UTC).isoformat(timespec="seconds")
    print(f"{e.seq} {at} {e.actor} {e.kind} {subjects} {details}".replace("  ", " "))
    if purpose is not None:
        print(f"    цель ознакомления (расшифрована): {purpose}")


def verify_export_lines(lines: list[str]) -> tuple[int, int | None, str]:
    """Re-check an exported segment: each event's hash from its content and its predecessor's
    hash. Returns ``(events checked, broken seq or None, reason)``. The first event's own
    ``prev_hash`` is taken on trust (it is the hash of the event before the segment)."""
    from gateway.store.audit import event_hash

    checked = 0
    prev: tuple[int, bytes] | None = None
    for line in lines[1:]:
        if not line.strip():
            continue
        e = json.loads(line)
        seq = int(e["seq"])
        prev_hash = bytes.fromhex(e["prev_hash"])
        if prev is not None:
            if seq != prev[0] + 1:
                return checked, prev[0] + 1, f"event {prev[0] + 1} is missing (deleted)"
            if prev_hash != prev[1]:
                return checked, seq, f"event {seq} does not follow event {seq - 1}"
        digest = event_hash(
            prev_hash,
            seq,
            datetime.fromisoformat(e["at"]),
            e["actor"],
            e["kind"],
            json.dumps(e["subjects"]),
            json.dumps(e["details"]),
        )
        if digest.hex() != e["hash"]:
            return checked, seq, f"event {seq} was modified: its hash does not match its content"
        prev = (seq, digest)
        checked += 1
    return checked, None, ""


def _verify_export(args: argparse.Namespace) -> int:
    from gateway.app.audit_checkpoints import verify_statement

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
    from gateway.app.audit_checkpoints import checkpoint_file_line, create_checkpoint
    from gateway.cli.purge import cli_actor
    from gateway.crypto.keystore import KeyStore
    from gateway.model.problems import GatewayError

    try:
        config, store = _open(args.config)
        keys = KeyStore.from_config(config)
        seal = keys.seal()
    except (GatewayError, OSError) as exc:
        return report(exc)
    try:
        checkpoint = create_checkpoint(store, seal, actor=cli_actor(), now=datetime.now(UTC))
    finally:
        store.dispose()
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
