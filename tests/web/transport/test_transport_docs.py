"""docs/transport.md's table of the peer endpoint's refusals is the code's: every code of
:class:`PeerErrorCode` is listed with the status the endpoint sends, and nothing else is."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.web.peer_server import (
    REPR_DIGEST,
    UPLOAD_LENGTH,
    UPLOAD_OFFSET,
    PeerErrorCode,
    refusal,
)

DOC = Path(__file__).parents[3] / "docs" / "transport.md"


def _documented() -> dict[str, set[int]]:
    text = DOC.read_text(encoding="utf-8")
    table = text.split("## Refusals of the peer endpoint", 1)[1].split("\n## ", 1)[0]
    found: dict[str, set[int]] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not re.match(r"\d{3}", cells[0]):
            continue
        statuses = [int(s) for s in re.findall(r"\d{3}", cells[0])]
        codes = re.findall(r"`([A-Z_]+)`", cells[1])
        for status, code in zip(statuses, codes, strict=True):
            found.setdefault(code, set()).add(status)
    return found


def test_every_peer_refusal_code_is_documented_with_its_status() -> None:
    documented = _documented()
    sent = {code.value: {refusal(code).status} for code in PeerErrorCode}
    assert documented == sent


def test_the_resumable_part_headers_documented_are_the_ones_sent_and_read() -> None:
    """docs/attachments.md's table of a resumable part's headers names the code's constants."""
    text = (DOC.parent / "attachments.md").read_text(encoding="utf-8")
    section = text.split("## Resumable deliveries", 1)[1].split("\n## ", 1)[0]
    table = section.split("| part header | value |", 1)[1].split("\n\n", 1)[0]
    documented = set(re.findall(r"^\| `([A-Za-z-]+)` \|", table, flags=re.MULTILINE))
    assert documented == {UPLOAD_LENGTH, UPLOAD_OFFSET, REPR_DIGEST}
