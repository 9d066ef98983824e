"""``python -m tests.store.audit_child URL WORKER ROUNDS``: a second process appending to the
audit chain (one to three events per transaction) while the test's other processes do too."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from gateway.store import audit, open_store


def main(url: str, worker: str, rounds: int) -> None:
    store = open_store(url)
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    try:
        for i in range(rounds):
            with store.transaction() as conn:
                for j in range(1 + i % 3):
                    audit.append(
                        conn, now=now, actor=worker, kind="document.read", details={"i": i, "j": j}
                    )
    finally:
        store.dispose()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
