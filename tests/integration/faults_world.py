"""Helpers of the fault tests: a ``gateway serve`` process whose output goes through a pipe (so
that a file-size limit put on the process spares its log), and submissions through its local
API that report the status and the error code instead of raising."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
