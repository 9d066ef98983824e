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

The work is :mod:`gateway.app.signing`'s. ``verify`` exits 0 only when every signature is
TOTAL_PASSED, 1 otherwise, 2 on a configuration error, 3 when a file or token is unavailable
(docs/operations.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.cli.errors import ExitCode, Failure, fail

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


def cmd_sign(args: argparse.Namespace) -> int:
    from gateway.app.signing import sign_file
    from gateway.config import NodeConfig
    from gateway.model.problems import DocumentRejected

    config = NodeConfig.from_toml(args.config)
    try:
        signed = sign_file(
            config,
            args.file.read_bytes(),
            datetime.now(UTC),
            official=None if args.no_official else (args.official or ""),
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
        raise Failure(
            f"--at {text!r}: нужно время ISO 8601 с часовым поясом, например 2026-11-23T10:00:00Z",
            "INVALID_ARGUMENT",
        )
    return at


def cmd_verify(args: argparse.Namespace) -> int:
    from gateway.app.signing import verify_file
    from gateway.config import NodeConfig

    if (args.file is None) == (args.message is None):
        raise Failure(
            "укажите либо FILE.xml, либо --message MESSAGE-ID (одно из двух)", "INVALID_ARGUMENT"
        )
    at = _verification_time(args.at)
    config = NodeConfig.from_toml(args.config)
    verified, suites = verify_file(
        config,
        args.file.read_bytes() if args.file is not None else None,
        args.message,
        at,
        expected_sender=args.expected_sender,
        require_official=not args.seal_only,
        note=lambda text: print(text, file=sys.stderr),
    )
    if args.json:
        data = verified.report.to_json()
        data["suites"] = suites
        print(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        print(verified.report.summary())
        print("suites: " + ", ".join(f"{role}: {suite}" for role, suite in suites.items()))
    return EXIT_OK if verified.passed else EXIT_FAILED
