"""``POST /api/v1/messages/{id}/resend`` on a running node: the route, its answers and codes
(the exchange with a real peer refusing is tests/integration/test_resend_refused.py)."""

from __future__ import annotations

from tests.web.api.test_local_api_roles import OneNode, _submit, node  # noqa: F401


async def test_resend_answers_like_a_submission_and_links_both(node: OneNode) -> None:  # noqa: F811
    operator = node.token(["operator"], "clerk")
    auditor = node.token(["auditor"], "auditor")
    sent = await _submit(node, operator, confidential=False)
    original = sent["message_id"]
    path = f"/api/v1/messages/{original}/resend"

    # Still pending: nothing to resend, nothing stored.
    status, payload = await node.call("POST", path, operator)
    assert status == 409 and payload["error"]["code"] == "NOT_RESENDABLE", payload
    assert "message_ru" in payload["error"]

    # Its delivery given up (the dead letter, as after the last attempt).
    runtime_node = node.runtime.node
    (claim,) = [c for c in runtime_node.claim_due("w") if c.message_id == original]
    runtime_node.record_failure(claim, "PEER_UNREACHABLE", retryable=False)

    status, payload = await node.call("POST", path, auditor)
    assert status == 403 and payload["error"]["role"] == "operator"

    status, resent = await node.call("POST", path, operator)
    assert status == 202, resent
    assert resent["message_id"] != original
    status, view = await node.call("GET", f"/api/v1/messages/{original}", operator, purpose="p1")
    assert status == 200 and view["resent_as"] == resent["message_id"], view
    status, view = await node.call(
        "GET", f"/api/v1/messages/{resent['message_id']}", operator, purpose="p1"
    )
    assert status == 200 and view["resent_from"] == original, view

    status, payload = await node.call("POST", path, operator)
    assert status == 409 and payload["error"]["code"] == "ALREADY_RESENT"
    assert resent["message_id"] in payload["error"]["message"]

    status, payload = await node.call(
        "POST", path.replace(original, resent["message_id"]), operator, body={"header": {}}
    )
    assert status == 409 and payload["error"]["code"] == "NOT_RESENDABLE"
    kinds = [e.kind for e in node.audit_events()]
    assert kinds.count("message.resent") == 1
