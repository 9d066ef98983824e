"""``[api]``/``[console]`` ``tls_cert_file``/``tls_key_file``: ``gateway serve`` answers HTTPS on
both (a real TLS client on loopback), plain HTTP is refused on those ports, the console's
session cookie is ``Secure`` (``__Host-`` prefix), and ``check-config`` checks the pair."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest

from gateway.cli.errors import ExitCode
from gateway.demo.setup import DemoWorld
from tests.cli.conftest import gateway, variant
from tests.cli.test_errors import assert_error
from tests.https import https_client, loopback_certificate
from tests.integration.exchange_world import serving


def _https_config(world: DemoWorld, tmp_path: Path) -> tuple[Path, Path]:
    node_dir = world.nodes["RU-FSSP"].config_path.parent
    passphrase = (node_dir / "passphrase").read_bytes().splitlines()[0]
    cert, key = loopback_certificate(tmp_path, passphrase=passphrase)
    pair = {"tls_cert_file": f'"{cert}"', "tls_key_file": f'"{key}"'}
    settings = {f"{site}.{k}": v for site in ("api", "console") for k, v in pair.items()}
    return variant(world, tmp_path, **settings), cert


async def test_api_and_console_over_https_with_secure_cookies(
    world: DemoWorld, tmp_path: Path
) -> None:
    config, cert = _https_config(world, tmp_path)
    check = gateway("check-config", "--config", str(config))
    assert check.code == 0, check.out + check.err
    assert re.search(r"^ok    https api: RU-FSSP console, действует до", check.out, re.M)
    assert re.search(r"^ok    https console key: .*https\.key\.pem \(0600\)", check.out, re.M)
    with serving(config) as serve:
        first = serve.output()
        api = re.search(r"API (https://\S+)/api/v1", first).group(1)
        console = re.search(r"консоль (https://\S+)", first).group(1)
        async with https_client(cert) as https:
            async with https.get(f"{api}/healthz") as response:
                assert response.status == 200
            async with https.get(f"{console}/login") as page:
                assert page.status == 200
                [cookie] = page.headers.getall("Set-Cookie")
                assert cookie.startswith("__Host-gateway-console=") and "Secure" in cookie
                assert page.headers["Strict-Transport-Security"].startswith("max-age=")
        async with aiohttp.ClientSession() as plain:
            for base in (api, console):
                with pytest.raises(aiohttp.ClientError):
                    await plain.get(f"{base.replace('https:', 'http:')}/healthz")


def test_a_certificate_without_its_key_is_a_configuration_error(
    world: DemoWorld, tmp_path: Path
) -> None:
    config = variant(world, tmp_path, **{"console.tls_cert_file": f'"{tmp_path / "c.pem"}"'})
    run = gateway("serve", "--config", str(config))
    assert_error(run, ExitCode.USAGE, "CONFIG_INVALID")
    assert "tls_key_file" in run.err


def test_an_exposed_listener_without_tls_is_a_warning(world: DemoWorld, tmp_path: Path) -> None:
    config = variant(world, tmp_path, **{"api.host": '"0.0.0.0"'})
    run = gateway("check-config", "--config", str(config))
    assert re.search(
        r"^warn  https api: \[api\] host = 0\.0\.0\.0 без tls_cert_file", run.out, re.M
    )
