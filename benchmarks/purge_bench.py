"""Purge benchmark: ``.venv/bin/python benchmarks/purge_bench.py [--db sqlite|postgresql|both]
[--count N] [--quick] [--batch-size N] [--pg-url URL] [--statements]``.

Fills a fresh store with N expired messages (default 1,000,000 per store; ``--quick``: 10,000),
two per conversation, and everything a received message has: a wrapped data key, a
verification report, a receipt, an attachment with one segment; each conversation its state
machine and four search tags. Then it runs the real purge (``gateway.app.purge.run_purge``:
set-based transactions of 10,000, one ``purge.batch`` audit event per 1,000 tombstones,
signed report included) and measures wall time, CPU time, throughput and memory; only the
purge is timed. Memory is the process's resident set (``/proc/self/statm``) and its peak
(``getrusage`` maxrss), sampled after every committed transaction and printed at 10 %, 50 %
and 100 % of the run: flat means the purge streams. (tracemalloc would double the run time;
RSS is what an operator sees.)

On PostgreSQL the rows are made in Python from a fixed seed, 10,000 messages at a time, and
loaded with ``COPY … FROM STDIN``, the foreign-key checks off for the load only
(``session_replication_role = replica`` when the user is a superuser, as the test server's
``postgres`` is). On SQLite they are made by SQLite itself (``INSERT … SELECT`` over a
recursive count, ``randomblob``: no row crosses into Python) in a child process with a 1 GiB
page cache (1 M rows made in Python, 2 MiB cache, took 2,072 s). They are not real documents
(the purge does not decrypt: random bytes stand for ciphertexts and keys; ids are random, as
uuid4 ones are).

``--statements``: also print, per store, the time spent in each kind of SQL statement during
the purge (client-side, round trip included; commits not counted).

Prints a table, then one JSON line per store, the last line last:
``{"store": "postgresql", "messages": 1000000, "seconds": 52.1, "rss_mib": 95.0, ...}``
(``seconds``: the purge's wall time, generation not included).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import resource
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import sqlalchemy as sa  # noqa: E402

from gateway.app.purge import PURGE_BATCH, run_purge, writer_count  # noqa: E402
from gateway.app.retention import parse_policies  # noqa: E402
from gateway.config import KeysSection  # noqa: E402
from gateway.crypto.keys.keystore import KeyStore  # noqa: E402
from gateway.demo.pki import build_demo_pki  # noqa: E402
from gateway.model.ids import time_ordered_uuid  # noqa: E402
from gateway.store import Store, migrate, open_store  # noqa: E402
from gateway.store.tables import (  # noqa: E402
    UtcDateTime,
    audit_events,
    messages,
    metadata,
    outbox,
    tombstones,
)

DEFAULT_COUNT = 1_000_000
QUICK = 10_000
PG_URL = os.environ.get("GATEWAY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
STORED_AT = datetime(2020, 1, 15, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
PASSPHRASE = b"purge-benchmark-passphrase"
POLICY = '[[policy]]\nname = "bench-received"\ncounts_from = "received"\nkeep = "5 years"\n'
MARKS = (0.10, 0.50, 1.00)
SERVER_SETTINGS = ("shared_buffers", "max_wal_size", "work_mem")
IDS = ("time-ordered", "random")


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
    calibration_s: float = 0.0
    """CPU seconds of a fixed pure-Python loop (:func:`calibration`) just before the purge:
    the machine's speed at the time. On a shared 2-core machine it moved by a third within a
    quarter of an hour; compare runs by ``purge_s`` with this beside it."""
    purge_s: float = 0.0
    per_s: float = 0.0
    rss_start_mib: float = 0.0
    memory_at: dict[str, dict[str, float]] = field(default_factory=dict)
    """``"10%"`` → ``{"rss_mib", "peak_mib"}`` sampled when that share was purged."""
    purged: int = 0
    left: int = 0
    """Rows of the seeded tables still there after the purge (0: everything went)."""
    batch_size: int = PURGE_BATCH
    writers: int = 1
    """Purge transactions in flight at once (``run_purge``'s ``writers``)."""
    ids: str = "time-ordered"
    """How the seeded ids were made (``--ids``)."""
    pending: int = 0
    """Messages left waiting in the outbox, so kept (``--pending``)."""
    server_settings: dict[str, str] = field(default_factory=dict)
    """PostgreSQL only: the server settings the figure depends on most (its buffer cache and
    how much WAL it writes between checkpoints)."""
    audit_events: int = 0
    """Events the run appended to the audit chain."""
    statements: dict[str, list[float]] = field(default_factory=dict)
    """``--statements``: statement kind → [seconds, calls] during the purge."""
    cpu_s: float = 0.0
    scan_cpu_s: float = 0.0
    """CPU of the purge's scan process (``gateway.app.purge.SCAN_PROCESS_FROM``), 0 when the
    scan ran in a thread (then it is in ``cpu_s``)."""
    server_cpu_s: float = 0.0
    """PostgreSQL only: CPU time of the server processes serving this run's connections
    (``/proc``, the server being local). With ``cpu_s``, what the purge costs whatever else
    the machine is doing."""
    """This process's CPU time (user + system) during the purge: steadier than wall time on a
    shared machine (PostgreSQL's own work is not in it)."""


_SEED_CACHE_KIB = 1 << 20
"""SQLite page cache of the loading connection (KiB): the store's indexes at 1 M fit."""
_SEED_CHUNK = 10_000
"""Messages per seeding transaction (rows are made in Python and streamed, a chunk at a time)."""
SEARCH_TAGS = 4
"""Search tags per conversation (a CIS request's: full name, surname + name, surname, case)."""


@dataclass(frozen=True)
class _Columns:
    table: str
    listed: str
    """The columns filled, in the order of :func:`_rows`'s tuples, separated by spaces."""

    @property
    def names(self) -> list[str]:
        return self.listed.split()


_SEEDED = (
    _Columns(
        "conversations",
        "conversation_id agreement requesting_party requested_party opening_kind last_kind "
        "state confidential opened_at updated_at version urgent",
    ),
    _Columns("conversation_machines", "conversation_id machine updated_at"),
    _Columns("search_tags", "tag conversation_id"),
    _Columns(
        "messages",
        "message_id conversation_id direction agreement kind sender recipient created "
        "stored_at confidential document_sha256 document_size payload_nonce payload",
    ),
    _Columns("message_keys", "message_id kek_id wrapped_dek wrapped_at"),
    _Columns(
        "verification_reports",
        "message_id recorded_at purpose indication report_nonce report",
    ),
    _Columns("receipts", "message_id receipt_message_id direction outcome at"),
    _Columns(
        "attachments",
        "attachment_id message_id ordinal complete size sha256 segment_prefix wrapped_key "
        "meta_nonce meta created_at",
    ),
    _Columns("attachment_segments", "attachment_id segment_no ciphertext"),
)


def _rows(lo: int, hi: int, rng: random.Random, ordered: bool) -> dict[str, list[tuple[Any, ...]]]:
    """Messages ``lo``..``hi - 1`` and everything of theirs, as rows per table: two messages
    per conversation (a request and its answer), ids time-ordered as the node makes them
    (``ordered``) or random uuid4 ones (a peer's stack may send those), random bytes for every
    ciphertext and key."""
    out: dict[str, list[tuple[Any, ...]]] = {c.table: [] for c in _SEEDED}
    at, rand = STORED_AT, rng.randbytes
    base_ms = int(STORED_AT.timestamp() * 1000)

    def uid() -> str:
        if ordered:
            # the node's own ids: time-ordered, one millisecond a message (gateway.model.ids)
            return time_ordered_uuid(base_ms + n, rand(10))
        h = f"{rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:]}"

    conversation = ""
    for n in range(lo, hi):
        if n % 2 == 0:
            conversation = uid()
            out["conversations"].append(
                (
                    conversation,
                    "cis-enforcement",
                    "KZ-MJ",
                    "RU-FSSP",
                    "Request",
                    "Response",
                    "answered",
                    False,
                    at,
                    at,
                    2,
                    False,
                )
            )
            out["conversation_machines"].append((conversation, '{"state":"answered"}', at))
            out["search_tags"].extend((rand(32), conversation) for _ in range(SEARCH_TAGS))
        message, attachment = uid(), uid()
        out["messages"].append(
            (
                message,
                conversation,
                "in",
                "cis-enforcement",
                "Request" if n % 2 == 0 else "Response",
                "KZ-MJ",
                "RU-FSSP",
                at,
                at,
                False,
                rand(32),
                64,
                rand(12),
                rand(64),
            )
        )
        out["message_keys"].append((message, "bench-kek", rand(40), at))
        out["verification_reports"].append(
            (message, at, "receipt", "TOTAL_PASSED", rand(12), rand(48))
        )
        out["receipts"].append((message, uid(), "out", "accepted", at))
        out["attachments"].append(
            (attachment, message, 0, True, 16, rand(32), rand(8), rand(60), rand(12), rand(40), at)
        )
        out["attachment_segments"].append((attachment, 0, rand(32)))
    return out


def _chunks(count: int, ordered: bool) -> Iterator[dict[str, list[tuple[Any, ...]]]]:
    rng = random.Random(17)  # the same store every run
    for lo in range(0, count, _SEED_CHUNK):
        yield _rows(lo, min(count, lo + _SEED_CHUNK), rng, ordered)


_RANDOM_ID_SQL = (
    "lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || "
    "substr(lower(hex(randomblob(2))), 2) || '-8' || substr(lower(hex(randomblob(2))), 2) || "
    "'-' || lower(hex(randomblob(6)))"
)
"""A random uuid4-shaped id in SQLite's SQL (each part its own random bytes)."""
_ORDERED_ID_SQL = (
    "printf('%08x-%04x-7%03x-%04x-%012x', (:ms + n) >> 16, (:ms + n) & 65535, "
    "abs(random()) % 4096, 32768 + abs(random()) % 16384, abs(random()) % 281474976710656)"
)
"""A time-ordered (version 7) id for message ``n`` in SQLite's SQL, one millisecond a message,
as :func:`gateway.model.ids.time_ordered_uuid` makes them."""


def _sqlite_load(ordered: bool) -> tuple[str, ...]:
    """The SQLite store's rows made by SQLite itself (``INSERT … SELECT``, no row crosses into
    Python): the same tables and shapes as :func:`_rows`, random bytes from ``randomblob``."""
    new_id = _ORDERED_ID_SQL if ordered else _RANDOM_ID_SQL
    return (
        _SQLITE_SEED_IDS[0],
        _SQLITE_SEED_IDS[1],
        "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n + 1 < :count) "  # noqa: S608
        f"INSERT INTO seed_m SELECT n, {new_id}, {new_id}, {new_id} FROM s",
        f"INSERT INTO seed_c SELECT n / 2, {new_id} FROM seed_m WHERE n % 2 = 0",  # noqa: S608
        *_SQLITE_LOAD,
    )


_SQLITE_SEED_IDS = (
    # Ids first: message, attachment and receipt ids per message n; one conversation per pair.
    "CREATE TEMP TABLE seed_m (n INTEGER PRIMARY KEY, m TEXT, a TEXT, r TEXT)",
    "CREATE TEMP TABLE seed_c (k INTEGER PRIMARY KEY, c TEXT)",
)
_SQLITE_LOAD = (
    "INSERT INTO conversations (conversation_id, agreement, requesting_party, requested_party, "
    "opening_kind, last_kind, state, confidential, opened_at, updated_at, version, urgent) "
    "SELECT c, 'cis-enforcement', 'KZ-MJ', 'RU-FSSP', 'Request', 'Response', 'answered', 0, "
    ":at, :at, 2, 0 FROM seed_c ORDER BY k",
    "INSERT INTO conversation_machines (conversation_id, machine, updated_at) "
    'SELECT c, \'{"state":"answered"}\', :at FROM seed_c ORDER BY k',
    "WITH RECURSIVE t(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM t WHERE i < :tags) "
    "INSERT INTO search_tags (tag, conversation_id) SELECT randomblob(32), c FROM seed_c, t",
    "INSERT INTO messages (message_id, conversation_id, direction, agreement, kind, sender, "
    "recipient, created, stored_at, confidential, document_sha256, document_size, payload_nonce, "
    "payload) SELECT m, c, 'in', 'cis-enforcement', "
    "CASE WHEN n % 2 = 0 THEN 'Request' ELSE 'Response' END, 'KZ-MJ', 'RU-FSSP', :at, :at, 0, "
    "randomblob(32), 64, randomblob(12), randomblob(64) "
    "FROM seed_m JOIN seed_c ON k = n / 2 ORDER BY n",
    "INSERT INTO message_keys (message_id, kek_id, wrapped_dek, wrapped_at) "
    "SELECT m, 'bench-kek', randomblob(40), :at FROM seed_m ORDER BY n",
    "INSERT INTO verification_reports (message_id, recorded_at, purpose, indication, "
    "report_nonce, report) SELECT m, :at, 'receipt', 'TOTAL_PASSED', randomblob(12), "
    "randomblob(48) FROM seed_m ORDER BY n",
    "INSERT INTO receipts (message_id, receipt_message_id, direction, outcome, at) "
    "SELECT m, r, 'out', 'accepted', :at FROM seed_m ORDER BY n",
    "INSERT INTO attachments (attachment_id, message_id, ordinal, complete, size, sha256, "
    "segment_prefix, wrapped_key, meta_nonce, meta, created_at) SELECT a, m, 0, 1, 16, "
    "randomblob(32), randomblob(8), randomblob(60), randomblob(12), randomblob(40), :at "
    "FROM seed_m ORDER BY n",
    "INSERT INTO attachment_segments (attachment_id, segment_no, ciphertext) "
    "SELECT a, 0, randomblob(32) FROM seed_m ORDER BY n",
)
"""The rows made from the seeded ids (:func:`_sqlite_load`)."""


def _generate_sqlite(store: Store, count: int, ordered: bool) -> None:
    """Fill the store in a child process (its 1 GiB page cache then never counts in this
    process's RSS) with :func:`_sqlite_load`, the foreign keys off for the load (the rows are
    consistent by construction; the purge runs with them on)."""
    path = store.engine.url.database
    assert path is not None
    stamp = UtcDateTime().bind_processor(store.engine.dialect)
    assert stamp is not None
    loader = multiprocessing.get_context("fork").Process(
        target=_load_sqlite, args=(path, stamp(STORED_AT), count, ordered)
    )
    loader.start()
    loader.join()
    if loader.exitcode != 0:
        raise RuntimeError(f"loading the SQLite store failed (exit code {loader.exitcode})")


def _load_sqlite(path: str, at: str, count: int, ordered: bool) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA foreign_keys=OFF")
        db.execute("PRAGMA synchronous=OFF")
        # Random ids land on random index pages: with the default 2 MiB cache every insert
        # re-read and re-wrote pages (1 M rows made in Python took 2,072 s); 1 GiB keeps the
        # indexes in memory.
        db.execute(f"PRAGMA cache_size=-{_SEED_CACHE_KIB}")
        db.execute("PRAGMA temp_store=MEMORY")
        ms = int(STORED_AT.timestamp() * 1000)
        params = {"count": count, "at": at, "tags": SEARCH_TAGS, "ms": ms}
        for sql in _sqlite_load(ordered):
            db.execute("BEGIN")
            db.execute(sql, {k: v for k, v in params.items() if f":{k}" in sql})
            db.execute("COMMIT")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("ANALYZE")
    finally:
        db.close()


def _generate_postgres(store: Store, count: int, ordered: bool) -> None:
    """``COPY … FROM STDIN`` per table and chunk; as a superuser (the test server's
    ``postgres``) with the foreign-key triggers off for the load (``session_replication_role
    = replica``: the rows are consistent by construction; the purge runs with them on)."""
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if cursor.fetchone()[0]:
            cursor.execute("SET session_replication_role = replica")
        for rows in _chunks(count, ordered):
            for columns in _SEEDED:
                with cursor.copy(
                    f"COPY {columns.table} ({', '.join(columns.names)}) FROM STDIN"
                ) as copy:
                    for row in rows[columns.table]:
                        copy.write_row(row)
            raw.commit()
        cursor.execute("RESET session_replication_role")
        raw.commit()
    finally:
        raw.close()
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))


class _BackendCpu:
    """CPU seconds spent by the PostgreSQL backends of an engine's connections since this was
    made: each connection's backend pid is asked once, at checkout."""

    def __init__(self, engine: sa.Engine) -> None:
        self.start: dict[int, float] = {}
        with engine.connect() as conn:
            self._note(conn.connection.dbapi_connection)
        sa.event.listen(engine, "checkout", lambda dbapi, _record, _proxy: self._note(dbapi))

    def _note(self, dbapi: Any) -> None:
        with dbapi.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        dbapi.rollback()  # leave the connection idle, as the pool handed it out
        self.start.setdefault(pid, _proc_cpu(pid))

    def spent(self) -> float:
        return sum(_proc_cpu(pid) - start for pid, start in self.start.items())


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a local process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


CALIBRATION_STEPS = 10_000_000


def calibration() -> float:
    """CPU seconds this process takes to add up :data:`CALIBRATION_STEPS` integers."""
    started = time.process_time()
    total = 0
    for step in range(CALIBRATION_STEPS):
        total += step
    assert total == CALIBRATION_STEPS * (CALIBRATION_STEPS - 1) // 2
    return time.process_time() - started


def _children_cpu() -> float:
    """User + system CPU seconds of this process's ended children (the scan process)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _count(store: Store, table: sa.Table) -> int:
    with store.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def bench(
    dialect: str,
    count: int,
    url: str,
    batch_size: int,
    seal_dir: Path,
    statements: bool = False,
    writers: int | None = None,
    ids: str = "time-ordered",
    pending: int = 0,
) -> Result:
    store = open_store(url)
    migrate(store.engine)
    result = Result(
        dialect,
        count,
        batch_size=batch_size,
        writers=writer_count(store) if writers is None else writers,
        ids=ids,
        pending=pending,
    )
    started = time.perf_counter()
    generate = _generate_postgres if dialect == "postgresql" else _generate_sqlite
    generate(store, count, ids == "time-ordered")
    _leave_undelivered(store, pending)
    result.generate_s = time.perf_counter() - started
    keys = KeyStore(
        KeysSection(dir=seal_dir),
        "RU-FSSP",
        environ={"GATEWAY_KEY_PASSPHRASE": PASSPHRASE.decode()},
    )
    seal = keys.seal()
    policies = parse_policies(POLICY, Path("bench-policy.toml"))
    result.rss_start_mib = rss_mib()
    result.calibration_s = calibration()
    marks = list(MARKS)

    def on_batch(purged: int) -> None:
        while marks and purged >= marks[0] * (count - pending):
            share = marks.pop(0)
            result.memory_at[f"{share:.0%}"] = {
                "rss_mib": round(rss_mib(), 1),
                "peak_mib": round(peak_rss_mib(), 1),
                "elapsed_s": round(time.perf_counter() - started, 1),
            }

    if dialect == "postgresql":
        with store.read() as conn:
            result.server_settings = {
                name: conn.exec_driver_sql(f"SHOW {name}").scalar_one() for name in SERVER_SETTINGS
            }
    events_before = _count(store, audit_events)
    backends = _BackendCpu(store.engine) if dialect == "postgresql" else None
    cpu_started = time.process_time()
    children_started = _children_cpu()
    started = time.perf_counter()
    timed = (
        statement_times(store.engine, result.statements) if statements else contextlib.nullcontext()
    )
    with timed:
        report = run_purge(
            store,
            policies,
            NOW,
            seal=seal,
            actor="bench",
            batch_size=batch_size,
            on_batch=on_batch,
            writers=writers,
        )
    result.purge_s = time.perf_counter() - started
    result.cpu_s = time.process_time() - cpu_started
    result.scan_cpu_s = _children_cpu() - children_started
    result.server_cpu_s = backends.spent() if backends is not None else 0.0
    result.audit_events = _count(store, audit_events) - events_before
    result.purged = report.purged
    result.per_s = report.purged / result.purge_s if result.purge_s else 0.0
    result.left = sum(_count(store, metadata.tables[c.table]) for c in _SEEDED)
    assert _count(store, tombstones) == count - pending, "every message purged has its tombstone"
    keys.close()
    store.dispose()
    return result


def _leave_undelivered(store: Store, pending: int) -> None:
    """The first ``pending`` messages wait in the outbox (a peer down for a few days): the
    purge keeps them, and every other message's check against the outbox must stay cheap."""
    if not pending:
        return
    at = sa.bindparam("at", STORED_AT, type_=UtcDateTime())
    with store.transaction() as conn:
        conn.execute(
            outbox.insert().from_select(
                ["message_id", "destination", "state", "attempts", "next_attempt_at", "created_at"],
                sa.select(
                    messages.c.message_id,
                    sa.literal("KZ-MJ"),
                    sa.literal("pending"),
                    sa.literal(0),
                    at,
                    at,
                )
                .order_by(messages.c.id)
                .limit(pending),
            )
        )


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
        f"{'store':<11}{'messages':>10}{'events':>9}{'generate s':>12}"
        f"{'calib s':>8}{'purge s':>10}{'cpu s':>8}{'scan cpu':>9}{'srv cpu':>8}{'msg/s':>9}"
        f"{'RSS start':>11}{'RSS 10%':>9}{'RSS 50%':>9}{'RSS 100%':>10}{'peak':>8}"
    ]
    for r in results:
        mem = [r.memory_at.get(k, {}).get("rss_mib", float("nan")) for k in ("10%", "50%", "100%")]
        peak = r.memory_at.get("100%", {}).get("peak_mib", float("nan"))
        lines.append(
            f"{r.dialect:<11}{r.count:>10,}{r.audit_events:>9,}"
            f"{r.generate_s:>12.1f}{r.calibration_s:>8.2f}{r.purge_s:>10.1f}{r.cpu_s:>8.1f}"
            f"{r.scan_cpu_s:>9.1f}"
            f"{r.server_cpu_s:>8.1f}"
            f"{r.per_s:>9,.0f}{r.rss_start_mib:>10.1f}M{mem[0]:>8.1f}M{mem[1]:>8.1f}M"
            f"{mem[2]:>9.1f}M{peak:>7.1f}M"
        )
    return "\n".join(lines)


def summary(r: Result) -> dict[str, Any]:
    """The JSON line of one store: the figures the goal is stated in first, then the rest."""
    end = r.memory_at.get("100%", {})
    return {
        "store": r.dialect,
        "messages": r.purged,
        "seconds": round(r.purge_s, 1),
        "rss_mib": end.get("rss_mib"),
        "peak_rss_mib": end.get("peak_mib"),
        "load_average": os.getloadavg()[0],
    } | asdict(r)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="messages per store")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK:,} messages per store")
    parser.add_argument("--batch-size", type=int, default=PURGE_BATCH)
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--statements", action="store_true", help="time each kind of SQL statement")
    parser.add_argument(
        "--writers",
        type=int,
        default=None,
        help="purge transactions in flight (default: the store's, 2 on PostgreSQL, 1 on SQLite)",
    )
    parser.add_argument(
        "--ids",
        choices=IDS,
        default=IDS[0],
        help="message and conversation ids: time-ordered as the node makes them (default), or "
        "random uuid4 ones as a peer on another stack may send",
    )
    parser.add_argument(
        "--pending",
        type=int,
        default=0,
        help="messages left waiting in the outbox (kept by the purge; a peer down for days)",
    )
    args = parser.parse_args(argv)
    dialects = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    count = QUICK if args.quick else args.count
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
            print(
                f"{dialect}: generating {count:,} expired messages …", file=sys.stderr, flush=True
            )
            settings = (
                args.batch_size,
                seal_dir,
                args.statements,
                args.writers,
                args.ids,
                args.pending,
            )
            if dialect == "postgresql":
                url, schema = _pg_schema_url(args.pg_url)
                try:
                    results.append(bench(dialect, count, url, *settings))
                finally:
                    _drop_schema(args.pg_url, schema)
            else:
                url = f"sqlite:///{Path(tmp) / 'bench.db'}"
                results.append(bench(dialect, count, url, *settings))
            print(table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(results))
    for r in results:
        if r.statements:
            print(f"\n{r.dialect}: seconds  calls  statement")
            top = sorted(r.statements.items(), key=lambda kv: -kv[1][0])[:12]
            for sql, (seconds, calls) in top:
                print(f"  {seconds:8.2f} {int(calls):6d}  {sql}")
    for r in results:
        print(json.dumps(summary(r)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
