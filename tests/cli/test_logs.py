"""``gateway serve``'s log as an operator reads it: every line with a UTC time, a level and a
logger, JSON Lines when ``[logging] format = "json"``, and one access-log line per request of
the API, the console and the peer endpoint, without the query string or the token."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from gateway.cli.errors import ExitCode
from gateway.demo.setup import DemoWorld
from gateway.web.peer_client import PeerClient, PeerTransportError, messages_url
from tests.cli.conftest import gateway, variant
from tests.cli.test_errors import assert_error
from tests.integration.exchange_world import serving, tls_client

SECRET_QUERY = "purpose-SECRET-4711"
TOKEN = "tok-SECRET-0815"  # a marker that must not reach the log

UTC_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TEXT_LINE = re.compile(
    r"^(?P<ts>\S+) (?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) +RU-FSSP (?P<logger>[\w.]+): "
)


async def _requests(api: str, console: str, peer: str, world: DemoWorld) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{api.removesuffix('/api/v1')}/healthz") as response:
            assert response.status == 200
        async with http.get(
            f"{api}/messages/6f3a1f8e-0000-4000-8000-000000000001",
            params={"purpose": SECRET_QUERY},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as response:
            assert response.status == 401
        async with http.get(f"{console}/login", params={"next": SECRET_QUERY}) as response:
            assert response.status == 200
    keys = world.nodes["KZ-MJ"].config_path.parent / "keys"
    async with PeerClient(tls_client(keys, world)) as client:
        with pytest.raises(PeerTransportError) as refused:
            await client.post_message(messages_url(peer), b"<not-a-document/>")
    assert refused.value.status == 400


def _log_lines(output: str) -> list[str]:
    """Everything ``gateway serve`` wrote but the line with its ports (on stdout)."""
    return [line for line in output.splitlines() if not line.startswith("узел RU-FSSP: ")]


def _urls(first_line: str) -> tuple[str, str, str]:
    api = re.search(r"API (http://\S+/api/v1)", first_line).group(1)
    console = re.search(r"консоль (http://\S+)", first_line).group(1)
    peer = re.search(r"peer (https://[\d.]+:\d+)", first_line).group(1)
    return api, console, peer


async def test_json_lines_with_time_level_logger_and_an_access_log(
    world: DemoWorld, tmp_path: Path
) -> None:
    config = variant(world, tmp_path, **{"logging.format": '"json"', "peer.port": "0"})
    with serving(config) as serve:
        await _requests(*_urls(serve.output()), world)
    lines = _log_lines(serve.output())
    # Every line but the ports line on stdout is JSON: nothing logs around the handler.
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        assert UTC_ISO.match(entry["ts"]), entry
        stamped = datetime.fromisoformat(entry["ts"])
        assert abs(stamped - datetime.now(UTC)) < timedelta(hours=1)  # UTC, not local time
        assert entry["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
        assert entry["logger"] and entry["node"] == "RU-FSSP"
    access = [e for e in entries if e["logger"] == "gateway.access"]
    seen = {(e["site"], e["method"], e["path"], e["status"]) for e in access}
    assert ("api", "GET", "/healthz", 200) in seen
    assert ("api", "GET", "/api/v1/messages/{message_id}", 401) in seen
    assert ("console", "GET", "login", 200) in seen
    assert ("peer", "POST", "/exchange/v1/messages", 400) in seen
    (peer,) = [e for e in access if e["site"] == "peer"]
    assert peer["peer"] == "KZ-MJ" and isinstance(peer["duration_ms"], float)
    text = serve.output()
    assert SECRET_QUERY not in text and TOKEN not in text
    assert "6f3a1f8e" not in text  # the route template, not the message id of the request


async def test_text_lines_start_with_utc_time_level_node_and_logger(
    world: DemoWorld, tmp_path: Path
) -> None:
    config = variant(world, tmp_path, **{"peer.port": "0"})  # text is the default
    with serving(config) as serve:
        await _requests(*_urls(serve.output()), world)
    lines = _log_lines(serve.output())
    assert lines, serve.output()
    for line in lines:
        found = TEXT_LINE.match(line)
        assert found, line
        assert UTC_ISO.match(found["ts"]), line
    access = [line for line in lines if " gateway.access: " in line]
    assert any(
        line.endswith("ms peer=KZ-MJ") and " peer POST /exchange/v1/messages 400 " in line
        for line in access
    ), access
    assert SECRET_QUERY not in serve.output() and TOKEN not in serve.output()


async def test_a_level_of_warning_leaves_out_the_access_log(
    world: DemoWorld, tmp_path: Path
) -> None:
    config = variant(world, tmp_path, **{"logging.level": '"WARNING"', "peer.port": "0"})
    with serving(config) as serve:
        api, _, _ = _urls(serve.output())
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{api.removesuffix('/api/v1')}/healthz") as response,
        ):
            assert response.status == 200
    assert "gateway.access" not in serve.output()


def test_serve_refuses_to_start_on_what_check_config_fails(
    world: DemoWorld, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    shutil.copytree(world.nodes["RU-FSSP"].config_path.parent / "keys", keys)
    (keys / "kek.key").chmod(0o640)
    config = variant(world, tmp_path, **{"keys.dir": f'"{keys}"', "logging.format": '"json"'})
    run = gateway("serve", "--config", str(config))
    assert_error(run, ExitCode.USAGE, "FILE_PERMISSIONS")
    assert "kek.key" in run.err and "узел не запущен" in run.err
    # Logged as the JSON the collector reads, before anything was bound or written.
    entries = [json.loads(line) for line in run.err.splitlines() if line.startswith("{")]
    (found,) = [e for e in entries if e["logger"] == "gateway.check" and e["level"] == "ERROR"]
    assert "kek.key" in found["message"] and found["message"].endswith("[FILE_PERMISSIONS]")
    assert "peer https://" not in run.out
    assert not (tmp_path / "data").exists()  # the store was not created


def test_a_record_about_one_message_carries_its_id_in_json() -> None:
    import io
    import logging

    from gateway.logs import configure

    out = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure(node="KZ-MJ", fmt="json", stream=out)
    try:
        log = logging.getLogger("gateway.web.runtime")
        ids = {"message_id": "6f3a1f8e-0000-4000-8000-000000000001", "peer": "RU-FSSP"}
        log.info("delivery of %s to %s: %s", ids["message_id"], "RU-FSSP", "delivered", extra=ids)
        log.info("rejected a document", extra={"peer": "RU-FSSP", "message_id": None})
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("aiohttp.access").setLevel(logging.NOTSET)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message_id"] == ids["message_id"] and first["peer"] == "RU-FSSP"
    assert first["node"] == "KZ-MJ" and first["logger"] == "gateway.web.runtime"
    assert "message_id" not in second and second["peer"] == "RU-FSSP"
