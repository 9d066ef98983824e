"""Authentication (bearer tokens -> 401) and roles (the service's PermissionDenied -> 403)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from gateway.web.local_api import MAX_TOKEN_CHARS, SECURITY_HEADERS
from tests.web.api.conftest import AUDITOR, OPERATOR, Seeded, auth, example, fresh

PROTECTED = [
    ("GET", "/api/v1/conversations"),
    ("GET", "/api/v1/conversations/1edac772-394a-5b56-b942-42bd22845d32"),
    ("GET", "/api/v1/messages/73a1cc21-9d8d-52dc-8153-353252cff02f"),
    ("GET", "/api/v1/messages/73a1cc21-9d8d-52dc-8153-353252cff02f/xml"),
    ("GET", "/api/v1/messages/73a1cc21-9d8d-52dc-8153-353252cff02f/pdf"),
    ("GET", "/api/v1/messages/73a1cc21-9d8d-52dc-8153-353252cff02f/receipt"),
    ("GET", "/api/v1/messages/73a1cc21-9d8d-52dc-8153-353252cff02f/report"),
    ("POST", "/api/v1/messages"),
]


def assert_security_headers(headers) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, name
    assert "aiohttp" not in headers.get("Server", "").lower()


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_missing_token_is_401_with_challenge(client: TestClient, method: str, path: str):
    response = await client.request(method, path)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="gateway"'
    body = await response.json()
    assert body["error"]["code"] == "UNAUTHENTICATED"
    assert body["error"]["message"] and body["error"]["message_ru"]
    assert_security_headers(response.headers)


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (f"Bearer {'x' * 45}", "invalid_token"),  # well-formed, unknown
        (f"Basic {OPERATOR}", "invalid_request"),
        ("Bearer", "invalid_request"),
        ("Bearer a b", "invalid_request"),
        (f"Bearer {'y' * (MAX_TOKEN_CHARS + 1)}", "invalid_request"),
    ],
)
async def test_bad_token_is_401(client: TestClient, header: str, error: str):
    response = await client.get("/api/v1/conversations", headers={"Authorization": header})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == f'Bearer realm="gateway", error="{error}"'
    text = await response.text()
    assert OPERATOR not in text and "x" * 45 not in text


async def test_scheme_is_case_insensitive(client: TestClient, seeded: Seeded):
    response = await client.get(
        "/api/v1/conversations", headers={"Authorization": f"bearer {OPERATOR}"}
    )
    assert response.status == 200


async def test_role_missing_is_403_naming_the_role(client: TestClient, seeded: Seeded):
    response = await client.post(
        "/api/v1/messages",
        json=fresh(example("cis-enforcement.Request"), "x"),
        headers=auth(AUDITOR),
    )
    assert response.status == 403
    error = (await response.json())["error"]
    assert error["code"] == "FORBIDDEN"
    assert error["role"] == "operator"
    assert "operator" in error["message"] and "operator" in error["message_ru"]
    assert_security_headers(response.headers)

    response = await client.get("/api/v1/conversations", headers=auth(AUDITOR))
    assert response.status == 403
    assert (await response.json())["error"]["role"] == "operator"


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/openapi.json", "/metrics"])
async def test_public_routes_need_no_token(client: TestClient, path: str):
    response = await client.get(path)
    assert response.status == 200
    assert_security_headers(response.headers)


async def test_health(client: TestClient):
    response = await client.get("/healthz")
    assert await response.json() == {"status": "ok"}


async def test_unknown_route_and_method(client: TestClient):
    response = await client.get("/api/v1/nothing-here", headers=auth(OPERATOR))
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "NOT_FOUND"
    assert_security_headers(response.headers)

    response = await client.delete("/api/v1/messages", headers=auth(OPERATOR))
    assert response.status == 405
    assert (await response.json())["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert response.headers["Allow"] == "POST"

    response = await client.head("/healthz")
    assert response.status == 405
