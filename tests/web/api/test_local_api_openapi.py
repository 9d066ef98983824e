"""The OpenAPI description: valid 3.1, and every route of the router described (and no more)."""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any

from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate as validate_spec

from gateway.app.context import AppContext
from gateway.exchange import service
from gateway.exchange.service import ACCESS
from gateway.web.local_api import PUBLIC_PATHS, ROUTES, make_local_api_app, openapi_document
from gateway.web.metrics import GatewayMetrics
from gateway.web.openapi import build_openapi
from tests.doubles.local_service import LocalServiceDouble
from tests.web.api.conftest import ACTORS, NOW

METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


def _router_operations(serving: AppContext) -> set[tuple[str, str]]:
    app = make_local_api_app(LocalServiceDouble(NOW, ACTORS), GatewayMetrics(), serving)
    operations = set()
    for route in app.router.routes():
        assert route.resource is not None
        operations.add((route.method.lower(), route.resource.canonical))
    return operations


def _described_operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def test_every_route_is_described_and_vice_versa(serving: AppContext):
    router = _router_operations(serving)
    assert len(router) == len(ROUTES)
    assert router == _described_operations(build_openapi())


def test_spec_is_valid_openapi_3_1():
    spec = build_openapi()
    assert spec["openapi"] == "3.1.0"
    validate_spec(spec)  # raises on any violation of the OpenAPI 3.1 schema


def test_path_parameters_match_templates():
    spec = build_openapi()
    shared = spec["components"]["parameters"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            parameters = [
                shared[p["$ref"].rsplit("/", 1)[-1]] if "$ref" in p else p
                for p in operation.get("parameters", [])
            ]
            in_path = {p["name"] for p in parameters if p["in"] == "path"}
            assert in_path == set(re.findall(r"{(\w+)}", path)), (method, path)


def test_auth_scheme_and_public_routes():
    spec = build_openapi()
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    assert spec["security"] == [{"bearerAuth": []}]
    for path, item in spec["paths"].items():
        for operation in item.values():
            public = operation.get("security") == []
            assert public == (path in PUBLIC_PATHS), path
            if not public:
                assert "401" in operation["responses"], path
                assert "403" in operation["responses"], path


def test_every_operation_names_the_answers_of_the_shared_code():
    """400 for any (the HTTP parser), 413/415/422 for a JSON body (the JSON reader), 503 for an
    authenticated one (the store's faults): added by the description itself, so a route written
    tomorrow has them too; an operation's own description of a status wins."""
    spec = build_openapi()
    responses = spec["components"]["responses"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            answers = operation["responses"]
            assert "400" in answers, (method, path)
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                assert {"413", "415", "422"} <= set(answers), (method, path)
            assert ("503" in answers) == (path not in PUBLIC_PATHS), (method, path)
    assert spec["paths"]["/healthz"]["get"]["responses"]["400"] == {
        "$ref": "#/components/responses/BadRequest"
    }
    submit = spec["paths"]["/api/v1/messages"]["post"]["responses"]
    assert "DOCUMENT_REJECTED" in submit["422"]["description"]  # its own, not the generic one
    assert "INVALID_CHARACTER" in responses["InvalidCharacter"]["description"]
    assert responses["Unavailable"]["headers"]["Retry-After"]


NOT_IN_THE_JSON = {("SubmitResult", "replayed")}
"""Fields of a view the API does not answer in the body (a replay is said by a header)."""


def test_each_view_is_described_field_for_field():
    """The schemas named like a view of gateway.exchange.service have its fields, no more, and
    a field that may be None is nullable in the description (a client generated from it would
    otherwise refuse the answer: a summary's ``verification`` was null for our own documents)."""
    compared = 0
    for name, schema in build_openapi()["components"]["schemas"].items():
        view = getattr(service, name, None)
        if not dataclasses.is_dataclass(view):
            continue
        compared += 1
        hints = typing.get_type_hints(view)
        answered = {f.name for f in dataclasses.fields(view)} - {
            field for of, field in NOT_IN_THE_JSON if of == name
        }
        assert set(schema["properties"]) == answered, name
        for field in answered:
            described = schema["properties"][field]
            types = described.get("type")
            nullable = isinstance(types, list) and "null" in types
            assert nullable == (type(None) in typing.get_args(hints[field])), (name, field)
    assert compared >= 4


def test_error_shape_is_described():
    error = build_openapi()["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["code", "message", "message_ru"]


async def test_served_unauthenticated_and_equal(client: TestClient):
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert await response.json() == openapi_document()


def test_served_document_names_each_operation_s_roles_from_the_table():
    spec = openapi_document()
    validate_spec(spec)
    for route in ROUTES:
        operation = spec["paths"][route.path][route.method.lower()]
        if route.action is None:
            assert "x-roles" not in operation
            continue
        access = ACCESS[route.action]
        assert operation["x-roles"]["any_of"] == [str(r) for r in access.roles]
        if access.confidential is not None:
            assert operation["x-roles"]["confidential"]["any_of"] == [
                str(r) for r in access.confidential
            ]
    assert spec["paths"]["/api/v1/conversations"]["get"]["x-roles"] == {"any_of": ["operator"]}


def test_the_validator_catches_a_broken_spec():
    import pytest
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    spec = build_openapi()
    spec["paths"]["/healthz"]["get"]["parameters"] = [{"name": "x"}]  # no "in"
    with pytest.raises(OpenAPIValidationError):
        validate_spec(spec)
