"""What one full-size hostile request costs a receiver in memory:
``.venv/bin/python benchmarks/receive_memory.py [--mib N]``.

A real signed request, its body padded with text to ``N`` MiB (default: just under
``MAX_MESSAGE_BYTES``; in many elements, each under libxml2's text cap), passes the hardened
parser, so the receiver verifies it — and refuses it (the body's digest no longer matches). This
is the most a peer can make a node hold for one request (docs/transport.md, Limits): the
figure ``BODY_BYTES_IN_FLIGHT`` is sized by. Two nodes in this process; the kernel's peak-RSS
mark is reset just before ``Node.receive`` and read after it (``VmHWM``: libxml2's trees
included). The last line is JSON: ``bytes``, ``rss_before_mb``, ``peak_mb``, ``growth_factor``
(the peak's growth over the request's size), the receive's ``disposition`` and ``code``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.gateway_hop import request_document  # noqa: E402

BODY = b'<env:Body Id="body">'
FILLER = b"<pad>" + b"x" * 1600 + b"</pad>"


def _status(key: str) -> int:
    found = re.search(rf"{key}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    assert found is not None
    return int(found.group(1)) * 1024


def main(argv: list[str] | None = None) -> int:
    from gateway.model.limits import MAX_MESSAGE_BYTES

    parser = argparse.ArgumentParser(description="peak memory of receiving one padded request")
    parser.add_argument("--mib", type=float, default=(MAX_MESSAGE_BYTES - 1024) / 2**20)
    args = parser.parse_args(argv)

    from gateway.config import NodeConfig
    from gateway.demo.setup import build_world
    from gateway.exchange.node import Node

    with tempfile.TemporaryDirectory(prefix="gw-memory-") as tmp:
        world = build_world(Path(tmp), now=datetime.now(UTC), bodies=("RU-FSSP", "KZ-MJ"))
        sender, receiver = (
            Node.from_config(NodeConfig.from_toml(world.nodes[body].config_path))
            for body in ("RU-FSSP", "KZ-MJ")
        )
        try:
            header, _ = sender.submit(request_document(), actor="benchmark")
            (claim,) = [
                c for c in sender.claim_due("memory", 64) if c.message_id == header.message_id
            ]
            signed = sender.outgoing(claim).wire
            size = int(args.mib * 2**20)
            padded = signed.replace(BODY, BODY + FILLER * ((size - len(signed)) // len(FILLER)))
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            before = _status("VmRSS")
            answer = receiver.receive(sender.body_id, padded)
            peak = _status("VmHWM")
        finally:
            sender.close()
            receiver.close()
    result = {
        "bytes": len(padded),
        "rss_before_mb": round(before / 2**20, 1),
        "peak_mb": round(peak / 2**20, 1),
        "growth_factor": round((peak - before) / len(padded), 2),
        "disposition": str(answer.disposition),
        "code": answer.code,
    }
    print(f"{'request MiB':>12} {'RSS before':>11} {'peak':>7} {'growth':>7}  refused with")
    print(
        f"{len(padded) / 2**20:12.1f} {result['rss_before_mb']:11.1f} {result['peak_mb']:7.1f} "
        f"{result['growth_factor']:6.2f}x  {result['disposition']} {result['code']}"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
