"""docs/operations.md, "Two nodes on PostgreSQL, step by step", run as written: the block's
commands for RU-FSSP and KZ-MJ, each on its own PostgreSQL schema with HTTPS for the API and
the console; then a request from RU-FSSP's API is delivered to KZ-MJ with its signed receipt,
KZ-MJ reads it, and its first user signs in to the console over HTTPS.

The national CAs and the depositary (who certify the keys and sign the directory) are played
by the demo's (``gateway.demo.setup``): what the step-by-step block assumes done."""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from gateway.demo.setup import DemoWorld
from tests.https import loopback_certificate
from tests.integration.exchange_world import (
    GATEWAY,
    padded_request,
    serving,
    write_toml,
)
from tests.web.console.conftest import csrf_of

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
SECTION = "Two nodes on PostgreSQL, step by step"
PURPOSE = "%D0%9F%D1%80%D0%BE%D0%B2%D0%B5%D1%80%D0%BA%D0%B0"  # "Проверка", percent-encoded
PASSWORD = "Walkthrough-Pass-2026!"


def documented_commands() -> list[str]:
    text = DOC.read_text("utf-8")
    start = text.index(f"\n## {SECTION}\n")
    block = text[start:].split("```", 2)[1]
    return [line for line in block.splitlines() if line.startswith("gateway ")]


def node_folder(world: DemoWorld, body: str, folder: Path, database_url: str) -> Path:
    """$NODE for ``body``: node.toml with absolute paths, its database and HTTPS settings."""
    source = world.nodes[body].config_path
    raw = tomllib.loads(source.read_text("utf-8"))

    def absolute(value: str) -> str:
        return str((source.parent / value).resolve())

    raw["node"]["data_dir"] = str(folder / "data")
    raw["database"] = {"url": database_url}
    raw["keys"]["dir"] = absolute(raw["keys"]["dir"])
    raw["keys"]["passphrase_file"] = absolute(raw["keys"]["passphrase_file"])
    trust = raw["trust"]
    for key in ("ca_file", "depositary_ca_file", "directory_file"):
        trust[key] = absolute(trust[key])
    trust["crl_files"] = [absolute(p) for p in trust["crl_files"]]
    raw["peer"]["port"] = world.nodes[body].peer_port
    raw["peer"]["reuse_port"] = True  # beside the port the session holds for the directory
    passphrase = Path(raw["keys"]["passphrase_file"]).read_bytes().splitlines()[0]
    folder.mkdir(mode=0o700)
    # Each its own name: a client trusting both finds each issuer by it.
    cert, key = loopback_certificate(folder, subject=f"{body} console", passphrase=passphrase)
    for site in ("api", "console"):
        raw[site]["port"] = 0
        raw[site]["tls_cert_file"] = str(cert)
        raw[site]["tls_key_file"] = str(key)
    write_toml(folder / "node.toml", raw)
    password = folder / "first-password"
    password.write_text(PASSWORD + "\n", encoding="utf-8")
    password.chmod(0o600)
    return folder


def run_block(node: Path) -> dict[str, str]:
    """Every command of the block but ``serve``, through a shell as typed; their outputs."""
    outputs = {}
    env = {**os.environ, "PATH": f"{GATEWAY.parent}:{os.environ['PATH']}", "NODE": str(node)}
    for command in documented_commands():
        if command.startswith("gateway serve "):
            continue
        done = subprocess.run(
            ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        outputs[command] = outputs.get(command, "") + done.stdout
    return outputs


async def _call(https: aiohttp.ClientSession, url: str, token: str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}", "X-Purpose": PURPOSE}
    async with https.request(kwargs.pop("method", "GET"), url, headers=headers, **kwargs) as r:
        assert r.status < 400, (url, r.status, await r.text())
        return await r.json()


async def exchange_and_sign_in(
    urls: dict[str, dict[str, str]], tokens: dict[str, str], cas: dict[str, Path]
) -> None:
    context = ssl.create_default_context()
    for ca in cas.values():
        context.load_verify_locations(cafile=str(ca))
    connector = aiohttp.TCPConnector(ssl=context)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as https:
        ru, kz = urls["RU-FSSP"]["api"], urls["KZ-MJ"]["api"]
        sent = await _call(
            https, f"{ru}/messages", tokens["RU-FSSP"], method="POST", json=padded_request()
        )
        message_id = sent["message_id"]
        for _ in range(600):
            message = await _call(https, f"{ru}/messages/{message_id}", tokens["RU-FSSP"])
            if message["summary"]["delivery_state"] in ("delivered", "failed"):
                break
            await asyncio.sleep(0.1)
        assert (message.get("receipt") or {}).get("outcome") == "accepted", message
        received = await _call(https, f"{kz}/messages/{message_id}", tokens["KZ-MJ"])
        assert received["summary"]["message_id"] == message_id
        console = urls["KZ-MJ"]["console"]
        async with https.get(f"{console}/login") as page:
            [cookie] = page.headers.getall("Set-Cookie")
            assert cookie.startswith("__Host-gateway-console=") and "Secure" in cookie
            token = csrf_of(await page.text())
        async with https.post(
            f"{console}/login",
            data={"username": "chief", "password": PASSWORD, "csrf_token": token},
            allow_redirects=False,
        ) as signed_in:
            assert signed_in.status == 303, await signed_in.text()
        async with https.get(f"{console}/") as dashboard:
            assert dashboard.status == 200
            assert 'id="current-user-name">chief<' in await dashboard.text()


def test_the_documented_steps_bring_up_two_nodes_on_postgresql(
    world: DemoWorld, tmp_path: Path, pg_schema: Callable[[str], str]
) -> None:
    nodes = {
        body: node_folder(world, body, tmp_path / body, pg_schema(f"walk_{body[:2].lower()}"))
        for body in ("RU-FSSP", "KZ-MJ")
    }
    tokens = {}
    for body, node in nodes.items():
        outputs = run_block(node)
        statuses = outputs["gateway db status --config $NODE/node.toml"]
        assert "состояние: empty" in statuses and "состояние: current" in statuses, statuses
        assert (
            "ok    database: postgresql доступна"
            in outputs["gateway check-config --config $NODE/node.toml"]
        )
        listed = outputs["gateway tokens list --config $NODE/node.toml"]
        assert "case-system" in listed and "active" in listed
        tokens[body] = (node / "api-token").read_text("ascii").strip()
    (serve_line,) = [c for c in documented_commands() if c.startswith("gateway serve ")]
    assert serve_line == "gateway serve --config $NODE/node.toml"
    with serving(nodes["RU-FSSP"] / "node.toml") as ru, serving(nodes["KZ-MJ"] / "node.toml") as kz:
        urls = {body: _urls(s.output()) for body, s in (("RU-FSSP", ru), ("KZ-MJ", kz))}
        cas = {body: node / "https.crt.pem" for body, node in nodes.items()}
        asyncio.run(exchange_and_sign_in(urls, tokens, cas))
    assert json.dumps(tokens)  # the tokens were printed once, into the files the block named


def _urls(output: str) -> dict[str, str]:
    api = re.search(r"API (https://\S+/api/v1)", output)
    console = re.search(r"консоль (https://\S+)", output)
    assert api and console, output
    return {"api": api.group(1), "console": console.group(1)}
