"""A node's state in one private folder: :func:`backup` and :func:`restore` (``gateway backup``,
``gateway restore``).

A backup folder (0700, every file 0600) holds

* ``gateway.db``: the SQLite store, copied with SQLite's online backup API (a consistent
  snapshot while the node runs: readers and writers go on, the copy is of one moment), or
  ``database.pgdump``: PostgreSQL's ``pg_dump --format=custom`` of the node's database;
* ``keys/``: the key folder (encrypted private keys, certificates, generation manifests, the
  KEK ring): without it the stored messages cannot be decrypted;
* ``node.toml``: the configuration as it was;
* ``MANIFEST.json``: body id, time, store revision, and the SHA-256 of every file.

Secrets (the passphrase, the database password) are not in it: they stay in their sources and
must be kept, separately, as long as the backup. ``restore`` checks every hash, refuses a
backup of another body, and writes only where nothing is (a store or key file already there is
never overwritten), so a failed restore loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from gateway.app.database import prepare_sqlite_file, schema_state
from gateway.app.failures import ExitCode, Failure
from gateway.config import NodeConfig

FORMAT = "gateway-backup/1"
MANIFEST = "MANIFEST.json"
SQLITE_FILE = "gateway.db"
PG_DUMP_FILE = "database.pgdump"
KEYS_DIR = "keys"
CONFIG_FILE = "node.toml"
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
PAGES_PER_STEP = 1024
"""SQLite backup step: the node's writers wait at most one step's copy, not the whole file's."""


# --- backup ---------------------------------------------------------------------------------


def backup(config: NodeConfig, out: Path) -> dict[str, Any]:
    """Copy the node's store (a consistent snapshot while it runs), key folder and NODE.toml
    into the new private folder ``out``; returns the manifest written beside them. A failure
    leaves no half backup."""
    if out.exists():
        raise Failure(
            f"{out} уже существует; укажите новый каталог для резервной копии",
            "FILE_EXISTS",
            ExitCode.USAGE,
        )
    out.mkdir(mode=PRIVATE_DIR, parents=True)
    os.chmod(out, PRIVATE_DIR)  # whatever the umask
    try:
        return _write_backup(config, out)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # no half backup that looks like a whole one
        raise


def _write_backup(config: NodeConfig, out: Path) -> dict[str, Any]:
    if _is_sqlite(config):
        revision = _backup_sqlite(_sqlite_path(config), out / SQLITE_FILE)
    else:
        revision = _backup_postgres(config, out / PG_DUMP_FILE)
    if config.keys.dir.is_dir():
        _copy_private_tree(config.keys.dir, out / KEYS_DIR)
    _copy_private_file(config.path, out / CONFIG_FILE)
    manifest = {
        "format": FORMAT,
        "body_id": config.node.body_id,
        "created_at": datetime.now(UTC).isoformat(),
        "database": "sqlite" if _is_sqlite(config) else "postgresql",
        "revision": revision,
        "files": {name: _sha256(out / name) for name in _files(out)},
    }
    _write_private(out / MANIFEST, json.dumps(manifest, indent=1).encode())
    return manifest


def _is_sqlite(config: NodeConfig) -> bool:
    return config.database_url.startswith("sqlite")


def _sqlite_path(config: NodeConfig) -> Path:
    return Path(make_url(config.database_url).database or "")


def _backup_sqlite(source: Path, target: Path) -> str | None:
    if not source.is_file():
        raise Failure(
            f"хранилища {source} нет: копировать нечего (узел ещё не запускался?)",
            "FILE_NOT_FOUND",
            ExitCode.UNAVAILABLE,
        )
    _create_private(target)
    # The backup API reads the store page by page while the node goes on writing; a page
    # written meanwhile makes it copy that page again, so the result is of one moment.
    with (
        closing(sqlite3.connect(source)) as src,
        closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst, pages=PAGES_PER_STEP)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        return _sqlite_revision(dst)


def _sqlite_revision(conn: Any) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except Exception:  # sqlite3.OperationalError: a store never migrated
        return None
    return row[0] if row else None


def _libpq(config: NodeConfig, *, dump: bool) -> tuple[list[str], dict[str, str]]:
    """pg_dump's / pg_restore's connection options and environment for the node's database:
    the password goes through PGPASSWORD, never the command line (``ps`` shows that)."""
    url = make_url(config.database_url)
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    options = [
        f"--host={url.host or '127.0.0.1'}",
        f"--port={url.port or 5432}",
        f"--dbname={url.database}",
    ]
    if url.username:
        options.append(f"--username={url.username}")
    if "sslmode" in url.query:
        env["PGSSLMODE"] = str(url.query["sslmode"])
    search_path = _search_path(str(url.query.get("options", "")))
    if dump and search_path:  # a node in a schema of a shared database: that schema only
        options.append(f"--schema={search_path}")
    return options, env


def _search_path(options: str) -> str:
    """The first schema of a ``-c search_path=…`` (or ``-csearch_path=…``) in libpq options."""
    for part in options.replace("-c ", "-c").split():
        if part.removeprefix("-c").startswith("search_path="):
            return part.split("=", 1)[1].split(",")[0]
    return ""


def _backup_postgres(config: NodeConfig, target: Path) -> str | None:
    options, env = _libpq(config, dump=True)
    _create_private(target)
    _run_pg("pg_dump", ["--format=custom", "--no-owner", f"--file={target}", *options], env)
    return schema_state(config.database_url).revision


def _run_pg(program: str, args: list[str], env: dict[str, str]) -> None:
    path = shutil.which(program)
    if path is None:
        raise Failure(
            f"{program} не найден; установите клиент PostgreSQL (Debian: postgresql-client) той "
            "же или новее версии, что и сервер",
            "TOOL_MISSING",
            ExitCode.UNAVAILABLE,
        )
    done = subprocess.run([path, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["?"])[0]
        raise Failure(
            f"{program} не выполнен ({first}); проверьте [database] url и доступ к серверу",
            "DATABASE_UNAVAILABLE",
            ExitCode.UNAVAILABLE,
        )


# --- restore --------------------------------------------------------------------------------


def restore(config: NodeConfig, source: Path) -> dict[str, Any]:
    """Bring the backup in ``source`` back into the store and key folder ``config`` names
    (both empty: nothing is overwritten); every file's hash is checked first, and a backup of
    another body is refused. Returns the backup's manifest."""
    manifest = _checked_manifest(source, config.node.body_id)
    keys_target = config.keys.dir
    incoming_keys = [n for n in manifest["files"] if n.startswith(f"{KEYS_DIR}/")]
    clashes = [n for n in incoming_keys if (keys_target / n.split("/", 1)[1]).exists()]
    if clashes:
        raise Failure(
            f"в {keys_target} уже есть {clashes[0].split('/', 1)[1]}: восстановление ничего не "
            "перезаписывает; укажите в [keys] dir пустой каталог",
            "FILE_EXISTS",
            ExitCode.USAGE,
        )
    sqlite = manifest["database"] == "sqlite"
    if sqlite and not _is_sqlite(config):
        raise Failure(
            "копия сделана с SQLite, а NODE.toml называет PostgreSQL; перенос между ними "
            "не поддерживается",
            "BACKUP_MISMATCH",
            ExitCode.USAGE,
        )
    if not sqlite and _is_sqlite(config):
        raise Failure(
            "копия сделана с PostgreSQL, а NODE.toml называет SQLite",
            "BACKUP_MISMATCH",
            ExitCode.USAGE,
        )
    if sqlite:
        _refuse_existing_sqlite(_sqlite_path(config))
    else:
        _refuse_existing_postgres(config)
    # Everything checked; now the writes, the key files first (each created here, so a failure
    # removes exactly these) and the store last: a restore that fails half-way (a key file that
    # cannot be created, a full disk, pg_restore refusing) leaves nothing to move aside by hand.
    created: list[Path] = []
    try:
        for name in incoming_keys:
            target = keys_target / name.split("/", 1)[1]
            _create_private(target)
            created.append(target)
            target.write_bytes((source / name).read_bytes())
        if sqlite:
            _restore_sqlite(source / SQLITE_FILE, _sqlite_path(config), created)
        else:
            _restore_postgres(config, source / PG_DUMP_FILE)
    except BaseException:
        for path in reversed(created):
            path.unlink(missing_ok=True)
        raise
    return manifest


def _checked_manifest(source: Path, body_id: str) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((source / MANIFEST).read_text("utf-8"))
    except FileNotFoundError:
        raise Failure(
            f"{source}: нет {MANIFEST} — это не резервная копия gateway backup",
            "BACKUP_INVALID",
            ExitCode.USAGE,
        ) from None
    except ValueError:
        raise Failure(f"{source / MANIFEST}: не JSON", "BACKUP_INVALID", ExitCode.REFUSED) from None
    if manifest.get("format") != FORMAT:
        raise Failure(
            f"{source}: формат {manifest.get('format')!r}, ожидался {FORMAT}",
            "BACKUP_INVALID",
            ExitCode.REFUSED,
        )
    if manifest["body_id"] != body_id:
        raise Failure(
            f"копия узла {manifest['body_id']}, а NODE.toml — узла {body_id}",
            "BACKUP_MISMATCH",
            ExitCode.USAGE,
        )
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise Failure(f"{source / MANIFEST}: нет списка файлов", "BACKUP_INVALID", ExitCode.REFUSED)
    for name, digest in files.items():
        path = _member(source, name)
        if not path.is_file() or _sha256(path) != digest:
            raise Failure(
                f"{path}: нет файла или он изменён после копирования (SHA-256 не совпадает); "
                "возьмите другую копию",
                "BACKUP_CORRUPT",
                ExitCode.REFUSED,
            )
    return manifest


def _member(source: Path, name: object) -> Path:
    """The backup's file ``name`` as MANIFEST.json lists it: the store, NODE.toml or a file of
    ``keys/``, as a plain relative path (no ``..``, ``.``, empty or absolute part) reaching a
    file inside ``source`` through no symbolic link. A key's name is written again under the key
    folder on restore: anything else could place a file outside it."""
    parts = name.split("/") if isinstance(name, str) else []
    plain = bool(parts) and all(p not in ("", ".", "..") and "\0" not in p for p in parts)
    known = name in (SQLITE_FILE, PG_DUMP_FILE, CONFIG_FILE) or (
        len(parts) > 1 and parts[0] == KEYS_DIR
    )
    path = source.joinpath(*parts)
    if not (plain and known) or os.path.realpath(path) != os.path.join(
        os.path.realpath(source), *parts
    ):
        raise Failure(
            f"{source / MANIFEST}: файл {name!r} не из резервной копии (путь вне её каталогов "
            "или через символическую ссылку); возьмите другую копию",
            "BACKUP_INVALID",
            ExitCode.REFUSED,
        )
    return path


def _refuse_existing_sqlite(target: Path) -> None:
    for existing in (target, Path(f"{target}-wal")):
        if existing.exists() and existing.stat().st_size > 0:
            raise Failure(
                f"{existing} уже есть: восстановление ничего не перезаписывает; переместите его "
                "или укажите в [node] data_dir пустой каталог",
                "FILE_EXISTS",
                ExitCode.USAGE,
            )


def _restore_sqlite(source: Path, target: Path, created: list[Path]) -> None:
    if not target.exists():
        created.append(target)  # an empty file already there stays, emptied on failure below
    prepare_sqlite_file(target)  # the folder 0700, the file 0600
    try:
        with (
            closing(sqlite3.connect(source)) as src,
            closing(sqlite3.connect(target)) as dst,
        ):
            src.backup(dst, pages=PAGES_PER_STEP)
    except BaseException:
        if target not in created:
            os.truncate(target, 0)
        raise


def _refuse_existing_postgres(config: NodeConfig) -> None:
    if schema_state(config.database_url).revision is not None:
        raise Failure(
            "в базе NODE.toml уже есть хранилище узла: восстановление ничего не перезаписывает; "
            "создайте пустую базу (createdb) и укажите её в [database] url",
            "FILE_EXISTS",
            ExitCode.USAGE,
        )


def _restore_postgres(config: NodeConfig, dump: Path) -> None:
    options, env = _libpq(config, dump=False)
    # One transaction: a dump that fails half-way leaves the database as empty as it was.
    _run_pg("pg_restore", ["--no-owner", "--single-transaction", *options, str(dump)], env)


# --- files ----------------------------------------------------------------------------------


def _files(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != MANIFEST
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _create_private(path: Path) -> None:
    path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))


def _write_private(path: Path, data: bytes) -> None:
    _create_private(path)
    path.write_bytes(data)


def _copy_private_file(source: Path, target: Path) -> None:
    _write_private(target, source.read_bytes())


def _copy_private_tree(source: Path, target: Path) -> None:
    for path in sorted(source.rglob("*")):
        if path.is_file() and not stat.S_ISLNK(path.lstat().st_mode):
            _copy_private_file(path, target / path.relative_to(source))
