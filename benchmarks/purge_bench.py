"""Purge benchmark: ``.venv/bin/python benchmarks/purge_bench.py [--db sqlite|postgresql|both]
[--count N] [--quick] [--batch-size N] [--pg-url URL]``.

Fills a fresh store with N expired messages (default 100,000 on SQLite, 1,000,000 on
PostgreSQL; ``--quick``: 10,000 each), two per conversation, each with a small payload, a
wrapped-key row and an attachment row, then runs the real purge (``gateway.jobs.purge.run_purge``,
signed report included) and measures wall time, throughput and memory. Memory is the process's
resident set (``/proc/self/statm``) and its peak (``getrusage`` maxrss), sampled after every
committed batch and printed at 10 %, 50 % and 100 % of the run: flat means the purge streams.
(tracemalloc would double the run time; RSS is what an operator sees.)

Rows are generated fast and are not real documents: PostgreSQL makes them server-side with
``generate_series``; SQLite takes bulk ``executemany`` inserts. The purge does not decrypt,
so random bytes stand for ciphertexts and wrapped keys.

Prints a table and, as the very last line, one JSON object:
``{"purge": {"sqlite": {...}, "postgresql": {...}}}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import secrets
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import sqlalchemy as sa  # noqa: E402

from gateway.config import KeysSection  # noqa: E402
from gateway.crypto.keystore import KeyStore  # noqa: E402
from gateway.demo.pki import build_demo_pki  # noqa: E402
from gateway.jobs.purge import PURGE_BATCH, run_purge  # noqa: E402
from gateway.jobs.retention import parse_policies  # noqa: E402
from gateway.store import Store, migrate, open_store  # noqa: E402
from gateway.store.tables import (  # noqa: E402
    attachments,
    conversations,
    message_keys,
    messages,
    tombstones,
)

DEFAULT_SQLITE = 100_000
DEFAULT_POSTGRES = 1_000_000
QUICK = 10_000
SQLITE_INSERT_CHUNK = 20_000
"""Rows per executemany on SQLite: one transaction each, a few MB of parameters."""
PG_INSERT_CHUNK = 250_000
"""Messages per server-side INSERT … SELECT on PostgreSQL: keeps each statement's WAL modest."""
PG_URL = os.environ.get("GATEWAY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
STORED_AT = datetime(2020, 1, 15, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
PASSPHRASE = b"purge-benchmark-passphrase"
POLICY = '[[policy]]\nname = "bench-received"\ncounts_from = "received"\nkeep = "5 years"\n'
MARKS = (0.10, 0.50, 1.00)


def rss_mib() -> float:
    """Current resident set size of this process, MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Result:
    dialect: str
    count: int
    generate_s: float = 0.0
    purge_s: float = 0.0
    per_s: float = 0.0
    rss_start_mib: float = 0.0
    memory_at: dict[str, dict[str, float]] = field(default_factory=dict)
    """``"10%"`` → ``{"rss_mib", "peak_mib"}`` sampled when that share was purged."""
    purged: int = 0
    left: int = 0
    batch_size: int = PURGE_BATCH


def _generate_sqlite(store: Store, count: int) -> None:
    for start in range(0, count, SQLITE_INSERT_CHUNK):
        n = min(SQLITE_INSERT_CHUNK, count - start)
        convs, msgs, keys, atts = [], [], [], []
        cid = ""
        for i in range(start, start + n):
            if i % 2 == 0:
                cid = str(uuid.UUID(int=i // 2 + 1))
                convs.append(
                    {
                        "conversation_id": cid,
                        "agreement": "cis-enforcement",
                        "requesting_party": "KZ-MJ",
                        "requested_party": "RU-FSSP",
                        "opening_kind": "Request",
                        "last_kind": "Request",
                        "state": "answered",
                        "confidential": False,
                        "deadline": None,
                        "opened_at": STORED_AT,
                        "updated_at": STORED_AT,
                        "version": 1,
                    }
                )
            mid = str(uuid.UUID(int=(1 << 64) + i))
            payload = secrets.token_bytes(64)
            msgs.append(
                {
                    "message_id": mid,
                    "conversation_id": cid,
                    "in_reply_to": None,
                    "direction": "in",
                    "agreement": "cis-enforcement",
                    "kind": "Request" if i % 2 == 0 else "Response",
                    "sender": "KZ-MJ",
                    "recipient": "RU-FSSP",
                    "created": STORED_AT,
                    "stored_at": STORED_AT,
                    "confidential": False,
                    "document_sha256": hashlib.sha256(payload).digest(),
                    "document_size": 64,
                    "payload_nonce": payload[:12],
                    "payload": payload,
                }
            )
            keys.append(
                {
                    "message_id": mid,
                    "kek_id": "bench-kek",
                    "wrapped_dek": payload[:40],
                    "wrapped_at": STORED_AT,
                }
            )
            atts.append(
                {
                    "message_id": mid,
                    "ordinal": 0,
                    "media_type": "application/pdf",
                    "size": 16,
                    "nonce": payload[:12],
                    "ciphertext": payload[:32],
                }
            )
        with store.transaction() as conn:
            conn.execute(conversations.insert(), convs)
            conn.execute(messages.insert(), msgs)
            conn.execute(message_keys.insert(), keys)
            conn.execute(attachments.insert(), atts)


def _generate_postgres(store: Store, count: int) -> None:
    at = STORED_AT.isoformat()
    for start in range(0, count, PG_INSERT_CHUNK):
        lo, hi = start, min(count, start + PG_INSERT_CHUNK) - 1
        params = {"lo": lo, "hi": hi, "at": at}
        with store.transaction() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO conversations (conversation_id, agreement, requesting_party, "
                    "requested_party, opening_kind, last_kind, state, confidential, opened_at, "
                    "updated_at, version) "
                    "SELECT md5('c' || (g / 2))::uuid::text, 'cis-enforcement', 'KZ-MJ', "
                    "'RU-FSSP', 'Request', 'Request', 'answered', false, "
                    "CAST(:at AS timestamptz), CAST(:at AS timestamptz), 1 "
                    "FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) g "
                    "WHERE g % 2 = 0"
                ),
                params,
            )
            conn.execute(
                sa.text(
                    "INSERT INTO messages (message_id, conversation_id, direction, agreement, "
                    "kind, sender, recipient, created, stored_at, confidential, "
                    "document_sha256, document_size, payload_nonce, payload) "
                    "SELECT md5('m' || g)::uuid::text, md5('c' || (g / 2))::uuid::text, 'in', "
                    "'cis-enforcement', CASE WHEN g % 2 = 0 THEN 'Request' ELSE 'Response' END, "
                    "'KZ-MJ', 'RU-FSSP', CAST(:at AS timestamptz), CAST(:at AS timestamptz), "
                    "false, sha256(decode(md5('p' || g), 'hex')), 64, "
                    "substr(decode(md5('n' || g), 'hex'), 1, 12), "
                    "decode(repeat(md5('p' || g), 4), 'hex') "
                    "FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) g"
                ),
                params,
            )
            conn.execute(
                sa.text(
                    "INSERT INTO message_keys (message_id, kek_id, wrapped_dek, wrapped_at) "
                    "SELECT md5('m' || g)::uuid::text, 'bench-kek', "
                    "decode(md5('k' || g) || md5('j' || g), 'hex'), CAST(:at AS timestamptz) "
                    "FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) g"
                ),
                params,
            )
            conn.execute(
                sa.text(
                    "INSERT INTO attachments (message_id, ordinal, media_type, size, nonce, "
                    "ciphertext) SELECT md5('m' || g)::uuid::text, 0, 'application/pdf', 16, "
                    "substr(decode(md5('n' || g), 'hex'), 1, 12), decode(md5('a' || g), 'hex') "
                    "FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) g"
                ),
                params,
            )
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE"))


def _count(store: Store, table: sa.Table) -> int:
    with store.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def bench(dialect: str, count: int, url: str, batch_size: int, seal_dir: Path) -> Result:
    store = open_store(url)
    migrate(store.engine)
    result = Result(dialect, count, batch_size=batch_size)
    started = time.perf_counter()
    (_generate_postgres if dialect == "postgresql" else _generate_sqlite)(store, count)
    result.generate_s = time.perf_counter() - started
    keys = KeyStore(
        KeysSection(dir=seal_dir),
        "RU-FSSP",
        environ={"GATEWAY_KEY_PASSPHRASE": PASSPHRASE.decode()},
    )
    seal = keys.seal()
    policies = parse_policies(POLICY, Path("bench-policy.toml"))
    result.rss_start_mib = rss_mib()
    marks = list(MARKS)

    def on_batch(purged: int) -> None:
        while marks and purged >= marks[0] * count:
            share = marks.pop(0)
            result.memory_at[f"{share:.0%}"] = {
                "rss_mib": round(rss_mib(), 1),
                "peak_mib": round(peak_rss_mib(), 1),
                "elapsed_s": round(time.perf_counter() - started, 1),
            }

    started = time.perf_counter()
    report = run_purge(
        store, policies, NOW, seal=seal, actor="bench", batch_size=batch_size, on_batch=on_batch
    )
    result.purge_s = time.perf_counter() - started
    result.purged = report.purged
    result.per_s = report.purged / result.purge_s if result.purge_s else 0.0
    result.left = _count(store, messages) + _count(store, message_keys)
    assert _count(store, tombstones) == count, "every message must have its tombstone"
    keys.close()
    store.dispose()
    return result


def _pg_schema_url(base: str) -> tuple[str, str]:
    schema = f"purge_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(base, poolclass=sa.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}", schema


def _drop_schema(base: str, schema: str) -> None:
    admin = sa.create_engine(base, poolclass=sa.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


def table(results: list[Result]) -> str:
    lines = [
        f"{'store':<11}{'messages':>10}{'generate s':>12}{'purge s':>10}{'msg/s':>9}"
        f"{'RSS start':>11}{'RSS 10%':>9}{'RSS 50%':>9}{'RSS 100%':>10}{'peak':>8}"
    ]
    for r in results:
        mem = [r.memory_at.get(k, {}).get("rss_mib", float("nan")) for k in ("10%", "50%", "100%")]
        peak = r.memory_at.get("100%", {}).get("peak_mib", float("nan"))
        lines.append(
            f"{r.dialect:<11}{r.count:>10,}{r.generate_s:>12.1f}{r.purge_s:>10.1f}"
            f"{r.per_s:>9,.0f}{r.rss_start_mib:>10.1f}M{mem[0]:>8.1f}M{mem[1]:>8.1f}M"
            f"{mem[2]:>9.1f}M{peak:>7.1f}M"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--count", type=int, help="messages (overrides the per-store defaults)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK:,} messages per store")
    parser.add_argument("--batch-size", type=int, default=PURGE_BATCH)
    parser.add_argument("--pg-url", default=PG_URL)
    args = parser.parse_args(argv)
    dialects = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    results = []
    with tempfile.TemporaryDirectory(prefix="purge-bench-") as tmp:
        pki = build_demo_pki(
            Path(tmp) / "pki",
            ["RU-FSSP"],
            now=NOW - timedelta(days=1),
            passphrase=PASSPHRASE,
            roles=("seal",),
        )
        seal_dir = pki.body_dirs["RU-FSSP"]
        for dialect in dialects:
            count = args.count or (
                QUICK
                if args.quick
                else DEFAULT_POSTGRES
                if dialect == "postgresql"
                else DEFAULT_SQLITE
            )
            print(
                f"{dialect}: generating {count:,} expired messages …", file=sys.stderr, flush=True
            )
            if dialect == "postgresql":
                url, schema = _pg_schema_url(args.pg_url)
                try:
                    results.append(bench(dialect, count, url, args.batch_size, seal_dir))
                finally:
                    _drop_schema(args.pg_url, schema)
            else:
                url = f"sqlite:///{Path(tmp) / 'bench.db'}"
                results.append(bench(dialect, count, url, args.batch_size, seal_dir))
            print(table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(results))
    print(json.dumps({"purge": {r.dialect: asdict(r) for r in results}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
