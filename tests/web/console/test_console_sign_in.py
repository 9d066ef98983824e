"""Sign-in, sessions, lock-out and sign-out of the console, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from gateway.app.sessions import ABSOLUTE_TIMEOUT, IDLE_TIMEOUT
from gateway.web.console.auth import LOCKOUT_DURATION, MAX_FAILED_ATTEMPTS
from tests.web.console.conftest import NOW, PASSWORD, csrf_of, sign_in, signed_in


def _cookie_header(response, name_part: str) -> str:
    headers = [h for h in response.headers.getall("Set-Cookie", []) if name_part in h]
    assert len(headers) == 1, response.headers.getall("Set-Cookie", [])
    return headers[0]


async def test_pages_need_sign_in(client) -> None:
    for path in ("/", "/conversations"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303
        assert response.headers["Location"] == "/login"


async def test_sign_in_page_is_russian_with_a_csrf_token(client) -> None:
    response = await client.get("/login")
    html = await response.text()
    assert response.status == 200
    assert '<html lang="ru">' in html
    assert 'id="login-form"' in html and "Имя пользователя" in html and "Пароль" in html
    assert len(csrf_of(html)) >= 40


async def test_session_cookie_flags_over_plain_http(client) -> None:
    response = await client.get("/login")
    cookie = _cookie_header(response, "gateway-console=")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie
    assert "__Host-" not in cookie


async def test_session_cookie_is_secure_and_host_only_behind_tls(make_client) -> None:
    client = await make_client(secure_cookies=True)
    response = await client.get("/login")
    cookie = _cookie_header(response, "__Host-gateway-console=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Domain" not in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_sign_in_succeeds_and_rotates_the_session_id(client, audit) -> None:
    await client.get("/login")
    before = client.session.cookie_jar.filter_cookies(client.make_url("/"))["gateway-console"].value
    response = await sign_in(client, "operator1")
    assert response.status == 303
    assert response.headers["Location"] == "/"
    after = _cookie_header(response, "gateway-console=").split(";")[0].split("=", 1)[1]
    assert after != before
    page = await client.get("/")
    html = await page.text()
    assert page.status == 200
    assert 'id="current-user-name">operator1<' in html
    [(actor, details)] = audit.of("console.signed_in")
    assert actor == "operator1"
    assert details["roles"] == "operator"


async def test_old_session_id_is_dead_after_sign_in(client) -> None:
    await client.get("/login")
    anonymous = client.session.cookie_jar.filter_cookies(client.make_url("/"))["gateway-console"]
    await sign_in(client, "operator1")
    client.session.cookie_jar.clear()
    response = await client.get(
        "/", cookies={"gateway-console": anonymous.value}, allow_redirects=False
    )
    assert response.status == 303


async def test_wrong_password_is_refused_and_audited(client, audit, users) -> None:
    response = await sign_in(client, "operator1", "неверный-пароль")
    html = await response.text()
    assert response.status == 403
    assert 'id="login-error"' in html and "Вход не выполнен" in html
    assert (await client.get("/", allow_redirects=False)).status == 303
    [(actor, details)] = audit.of("console.sign_in_failed")
    assert actor == "operator1" and details["reason"] == "bad-password"
    assert (await users.get("operator1")).failed_attempts == 1


async def test_unknown_user_gets_the_same_answer(client, audit) -> None:
    wrong = await sign_in(client, "operator1", "неверный-пароль")
    unknown = await sign_in(client, "nobody", "неверный-пароль")
    assert unknown.status == wrong.status == 403
    error = 'id="login-error" role="alert">'
    text_wrong = (await wrong.text()).split(error)[1].split("<")[0]
    text_unknown = (await unknown.text()).split(error)[1].split("<")[0]
    assert text_unknown == text_wrong
    assert [d["reason"] for _, d in audit.of("console.sign_in_failed")] == [
        "bad-password",
        "unknown-user",
    ]


async def test_lock_out_after_repeated_failures(client, audit, clock, users) -> None:
    for _ in range(MAX_FAILED_ATTEMPTS):
        assert (await sign_in(client, "operator1", "неверный-пароль")).status == 403
    [(actor, details)] = audit.of("console.account_locked")
    assert actor == "operator1"
    assert details["until"] == (NOW + LOCKOUT_DURATION).isoformat()
    # The right password does not open a locked account.
    assert (await sign_in(client, "operator1", PASSWORD)).status == 403
    assert audit.of("console.sign_in_failed")[-1][1]["reason"] == "locked"
    clock.advance(LOCKOUT_DURATION + timedelta(seconds=1))
    assert (await sign_in(client, "operator1", PASSWORD)).status == 303
    user = await users.get("operator1")
    assert user.failed_attempts == 0 and user.locked_until is None


@pytest.mark.parametrize("processes", [1, 2])
async def test_parallel_guesses_do_not_outrun_the_lock_out(make_client, audit, processes) -> None:
    """A burst of guesses sent at once, the right password last, to one console or to two on
    one database (``gateway serve --workers 2``): only MAX_FAILED_ATTEMPTS passwords are
    checked and the account is locked before the right one is tried (docs/console.md: "the
    right password does not open it"). Each attempt is counted before its password is checked;
    counted after, every one of them had seen the account unlocked."""
    consoles = [await make_client() for _ in range(processes)]
    tokens = [csrf_of(await (await console.get("/login")).text()) for console in consoles]

    async def attempt(number: int, password: str) -> int:
        which = number % processes
        response = await consoles[which].post(
            "/login",
            data={"username": "operator1", "password": password, "csrf_token": tokens[which]},
            allow_redirects=False,
        )
        return response.status

    guesses = [f"неверный-пароль-{i}" for i in range(4 * MAX_FAILED_ATTEMPTS)]
    statuses = await asyncio.gather(*(attempt(n, p) for n, p in enumerate([*guesses, PASSWORD])))
    reasons = [d["reason"] for _, d in audit.of("console.sign_in_failed")]
    assert reasons.count("bad-password") == MAX_FAILED_ATTEMPTS, reasons
    assert statuses[-1] == 403
    assert audit.of("console.signed_in") == []
    assert len(audit.of("console.account_locked")) == 1


async def test_disabled_user_cannot_sign_in(client, audit, users) -> None:
    await users.disable("operator1", now=NOW)
    assert (await sign_in(client, "operator1")).status == 403
    assert audit.of("console.sign_in_failed")[-1][1]["reason"] == "disabled"


async def test_disabling_ends_a_running_session(client, users) -> None:
    await signed_in(client, "operator1")
    await users.disable("operator1", now=NOW)
    response = await client.get("/", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login"


async def test_idle_session_expires(client, clock) -> None:
    await signed_in(client, "operator1")
    clock.advance(IDLE_TIMEOUT - timedelta(minutes=1))
    assert (await client.get("/", allow_redirects=False)).status == 200
    clock.advance(IDLE_TIMEOUT + timedelta(seconds=1))
    assert (await client.get("/", allow_redirects=False)).status == 303


async def test_active_session_ends_at_the_absolute_timeout(client, clock) -> None:
    await signed_in(client, "operator1")
    step = IDLE_TIMEOUT - timedelta(minutes=1)
    while clock.now + step < NOW + ABSOLUTE_TIMEOUT:
        clock.advance(step)
        assert (await client.get("/", allow_redirects=False)).status == 200
    clock.advance(step)
    assert (await client.get("/", allow_redirects=False)).status == 303


async def test_sign_out_ends_the_session(client, audit) -> None:
    token = await signed_in(client, "operator1")
    response = await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login"
    assert (await client.get("/", allow_redirects=False)).status == 303
    assert [a for a, _ in audit.of("console.signed_out")] == ["operator1"]
