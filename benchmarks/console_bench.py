"""The console's conversation list at a million conversations, on PostgreSQL.

    .venv/bin/python benchmarks/console_bench.py                 # 1,000,000 rows
    .venv/bin/python benchmarks/console_bench.py --rows 100000   # quicker
    .venv/bin/python benchmarks/console_bench.py --keep          # keep the database afterwards

What it does:

1. creates a dedicated database (``gw_console_bench`` on the local server; ``--admin-url``
   names the server) and migrates it with the gateway's own migrations;
2. bulk-loads ``--rows`` conversations with ``COPY … FROM STDIN`` (two agreements, four
   bodies, one opened every 30 seconds: those of the last 60 days in every state, older ones
   closed; each due 42 days after it opened, so most of a million are closed and due long ago);
3. builds a real node over it (a demo world's KZ-MJ configuration with ``[database] url``
   pointing at that database: keys, directory, migrations as ``gateway serve`` would) and its
   :class:`~gateway.exchange.local_service.LocalNodeService`;
4. serves the real console (:func:`make_console_app`) on loopback in-process, signs a user in,
   and times, server side (a middleware around the handler: service call, template render),
   ``GET /conversations`` (the first page) and the 500th page: the keyset cursor is followed
   499 times through the service first, then the 500th page is requested ``--repeat`` times;
   the overview (``GET /``: counts by state and the deadline lists) is timed the same way, and
   the search (``GET /conversations?q=…``) by a case number and by a debtor's surname, through
   the keyed index (every row is loaded with its sealed list display and its search tags,
   made with the node's own search key, as recording a conversation makes them);
5. drops the database (unless ``--keep``).

Prints a table, and as the last line one JSON object::

    {"rows": 1000000, "load_s": …, "pages": {"first": {"p50_ms": …, "p95_ms": …, "max_ms": …},
     "500th": {…}, "overview": {…}, "search-case": {…}, "search-debtor": {…}},
     "target_ms": 50, "ok": true}

Exit status 0 when the overview, both pages and the searches stay within the target at p95,
else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gateway.app.passwords import hash_password  # noqa: E402
from gateway.config import NodeConfig  # noqa: E402
from gateway.crypto.at_rest import SearchKeys, search_keys  # noqa: E402
from gateway.demo.setup import build_world  # noqa: E402
from gateway.exchange.listing import seal_display, tags_of  # noqa: E402
from gateway.exchange.local_service import LocalNodeService  # noqa: E402
from gateway.exchange.node import Node  # noqa: E402
from gateway.exchange.service import Actor, ConversationFilter, Role  # noqa: E402
from gateway.rules.listing import ListingFacts, mask_person  # noqa: E402
from gateway.store import keys as key_store  # noqa: E402
from gateway.store.engine import current_revision, head_revision, migrate, open_store  # noqa: E402
from gateway.store.tables import conversation_counts, conversations, search_tags  # noqa: E402
from gateway.web.console import (  # noqa: E402
    SessionStore,
    StoreUserDirectory,
    make_console_app,
)
from gateway.web.console.identity import node_identity  # noqa: E402
from gateway.web.console.pages import PAGE_SIZE  # noqa: E402
from gateway.web.console.sources import node_console_sources  # noqa: E402

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DATABASE = "gw_console_bench"
TARGET_MS = 50.0
"""The console's budget at p95 for the overview and one list page at a million conversations
(issue 15's target)."""
PAGE_NUMBER = 500
MANIFEST = "console-bench.json"
"""Written beside a kept database's node (``--keep``): its name, row count and configuration."""
COPY_BATCH = 100_000
"""Rows per COPY buffer: a few MB of text, flushed as it fills."""
STATES = (
    "submitted",
    "in-progress",
    "awaiting-additional-info",
    "postponed",
    "answered",
    "answered",
    "answered",
    "refused",
    "withdrawn",
    "rejected",
)
"""Weighted like a year of traffic: most requests end answered."""
CLOSED = ("answered", "answered", "answered", "refused", "withdrawn", "rejected")
"""The states of conversations opened before :data:`OPEN_DAYS`."""
OPEN_DAYS = 60
"""Conversations opened in the last 60 days may still be open; older ones are closed."""
TERM_DAYS = 42
"""Due 42 calendar days after opening (about 30 working days, CIS Art. 12)."""
LAYOUT = 2
"""The rows' layout, in the manifest: ``--reuse`` refuses a database loaded with another."""
PAIRS = (
    ("cis-enforcement", "RU-FSSP", "KZ-MJ"),
    ("cis-enforcement", "KZ-MJ", "RU-FSSP"),
    ("ru-kz-supreme-courts", "RU-VS", "KZ-VS"),
    ("ru-kz-supreme-courts", "KZ-VS", "RU-VS"),
)
SURNAMES = 200_000
"""Distinct debtor surnames: each debtor has about five conversations at a million."""
GIVEN = ("Иван", "Пётр", "Ерлан", "Айгуль", "Мария", "Сергей", "Асель")
PATRONYMIC = ("Иванович", "Петровна", "Маратұлы", "Сергеевич", "Алексеевна")
PASSWORD = "benchmark-password-2026"  # noqa: S105 - a throwaway user of a throwaway database
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
SERVER_TIME = web.AppKey("server_times", dict)


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- the database -------------------------------------------------------------------------------


def _server_url(admin_url: str, database: str) -> str:
    return str(sa.make_url(admin_url).set(database=database))


def create_database(admin_url: str, database: str) -> str:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    engine.dispose()
    return _server_url(admin_url, database)


def drop_database(admin_url: str, database: str) -> None:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    engine.dispose()


def _cid(i: int) -> uuid.UUID:
    return uuid.UUID(int=(i * 0x9E3779B97F4A7C15 + 0x1234) % (1 << 128), version=4)


def facts(i: int) -> ListingFacts:
    """Row ``i``'s case number and debtor: CIS rows name both; Supreme Courts' rows neither."""
    if PAIRS[i % len(PAIRS)][0] != "cis-enforcement":
        return ListingFacts(None, None)
    surname = f"Должников{i % SURNAMES}"
    name, patronymic = GIVEN[i % len(GIVEN)], PATRONYMIC[i % len(PATRONYMIC)]
    names = (f"{surname} {name} {patronymic}", f"{surname} {name}", surname)
    return ListingFacts(f"{i}/26/77001-ИП", mask_person(surname, name, patronymic), names)


def _rows(start: int, stop: int, newest: datetime, keys: SearchKeys) -> tuple[str, str]:
    """COPY text of rows ``start``..``stop`` of the conversations (conversation_id, agreement,
    parties, kinds, state, confidential, deadline, opened_at, updated_at, the sealed display)
    and of their search tags."""
    recent = OPEN_DAYS * 24 * 3600 // 30
    lines: list[str] = []
    tags: list[str] = []
    for i in range(start, stop):
        agreement, requesting, requested = PAIRS[i % len(PAIRS)]
        state = STATES[(i * 7) % len(STATES)] if i < recent else CLOSED[(i * 7) % len(CLOSED)]
        opened_at = newest - timedelta(seconds=30 * i)
        opened = opened_at.isoformat()
        deadline = opened_at.date() + timedelta(days=TERM_DAYS)
        confidential = "t" if i % 17 == 0 else "f"
        cid = str(_cid(i))
        row = facts(i)
        nonce, sealed = seal_display(keys, cid, row)
        tags.extend(f"\\\\x{tag.hex()}\t{cid}\n" for tag in set(tags_of(keys, row)))
        lines.append(
            f"{cid}\t{agreement}\t{requesting}\t{requested}\tRequest\tReceipt\t{state}\t"
            f"{confidential}\t{deadline.isoformat()}\t{opened}\t{opened}\t"
            f"\\\\x{nonce.hex()}\t\\\\x{sealed.hex()}\n"
        )
    return "".join(lines), "".join(tags)


def _rows_job(job: tuple[int, int, datetime, SearchKeys]) -> tuple[str, str]:
    return _rows(*job)


def load(url: str, count: int, newest: datetime, keys: SearchKeys, workers: int) -> float:
    """Bulk-load ``count`` conversations with COPY; seconds taken.

    ``workers`` processes seal the display values and compute the tags (the Python side: ~50 µs
    a row), in batches of :data:`COPY_BATCH` rows, while this process streams each batch into two
    COPYs at once (conversations, search tags) on two connections. As any bulk load does, the
    tables' secondary indexes and the tags' primary key are dropped during the COPY and built
    again afterwards, and the tags' foreign-key trigger is not fired (``session_replication_role
    = replica``: the rows are made consistent here); then the tables are analysed."""
    import multiprocessing

    import psycopg

    started = time.perf_counter()
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        for table in (conversations, search_tags):
            for index in table.indexes:
                index.drop(conn)
        pkey = _pkey(conn)
        conn.execute(sa.text(f"ALTER TABLE {search_tags.name} DROP CONSTRAINT {pkey}"))
    dsn = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    columns = (
        "conversation_id, agreement, requesting_party, requested_party, opening_kind, "
        "last_kind, state, confidential, deadline, opened_at, updated_at, display_nonce, display"
    )
    jobs = [(s, min(s + COPY_BATCH, count), newest, keys) for s in range(0, count, COPY_BATCH)]
    with (
        multiprocessing.get_context("spawn").Pool(workers) as pool,
        psycopg.connect(dsn) as conv_conn,
        psycopg.connect(dsn) as tag_conn,
    ):
        tag_conn.execute("SET session_replication_role = replica")
        with (
            conv_conn.cursor() as conv_cur,
            conv_cur.copy(f"COPY conversations ({columns}) FROM STDIN") as conv_copy,
            tag_conn.cursor() as tag_cur,
            tag_cur.copy(f"COPY {search_tags.name} (tag, conversation_id) FROM STDIN") as tag_copy,
        ):
            for n, (lines, tag_lines) in enumerate(pool.imap(_rows_job, jobs), start=1):
                conv_copy.write(lines)
                tag_copy.write(tag_lines)
                _log(f"  loaded {min(n * COPY_BATCH, count):,} rows")
        conv_conn.commit()
        tag_conn.commit()
    _log(f"  building the indexes and the counts ({time.perf_counter() - started:.0f} s so far)")
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL maintenance_work_mem = '256MB'"))
        conn.execute(
            sa.text(
                f"ALTER TABLE {search_tags.name} ADD CONSTRAINT {pkey} "
                "PRIMARY KEY (tag, conversation_id)"
            )
        )
        for table in (conversations, search_tags):
            for index in table.indexes:
                index.create(conn)
        # COPY bypasses the store, so the counts the overview reads start from one scan, as
        # migration 0009 starts them on an existing store.
        keys_ = ("state", "agreement", "requesting_party", "requested_party")
        grouped = sa.select(
            *(conversations.c[k] for k in keys_), sa.func.count().label("n")
        ).group_by(*(conversations.c[k] for k in keys_))
        conn.execute(conversation_counts.delete())
        conn.execute(conversation_counts.insert().from_select([*keys_, "n"], grouped))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE conversations"))
        conn.execute(sa.text(f"VACUUM ANALYZE {search_tags.name}"))
    engine.dispose()
    return time.perf_counter() - started


def _pkey(conn: sa.Connection) -> str:
    """The name of the search tags' primary key constraint."""
    name = conn.execute(
        sa.text(
            "SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass) "
            "AND contype = 'p'"
        ),
        {"t": search_tags.name},
    ).scalar_one()
    return str(name)


# --- the node and the console -------------------------------------------------------------------


def build_node(url: str, workdir: Path) -> Path:
    """A fresh demo world under ``workdir``; its KZ-MJ node's store on the benchmark database.
    Returns that node's configuration file."""
    world = build_world(
        workdir, now=datetime.now(UTC) - timedelta(days=1), bodies=("RU-FSSP", "KZ-MJ")
    )
    config_path = world.nodes["KZ-MJ"].config_path
    text = config_path.read_text(encoding="utf-8")
    config_path.write_text(text + f'\n[database]\nurl = "{url}"\n', encoding="utf-8")
    return config_path


def node_search_keys(node: Node) -> SearchKeys:
    """The node's search keys (its secret made now, wrapped by its KEK), to load rows with."""
    with node.store.transaction() as conn:
        return search_keys(key_store.search_secret(conn, node.kek_ring, datetime.now(UTC)))


@web.middleware
async def _timing(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
    """Server time of the handler (service call + template render), by route."""
    started = time.perf_counter()
    response = await handler(request)
    elapsed = (time.perf_counter() - started) * 1000
    request.app[SERVER_TIME].setdefault(request.path, []).append(elapsed)
    return response


async def _audit(actor: str, event: str, details: dict[str, Any]) -> None:
    return None  # the benchmark times pages, not the audit trail


async def _sign_in(client: TestClient[web.Request, web.Application]) -> None:
    page = await client.get("/login")
    html = await page.text()
    token = html.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = await client.post(
        "/login",
        data={"username": "bench", "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
    )
    assert response.status == 303, response.status


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(ordered[-1], 1),
        "n": len(ordered),
    }


def searched_row(rows: int) -> int:
    """The row whose case number and debtor are searched: a CIS row halfway down."""
    middle = rows // 2
    return middle - middle % len(PAIRS) + 1


def _check_found(body: str, name: str, searched: int) -> None:
    """The searched row is on the page with its case number and masked debtor."""
    row = facts(searched)
    assert row.case_number is not None and row.debtor is not None
    assert f'id="conversation-{_cid(searched)}"' in body, name
    assert row.case_number in body and row.debtor in body, name
    if name == "search-case":
        assert body.count('id="conversation-') == 1, name


async def measure(node: Node, repeat: int, searched: int) -> dict[str, dict[str, float]]:
    executor = ThreadPoolExecutor(4, thread_name_prefix="bench")
    service = LocalNodeService(node, executor)
    users = StoreUserDirectory(node.store)
    if await users.get("bench") is None:
        await users.add(
            "bench", hash_password(PASSWORD, CHEAP_HASHER), (Role.OPERATOR,), now=datetime.now(UTC)
        )
    app = make_console_app(
        service,
        users,
        sessions=SessionStore(node.store),
        secure_cookies=False,
        audit=_audit,
        identity=node_identity(node),
        password_hasher=CHEAP_HASHER,
        **node_console_sources(node, executor),
    )
    app.middlewares.append(_timing)
    app[SERVER_TIME] = {}
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
    await client.start_server()
    try:
        await _sign_in(client)
        who = Actor("bench", frozenset({Role.OPERATOR}))
        cursor: str | None = None
        followed = time.perf_counter()
        for _ in range(PAGE_NUMBER - 1):
            page = await service.list_conversations(
                ConversationFilter(), after=cursor, limit=PAGE_SIZE, actor=who
            )
            cursor = page.next_cursor
            assert cursor is not None, "fewer rows than 500 pages"
        assert cursor is not None
        spent = time.perf_counter() - followed
        _log(f"  followed the cursor {PAGE_NUMBER - 1} times in {spent:.1f} s")
        targets: dict[str, tuple[str, dict[str, str]]] = {
            "first": ("/conversations", {}),
            "500th": ("/conversations", {"after": cursor}),
            "overview": ("/", {}),
            "search-case": ("/conversations", {"q": f"{searched}/26/77001-ип"}),
            "search-debtor": ("/conversations", {"q": f"должников{searched % SURNAMES}"}),
        }
        results: dict[str, dict[str, float]] = {}
        for name, (path, params) in targets.items():
            app[SERVER_TIME].clear()
            for _ in range(repeat + 2):
                response = await client.get(path, params=params)
                body = await response.text()
                assert response.status == 200, (path, response.status)
                if name.startswith("search"):
                    _check_found(body, name, searched)
                elif path == "/conversations":
                    assert body.count('id="conversation-') == PAGE_SIZE
            samples = app[SERVER_TIME][path][2:]  # two warm-up requests
            results[name] = _stats(samples)
        return results
    finally:
        await client.close()
        executor.shutdown(wait=True)


class Refused(Exception):
    """A kept database that ``--reuse`` cannot measure; the message says why and what to do."""


def _manifest_path(workdir: Path) -> Path:
    return workdir / MANIFEST


def seed(args: argparse.Namespace, workdir: Path) -> tuple[Path, float]:
    """Create, migrate and load the database; the node's configuration and the load's seconds."""
    _log(f"creating database {args.database}")
    url = create_database(args.admin_url, args.database)
    store = open_store(url)
    migrate(store.engine)
    store.dispose()
    config_path = build_node(url, workdir)
    node = Node.from_config(NodeConfig.from_toml(config_path))
    try:
        keys = node_search_keys(node)
    finally:
        node.close()
    _log(f"loading {args.rows:,} conversations with COPY ({args.workers} worker processes)")
    load_s = load(url, args.rows, datetime.now(UTC).replace(microsecond=0), keys, args.workers)
    return config_path, load_s


def reused(args: argparse.Namespace, workdir: Path) -> tuple[Path, int]:
    """The kept database's node configuration and row count, after checking that the database
    is the one the manifest describes: this code's schema revision and the same row count."""
    manifest_path = _manifest_path(workdir)
    again = (
        f"run once without --reuse and with --keep to seed it again "
        f"(about 5 minutes at 1,000,000 rows): {sys.argv[0]} --keep --database {args.database}"
    )
    if not manifest_path.exists():
        raise Refused(f"--reuse: no kept benchmark at {manifest_path}; {again}")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("layout") != LAYOUT:
        raise Refused(
            f"--reuse: database {args.database} was loaded with another layout of rows "
            f"({manifest.get('layout', 1)}, this benchmark loads {LAYOUT}); {again}"
        )
    url = _server_url(args.admin_url, args.database)
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        revision = current_revision(engine)
        if revision != head_revision():
            raise Refused(
                f"--reuse: database {args.database} is at migration revision {revision}, this "
                f"code's newest is {head_revision()}; the timings would not be this code's. "
                f"{again[0].upper()}{again[1:]}"
            )
        with engine.connect() as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(conversations)).scalar_one()
    except sa.exc.OperationalError as exc:
        raise Refused(
            f"--reuse: database {args.database} cannot be opened ({type(exc.orig).__name__}); "
            f"{again}"
        ) from exc
    finally:
        engine.dispose()
    wanted = manifest["rows"] if args.rows is None else args.rows
    if rows != wanted or rows != manifest["rows"]:
        raise Refused(
            f"--reuse: database {args.database} holds {rows:,} conversations, not the "
            f"{wanted:,} asked for (seeded with {manifest['rows']:,}); {again} "
            f"--rows {wanted}"
        )
    return Path(manifest["config"]), rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", type=int, default=None, help="conversations to load (default 1,000,000)"
    )
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per page")
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--database", default=DATABASE)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where --keep keeps the node (keys, configuration) beside the database "
        "(default: <temp dir>/<database>)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="processes sealing the rows while loading"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the database and its node for --reuse"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure a database kept by an earlier --keep run again, without loading",
    )
    args = parser.parse_args(argv)
    if args.rows is None and not args.reuse:  # --reuse: the kept database's count
        args.rows = 1_000_000
    if args.rows is not None and args.rows < PAGE_NUMBER * PAGE_SIZE + 1:
        parser.error(f"--rows must be over {PAGE_NUMBER * PAGE_SIZE} to reach page {PAGE_NUMBER}")
    workdir = args.workdir or Path(tempfile.gettempdir()) / args.database

    load_s: float | None = None
    rows: int
    if args.reuse:
        try:
            config_path, rows = reused(args, workdir)
        except Refused as exc:
            print(exc, file=sys.stderr)
            return 2
        _log(f"reusing database {args.database} ({rows:,} conversations, node in {workdir})")
        keep = True
    else:
        rows, keep = args.rows, args.keep
        if not keep:
            workdir = Path(tempfile.mkdtemp(prefix="console-bench-"))
        else:
            _manifest_path(workdir).unlink(missing_ok=True)
    try:
        if not args.reuse:
            config_path, load_s = seed(args, workdir)
            if keep:
                manifest = {
                    "database": args.database,
                    "rows": args.rows,
                    "layout": LAYOUT,
                    "config": str(config_path),
                }
                _manifest_path(workdir).write_text(json.dumps(manifest), encoding="utf-8")
        node = Node.from_config(NodeConfig.from_toml(config_path))
        try:
            results = asyncio.run(measure(node, args.repeat, searched_row(rows)))
        finally:
            node.close()
    finally:
        if not keep:
            drop_database(args.admin_url, args.database)
            shutil.rmtree(workdir, ignore_errors=True)
            _log(f"dropped database {args.database}")
    if keep:
        _log(
            f"kept database {args.database} and its node in {workdir}; measure it again with: "
            f"{sys.argv[0]} --reuse --database {args.database}"
            + (f" --workdir {args.workdir}" if args.workdir else "")
        )

    loaded = "reused, not loaded" if load_s is None else f"loaded in {load_s:.1f} s"
    load_average = Path("/proc/loadavg").read_text().split()[:3]
    print(f"conversations: {rows:,} (PostgreSQL, {loaded}; load average {' '.join(load_average)})")
    print(f"{'page':<14}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}{'n':>6}")
    for name, stats in results.items():
        print(
            f"{name:<14}{stats['p50_ms']:>10.1f}{stats['p95_ms']:>10.1f}"
            f"{stats['max_ms']:>10.1f}{stats['n']:>6}"
        )
    ok = all(stats["p95_ms"] <= TARGET_MS for stats in results.values())
    print(
        f"target: at most {TARGET_MS:.0f} ms at p95 for the overview, both pages and the "
        "searches: " + ("met" if ok else "NOT MET")
    )
    print(
        json.dumps(
            {
                "rows": rows,
                "load_s": None if load_s is None else round(load_s, 1),
                "load_average": [float(x) for x in load_average],
                "pages": results,
                "target_ms": TARGET_MS,
                "ok": ok,
                "measured_on": date.today().isoformat(),
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
