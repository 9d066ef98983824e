"""Writes the table of audit events into docs/purge-and-audit.md («The events»), between its
markers, from :data:`gateway.store.audit_events.AUDIT_EVENTS` (tests/docs/test_audit_events_doc.py
fails when they differ)::

    python -m gateway.store.audit_doc            # rewrite the table
    python -m gateway.store.audit_doc --check    # exit 1 when the doc is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.store.audit_events import AUDIT_EVENTS, events_table

__all__ = ["BEGIN", "DOC", "END", "main", "render_doc"]

DOC = Path("docs") / "purge-and-audit.md"
BEGIN = (
    "<!-- Generated from gateway.store.audit_events.AUDIT_EVENTS: edit it there, then run\n"
    "     python -m gateway.store.audit_doc -->\n"
)
END = "<!-- end of the generated table -->\n"


def render_doc(text: str) -> str:
    """``text`` (the doc) with the table between :data:`BEGIN` and :data:`END` regenerated."""
    start = text.index(BEGIN) + len(BEGIN)
    stop = text.index(END, start)
    return text[:start] + events_table() + text[stop:]


def main(argv: list[str]) -> int:
    """Rewrite the table in docs/purge-and-audit.md under the current folder (the checkout)
    when it differs; with ``--check``, only say so (exit 1)."""
    parser = argparse.ArgumentParser(
        prog="python -m gateway.store.audit_doc",
        description=f"Regenerate the table of audit events in {DOC}.",
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    check = parser.parse_args(argv).check
    current = DOC.read_text(encoding="utf-8")
    text = render_doc(current)
    stale = text != current
    if stale and not check:
        DOC.write_text(text, encoding="utf-8")
    state = ("out of date" if check else "rewritten") if stale else "up to date"
    print(f"{DOC}: the table of {len(AUDIT_EVENTS)} audit event codes is {state}")
    return 1 if stale and check else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
