"""The console over real TLS on loopback: the Secure, host-only cookie is set and sent back,
and sign-in works end to end (browsers drop Secure cookies over plain HTTP)."""

from __future__ import annotations

import ipaddress
import ssl
from datetime import timedelta
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.web.console import make_console_app, start_console
from tests.web.console.conftest import CHEAP_HASHER, IDENTITY, NOW, PASSWORD, csrf_of, store_sources


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "console test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_sign_in_over_tls(
    tmp_path, service, users, console_store, clock, audit, seeded
) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    app = make_console_app(
        service,
        users,
        secure_cookies=True,
        audit=audit,
        clock=clock,
        identity=IDENTITY,
        password_hasher=CHEAP_HASHER,
        **store_sources(console_store, tmp_path / "node.toml"),
    )
    runner = await start_console(app, "127.0.0.1", 0, ssl_context=server_ctx)
    base = f"https://127.0.0.1:{runner.addresses[0][1]}"  # the port the OS gave
    try:
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for an IP address host
        connector = aiohttp.TCPConnector(ssl=client_ctx)
        async with aiohttp.ClientSession(cookie_jar=jar, connector=connector) as session:
            page = await session.get(f"{base}/login")
            assert page.headers["Strict-Transport-Security"].startswith("max-age=")
            [cookie] = page.headers.getall("Set-Cookie")
            assert cookie.startswith("__Host-gateway-console=") and "Secure" in cookie
            token = csrf_of(await page.text())
            response = await session.post(
                f"{base}/login",
                data={"username": "operator1", "password": PASSWORD, "csrf_token": token},
                allow_redirects=False,
            )
            assert response.status == 303
            dashboard = await session.get(f"{base}/")
            assert dashboard.status == 200
            assert 'id="current-user-name">operator1<' in await dashboard.text()
    finally:
        await runner.cleanup()
