"""The local API against its own OpenAPI description, on a running node: Schemathesis makes
requests from the description (valid ones, and ones the description forbids) for every
operation, with every role, and checks each answer against the description — documented status,
body and headers, never a 5xx, a forbidden request refused — and that a refused request left the
store as it was (SQLite and PostgreSQL). The description is what a case system's client is
built from: where the two disagree, one of them is wrong."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from gateway.crypto.demo_ca import DemoCA
from gateway.demo.play import example
from gateway.demo.setup import DemoWorld
from gateway.web.openapi import build_openapi
from gateway.web.runtime import NodeRuntime
from tests.integration.exchange_world import create_token, row_counts
from tests.integration.fuzzing import running_node

schema = schemathesis.openapi.from_dict(build_openapi())
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])

CHECKED = settings(
    max_examples=20,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
"""A fixed sample (derandomized: the same requests every run, so CI never flakes on a new
one)."""

_CERTIFICATE = DemoCA.create(now=datetime.now(UTC)).certificate
schemathesis.openapi.media_type(
    "application/x-pem-file", st.sampled_from([_CERTIFICATE.public_bytes(Encoding.PEM), b"x"])
)
schemathesis.openapi.media_type(
    "application/pkix-cert", st.sampled_from([_CERTIFICATE.public_bytes(Encoding.DER), b"0"])
)
"""Certificate uploads: a real certificate (PEM, DER) and noise; the description says only
"binary"."""

NOT_CHECKED = [schemathesis.checks.positive_data_acceptance]
"""A request the description allows may still be refused: a document that breaks an agreement's
rule is 422 with its problems, an act on a message this node does not hold is 404. The other
checks (status, body, headers, a forbidden request refused, no 5xx) all run."""


@dataclass
class Node:
    runtime: NodeRuntime
    token: str
    held: list[dict[str, Any]] = field(default_factory=list)
    """What the submissions it holds were answered (message and conversation ids)."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.runtime.api_port}"

    def request(
        self, method: str, path: str, body: bytes = b"", content_type: str = "application/json"
    ) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.runtime.api_port, timeout=60)
        try:
            connection.request(
                method,
                f"/api/v1/{path}",
                body=body,
                headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type},
            )
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def hold_documents(self) -> None:
        """Two requests to RU-FSSP (one confidential), so that lists and reads answer with
        documents, not only 404s."""
        for confidential in (False, True):
            document = example("cis-enforcement.Request")
            document["header"] |= {"Recipient": "RU-FSSP", "Confidential": confidential}
            for field_name in ("MessageId", "ConversationId"):
                document["header"].pop(field_name, None)
            status, answer = self.request("POST", "messages", json.dumps(document).encode())
            assert status == 202, answer
            self.held.append(json.loads(answer))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def node(request: pytest.FixtureRequest, world: DemoWorld) -> Iterator[Node]:
    database_url = ""
    if request.param == "postgresql":
        database_url = request.getfixturevalue("pg_schema")("contract")
    with running_node(world, f"contract-{request.param}", database_url) as runtime:
        held = Node(runtime, create_token(runtime.node.store, datetime.now(UTC)))
        held.hold_documents()
        yield held


@schema.parametrize()
@CHECKED
def test_every_answer_is_as_described(case: schemathesis.Case, node: Node) -> None:
    store = node.runtime.node.store
    before = row_counts(store)
    response = case.call(base_url=node.base_url, headers={"Authorization": f"Bearer {node.token}"})
    case.validate_response(response, excluded_checks=NOT_CHECKED)
    if response.status_code >= 400:
        assert row_counts(store) == before, f"{response.status_code} but the store moved"


@pytest.mark.parametrize(
    ("path", "content_type", "body", "status", "code"),
    [
        # A JSON object where a name is asked reached the enum's lookup: TypeError, a 500.
        ("keys/seal/generations", "application/json", b'{"algorithm": {}}', 400, "BAD_REQUEST"),
        (
            "keys/seal/generations/1/revoke",
            "application/json",
            b'{"reason": {}, "confirm": "seal.1"}',
            400,
            "BAD_REQUEST",
        ),
        # "²" passes str.isdigit, which int() then refuses (it was a 500 in paths).
        ("tokens/%C2%B2/revoke", "application/json", b"", 400, "INVALID_PARAMETER"),
        (
            "keys/seal/generations/%C2%B2/revoke",
            "application/json",
            b'{"reason": "superseded", "confirm": "seal.2"}',
            400,
            "INVALID_PARAMETER",
        ),
        # An expiry past what a date can hold (timedelta overflowed: a 500).
        (
            "tokens",
            "application/json",
            b'{"label": "x", "roles": ["operator"], "expires_in_days": 1000000000000000}',
            422,
            "TOKEN_REFUSED",
        ),
        # An unknown generation is a refusal as asked, not the node's fault (it was a 500).
        (
            "keys/seal/generations/99/certificate",
            "application/x-pem-file",
            _CERTIFICATE.public_bytes(Encoding.PEM),
            422,
            "KEY_REFUSED",
        ),
    ],
)
def test_found_here_refused_as_asked(
    node: Node, path: str, content_type: str, body: bytes, status: int, code: str
) -> None:
    """Requests this test once answered with a 500, kept as they were found."""
    store = node.runtime.node.store
    before = row_counts(store)
    answered, answer = node.request("POST", path, body, content_type)
    assert (answered, json.loads(answer)["error"]["code"]) == (status, code)
    assert row_counts(store) == before


@pytest.mark.parametrize(
    ("path", "sent", "code", "named"),
    [
        (
            "keys/seal/generations/1/activate",
            {"name": "", "at": "2026-12-01 SENT-VALUE"},
            "KEY_REFUSED",
            "at: ",
        ),
        ("tokens", {"label": "x", "roles": ["SENT-VALUE"]}, "TOKEN_REFUSED", "roles: "),
        (
            "users",
            {"username": "SENT-VALUE", "password": "a long enough password", "roles": []},
            "USER_REFUSED",
            "username: ",
        ),
    ],
)
def test_a_refused_value_is_named_not_echoed(
    node: Node, path: str, sent: dict[str, Any], code: str, named: str
) -> None:
    """The API echoes nothing it was sent (docs/local-api.md): the field is named instead."""
    status, answer = node.request("POST", path, json.dumps(sent).encode())
    error = json.loads(answer)["error"]
    assert (status, error["code"]) == (422, code), error
    assert error["message"].startswith(named), error
    assert "SENT-VALUE" not in json.dumps(error)


READS = [
    operation.ok()
    for operation in schema.get_all_operations()
    if operation.ok().method == "get"
    and set(re.findall(r"{(\w+)}", operation.ok().path)) <= {"message_id", "conversation_id"}
]
"""The reads that need no id or only a message's or a conversation's."""


@pytest.mark.parametrize("operation", READS, ids=lambda operation: operation.path)
def test_the_documents_held_are_answered_as_described(
    node: Node, operation: schemathesis.APIOperation
) -> None:
    """Each read of a document the node holds (or of the lists holding it), answered as the
    description says: the generated requests above rarely name a document that exists."""
    for held in node.held:
        ids = {key: held[key] for key in ("message_id", "conversation_id")}
        case = operation.Case(
            path_parameters={name: ids[name] for name in re.findall(r"{(\w+)}", operation.path)},
            headers={"X-Purpose": "contract test"},
        )
        response = case.call(
            base_url=node.base_url, headers={"Authorization": f"Bearer {node.token}"}
        )
        case.validate_response(response, excluded_checks=NOT_CHECKED)
        assert response.status_code < 400 or operation.path.endswith("/receipt"), response.text
