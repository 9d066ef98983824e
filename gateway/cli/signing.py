"""``gateway sign`` and ``gateway verify``: one envelope, from a file.

    gateway sign   --config NODE.toml FILE.xml [--no-official] [--official NAME] > SIGNED.xml
    gateway verify --config NODE.toml FILE.xml [--json] [--seal-only] [--expected-sender ID]

``verify`` exits 0 only when every signature is TOTAL_PASSED, 1 otherwise, 2 on a
configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.config import NodeConfig
from gateway.crypto.keystore import KeyStore
from gateway.crypto.pkcs11 import TokenError
from gateway.crypto.trust import TrustList
from gateway.crypto.xades import sign_document, verify_document
from gateway.model.problems import ConfigurationError, DocumentRejected

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


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
    p.add_argument("file", type=Path, metavar="FILE.xml")
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
    try:
        config = NodeConfig.from_toml(args.config)
        store = KeyStore.from_config(config)
        official = None if args.no_official else store.official(args.official)
        seal = store.seal()
        data = args.file.read_bytes()
        signed = sign_document(
            data, official, seal, datetime.now(UTC), timestamper=_timestamper(config)
        )
    except DocumentRejected as exc:
        for problem in exc.problems:
            print(f"error: {problem.code} at {problem.path}: {problem.message_en}", file=sys.stderr)
        return EXIT_FAILED
    except (ConfigurationError, TokenError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    sys.stdout.buffer.write(signed)
    sys.stdout.buffer.flush()
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        config = NodeConfig.from_toml(args.config)
        trust = TrustList.from_config(config)
        data = args.file.read_bytes()
        at = datetime.now(UTC)
        if args.at:
            at = datetime.fromisoformat(args.at.replace("Z", "+00:00"))
            if at.tzinfo is None:
                raise ConfigurationError("--at needs a time zone, e.g. 2026-11-23T10:00:00Z")
    except (ConfigurationError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    verified = verify_document(
        data, trust, at, expected_sender=args.expected_sender, require_official=not args.seal_only
    )
    if args.json:
        print(json.dumps(verified.report.to_json(), ensure_ascii=False, indent=2, default=str))
    else:
        print(verified.report.summary())
    return EXIT_OK if verified.passed else EXIT_FAILED
