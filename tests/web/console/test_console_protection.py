"""CSRF, origin checks, security headers and escaping of the console."""

from __future__ import annotations

import re

from tests.web.console.conftest import SCRIPT, csrf_of, reading_as, sign_in, signed_in


async def test_post_without_csrf_token_is_refused(client, audit) -> None:
    await signed_in(client, "operator1")
    response = await client.post("/logout", data={}, allow_redirects=False)
    assert response.status == 403
    assert "Форма устарела" in await response.text()
    # Still signed in: the forged sign-out did nothing.
    assert (await client.get("/", allow_redirects=False)).status == 200
    [(actor, details)] = audit.of("console.csrf_refused")
    assert actor == "operator1" and details["reason"] == "bad-token"


async def test_post_with_a_wrong_csrf_token_is_refused(client) -> None:
    token = await signed_in(client, "operator1")
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    response = await client.post("/logout", data={"csrf_token": forged}, allow_redirects=False)
    assert response.status == 403
    assert (await client.get("/", allow_redirects=False)).status == 200


async def test_token_of_another_session_is_refused(make_client) -> None:
    first = await make_client()
    second = await make_client()
    token_first = await signed_in(first, "operator1")
    await signed_in(second, "reader1")
    response = await second.post("/logout", data={"csrf_token": token_first}, allow_redirects=False)
    assert response.status == 403


async def test_sign_in_form_needs_its_token(client, audit) -> None:
    await client.get("/login")
    response = await client.post(
        "/login", data={"username": "operator1", "password": "x" * 20}, allow_redirects=False
    )
    assert response.status == 403
    assert audit.of("console.sign_in_failed") == []
    assert audit.of("console.csrf_refused")[0][1]["reason"] == "bad-token"


async def test_sign_in_without_any_session_is_refused(client) -> None:
    response = await client.post(
        "/login",
        data={"username": "operator1", "password": "x", "csrf_token": "x"},
        allow_redirects=False,
    )
    assert response.status == 403


async def test_cross_origin_post_is_refused_even_with_the_token(client) -> None:
    token = await signed_in(client, "operator1")
    response = await client.post(
        "/logout",
        data={"csrf_token": token},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert response.status == 403
    same = await client.post(
        "/logout",
        data={"csrf_token": token},
        headers={"Origin": str(client.make_url("")).rstrip("/")},
        allow_redirects=False,
    )
    assert same.status == 303


async def test_browser_form_posts_are_accepted(client) -> None:
    """Chromium sends "Origin: null" with our no-referrer policy, and Sec-Fetch-Site."""
    token = await signed_in(client, "operator1")
    response = await client.post(
        "/logout",
        data={"csrf_token": token},
        headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"},
        allow_redirects=False,
    )
    assert response.status == 303


async def test_cross_site_fetch_metadata_is_refused(client) -> None:
    token = await signed_in(client, "operator1")
    response = await client.post(
        "/logout",
        data={"csrf_token": token},
        headers={"Origin": "null", "Sec-Fetch-Site": "cross-site"},
        allow_redirects=False,
    )
    assert response.status == 403


def _check_headers(response, *, cacheable: bool = False) -> None:
    h = response.headers
    csp = h["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert h["X-Frame-Options"] == "DENY"
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Referrer-Policy"] == "no-referrer"
    assert h["Server"] == "cis-exchange-gateway"
    if not cacheable:
        assert h["Cache-Control"] == "no-store"


async def test_security_headers_on_every_kind_of_response(client, seeded) -> None:
    _check_headers(await client.get("/login"))
    _check_headers(await client.get("/", allow_redirects=False))
    await signed_in(client, "operator1")
    _check_headers(await client.get("/"))
    _check_headers(await client.get("/conversations"))
    _check_headers(await client.get(f"/conversations/{seeded.cis}"))
    _check_headers(
        await client.get(f"/conversations/{seeded.cis}/messages/{seeded.cis_request}/xml")
    )
    missing = await client.get("/no-such-page")
    assert missing.status == 404 and "Страница не найдена" in await missing.text()
    _check_headers(missing)
    css = await client.get("/static/console.css")
    assert css.status == 200 and css.content_type == "text/css"
    _check_headers(css, cacheable=True)


async def test_pages_carry_no_script(client, seeded) -> None:
    await signed_in(client, "operator1")
    for path in (
        "/",
        "/conversations",
        f"/conversations/{seeded.cis}",
        f"/conversations/{seeded.cis}/messages/{seeded.cis_request}",
        f"/conversations/{seeded.cis}/refuse",
    ):
        html = await (await client.get(path)).text()
        assert "<script" not in html.lower(), path
        assert re.search(r"\son[a-z]+=", html) is None, path  # no inline event handlers


async def test_document_text_is_escaped(client, seeded) -> None:
    await reading_as(client, "operator1", seeded.cis)
    html = await (
        await client.get(f"/conversations/{seeded.cis}/messages/{seeded.cis_request}")
    ).text()
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html


async def test_static_files_do_not_escape_their_folder(client) -> None:
    response = await client.get("/static/../app.py")
    assert response.status in {403, 404}
    response = await client.get("/static/%2e%2e/app.py")
    assert response.status in {403, 404}


async def test_sign_in_page_form_posts_back_to_itself(client) -> None:
    html = await (await client.get("/login")).text()
    assert 'action="/login"' in html and 'method="post"' in html
    assert csrf_of(html)


async def test_failed_sign_in_does_not_echo_the_password(client) -> None:
    response = await sign_in(client, "operator1", "особый-пароль-12345")
    assert "особый-пароль-12345" not in await response.text()


FORM_TAG = re.compile(r"<form\b[^>]*>", re.DOTALL)


def test_every_form_with_a_file_is_streamed_with_its_token_first() -> None:
    """A form with a file is read as a stream after its CSRF token (auth.UPLOAD_ROUTES); read
    whole it would be held to MAX_FORM_BYTES, so a directory or a scan would be refused. Each
    such form must post to an upload route and carry the token as its first field; and each
    upload route must have such a form (a route listed for nothing would stream for nothing)."""
    from pathlib import Path

    from gateway.web.console import auth

    templates = Path(auth.__file__).parent / "templates"
    streamed = set()
    for template in sorted(templates.glob("*.html")):
        text = template.read_text("utf-8")
        for tag in FORM_TAG.finditer(text):
            if "multipart/form-data" not in tag.group(0):
                continue
            route = re.search(r"url\('(\w+)'", tag.group(0))
            assert route, f"{template.name}: a form with a file posts to a named route"
            streamed.add(route.group(1))
            first_field = re.search(r"<(input|select|textarea)\b[^>]*>", text[tag.end() :])
            assert first_field and 'name="csrf_token"' in first_field.group(0), (
                f"{template.name}: the form to {route.group(1)} must carry its token first"
            )
    assert streamed == auth.UPLOAD_ROUTES


async def test_a_digit_that_is_not_a_number_is_404_not_500(client, seeded) -> None:
    # "²" (U+00B2) passes str.isdigit() but int() refuses it: the attachment routes must
    # answer it as any other number that names no file.
    token = await reading_as(client, "operator1", seeded.cis)
    base = f"/conversations/{seeded.cis}/messages/{seeded.cis_request}/attachments"
    assert (await client.get(f"{base}/²")).status == 404
    verify = await client.post(f"{base}/²/verify", data={"csrf_token": token})
    assert verify.status == 404


async def test_audit_dates_at_the_calendar_s_ends_are_named_not_500(client) -> None:
    await signed_in(client, "auditor1")
    for query in (
        "until=9999-12-31",  # the day after it is past datetime.max
        "since=0001-01-01T00:00%2B05:00",  # before datetime.min in UTC
        "until=9999-12-31T23:59-05:00",  # after datetime.max in UTC
    ):
        response = await client.get(f"/admin/audit?{query}")
        assert response.status == 400, query
        assert "Дата в виде ГГГГ-ММ-ДД" in await response.text()


async def test_administrator_numbers_that_are_not_numbers_are_refused_not_500(
    make_client, node_acts
) -> None:
    client = await make_client(acts=node_acts)
    token = await signed_in(client, "admin1")

    async def post(path: str, **form: str) -> int:
        response = await client.post(path, data={"csrf_token": token, **form})
        return response.status

    assert await post("/admin/tokens/²/revoke") == 404
    token_form = {"label": "reports", "roles": "operator"}
    assert await post("/admin/tokens", **token_form, expires_in_days="²") == 422
    assert await post("/admin/tokens", **token_form, expires_in_days="9" * 15) == 422
    assert await post("/admin/keys/activate", role="seal", generation="²") == 422
