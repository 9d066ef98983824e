"""Purge benchmark: ``.venv/bin/python benchmarks/purge_bench.py [--db sqlite|postgresql|both]
[--count N] [--quick] [--batch-size N] [--pg-url URL] [--binding chunked|per-message|both]``.

Fills a fresh store with N expired messages (default 100,000 on SQLite, 1,000,000 on
PostgreSQL; ``--quick``: 10,000 each), two per conversation, each with a small payload, a
wrapped-key row and an attachment row, then runs the real purge (``gateway.app.purge.run_purge``,
signed report included) and measures wall time, throughput and memory. Memory is the process's
resident set (``/proc/self/statm``) and its peak (``getrusage`` maxrss), sampled after every
committed batch and printed at 10 %, 50 % and 100 % of the run: flat means the purge streams.
(tracemalloc would double the run time; RSS is what an operator sees.)

Rows are generated fast and are not real documents: PostgreSQL makes them server-side with
``generate_series``; SQLite takes bulk ``executemany`` inserts. The purge does not decrypt,
so random bytes stand for ciphertexts and wrapped keys.

``--statements``: also print, per store and binding, the time spent in each kind of SQL
statement during the purge (client-side, round trip included; commits not counted).

``--binding``: how tombstones reach the audit chain. ``chunked`` is the gateway's own path
(one ``purge.tombstones`` event per 64 tombstones); ``per-message`` is the former path, kept
here only as the baseline (one ``message.purged`` event per message, swapped in for the
binding step of ``gateway.store.purge.purge_batch``); ``both`` (default) runs each on a fresh
store in the same process, so the two figures share the machine's state.

Prints a table and, as the very last line, one JSON object:
``{"purge": {"sqlite/chunked": {...}, "postgresql/per-message": {...}, ...}}``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import sqlalchemy as sa  # noqa: E402

from gateway.app.purge import PURGE_BATCH, run_purge  # noqa: E402
from gateway.app.retention import parse_policies  # noqa: E402
from gateway.config import KeysSection  # noqa: E402
from gateway.crypto.keystore import KeyStore  # noqa: E402
from gateway.demo.pki import build_demo_pki  # noqa: E402
from gateway.store import Store, audit, migrate, open_store  # noqa: E402
from gateway.store import purge as purge_store  # noqa: E402
from gateway.store.tables import (  # noqa: E402
    attachments,
    audit_events,
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
BINDINGS = ("chunked", "per-message")


def _per_message_events(
    conn: sa.Connection, ids: Sequence[str], *, run_id: str, actor: str, now: datetime
) -> None:
    """The former binding, for the baseline: one ``message.purged`` event per message."""
    rows = conn.execute(
        sa.select(
            tombstones.c.message_id,
            tombstones.c.conversation_id,
            tombstones.c.policy,
            tombstones.c.document_sha256,
        ).where(tombstones.c.message_id.in_(ids))
    ).all()
    audit.append_many(
        conn,
        now=now,
        actor=actor,
        entries=[
            (
                "message.purged",
                {
                    "message_id": r.message_id,
                    "conversation_id": r.conversation_id,
                    "purge_run_id": run_id,
                },
                {"policy": r.policy, "document_sha256": r.document_sha256.hex()},
            )
            for r in rows
        ],
    )


@contextmanager
def statement_times(engine: sa.Engine, into: dict[str, list[float]]) -> Iterator[None]:
    """Seconds and calls per statement kind (its first four words) while the block runs."""

    def before(conn: Any, _cursor: Any, _sql: str, *_rest: Any) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    def after(conn: Any, _cursor: Any, sql: str, *_rest: Any) -> None:
        key = " ".join(sql.split()[:4])[:60]
        entry = into.setdefault(key, [0.0, 0])
        entry[0] += time.perf_counter() - conn.info.pop("bench_t0", time.perf_counter())
        entry[1] += 1

    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    try:
        yield
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
        sa.event.remove(engine, "after_cursor_execute", after)


@contextmanager
def binding(kind: str) -> Iterator[None]:
    """Run the purge with ``kind`` of tombstone binding (see the module's docstring)."""
    if kind == "chunked":
        yield
        return
    own = purge_store._bind
    purge_store._bind = _per_message_events
    try:
        yield
    finally:
        purge_store._bind = own


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
    binding: str = "chunked"
    audit_events: int = 0
    """Events the run appended to the audit chain."""
    statements: dict[str, list[float]] = field(default_factory=dict)
    """``--statements``: statement kind → [seconds, calls] during the purge."""
    cpu_s: float = 0.0
    """This process's CPU time (user + system) during the purge: steadier than wall time on a
    shared machine (PostgreSQL's own work is not in it)."""


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


def bench(
    dialect: str,
    count: int,
    url: str,
    batch_size: int,
    seal_dir: Path,
    kind: str = "chunked",
    statements: bool = False,
) -> Result:
    store = open_store(url)
    migrate(store.engine)
    result = Result(dialect, count, batch_size=batch_size, binding=kind)
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

    events_before = _count(store, audit_events)
    cpu_started = time.process_time()
    started = time.perf_counter()
    timed = (
        statement_times(store.engine, result.statements) if statements else contextlib.nullcontext()
    )
    with binding(kind), timed:
        report = run_purge(
            store, policies, NOW, seal=seal, actor="bench", batch_size=batch_size, on_batch=on_batch
        )
    result.purge_s = time.perf_counter() - started
    result.cpu_s = time.process_time() - cpu_started
    result.audit_events = _count(store, audit_events) - events_before
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
        f"{'store':<11}{'binding':<12}{'messages':>10}{'events':>9}{'generate s':>12}"
        f"{'purge s':>10}{'cpu s':>8}{'msg/s':>9}"
        f"{'RSS start':>11}{'RSS 10%':>9}{'RSS 50%':>9}{'RSS 100%':>10}{'peak':>8}"
    ]
    for r in results:
        mem = [r.memory_at.get(k, {}).get("rss_mib", float("nan")) for k in ("10%", "50%", "100%")]
        peak = r.memory_at.get("100%", {}).get("peak_mib", float("nan"))
        lines.append(
            f"{r.dialect:<11}{r.binding:<12}{r.count:>10,}{r.audit_events:>9,}"
            f"{r.generate_s:>12.1f}{r.purge_s:>10.1f}{r.cpu_s:>8.1f}"
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
    parser.add_argument("--binding", choices=(*BINDINGS, "both"), default="both")
    parser.add_argument("--statements", action="store_true", help="time each kind of SQL statement")
    args = parser.parse_args(argv)
    dialects = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    kinds = list(BINDINGS) if args.binding == "both" else [args.binding]
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
        for dialect, kind in [(d, k) for d in dialects for k in kinds]:
            count = args.count or (
                QUICK
                if args.quick
                else DEFAULT_POSTGRES
                if dialect == "postgresql"
                else DEFAULT_SQLITE
            )
            print(
                f"{dialect}/{kind}: generating {count:,} expired messages …",
                file=sys.stderr,
                flush=True,
            )
            if dialect == "postgresql":
                url, schema = _pg_schema_url(args.pg_url)
                try:
                    results.append(
                        bench(dialect, count, url, args.batch_size, seal_dir, kind, args.statements)
                    )
                finally:
                    _drop_schema(args.pg_url, schema)
            else:
                url = f"sqlite:///{Path(tmp) / f'bench-{kind}.db'}"
                results.append(
                    bench(dialect, count, url, args.batch_size, seal_dir, kind, args.statements)
                )
            print(table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(results))
    for r in results:
        if r.statements:
            print(f"\n{r.dialect}/{r.binding}: seconds  calls  statement")
            top = sorted(r.statements.items(), key=lambda kv: -kv[1][0])[:12]
            for sql, (seconds, calls) in top:
                print(f"  {seconds:8.2f} {int(calls):6d}  {sql}")
    print(json.dumps({"purge": {f"{r.dialect}/{r.binding}": asdict(r) for r in results}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
