"""Authorization and confidentiality rules held on a real node (gateway.exchange.local_service
over SQLite) through its local API: each test names the rule of docs/local-api.md or
docs/confidentiality.md it holds the node to."""

from __future__ import annotations

from tests.web.api.test_local_api_roles import PURPOSE, OneNode, _submit, node  # noqa: F401


async def test_a_confidential_conversation_s_originals_need_confidential_reader(
    node: OneNode,  # noqa: F811
) -> None:
    """A confidential conversation's list of messages (ids, kinds, times) is read only by a
    confidential-reader with a purpose (docs/local-api.md, "The stated purpose of every read");
    its originals list names the same messages, so an operator alone gets 403 there too."""
    full = node.token(["operator", "confidential-reader"], "case")
    operator = node.token(["operator"], "clerk")
    secret = await _submit(node, full, confidential=True)
    path = f"/api/v1/conversations/{secret['conversation_id']}"

    status, payload = await node.call("GET", path, operator, purpose=PURPOSE)
    assert status == 403 and payload["error"]["role"] == "confidential-reader"

    before = len(node.audit_events())
    status, payload = await node.call("GET", path + "/originals", operator)
    assert status == 403, payload
    assert payload["error"]["role"] == "confidential-reader"
    assert secret["message_id"] not in str(payload)
    denied = [e for e in node.audit_events()[before:] if e.kind == "access.denied"]
    assert [(e.actor, dict(e.subjects)) for e in denied] == [
        ("token:clerk", {"subject": secret["conversation_id"]})
    ]

    # A reader of the conversation still gets its originals (a metadata list: the
    # conversation's own rule, purpose and audit included).
    status, payload = await node.call("GET", path + "/originals", full)
    assert status == 428, payload
    before = len(node.audit_events())
    status, payload = await node.call("GET", path + "/originals", full, purpose=PURPOSE)
    assert status == 200, payload
    assert [o["message_id"] for o in payload["originals"]] == [secret["message_id"]]
    reads = [e for e in node.audit_events()[before:] if e.kind == "conversation.read"]
    assert [(e.actor, dict(e.subjects)) for e in reads] == [
        ("token:case", {"conversation": secret["conversation_id"]})
    ]
    assert len(reads[0].details["purpose_sha256"]) == 64

    # A conversation that is not confidential: the operator's, no purpose needed.
    plain = await _submit(node, full, confidential=False)
    plain_path = f"/api/v1/conversations/{plain['conversation_id']}/originals"
    status, payload = await node.call("GET", plain_path, operator)
    assert status == 200, payload
    assert [o["message_id"] for o in payload["originals"]] == [plain["message_id"]]


async def test_a_purge_run_id_is_a_uuid_never_echoed_nor_written_to_the_audit_trail(
    node: OneNode,  # noqa: F811
) -> None:
    """Ids in paths are canonical UUIDs, anything else a 400 naming the parameter, never the
    value sent (docs/local-api.md, "Routes" and "Errors"): the purge-run routes too. Before,
    the raw path text was echoed in the 404, and any token's refusal wrote it into the
    tamper-evident audit trail (access.denied's subject) — or, long enough, made the refusal a
    500 with no access.denied recorded at all."""
    auditor = node.token(["auditor"], "auditor")
    operator = node.token(["operator"], "clerk")
    sent = "<b>Иванов Иван Иванович 1981-05-14"
    before = len(node.audit_events())
    for token in (auditor, operator):
        for method, suffix in (("GET", "report"), ("POST", "report-verifications")):
            for run_id in (sent, "x" * 5000):
                path = f"/api/v1/purge-runs/{run_id}/{suffix}"
                status, payload = await node.call(method, path, token)
                assert status == 400, (method, suffix, len(run_id), status, payload)
                assert payload["error"]["code"] == "INVALID_PARAMETER"
                assert payload["error"]["parameter"] == "run_id"
                assert "Иванов" not in str(payload) and "xxxxx" not in str(payload)
    assert [e for e in node.audit_events()[before:] if "Иванов" in str(dict(e.subjects))] == []

    # A well-formed id of no run: 404, the refusal of a token without the role still recorded.
    unknown = "00000000-0000-4000-8000-000000000000"
    status, payload = await node.call("GET", f"/api/v1/purge-runs/{unknown}/report", auditor)
    assert status == 404 and payload["error"]["code"] == "NOT_FOUND"
    status, payload = await node.call("GET", f"/api/v1/purge-runs/{unknown}/report", operator)
    assert status == 403 and payload["error"]["role"] == "auditor"
    assert node.audit_events()[-1].kind == "access.denied"
