"""``gateway sign`` and ``gateway verify``: one envelope, from a file.

    gateway sign   --config NODE.toml FILE.xml [--no-official] [--official NAME] > SIGNED.xml
    gateway verify --config NODE.toml FILE.xml [--json] [--seal-only] [--expected-sender ID]
    gateway verify --config NODE.toml --message MESSAGE-ID [--json]

``verify`` consults the node's records (the store of ``--config``): when the node holds the
document (same MessageId, same SHA-256) and its signed receipt or an audit checkpoint after it,
that is the proof of existence that keeps the signatures valid after a later revocation or
expiry of the signer's certificate (docs/key-rotation.md). A file is verified without the
records when they cannot be read (a note on stderr says so). ``--message`` verifies a stored
document by its id.

``verify`` exits 0 only when every signature is TOTAL_PASSED, 1 otherwise, 2 on a
configuration error, 3 when a file or token is unavailable (docs/operations.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.errors import CommandError, ExitCode, fail

if TYPE_CHECKING:
    from gateway.config import NodeConfig
    from gateway.crypto.report import ExistenceProof

EXIT_OK = ExitCode.OK
EXIT_FAILED = ExitCode.REFUSED


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("sign", help="sign an envelope (official + seal), to stdout")
    p.add_argument("--config", required=True, type=Path, metavar="NODE.toml")
    p.add_argument("file", type=Path, metavar="FILE.xml")
    p.add_argument(
        "--no-official",
        action="store_true",
        help="seal only (receipts, rejections: machine documents)",
    )
    p.add_argument(
        "--official",
        default=None,
        metavar="NAME",
        help="official key name (default: [keys] official)",
    )
    p.set_defaults(handler=cmd_sign)

    p = subparsers.add_parser("verify", help="verify an envelope's signatures")
    p.add_argument("--config", required=True, type=Path, metavar="NODE.toml")
    p.add_argument("file", type=Path, metavar="FILE.xml", nargs="?")
    p.add_argument(
        "--message",
        default=None,
        metavar="MESSAGE-ID",
        help="verify the document the node stored under this id (instead of FILE.xml)",
    )
    p.add_argument("--json", action="store_true", help="the full report as JSON")
    p.add_argument("--seal-only", action="store_true", help="do not require an official")
    p.add_argument("--expected-sender", default=None, metavar="BODY-ID")
    p.add_argument(
        "--at",
        default=None,
        metavar="ISO-TIME",
        help="validation time (default: now), e.g. 2026-11-23T10:00:00Z",
    )
    p.set_defaults(handler=cmd_verify)


def _timestamper(config: NodeConfig) -> Any:
    if not config.tsa.url:
        return None
    from pyhanko.sign.timestamps import HTTPTimeStamper

    return HTTPTimeStamper(config.tsa.url)


def cmd_sign(args: argparse.Namespace) -> int:
    from gateway.config import NodeConfig
    from gateway.crypto.keys.keystore import KeyStore
    from gateway.crypto.xades import sign_document
    from gateway.model.problems import DocumentRejected

    config = NodeConfig.from_toml(args.config)
    store = KeyStore.from_config(config)
    official = None if args.no_official else store.official(args.official)
    seal = store.seal()
    data = args.file.read_bytes()
    try:
        signed = sign_document(
            data, official, seal, datetime.now(UTC), timestamper=_timestamper(config)
        )
    except DocumentRejected as exc:
        for problem in exc.problems[1:]:
            print(f"  {problem.code} {problem.path}: {problem.message_ru}", file=sys.stderr)
        first = exc.problems[0]
        return fail(f"{first.path}: {first.message_ru}", first.code, ExitCode.REFUSED)
    sys.stdout.buffer.write(signed)
    sys.stdout.buffer.flush()
    return EXIT_OK


def _verification_time(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise CommandError(
            f"--at {text!r}: нужно время ISO 8601 с часовым поясом, например 2026-11-23T10:00:00Z",
            "INVALID_ARGUMENT",
        )
    return at


def cmd_verify(args: argparse.Namespace) -> int:
    from gateway.config import NodeConfig
    from gateway.crypto.algorithms import suite_name
    from gateway.crypto.trust import TrustList
    from gateway.crypto.xades import verify_document

    if (args.file is None) == (args.message is None):
        raise CommandError(
            "укажите либо FILE.xml, либо --message MESSAGE-ID (одно из двух)", "INVALID_ARGUMENT"
        )
    at = _verification_time(args.at)
    config = NodeConfig.from_toml(args.config)
    trust = TrustList.from_config(config)
    data, existence = _from_records(config, args.file, args.message)
    verified = verify_document(
        data,
        trust,
        at,
        expected_sender=args.expected_sender,
        require_official=not args.seal_only,
        existence=existence,
    )
    suites = {s.role: suite_name(s.signature_algorithm) for s in verified.report.signatures}
    if args.json:
        data = verified.report.to_json()
        data["suites"] = suites
        print(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        print(verified.report.summary())
        print("suites: " + ", ".join(f"{role}: {suite}" for role, suite in suites.items()))
    return EXIT_OK if verified.passed else EXIT_FAILED


def _from_records(
    config: NodeConfig, file: Path | None, message_id: str | None
) -> tuple[bytes, ExistenceProof | None]:
    """The document (from FILE or the store) and the node's proof of its existence, if the
    node stores exactly this document (its MessageId and SHA-256) and holds a proof. A FILE is
    verified even when the records cannot be read (a note says so on stderr)."""
    from gateway.model.problems import DocumentRejected
    from gateway.xml.header import read_header
    from gateway.xml.parsing import parse_untrusted

    if file is None:
        assert message_id is not None
        return _stored(config, message_id, None)
    data = file.read_bytes()
    try:
        message_id = read_header(parse_untrusted(data)).message_id
    except (DocumentRejected, ValueError):
        return data, None  # not readable: the verification says why
    if config.database_url.startswith("sqlite") and not config.node.data_dir.is_dir():
        return data, None  # the node never ran: it has no records
    try:
        return _stored(config, message_id, data)
    except CommandError:
        return data, None  # the node does not store it: no record of it
    except Exception as exc:  # records unreadable (database down, no KEK): verify without
        print(
            f"ПРИМЕЧАНИЕ: записи узла не прочитаны ({type(exc).__name__}: {exc}); "
            "проверка без доказательства существования",
            file=sys.stderr,
        )
        return data, None


def _stored(
    config: NodeConfig, message_id: str, data: bytes | None
) -> tuple[bytes, ExistenceProof | None]:
    """From the node's store: the document (``data`` if given, else the stored one) and its
    proof of existence — None unless the stored document is exactly ``data``."""
    from gateway.app.context import AppContext
    from gateway.app.existence import MessageNotStored, stored_with_proof
    from gateway.crypto.keys.kek_ring import load_kek_ring
    from gateway.crypto.keys.keystore import KeyRole, KeyStore

    if config.database_url.startswith("sqlite") and not config.node.data_dir.is_dir():
        raise CommandError(
            f"каталога данных {config.node.data_dir} нет: узел ещё не запускался",
            "NODE_NOT_INITIALISED",
        )
    keys = KeyStore.from_config(config)
    try:
        with AppContext.from_config(config) as ctx:
            return stored_with_proof(
                ctx,
                load_kek_ring(keys),
                message_id,
                data,
                keys.generation_certificates(KeyRole.SEAL),
            )
    except MessageNotStored:
        raise CommandError(
            f"--message {message_id}: узел не хранит такого сообщения", "MESSAGE_NOT_FOUND"
        ) from None
    finally:
        keys.close()
