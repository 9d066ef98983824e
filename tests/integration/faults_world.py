"""Helpers of the fault tests: a ``gateway serve`` process whose output goes through a pipe (so
that a file-size limit put on the process spares its log), and submissions through its local
API that report the status and the error code instead of raising."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.integration.exchange_world import GATEWAY, SERVE_START_SECONDS

HTTP_TIMEOUT_SECONDS = 60.0
"""Per request: a loaded 2-core machine signs a document in well under this."""


@dataclass
class PipedServe:
    """``gateway serve --config CONFIG``; a thread collects its output lines."""

    config: Path
    process: subprocess.Popen[bytes]
    lines: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, config: Path) -> PipedServe:
        process = subprocess.Popen(
            [str(GATEWAY), "serve", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        serve = cls(config, process)
        threading.Thread(target=serve._collect, daemon=True).start()
        deadline = time.monotonic() + SERVE_START_SECONDS
        while "peer https://" not in serve.output():
            if process.poll() is not None or time.monotonic() > deadline:
                serve.stop()
                raise AssertionError(f"gateway serve did not start:\n{serve.output()}")
            time.sleep(0.1)
        return serve

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.decode("utf-8", "replace"))

    def output(self) -> str:
        return "".join(self.lines)

    @property
    def api_url(self) -> str:
        found = re.search(r"API (http://\S+/api/v1)", self.output())
        assert found, f"gateway serve did not say where its API listens:\n{self.output()}"
        return found.group(1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def code(self) -> str:
        return str(self.body.get("error", {}).get("code", ""))


def call(url: str, token: str, payload: dict[str, Any] | None = None) -> Answer:
    """GET (``payload`` None) or POST JSON to the local API, whatever the status."""
    data = None if payload is None else json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(  # noqa: S310 (the node's own http:// URL)
        url,
        data=data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="GET" if payload is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310
            return Answer(response.status, json.loads(response.read()), dict(response.headers))
    except urllib.error.HTTPError as error:
        return Answer(error.code, json.loads(error.read() or b"{}"), dict(error.headers))


# --- a private PostgreSQL cluster -----------------------------------------------------------------

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
PG_START_ATTEMPTS = 10


def postgres_bin() -> Path:
    """The newest Debian PostgreSQL server's bin folder (initdb, pg_ctl)."""
    import glob

    from tests.tooling import require_file

    found = sorted(glob.glob(f"{PG_BIN_GLOB}/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(require_file(found[-1] if found else f"{PG_BIN_GLOB}/pg_ctl", "postgresql")).parent


@dataclass
class PrivateCluster:
    """A PostgreSQL cluster of the test's own, in a temporary folder, on 127.0.0.1: it can be
    stopped and restarted without disturbing anyone else's server. As root the server runs as
    the ``postgres`` account (initdb refuses root)."""

    bin: Path
    data: Path
    port: int = 0

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run(
            [*prefix, *command], capture_output=True, text=True, check=check, timeout=120
        )

    @classmethod
    def create(cls) -> PrivateCluster:
        """initdb and start, in a new folder of the system's temporary folder (the ``postgres``
        account cannot enter pytest's, which are root's alone)."""
        folder = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        cluster = cls(postgres_bin(), folder / "data")
        cluster._run(
            str(cluster.bin / "initdb"),
            "-D",
            str(cluster.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )
        cluster._start_on_a_free_port()
        return cluster

    @property
    def log(self) -> Path:
        return self.data.parent / "server.log"

    def _start_on_a_free_port(self) -> None:
        """Postgres cannot bind port 0: try ports until the server itself binds one (never
        probe with a socket of our own, which would race with every other process)."""
        for _ in range(PG_START_ATTEMPTS):
            port = random.randint(20_000, 60_000)
            options = (
                f"-p {port} -c listen_addresses=127.0.0.1 -k {self.data.parent} "
                "-c fsync=off -c max_connections=60"
            )
            started = self._run(
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "start",
                check=False,
            )
            if started.returncode == 0:
                self.port = port
                return
            if "already in use" not in self.log.read_text("utf-8", "replace"):
                raise AssertionError(f"postgres did not start:\n{self.log.read_text()}")
        raise AssertionError(f"no free port in {PG_START_ATTEMPTS} attempts")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        admin = sa.create_engine(self.url("postgres"), poolclass=sa.NullPool)
        try:
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return self.url(name)

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def start(self) -> None:
        """Again, on the same port (pg_ctl keeps the options of the last start)."""
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "start",
            "-o",
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data.parent} "
            "-c fsync=off -c max_connections=60",
        )

    def destroy(self) -> None:
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop", check=False
        )
        shutil.rmtree(self.data.parent, ignore_errors=True)
