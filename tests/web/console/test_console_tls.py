"""The console over real TLS on loopback: the Secure, host-only cookie is set and sent back,
and sign-in works end to end (browsers drop Secure cookies over plain HTTP)."""

from __future__ import annotations

import ssl

from gateway.web.console import make_console_app, start_console
from tests.https import https_client, loopback_certificate
from tests.web.console.conftest import CHEAP_HASHER, IDENTITY, NOW, PASSWORD, csrf_of, store_sources


async def test_sign_in_over_tls(
    tmp_path, service, users, console_store, clock, audit, seeded
) -> None:
    cert, key = loopback_certificate(tmp_path, subject="console test", now=NOW)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
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
        async with https_client(cert) as session:
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
