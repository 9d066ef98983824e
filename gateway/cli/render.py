"""``gateway render --config NODE.toml FILE.xml OUT.pdf``: the signed PDF rendition
(:mod:`gateway.app.renditions`)."""

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
    from gateway.app.renditions import render_document
    from gateway.config import NodeConfig

    config = NodeConfig.from_toml(args.config)
    signed = render_document(config, args.file.read_bytes(), datetime.now(UTC))
    args.out.write_bytes(signed)
    print(f"{args.out}: {len(signed)} байт, подписано печатью {config.node.body_id}")
    return 0
