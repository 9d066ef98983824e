"""``gateway render --config NODE.toml FILE.xml OUT.pdf``: the signed PDF rendition.

The PDF shows every field of the document in Russian, the sender and recipient, the signatures
found in it and — for a confidential document — «Конфиденциально» on every page; it is signed
PAdES B-B (B-T when ``[tsa] url`` is set) with this body's seal: the "original" of CIS Art. 10.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("render", help="a signed PDF rendition of a document (PAdES)")
    p.add_argument("--config", required=True, type=Path, metavar="NODE.toml")
    p.add_argument("file", type=Path, metavar="FILE.xml")
    p.add_argument("out", type=Path, metavar="OUT.pdf")
    p.set_defaults(handler=cmd_render)


def cmd_render(args: argparse.Namespace) -> int:
    from gateway.config import NodeConfig
    from gateway.crypto.keys.keystore import KeyStore
    from gateway.crypto.pades import sign_pdf
    from gateway.render.rendition import render_pdf

    config = NodeConfig.from_toml(args.config)
    keys = KeyStore.from_config(config)
    pdf = render_pdf(args.file.read_bytes(), generated_at=datetime.now(UTC))
    timestamper = None
    if config.tsa.url:
        from pyhanko.sign.timestamps import HTTPTimeStamper

        timestamper = HTTPTimeStamper(config.tsa.url)
    signer = keys.seal().pdf_signer()
    signed = sign_pdf(
        pdf,
        signer,
        reason="Электронная копия документа обмена",
        location=config.node.body_id,
        timestamper=timestamper,
    )
    args.out.write_bytes(signed)
    print(f"{args.out}: {len(signed)} байт, подписано печатью {config.node.body_id}")
    return 0
