"""A document the peer refused for good is sent again as a new message linked to it (#19).

Before, a final refusal left the case system nothing but a new submission unrelated to the
refused one. Now ``resend`` (API, console, service) sends the same content or a corrected
document as a new message, linked to the original in the transaction that stores it and
audited; each original is resent once; pending, delivered and foreign documents are not.
"""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.app.passwords import hash_password
from gateway.config import NodeConfig
from gateway.demo.setup import build_world
from gateway.exchange import local_service
from gateway.exchange.node import Node
from gateway.exchange.receiving import Disposition
from gateway.exchange.sending import Answer, DeliveryResult, ResendRefused
from gateway.exchange.service import Role
from gateway.store import audit, outbox
from gateway.web.console import StoreUserDirectory
from gateway.web.runtime import NodeRuntime
from tests.integration.exchange_world import (
    OPERATOR,
    READ_PURPOSE,
    padded_request,
    pair_configs,
)
from tests.web.console.conftest import CHEAP_HASHER, PASSWORD


@pytest.fixture(params=["sqlite", "postgresql"])
def nodes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    world = build_world(tmp_path / "world", now=datetime.now(UTC), bodies=("RU-FSSP", "KZ-MJ"))
    configs = pair_configs(world, request)
    ru, kz = (Node.from_config(NodeConfig.from_toml(configs[b])) for b in ("RU-FSSP", "KZ-MJ"))
    try:
        yield ru, kz
    finally:
        ru.close()
        kz.close()


def _deliver(ru: Node, kz: Node, message_id: str, *, tamper: bool = False) -> DeliveryResult:
    """One delivery attempt of ``message_id`` by hand; ``tamper`` changes a byte of the body on
    the way, which the peer refuses for good with a signed Rejection."""
    (claim,) = [c for c in ru.claim_due("w") if c.message_id == message_id]
    outgoing = ru.outgoing(claim)
    wire = outgoing.wire
    if tamper:
        wire = wire.replace(b"</env:Body>", b" </env:Body>", 1)
        assert wire != outgoing.wire
    answer = kz.receive(ru.body_id, wire)
    claimed = Answer.RECEIPT if answer.disposition is Disposition.ACCEPTED else Answer.REJECTION
    return ru.record_answer(claim, outgoing.signed, answer.body, claimed).outcome


def _service(node: Node, executor: ThreadPoolExecutor) -> local_service.LocalNodeService:
    return local_service.LocalNodeService(node, executor)


def test_a_refused_request_is_resent_as_a_new_linked_message(nodes: tuple[Node, Node]) -> None:
    ru, kz = nodes
    refused_header, _ = ru.submit(padded_request(), actor="test")
    original = refused_header.message_id
    assert _deliver(ru, kz, original, tamper=True) is DeliveryResult.REJECTED
    with ru.store.read() as conn:
        assert outbox.states_of(conn, [original]) == {original: "failed"}

    with ThreadPoolExecutor(2) as executor:
        service = _service(ru, executor)
        result = asyncio.run(service.resend(original, None, actor=OPERATOR))
        assert result.message_id != original
        # The refused Request had closed its conversation (rejected): the resend opens anew.
        assert result.conversation_id != refused_header.conversation_id
        assert _deliver(ru, kz, result.message_id) is DeliveryResult.DELIVERED

        old_view = asyncio.run(service.message(original, actor=OPERATOR, purpose=READ_PURPOSE))
        new_view = asyncio.run(
            service.message(result.message_id, actor=OPERATOR, purpose=READ_PURPOSE)
        )
        assert old_view.resent_as == result.message_id and old_view.resent_from is None
        assert new_view.resent_from == original and new_view.resent_as is None
        # The same content, under a new id and signed anew.
        assert new_view.body == old_view.body
        assert new_view.header["Kind"] == old_view.header["Kind"]

        # Once only: the original names its replacement.
        with pytest.raises(ResendRefused) as again:
            asyncio.run(service.resend(original, None, actor=OPERATOR))
        assert again.value.code == "ALREADY_RESENT" and result.message_id in str(again.value)
        # A delivered document is not resent.
        with pytest.raises(ResendRefused) as delivered:
            asyncio.run(service.resend(result.message_id, None, actor=OPERATOR))
        assert delivered.value.code == "NOT_RESENDABLE"
        # A received one neither (not ours).
        with kz.store.read() as conn:
            received = [
                e.subjects["message"] for e in audit.events(conn) if e.kind == "message.received"
            ]
        with pytest.raises(ResendRefused) as foreign:
            asyncio.run(_service(kz, executor).resend(received[0], None, actor=OPERATOR))
        assert foreign.value.code == "NOT_RESENDABLE"

    with ru.store.read() as conn:
        events = [e for e in audit.events(conn) if e.kind == "message.resent"]
    assert [(e.subjects["message"], e.subjects["original"]) for e in events] == [
        (result.message_id, original)
    ]


def test_a_corrected_resend_must_replace_its_original(nodes: tuple[Node, Node]) -> None:
    ru, kz = nodes
    header, _ = ru.submit(padded_request(), actor="test")
    assert _deliver(ru, kz, header.message_id, tamper=True) is DeliveryResult.REJECTED
    with ThreadPoolExecutor(2) as executor:
        service = _service(ru, executor)
        view = asyncio.run(service.message(header.message_id, actor=OPERATOR, purpose=READ_PURPOSE))
        corrected: dict[str, Any] = {
            # A Request opened its conversation: its resend opens a new one.
            "header": {
                k: v
                for k, v in view.header.items()
                if k not in {"MessageId", "Created", "ConversationId"}
            },
            "body": copy.deepcopy(view.body),
        }
        for field, value in (
            ("MessageId", header.message_id),
            ("Recipient", "BY-MJ"),
            ("ConversationId", header.conversation_id),
        ):
            wrong = copy.deepcopy(corrected)
            wrong["header"][field] = value
            with pytest.raises(ResendRefused) as refused:
                asyncio.run(service.resend(header.message_id, wrong, actor=OPERATOR))
            assert refused.value.code == "RESEND_MISMATCH"
            assert f"header.{field}" in str(refused.value), refused.value
        with ru.store.read() as conn:
            assert not [e for e in audit.events(conn) if e.kind == "message.resent"]

        result = asyncio.run(service.resend(header.message_id, corrected, actor=OPERATOR))
        assert _deliver(ru, kz, result.message_id) is DeliveryResult.DELIVERED


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def test_the_console_resends_a_refused_document(
    nodes: tuple[Node, Node],
) -> None:
    """The message page of a refused document offers «Отправить повторно»; it makes the new
    message, and both pages link each other."""
    ru, kz = nodes
    header, _ = ru.submit(padded_request(), actor="test")
    assert _deliver(ru, kz, header.message_id, tamper=True) is DeliveryResult.REJECTED
    runtime = NodeRuntime(ru)
    await runtime.start(deliver=False, console=True)
    users = StoreUserDirectory(ru.store)
    now = datetime.now(UTC)
    await users.add("clerk", hash_password(PASSWORD, CHEAP_HASHER), (Role.OPERATOR,), now=now)
    console = f"http://127.0.0.1:{runtime.console_port}"
    conversation = f"{console}/conversations/{header.conversation_id}"
    page = f"{conversation}/messages/{header.message_id}"
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(f"{console}/login") as answer:
                token = _CSRF.search(await answer.text()).group(1)  # type: ignore[union-attr]
            login = {"username": "clerk", "password": PASSWORD, "csrf_token": token}
            async with http.post(f"{console}/login", data=login, allow_redirects=False) as r:
                assert r.status == 303
            async with http.get(conversation) as answer:
                token = _CSRF.search(await answer.text()).group(1)  # type: ignore[union-attr]
            purpose = {"purpose": READ_PURPOSE, "next": header.message_id, "csrf_token": token}
            async with http.post(f"{conversation}/purpose", data=purpose) as answer:
                assert answer.status == 200
            async with http.get(page) as answer:
                text = await answer.text()
            assert 'id="resend-form"' in text and "Отправить повторно" in text
            token = _CSRF.search(text).group(1)  # type: ignore[union-attr]
            async with http.post(
                f"{page}/resend", data={"csrf_token": token}, allow_redirects=False
            ) as answer:
                assert answer.status == 303, await answer.text()
                new_page = answer.headers["Location"]
            with ru.store.read() as conn:
                (event,) = [e for e in audit.events(conn) if e.kind == "message.resent"]
            resent = event.subjects["message"]
            assert new_page.endswith(f"/messages/{resent}")
            async with http.get(page) as answer:
                text = await answer.text()
            assert 'id="resend-form"' not in text and 'id="resent-as"' in text and resent in text
            # Twice is refused, in Russian, nothing stored.
            async with http.post(f"{page}/resend", data={"csrf_token": token}) as answer:
                assert answer.status == 409
                assert "уже отправлено повторно" in await answer.text()
    finally:
        await runtime.stop()
