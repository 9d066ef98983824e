"""Attachments beside the XML (docs/attachments.md), on real nodes over mutual TLS.

KZ-MJ receives in this process (a :class:`NodeRuntime` on SQLite and on PostgreSQL); RU-FSSP's
real keys sign the envelope and its TLS identity posts the multipart delivery:

* a delivery whose part matches the signed list is accepted and stored encrypted, readable
  back byte for byte with the signed name and type;
* a part changed in transit (same size, other bytes) is refused with ATTACHMENT_MISMATCH and
  nothing of the delivery is stored;
* a declared Content-Length over the receiver's limit is refused with 413 before the body is
  read (the body never comes: the refusal must not wait for it);
* an upload to the local API that breaks off is refused and leaves nothing; the same file
  uploaded again is accepted; an upload declaring more than the limit gets 413 at once;
* a resumable upload whose part breaks off keeps its whole segments and goes on from the
  offset it reports, completing the file byte for byte; two parts at once store one; a part
  from elsewhere, past the declared length or to no such upload is refused by name;
* a submission whose attachment the recipient's published limit refuses is refused at once;
* a confidential conversation's attachment (RU-FSSP's node submits and prepares the delivery)
  travels as the sender's sealed segments, its part key wrapped to KZ-MJ's encryption
  certificate in the signed header: delivered, stored as it came (no plaintext on the wire or
  at rest), downloadable by a confidential reader and refused (403, audited) to an operator; a
  part altered in transit is refused (ATTACHMENT_MISMATCH), and a part key wrapped to another
  certificate or altered is refused (ATTACHMENT_KEY_UNREADABLE);
* a signed PDF beside the XML is verified on the receiver, read in place from its store, through
  the API and the console, and the verdict recorded; one signed by a key outside the trust
  anchors fails as NO_CERTIFICATE_CHAIN_FOUND; one altered in the store is refused as
  ATTACHMENT_DAMAGED; a file that is not a PDF, or a PDF without a signature, is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import re
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fpdf import FPDF

from gateway.app.passwords import hash_password
from gateway.config import NodeConfig
from gateway.crypto import segments
from gateway.crypto.pades import async_sign_pdf, simple_signer_from
from gateway.crypto.recipient import RecipientEncryptionError, decrypt_with_any
from gateway.crypto.segments import sealed_size
from gateway.demo.play import example as load_example
from gateway.demo.setup import DemoWorld
from gateway.exchange.attachments import read_sealed_stream, stage_stream
from gateway.exchange.directory import DirectoryIndex
from gateway.exchange.local_service import LocalNodeService
from gateway.exchange.node import Node
from gateway.exchange.service import Role
from gateway.model.limits import DELIVERY_FRAMING_BYTES
from gateway.model.problems import DocumentRejected
from gateway.store import attachments as attachment_store
from gateway.store import messages, tokens
from gateway.store.attachments import AttachmentMeta
from gateway.store.tables import attachment_segments, attachments
from gateway.web.console import StoreUserDirectory
from gateway.web.peer_client import (
    PartPayload,
    PeerClient,
    PeerResponse,
    PeerTransportError,
)
from gateway.web.runtime import NodeRuntime
from tests.integration.exchange_world import (
    OPERATOR,
    Sealing,
    Signer,
    attachment_list,
    audit_rows,
    body_fields,
    create_token,
    hand_sealed,
    header_field,
    limit_attachments,
    node_config,
    node_on_store,
    padded_request,
    receiving,
    row_counts,
    stored_file_bytes,
)
from tests.render.conftest import make_pki
from tests.tooling import require_tool
from tests.web.console.conftest import CHEAP_HASHER, PASSWORD

pytestmark = pytest.mark.asyncio(loop_scope="module")

RECEIVER = "KZ-MJ"
SENDER = "RU-FSSP"
LIMIT = 4_000_000
"""The receiver's [limits] max_message_bytes and max_attachment_bytes in these tests."""
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CONTENT = bytes(range(256)) * 2000 + b"%PDF-1.7 tail"  # 512 KB and a bit: several segments


def now() -> datetime:
    return datetime.now(UTC)


@dataclasses.dataclass
class Receiver:
    runtime: NodeRuntime
    url: str
    api: str
    token: str
    console: str

    @property
    def node(self) -> Node:
        return self.runtime.node


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgresql"])
async def receiver(request: pytest.FixtureRequest, world: DemoWorld) -> AsyncIterator[Receiver]:
    async with receiving(
        request, world, "attachments", configure=lambda path: limit_attachments(path, LIMIT)
    ) as running:
        runtime = running.runtime
        token = create_token(runtime.node.store, now())
        users = StoreUserDirectory(runtime.node.store)
        await users.add("clerk", hash_password(PASSWORD, CHEAP_HASHER), (Role.OPERATOR,), now=now())
        yield Receiver(
            runtime,
            running.url,
            f"http://127.0.0.1:{runtime.api_port}/api/v1",
            token,
            f"http://127.0.0.1:{runtime.console_port}",
        )


async def _bytes(content: bytes) -> AsyncIterator[bytes]:
    for at in range(0, len(content), 100_000):
        yield content[at : at + 100_000]


async def _deliver(client: PeerClient, url: str, envelope: bytes, part: bytes) -> PeerResponse:
    try:
        return await client.post_message(url, envelope, [PartPayload(_bytes(part), len(part))])
    except PeerTransportError as error:
        assert error.response is not None, error
        return error.response


def _count(receiver: Receiver, table: sa.Table) -> int:
    with receiver.node.store.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


async def test_a_matching_part_is_stored_encrypted_and_reads_back(
    receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    envelope = sender.document(
        "cis-enforcement.Request", now(), Attachments=attachment_list(CONTENT)
    )
    answer = await _deliver(sender_client, receiver.url, envelope, CONTENT)
    assert answer.status == 200, answer.body[:300]
    assert body_fields(answer.body)["ReceivedSha256"] == hashlib.sha256(envelope).hexdigest()
    message_id = header_field(envelope, "MessageId")
    with receiver.node.store.read() as conn:
        (info,) = attachment_store.for_message(conn, message_id, receiver.node.kek_ring)
        stored = stored_file_bytes(conn, info.attachment_id, receiver.node.kek_ring)
        ciphertexts = b"".join(
            r.ciphertext for r in conn.execute(sa.select(attachment_segments.c.ciphertext))
        )
    assert stored == CONTENT
    assert info.meta == AttachmentMeta("исполнительный лист.pdf", "application/pdf", None)
    assert CONTENT[:4096] not in ciphertexts  # encrypted at rest
    # Downloaded through the API, streamed, with the signed digest.
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{receiver.api}/messages/{message_id}/attachments/1",
            headers={"Authorization": f"Bearer {receiver.token}", "X-Purpose": "Проверка ИП 1"},
        ) as response,
    ):
        assert response.status == 200, await response.text()
        assert response.headers["X-Content-SHA256"] == hashlib.sha256(CONTENT).hexdigest()
        assert response.headers["Accept-Ranges"] == "bytes"
        assert await response.read() == CONTENT
    await _ranged_downloads(receiver, message_id, f'"{hashlib.sha256(CONTENT).hexdigest()}"')
    # And through the console: listed on the message page with its signed digest, streamed.
    conversation_id = header_field(envelope, "ConversationId")
    page, downloaded = await _console_download(receiver, conversation_id, message_id)
    assert 'id="attachments-beside"' in page and hashlib.sha256(CONTENT).hexdigest() in page
    assert downloaded == CONTENT
    await _curl_resumes(receiver, message_id)


async def _ranged_downloads(receiver: Receiver, message_id: str, etag: str) -> None:
    """A download goes on where it broke off: one byte range is 206 with exactly those bytes
    (from inside a segment, across segments, to the end, the last N); a range past the end is
    416 naming the size; several ranges, or an If-Range naming another file, get it whole."""
    url = f"{receiver.api}/messages/{message_id}/attachments/1"
    asked = {"Authorization": f"Bearer {receiver.token}", "X-Purpose": "Проверка ИП 1"}
    size = len(CONTENT)
    async with aiohttp.ClientSession() as http:
        for header, start, stop in (
            ("bytes=100000-", 100_000, size),
            ("bytes=65530-131080", 65_530, 131_081),
            (f"bytes=-{size - 300_001}", 300_001, size),
            ("bytes=0-0", 0, 1),
        ):
            async with http.get(url, headers={**asked, "Range": header}) as response:
                assert response.status == 206, (header, await response.text())
                assert response.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{size}"
                assert response.headers["ETag"] == etag
                assert await response.read() == CONTENT[start:stop], header
        async with http.get(url, headers={**asked, "Range": f"bytes={size}-"}) as response:
            assert response.status == 416
            assert response.headers["Content-Range"] == f"bytes */{size}"
            assert (await response.json())["error"]["code"] == "RANGE_NOT_SATISFIABLE"
        for whole in ({"Range": "bytes=0-1,5-6"}, {"Range": "bytes=5-", "If-Range": '"other"'}):
            async with http.get(url, headers={**asked, **whole}) as response:
                assert response.status == 200, whole
                assert await response.read() == CONTENT


async def _curl_resumes(receiver: Receiver, message_id: str) -> None:
    """curl goes on with a broken download with ``-C -`` (``Range: bytes=<what it has>-``)."""
    curl = require_tool("curl", "curl")
    url = f"{receiver.api}/messages/{message_id}/attachments/1"
    with tempfile.TemporaryDirectory() as folder:
        partial = Path(folder) / "scan.pdf"
        partial.write_bytes(CONTENT[:200_000])
        done = await asyncio.create_subprocess_exec(
            curl, "-sS", "-f", "-C", "-", "-o", str(partial), url,
            "-H", f"Authorization: Bearer {receiver.token}",
            "-H", "X-Purpose: Проверка ИП 1",
        )  # fmt: skip
        assert await done.wait() == 0
        assert partial.read_bytes() == CONTENT


@contextlib.asynccontextmanager
async def _console(
    receiver: Receiver, conversation_id: str
) -> AsyncIterator[aiohttp.ClientSession]:
    """The clerk signed in to the console, a purpose stated for the conversation."""
    console = f"{receiver.console}/conversations/{conversation_id}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(f"{receiver.console}/login") as page:
            token = _CSRF.search(await page.text()).group(1)  # type: ignore[union-attr]
        login = {"username": "clerk", "password": PASSWORD, "csrf_token": token}
        async with http.post(f"{receiver.console}/login", data=login, allow_redirects=False) as r:
            assert r.status == 303
        async with http.get(console) as page:
            token = _CSRF.search(await page.text()).group(1)  # type: ignore[union-attr]
        stated = {"csrf_token": token, "purpose": "Исполнительное производство № 1/26: проверка"}
        async with http.post(f"{console}/purpose", data=stated, allow_redirects=False) as r:
            assert r.status == 303, await r.text()
        yield http


async def _console_download(
    receiver: Receiver, conversation_id: str, message_id: str
) -> tuple[str, bytes]:
    """Sign in as the clerk, state a purpose, open the message page, follow its file link."""
    message = f"{receiver.console}/conversations/{conversation_id}/messages/{message_id}"
    async with _console(receiver, conversation_id) as http:
        async with http.get(message) as page:
            text = await page.text()
        async with http.get(f"{message}/attachments/1") as file:
            assert file.status == 200
            whole = await file.read()
        # The console serves a range too, and says past the end where the file ends.
        async with http.get(f"{message}/attachments/1", headers={"Range": "bytes=10-19"}) as part:
            assert (part.status, await part.read()) == (206, whole[10:20])
        past_end = {"Range": f"bytes={len(whole)}-"}
        async with http.get(f"{message}/attachments/1", headers=past_end) as past:
            assert (past.status, past.headers["Content-Range"]) == (416, f"bytes */{len(whole)}")
        return text, whole


async def test_the_console_streams_a_file_beside_the_answer(
    receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    """An operator answers RU-FSSP's request in KZ-MJ's console with a 3 MB scan in Kazakh and
    its Russian translation: the form is streamed into the node (no 5 MB cap, no base64 in the
    XML), the answer lists both in its signed header — the scan titled and in Kazakh, the
    translation naming it (CIS Art. 19) — and each file is linked to the answer byte for byte."""
    envelope = sender.document("cis-enforcement.Request", now())
    assert (await _deliver_plain(sender_client, receiver.url, envelope)).status == 200
    conversation_id = header_field(envelope, "ConversationId")
    scan = secrets.token_bytes(3 * 1024 * 1024 + 17)
    action = f"{receiver.console}/conversations/{conversation_id}/actions/respond"
    async with _console(receiver, conversation_id) as http:
        async with http.get(action) as page:
            token = _CSRF.search(await page.text()).group(1)  # type: ignore[union-attr]
        form = aiohttp.FormData()
        form.add_field("csrf_token", token)
        for key, value in {
            "Summary": "Запрос исполнен.",
            "Complete": "yes",
            "Information": "Опись имущества прилагается.",
            "AttachmentTitle": "Акт описи имущества",
            "AttachmentLanguage": "kk",
        }.items():
            form.add_field(key, value)
        form.add_field("Attachment", scan, filename="akt.pdf", content_type="application/pdf")
        form.add_field(
            "Translation", CONTENT, filename="akt-ru.pdf", content_type="application/pdf"
        )
        async with http.post(action, data=form) as answer:
            page = await answer.text()
            assert answer.status == 200 and "принят к отправке" in page, page[-2000:]
        message_id = re.search(r"сообщение ([0-9a-f-]{36})", page).group(1)  # type: ignore[union-attr]
        message = f"{receiver.console}/conversations/{conversation_id}/messages/{message_id}"
        async with http.get(message) as shown:
            listed = await shown.text()
        assert 'id="attachment-title-1">Акт описи имущества</span>' in listed
        assert 'id="attachment-translation-2">перевод файла akt.pdf</span>' in listed
    with receiver.node.store.read() as conn:
        info, translation = attachment_store.for_message(conn, message_id, receiver.node.kek_ring)
        stored = stored_file_bytes(conn, info.attachment_id, receiver.node.kek_ring)
        assert stored_file_bytes(conn, translation.attachment_id, receiver.node.kek_ring) == CONTENT
        unsent = conn.execute(
            sa.select(sa.func.count())
            .select_from(attachments)
            .where(attachments.c.message_id.is_(None), attachments.c.held_for.is_(None))
        ).scalar_one()
    assert stored == scan and info.meta.name == "akt.pdf" and unsent == 0
    (claim,) = [c for c in receiver.node.claim_due("test") if c.message_id == message_id]
    wire = receiver.node.outgoing(claim).wire
    assert "<env:Title>Акт описи имущества</env:Title>".encode() in wire
    assert b"<env:Language>kk</env:Language>" in wire
    assert b"<env:TranslationOf>akt.pdf</env:TranslationOf>" in wire
    assert hashlib.sha256(scan).hexdigest().encode() in wire
    assert b"<c:Content>" not in wire and len(wire) < 64 * 1024  # the file is not inside


async def _refuse_in_console(
    receiver: Receiver, conversation_id: str, returned: str
) -> tuple[int, str, str]:
    """The clerk opens the refusal form (a purpose stated) and refuses, returning ``returned``;
    the form as first shown, and the answer's status and page."""
    refuse = f"{receiver.console}/conversations/{conversation_id}/refuse"
    async with _console(receiver, conversation_id) as http:
        async with http.get(refuse) as page:
            shown = await page.text()
        form = {
            "csrf_token": _CSRF.search(shown).group(1),  # type: ignore[union-attr]
            "Ground": "contrary-to-law",
            "Circumstances": "Сведения такого рода предоставляются только по решению суда.",
            "ConsultationsHeld": "yes",
            "Returned": returned,
        }
        async with http.post(refuse, data=form) as answer:
            return answer.status, shown, await answer.text()


async def _request_with_a_file(sender: Signer, sender_client: PeerClient, url: str) -> bytes:
    envelope = sender.document(
        "cis-enforcement.Request", now(), Attachments=attachment_list(CONTENT)
    )
    assert (await _deliver(sender_client, url, envelope, CONTENT)).status == 200
    return envelope


async def test_a_console_refusal_returns_the_files_that_came_with_the_request(
    receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    """KZ-MJ refuses RU-FSSP's request in its console and, as CIS Art. 13 says, returns the
    documents with it: the file that came beside the request is offered ticked, taken in again
    from the store (streamed, a new upload under its own key), listed in the refusal's signed
    header as it came and named in ``ReturnedDocuments``; the copy is recorded naming the
    request it came from."""
    envelope = await _request_with_a_file(sender, sender_client, receiver.url)
    conversation_id = header_field(envelope, "ConversationId")
    request_id = header_field(envelope, "MessageId")
    status, shown, page = await _refuse_in_console(receiver, conversation_id, "1")
    assert 'id="returned-1" checked' in shown and "исполнительный лист.pdf" in shown
    assert status == 200 and "Возвращено документов: 1." in page, page[-2000:]
    message_id = re.search(r"сообщение ([0-9a-f-]{36})", page).group(1)  # type: ignore[union-attr]
    keys = receiver.node.kek_ring
    with receiver.node.store.read() as conn:
        (received,) = attachment_store.for_message(conn, request_id, keys)
        (returned,) = attachment_store.for_message(conn, message_id, keys)
        assert stored_file_bytes(conn, returned.attachment_id, receiver.node.kek_ring) == CONTENT
    assert returned.attachment_id != received.attachment_id and returned.meta == received.meta
    (claim,) = [c for c in receiver.node.claim_due("test") if c.message_id == message_id]
    wire = receiver.node.outgoing(claim).wire
    returned_list = r"<cis:ReturnedDocuments><c:FileName>исполнительный лист\.pdf</c:FileName>"
    assert re.search(returned_list, wire.decode())
    assert hashlib.sha256(CONTENT).hexdigest().encode() in wire
    (copied,) = [
        r
        for r in audit_rows(receiver.node.store, "attachment.uploaded")
        if r["subjects"]["attachment"] == returned.attachment_id
    ]
    assert copied["subjects"]["message"] == request_id


async def test_a_damaged_file_is_not_returned_and_nothing_is_sent(
    receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    """A received file whose stored segment was altered does not read back: the refusal is not
    sent, the form names the damage at the returned documents, and no copy is left."""
    envelope = await _request_with_a_file(sender, sender_client, receiver.url)
    conversation_id = header_field(envelope, "ConversationId")
    request_id = header_field(envelope, "MessageId")
    with receiver.node.store.transaction() as conn:
        (received,) = attachment_store.for_message(conn, request_id, receiver.node.kek_ring)
        segment = attachment_segments.c
        where = (segment.attachment_id == received.attachment_id) & (segment.segment_no == 1)
        stored = conn.execute(sa.select(segment.ciphertext).where(where)).scalar_one()
        altered = bytes([stored[0] ^ 1]) + stored[1:]
        conn.execute(attachment_segments.update().where(where).values(ciphertext=altered))
    before = _count(receiver, attachments)
    status, _, page = await _refuse_in_console(receiver, conversation_id, "1")
    assert status == 500 and 'id="error-ReturnedDocuments"' in page
    assert "повреждён или изменён" in page
    assert _count(receiver, attachments) == before
    with receiver.node.store.read() as conn:
        kinds = [m.header.kind for m in messages.list_for_conversation(conn, conversation_id)]
    assert "Refusal" not in kinds


async def test_the_api_sends_described_files_and_keeps_the_header_list_its_own(
    receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    """Through the local API: a Kazakh scan and its translation uploaded, the answer naming
    them as objects (title, translation_of) is accepted (202) and reads back with the signed
    header's list; a document whose header types its own list, or whose Kazakh scan has no
    translation, is refused (422) naming why, and the uploads stay unsent."""
    envelope = sender.document("cis-enforcement.Request", now())
    assert (await _deliver_plain(sender_client, receiver.url, envelope)).status == 200
    auth = {"Authorization": f"Bearer {receiver.token}"}
    answer = reply_document("cis-enforcement.Response", envelope)
    async with aiohttp.ClientSession() as http:
        ids = []
        for name, language in (("akt-kk.pdf", "kk"), ("akt.pdf", "ru")):
            async with http.post(
                f"{receiver.api}/attachments",
                params={"name": name, "language": language},
                data=CONTENT,
                headers=auth | {"Content-Type": "application/pdf"},
            ) as uploaded:
                assert uploaded.status == 201, await uploaded.text()
                ids.append((await uploaded.json())["attachment_id"])
        typed = {"Attachment": [{"Name": "x.pdf", "MediaType": "application/pdf", "Size": 1}]}
        untranslated = answer | {"attachments": [{"id": ids[0], "title": "Акт описи"}]}
        own_list = answer | {"header": answer["header"] | {"Attachments": typed}}
        for refused, code in ((own_list, "JSON_SHAPE"), (untranslated, "RULE_ATTACHMENT_")):
            async with http.post(f"{receiver.api}/messages", json=refused, headers=auth) as r:
                problems = (await r.json())["problems"]
                assert r.status == 422 and problems[0]["code"].startswith(code), problems
        described = [
            {"id": ids[0], "title": "Акт описи (на казахском)"},
            {"id": ids[1], "title": "Акт описи, перевод", "translation_of": "akt-kk.pdf"},
        ]
        async with http.post(
            f"{receiver.api}/messages", json=answer | {"attachments": described}, headers=auth
        ) as accepted:
            assert accepted.status == 202, await accepted.text()
            message_id = (await accepted.json())["message_id"]
        purpose = {"X-Purpose": "Исполнительное производство № 7/26: ответ"}
        async with http.get(
            f"{receiver.api}/messages/{message_id}", headers=auth | purpose
        ) as read:
            listed = (await read.json())["header"]["Attachments"]["Attachment"]
    assert [(a["Name"], a["Title"], a.get("TranslationOf")) for a in listed] == [
        ("akt-kk.pdf", "Акт описи (на казахском)", None),
        ("akt.pdf", "Акт описи, перевод", "akt-kk.pdf"),
    ]


async def test_the_api_returns_a_received_file_with_a_refusal(
    receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    """A case system refusing through the local API returns the request's file (CIS Art. 13)
    without downloading it: ``POST …/attachments/1/returns`` takes it in again (a stated
    purpose needed, as for downloading it), and the refusal lists that upload and names the
    file in ``ReturnedDocuments``."""
    envelope = await _request_with_a_file(sender, sender_client, receiver.url)
    request_id = header_field(envelope, "MessageId")
    auth = {"Authorization": f"Bearer {receiver.token}"}
    purpose = {"X-Purpose": "Исполнительное производство № 9/26: отказ"}
    returns = f"{receiver.api}/messages/{request_id}/attachments/1/returns"
    refusal = reply_document("cis-enforcement.Refusal-returned-documents", envelope)
    refusal["body"]["Refusal"]["ReturnedDocuments"] = {"FileName": ["исполнительный лист.pdf"]}
    async with aiohttp.ClientSession() as http:
        async with http.post(returns, headers=auth) as unstated:
            assert unstated.status == 428  # reading the file needs a purpose (CIS Art. 9.1)
        ninth = f"{receiver.api}/messages/{request_id}/attachments/9/returns"
        async with http.post(ninth, headers=auth | purpose) as missing:
            assert missing.status == 404
        async with http.post(returns, headers=auth | purpose) as taken:
            assert taken.status == 201, await taken.text()
            copy = await taken.json()
        assert copy["sha256"] == hashlib.sha256(CONTENT).hexdigest()
        refusal["attachments"] = [{"id": copy["attachment_id"], "title": "Исполнительный лист"}]
        async with http.post(f"{receiver.api}/messages", json=refusal, headers=auth) as sent:
            assert sent.status == 202, await sent.text()
            message_id = (await sent.json())["message_id"]
    with receiver.node.store.read() as conn:
        (returned,) = attachment_store.for_message(conn, message_id, receiver.node.kek_ring)
        assert stored_file_bytes(conn, returned.attachment_id, receiver.node.kek_ring) == CONTENT
    assert returned.attachment_id == copy["attachment_id"]


def reply_document(template: str, request_envelope: bytes) -> dict[str, Any]:
    """The example ``template`` as a case system's answer to the request it received."""
    document = load_example(template)
    document["header"].update(
        ConversationId=header_field(request_envelope, "ConversationId"),
        InReplyTo=header_field(request_envelope, "MessageId"),
        Recipient=header_field(request_envelope, "Sender"),
    )
    return document


async def _deliver_plain(client: PeerClient, url: str, envelope: bytes) -> PeerResponse:
    try:
        return await client.post_message(url, envelope, [])
    except PeerTransportError as error:
        assert error.response is not None, error
        return error.response


async def test_a_tampered_part_is_refused_and_nothing_is_stored(
    receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    envelope = sender.document(
        "cis-enforcement.Request", now(), Attachments=attachment_list(CONTENT)
    )
    tampered = bytearray(CONTENT)
    tampered[300_000] ^= 0x01  # one bit, same size: only the digest can tell
    before = _count(receiver, attachments), _count(receiver, attachment_segments)
    answer = await _deliver(sender_client, receiver.url, envelope, bytes(tampered))
    assert answer.status == 422, answer.body[:300]
    assert body_fields(answer.body)["Code"] == "ATTACHMENT_MISMATCH"
    # Nothing of the delivery is kept: no message of its id, no attachment, no segment.
    assert (_count(receiver, attachments), _count(receiver, attachment_segments)) == before
    with receiver.node.store.read() as conn:
        assert messages.get(conn, header_field(envelope, "MessageId")) is None


async def test_a_part_missing_from_the_signed_list_is_refused(
    receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    envelope = sender.document("cis-enforcement.Request", now())  # lists no attachment
    before = _count(receiver, attachments)
    answer = await _deliver(sender_client, receiver.url, envelope, CONTENT)
    assert answer.status == 422 and body_fields(answer.body)["Code"] == "ATTACHMENT_MISMATCH"
    assert _count(receiver, attachments) == before


async def test_content_length_over_the_limit_is_refused_before_reading(
    receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    envelope = sender.document(
        "cis-enforcement.Request", now(), Attachments=attachment_list(CONTENT)
    )
    never = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield b"x" * 1000
        await never.wait()  # the rest never comes: a refusal after reading would hang
        yield b""

    async def post() -> PeerTransportError:
        with pytest.raises(PeerTransportError) as raised:
            declared = LIMIT + DELIVERY_FRAMING_BYTES  # with the XML: over limit and framing
            await sender_client.post_message(
                receiver.url, envelope, [PartPayload(stalled(), declared)]
            )
        return raised.value

    error = await asyncio.wait_for(post(), 30)
    assert error.status == 413 and not error.retryable
    assert error.response is not None and b"MESSAGE_TOO_LARGE" in error.response.body


async def _hang_up_after(api_port: int, request_line: str, headers: str, sent: bytes) -> None:
    """A request whose head promises more than ``sent``: it sends ``sent`` and hangs up."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", api_port)
    writer.write(f"{request_line} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode() + sent)
    await writer.drain()
    await asyncio.sleep(0.5)
    writer.close()
    await writer.wait_closed()


async def _raw_upload(api_port: int, token: str, declared: int, sent: bytes) -> None:
    """An upload that declares ``declared`` bytes, sends ``sent`` and hangs up."""
    await _hang_up_after(
        api_port,
        "POST /api/v1/attachments?name=scan.pdf&media_type=application/pdf",
        f"Authorization: Bearer {token}\r\nContent-Length: {declared}\r\n",
        sent,
    )


async def test_an_interrupted_upload_leaves_nothing_and_a_new_one_succeeds(
    receiver: Receiver,
) -> None:
    before = _count(receiver, attachments)
    await _raw_upload(receiver.runtime.api_port, receiver.token, len(CONTENT), CONTENT[:200_000])
    for _ in range(50):  # the node notices the broken connection and discards
        if _count(receiver, attachments) == before:
            break
        await asyncio.sleep(0.1)
    assert _count(receiver, attachments) == before
    headers = {"Authorization": f"Bearer {receiver.token}"}
    query = "name=scan.pdf&media_type=application/pdf"
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{receiver.api}/attachments?{query}", data=CONTENT, headers=headers
        ) as response:
            answer = await response.json()
            assert response.status == 201, answer
        assert answer["size"] == len(CONTENT)
        assert answer["sha256"] == hashlib.sha256(CONTENT).hexdigest()
        # Declared over the limit: 413 before the body is read.
        async with http.post(
            f"{receiver.api}/attachments?{query}",
            data=b"x",
            headers={**headers, "Content-Length": str(LIMIT + 1)},
        ) as response:
            assert response.status == 413
            assert (await response.json())["error"]["code"] == "ATTACHMENT_TOO_LARGE"
    assert _count(receiver, attachments) == before + 1


RESUMABLE = secrets.token_bytes(3_500_000)
"""Over one write batch (2 MiB) and under the receiver's 4 MB limit."""


async def _raw_part(api_port: int, token: str, path: str, offset: int, sent: bytes) -> None:
    """A part that declares the whole rest of :data:`RESUMABLE`, sends ``sent`` and hangs up."""
    await _hang_up_after(
        api_port,
        f"PATCH {path}",
        f"Authorization: Bearer {token}\r\nUpload-Offset: {offset}\r\n"
        f"Content-Length: {len(RESUMABLE) - offset}\r\n",
        sent,
    )


def _stored_plaintext(receiver: Receiver, attachment_id: str) -> bytes:
    node = receiver.node
    with node.store.read() as conn:
        reader = attachment_store.reader(conn, attachment_id, node.kek_ring)
    return b"".join(attachment_store.stream(node.store.read, reader))


async def test_a_resumable_upload_broken_off_goes_on_from_its_offset(receiver: Receiver) -> None:
    """The case system declares the length, the first part breaks off after 2.5 MB: the node
    keeps the whole segments it stored, says where they end, refuses a part from elsewhere,
    and the rest completes the file byte for byte (hashed as one file, audited once)."""
    headers = {"Authorization": f"Bearer {receiver.token}"}
    query = "name=scan.pdf&media_type=application/pdf"
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{receiver.api}/attachments?{query}",
            headers={**headers, "Upload-Length": str(len(RESUMABLE))},
        ) as response:
            created = await response.json()
            assert response.status == 201, created
        upload = response.headers["Location"]
        assert upload == f"/api/v1/attachments/{created['attachment_id']}"
        assert (created["offset"], created["length"], created["complete"]) == (
            0,
            len(RESUMABLE),
            False,
        )
        url = f"http://127.0.0.1:{receiver.runtime.api_port}{upload}"

        await _raw_part(receiver.runtime.api_port, receiver.token, upload, 0, RESUMABLE[:2_500_000])
        seen: list[int] = []
        for _ in range(100):  # the node notices the broken connection and keeps what came
            async with http.get(url, headers=headers) as response:
                state = await response.json()
                assert response.status == 200, state
            seen.append(state["offset"])
            if seen[-1] > 0 and seen[-5:] == [seen[-1]] * 5:  # settled for half a second
                break
            await asyncio.sleep(0.1)
        offset = seen[-1]
        # Whole segments of what the node read before the connection broke are kept (aiohttp
        # drops what it buffered but had not handed over when the connection failed).
        assert 2 * 1024 * 1024 <= offset <= 2_500_000, offset
        assert offset % segments.SEGMENT_BYTES == 0, offset
        assert not state["complete"] and state["sha256"] is None

        async with http.patch(
            url, data=RESUMABLE, headers={**headers, "Upload-Offset": "0"}
        ) as response:
            refused = await response.json()
            assert response.status == 409, refused
        assert refused["error"]["code"] == "UPLOAD_OFFSET_MISMATCH"
        assert (refused["error"]["offset"], refused["error"]["complete"]) == (offset, False)

        async with http.patch(
            url, data=RESUMABLE[offset:], headers={**headers, "Upload-Offset": str(offset)}
        ) as response:
            done = await response.json()
            assert response.status == 200, done
        assert done == {
            "attachment_id": created["attachment_id"],
            "length": len(RESUMABLE),
            "offset": len(RESUMABLE),
            "complete": True,
            "sha256": hashlib.sha256(RESUMABLE).hexdigest(),
        }
        async with http.patch(
            url, data=b"more", headers={**headers, "Upload-Offset": str(len(RESUMABLE))}
        ) as response:
            again = await response.json()
            assert response.status == 409 and again["error"]["complete"] is True, again
    assert _stored_plaintext(receiver, created["attachment_id"]) == RESUMABLE
    uploaded = [
        row
        for row in audit_rows(receiver.node.store, "attachment.uploaded")
        if row["subjects"].get("attachment") == created["attachment_id"]
    ]
    assert [row["details"] for row in uploaded] == [
        {"size": len(RESUMABLE), "sha256": hashlib.sha256(RESUMABLE).hexdigest()}
    ]


async def test_two_parts_sent_at_once_store_one(receiver: Receiver) -> None:
    """Two parts from the same offset at the same time (a client retrying too early): one
    is stored, the other refused with where the stored bytes end; the file is whole once."""
    headers = {"Authorization": f"Bearer {receiver.token}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{receiver.api}/attachments?name=twice.pdf",
            headers={**headers, "Upload-Length": str(len(RESUMABLE))},
        ) as response:
            url = f"{receiver.api}/attachments/{(await response.json())['attachment_id']}"

        async def part() -> tuple[int, dict[str, Any]]:
            async with http.patch(
                url, data=_bytes(RESUMABLE), headers={**headers, "Upload-Offset": "0"}
            ) as response:
                return response.status, await response.json()

        answers = await asyncio.gather(part(), part())
    assert sorted(status for status, _ in answers) == [200, 409], answers
    refused = next(answer for status, answer in answers if status == 409)
    assert refused["error"]["code"] == "UPLOAD_OFFSET_MISMATCH"
    done = next(answer for status, answer in answers if status == 200)
    assert done["complete"] and done["sha256"] == hashlib.sha256(RESUMABLE).hexdigest()
    assert _stored_plaintext(receiver, done["attachment_id"]) == RESUMABLE


async def test_a_resumable_upload_refuses_what_it_cannot_take(receiver: Receiver) -> None:
    """Over the limit at creation (413), a body with the creation (400), a part past the
    declared length (400, the bytes before it kept), no such upload (404), a missing or
    malformed Upload-Offset (400)."""
    headers = {"Authorization": f"Bearer {receiver.token}"}
    base = f"{receiver.api}/attachments"
    async with aiohttp.ClientSession() as http:

        async def call(method: str, url: str, **kw: Any) -> tuple[int, dict[str, Any]]:
            async with http.request(method, url, **kw) as response:
                return response.status, await response.json()

        status, answer = await call(
            "POST", f"{base}?name=a.pdf", headers={**headers, "Upload-Length": str(LIMIT + 1)}
        )
        assert (status, answer["error"]["code"]) == (413, "ATTACHMENT_TOO_LARGE")
        status, answer = await call(
            "POST", f"{base}?name=a.pdf", data=b"x", headers={**headers, "Upload-Length": "1"}
        )
        assert (status, answer["error"]["parameter"]) == (400, "Upload-Length")
        status, answer = await call(
            "POST", f"{base}?name=a.pdf", headers={**headers, "Upload-Length": "-5"}
        )
        assert (status, answer["error"]["parameter"]) == (400, "Upload-Length")

        status, created = await call(
            "POST", f"{base}?name=a.pdf", headers={**headers, "Upload-Length": "100000"}
        )
        assert status == 201
        url = f"{base}/{created['attachment_id']}"
        status, answer = await call(
            "PATCH", url, data=bytes(150_000), headers={**headers, "Upload-Offset": "0"}
        )
        assert (status, answer["error"]["code"]) == (400, "UPLOAD_TOO_LONG"), answer
        status, state = await call("GET", url, headers=headers)
        # What came before the length ran out is kept, but for the last (final) segment.
        assert (status, state["complete"], state["offset"]) == (200, False, 65_536), state
        rest = {**headers, "Upload-Offset": "65536"}
        status, done = await call("PATCH", url, data=bytes(100_000 - 65_536), headers=rest)
        assert (status, done["complete"]) == (200, True), done
        assert done["sha256"] == hashlib.sha256(bytes(100_000)).hexdigest()
        for offset in (None, "x", "1e3", "-1"):
            extra = {} if offset is None else {"Upload-Offset": offset}
            status, answer = await call("PATCH", url, data=b"x", headers={**headers, **extra})
            assert (status, answer["error"]["parameter"]) == (400, "Upload-Offset"), offset
        status, answer = await call("GET", f"{base}/{uuid.uuid4()}", headers=headers)
        assert (status, answer["error"]["code"]) == (404, "NOT_FOUND")
        status, answer = await call(
            "PATCH", f"{base}/{uuid.uuid4()}", data=b"x", headers={**headers, "Upload-Offset": "0"}
        )
        assert (status, answer["error"]["code"]) == (404, "NOT_FOUND")


async def test_the_recipients_published_limit_refuses_at_submit(world: DemoWorld) -> None:
    config = node_config(world, SENDER, "attach-submit")
    node = Node.from_config(NodeConfig.from_toml(config))
    try:
        directory = node.index.directory
        bodies = tuple(
            dataclasses.replace(b, max_attachment_bytes=len(CONTENT) - 1) if b.id == RECEIVER else b
            for b in directory.bodies
        )
        node.index = DirectoryIndex.of(dataclasses.replace(directory, bodies=bodies))
        staged = await stage_stream(
            node.store,
            node.kek_ring,
            AttachmentMeta("scan.pdf", "application/pdf"),
            _bytes(CONTENT),
            limit=LIMIT,
            now=now(),
        )
        before = row_counts(node.store)
        document = padded_request() | {"attachments": [staged.attachment_id]}
        with pytest.raises(DocumentRejected) as refused:
            node.submit(document, actor="operator-test")
        assert [p.code for p in refused.value.problems] == ["ATTACHMENT_TOO_LARGE"]
        assert "MaxAttachmentBytes" in refused.value.problems[0].message_en
        assert row_counts(node.store) == before  # nothing stored, nothing queued
        # Within the limit the same upload goes: listed in the signed header, linked.
        node.index = DirectoryIndex.of(directory)
        header, _ = node.submit(document, actor="operator-test")
        assert [a.sha256 for a in header.attachments] == [staged.sha256.hex()]
        with node.store.read() as conn:
            (info,) = attachment_store.for_message(conn, header.message_id, node.kek_ring)
        assert info.attachment_id == staged.attachment_id and info.size == len(CONTENT)
    finally:
        node.close()


# --- what the case system says of each file: title, translation, register extract ------------


@pytest.fixture(params=["sqlite", "postgresql"])
def sender_node(request: pytest.FixtureRequest, world: DemoWorld) -> Iterator[Node]:
    """RU-FSSP's node (no server: it submits and signs) on each store."""
    with node_on_store(request, world, SENDER, "described") as node:
        yield node


async def _staged(node: Node, name: str, language: str | None = None) -> str:
    meta = AttachmentMeta(name, "application/pdf", language)
    staged = await stage_stream(
        node.store, node.kek_ring, meta, _bytes(CONTENT), limit=LIMIT, now=now()
    )
    return staged.attachment_id


async def test_a_file_beside_the_xml_obeys_the_language_rule_and_carries_its_description(
    sender_node: Node,
) -> None:
    """CIS Art. 19: a Kazakh scan uploaded beside the XML is refused at submission without its
    Russian translation (named at its header entry; nothing stored); with the translation
    listed as such, both go, titled, in the signed header; a register extract goes alone
    (CIS Art. 5 para. 3)."""
    node = sender_node
    scan, translation = await _staged(node, "akt-kk.pdf", "kk"), await _staged(node, "akt.pdf")
    before = row_counts(node.store)
    alone = padded_request() | {"attachments": [{"id": scan, "title": "Акт (на казахском)"}]}
    with pytest.raises(DocumentRejected) as refused:
        node.submit(alone, actor="operator-test")
    (problem,) = refused.value.problems
    assert (problem.code, problem.article, problem.path) == (
        "RULE_ATTACHMENT_TRANSLATION_MISSING",
        "CIS Art. 19",
        "/Envelope/Header/Attachments/Attachment/Language",
    )
    assert "translation_of" in problem.remedy_ru
    assert row_counts(node.store) == before  # nothing stored, nothing queued, uploads unsent
    listed = [
        {"id": scan, "title": "Акт описи (на казахском)"},
        {"id": translation, "title": "Акт описи, перевод", "translation_of": "akt-kk.pdf"},
    ]
    header, _ = node.submit(padded_request() | {"attachments": listed}, actor="operator-test")
    assert [(a.name, a.title, a.language, a.translation_of) for a in header.attachments] == [
        ("akt-kk.pdf", "Акт описи (на казахском)", "kk", None),
        ("akt.pdf", "Акт описи, перевод", None, "akt-kk.pdf"),
    ]
    (claim,) = [c for c in node.claim_due("test") if c.message_id == header.message_id]
    signed = node.outgoing(claim).wire  # what goes to the peer, signed
    assert "<env:Title>Акт описи, перевод</env:Title>".encode() in signed
    assert b"<env:TranslationOf>akt-kk.pdf</env:TranslationOf>" in signed
    extract = await _staged(node, "vypiska-kk.pdf", "kk")
    described = {"id": extract, "register_extract": True}
    header, _ = node.submit(padded_request() | {"attachments": [described]}, actor="op-test")
    assert [(a.name, a.register_extract) for a in header.attachments] == [("vypiska-kk.pdf", True)]


async def test_a_discarded_upload_is_audited_with_its_delete(sender_node: Node) -> None:
    """An upload no submission took, deleted (a console form refused after its file came in):
    gone with its segments and recorded ``attachment.discarded`` by the one who uploaded it,
    after its ``attachment.uploaded``; discarding it again, an unknown id or a file already
    sent deletes and records nothing."""
    node = sender_node
    meta = AttachmentMeta("lishnii.pdf", "application/pdf", None)
    sent = await _staged(node, "akt.pdf")
    node.submit(padded_request() | {"attachments": [{"id": sent, "title": "Акт"}]}, actor="op")
    unknown = str(uuid.uuid4())
    with ThreadPoolExecutor(2) as executor:
        service = LocalNodeService(node, executor)
        upload = (await service.upload_attachment(meta, _bytes(CONTENT), actor=OPERATOR))[
            "attachment_id"
        ]
        for attachment_id in (upload, upload, unknown, sent):
            await service.discard_upload(attachment_id, actor=OPERATOR)
    with node.store.read() as conn:
        left = {
            table.name: set(
                conn.execute(
                    sa.select(table.c.attachment_id).where(
                        table.c.attachment_id.in_([upload, sent])
                    )
                ).scalars()
            )
            for table in (attachments, attachment_segments)
        }
    assert left == {"attachments": {sent}, "attachment_segments": {sent}}
    ours = {upload, sent, unknown}
    discarded = [
        r
        for r in audit_rows(node.store, "attachment.discarded")
        if r["subjects"]["attachment"] in ours
    ]
    assert [(r["actor"], r["subjects"], r["details"]) for r in discarded] == [
        (OPERATOR.code, {"attachment": upload}, {})
    ]
    (uploaded,) = [
        r
        for r in audit_rows(node.store, "attachment.uploaded")
        if r["subjects"]["attachment"] in ours
    ]
    assert uploaded["actor"] == OPERATOR.code and uploaded["seq"] < discarded[0]["seq"]


# --- a confidential conversation's parts, sealed end to end -----------------------------------

SECRET = b"%PDF-1.7 " + "Должник Иванов Иван Иванович, счёт 40817810000000000001. ".encode() * 9000
"""Over 600 KB, so several 64 KiB segments; the phrase is what the scans look for."""
SECRET_PHRASE = "Иванов Иван Иванович".encode()


async def _gathered(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in chunks])


async def _confidential_submitted(world: DemoWorld, tag: str) -> tuple[Node, bytes, bytes, str]:
    """RU-FSSP's node: SECRET uploaded, a confidential request naming it submitted; the
    delivery's CMS and its one part as they go on the wire, and the message id."""
    node = Node.from_config(NodeConfig.from_toml(node_config(world, SENDER, tag)))
    staged = await stage_stream(
        node.store,
        node.kek_ring,
        AttachmentMeta("должник.pdf", "application/pdf"),
        _bytes(SECRET),
        limit=LIMIT,
        now=now(),
    )
    document = padded_request() | {"attachments": [staged.attachment_id]}
    document["header"] = {**document["header"], "Confidential": True}
    header, _ = node.submit(document, actor="operator-test")
    (ref,) = header.attachments
    assert ref.sealing is not None and ref.sealing.sealed_as == staged.attachment_id
    assert (ref.size, ref.sha256) == (len(SECRET), hashlib.sha256(SECRET).hexdigest())
    (claim,) = [c for c in node.claim_due("test") if c.message_id == header.message_id]
    outgoing = node.outgoing(claim)
    assert outgoing.sealed_parts
    assert outgoing.attachments == (
        (staged.attachment_id, len(SECRET), hashlib.sha256(SECRET).digest()),
    )
    wire = await _gathered(read_sealed_stream(node.store, staged.attachment_id, len(SECRET)))
    assert len(wire) == sealed_size(len(SECRET))
    return node, outgoing.wire, wire, header.message_id


def _refusal_code(answer: PeerResponse) -> str:
    """A signed Rejection's code (encrypted documents are answered in clear XML)."""
    return body_fields(answer.body)["Code"]


async def test_a_confidential_attachment_travels_sealed_and_only_a_confidential_reader_reads_it(
    world: DemoWorld, receiver: Receiver, sender_client: PeerClient
) -> None:
    node, envelope, wire, message_id = await _confidential_submitted(world, "conf-ok")
    node.close()
    assert SECRET_PHRASE not in wire and SECRET[:4096] not in wire  # sealed on the wire
    assert SECRET_PHRASE not in envelope  # the document itself is CMS to the recipient
    answer = await _deliver(sender_client, receiver.url, envelope, wire)
    assert answer.status == 200, answer.body[:300]
    with receiver.node.store.read() as conn:
        (info,) = attachment_store.for_message(conn, message_id, receiver.node.kek_ring)
        at_rest = b"".join(
            r.ciphertext
            for r in conn.execute(
                sa.select(attachment_segments.c.ciphertext)
                .where(attachment_segments.c.attachment_id == info.attachment_id)
                .order_by(attachment_segments.c.segment_no)
            )
        )
    assert (info.size, info.sha256) == (len(SECRET), hashlib.sha256(SECRET).digest())
    assert info.meta.name == "должник.pdf"
    assert at_rest == wire  # stored as it came: no re-encryption, and no plaintext at rest
    url = f"{receiver.api}/messages/{message_id}/attachments/1"
    purpose = {"X-Purpose": "Исполнительное производство № 7/26: проверка"}
    plain = f"integration-{secrets.token_hex(16)}"
    with receiver.node.store.transaction() as conn:
        tokens.create(conn, plain, label="plain", scopes=("operator",), now=now())
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {plain}"} | purpose
        async with http.get(url, headers=headers) as response:
            assert response.status == 403, await response.text()
            assert "confidential-reader" in await response.text()
        headers = {"Authorization": f"Bearer {receiver.token}"} | purpose
        async with http.get(url, headers=headers) as response:
            assert response.status == 200, await response.text()
            assert await response.read() == SECRET
    denied = audit_rows(receiver.node.store, "access.denied")
    assert any(e["subjects"].get("subject") == message_id for e in denied), denied[-1:]
    read = audit_rows(receiver.node.store, "document.read")
    assert any(
        e["subjects"].get("message") == message_id and e["details"].get("confidential")
        for e in read
    ), read[-1:]


async def test_a_confidential_request_s_file_is_returned_sealed_again(
    world: DemoWorld, receiver: Receiver, sender_client: PeerClient
) -> None:
    """CIS Art. 13 in a confidential conversation (Art. 16): only a confidential reader may
    take the received file in again; the copy is stored encrypted and goes back sealed to the
    requesting body like any confidential part, never in clear at rest or on the wire."""
    node, envelope, wire, request_id = await _confidential_submitted(world, "conf-return")
    node.close()
    assert (await _deliver(sender_client, receiver.url, envelope, wire)).status == 200
    purpose = {"X-Purpose": "Исполнительное производство № 7/26: отказ"}
    returns = f"{receiver.api}/messages/{request_id}/attachments/1/returns"
    plain = f"integration-{secrets.token_hex(16)}"
    with receiver.node.store.transaction() as conn:
        tokens.create(conn, plain, label="plain-return", scopes=("operator",), now=now())
        conversation_id = messages.get(conn, request_id).header.conversation_id
    refusal = load_example("cis-enforcement.Refusal-returned-documents")
    refusal["header"].update(
        ConversationId=conversation_id, InReplyTo=request_id, Recipient=SENDER, Confidential=True
    )
    refusal["body"]["Refusal"]["ReturnedDocuments"] = {"FileName": ["должник.pdf"]}
    async with aiohttp.ClientSession() as http:
        async with http.post(returns, headers={"Authorization": f"Bearer {plain}"} | purpose) as r:
            assert r.status == 403 and "confidential-reader" in await r.text()
        auth = {"Authorization": f"Bearer {receiver.token}"}
        async with http.post(returns, headers=auth | purpose) as taken:
            assert taken.status == 201, await taken.text()
            copy = (await taken.json())["attachment_id"]
        refusal["attachments"] = [copy]
        async with http.post(f"{receiver.api}/messages", json=refusal, headers=auth) as sent:
            assert sent.status == 202, await sent.text()
            message_id = (await sent.json())["message_id"]
    with receiver.node.store.read() as conn:
        at_rest = b"".join(
            conn.execute(
                sa.select(attachment_segments.c.ciphertext).where(
                    attachment_segments.c.attachment_id == copy
                )
            ).scalars()
        )
    assert at_rest and SECRET_PHRASE not in at_rest
    (claim,) = [c for c in receiver.node.claim_due("test") if c.message_id == message_id]
    outgoing = receiver.node.outgoing(claim)
    assert outgoing.sealed_parts and SECRET_PHRASE not in outgoing.wire
    sealed = await _gathered(read_sealed_stream(receiver.node.store, copy, len(SECRET)))
    assert len(sealed) == sealed_size(len(SECRET)) and SECRET_PHRASE not in sealed


async def test_a_confidential_part_altered_in_transit_is_refused(
    world: DemoWorld, receiver: Receiver, sender_client: PeerClient
) -> None:
    node, envelope, wire, message_id = await _confidential_submitted(world, "conf-tamper")
    node.close()
    tampered = bytearray(wire)
    tampered[200_000] ^= 0x01
    before = _count(receiver, attachments), _count(receiver, attachment_segments)
    answer = await _deliver(sender_client, receiver.url, envelope, bytes(tampered))
    assert answer.status == 422 and _refusal_code(answer) == "ATTACHMENT_MISMATCH"
    assert (_count(receiver, attachments), _count(receiver, attachment_segments)) == before
    with receiver.node.store.read() as conn:
        assert messages.get(conn, message_id) is None


def _stranger_certificate() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not KZ-MJ")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now() - timedelta(days=1))
        .not_valid_after(now() + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


def _hand_sealed(
    receiver: Receiver, sender: Signer, *, listed_as: bytes, wrong_key: str = ""
) -> tuple[bytes, bytes, bytes]:
    """SECRET sealed by hand as a confidential part to KZ-MJ, the signed header listing
    ``listed_as``'s size and digest; ``wrong_key``: its part key wrapped to a stranger's
    certificate or altered. The delivery's CMS, the part, the wrapped key."""
    sealing = Sealing.new()
    envelope, wrapped, _ = hand_sealed(
        receiver.node,
        sender,
        sealing,
        listed_as,
        wrapped_to=[_stranger_certificate()] if wrong_key.startswith("key") else None,
        alter_wrapped=wrong_key == "wrapped key altered",
    )
    return envelope, sealing.seal(SECRET), wrapped


@pytest.mark.parametrize("wrong", ["key wrapped to another certificate", "wrapped key altered"])
async def test_a_part_key_the_recipient_cannot_unwrap_is_refused(
    wrong: str, receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    """The sender's part key wrapped to a certificate KZ-MJ does not hold (so KZ-MJ cannot
    read the part), or altered: refused by name, the whole document otherwise fine."""
    envelope, sealed, wrapped = _hand_sealed(receiver, sender, listed_as=SECRET, wrong_key=wrong)
    before = _count(receiver, attachments)
    answer = await _deliver(sender_client, receiver.url, envelope, sealed)
    assert answer.status == 422, answer.body[:300]
    assert _refusal_code(answer) == "ATTACHMENT_KEY_UNREADABLE"
    assert _count(receiver, attachments) == before
    with pytest.raises(RecipientEncryptionError):
        decrypt_with_any(wrapped, _receiver_keys(receiver))


async def test_a_sealed_part_whose_plaintext_is_not_the_signed_file_is_refused(
    receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    """Every segment authenticates under the signed key, but the sender signed the digest of
    another file of the same size: the plaintext's SHA-256, taken while the part was stored,
    refuses it, and nothing of it stays."""
    other = bytearray(SECRET)
    other[123_456] ^= 0x01
    envelope, sealed, _ = _hand_sealed(receiver, sender, listed_as=bytes(other))
    before = _count(receiver, attachments), _count(receiver, attachment_segments)
    answer = await _deliver(sender_client, receiver.url, envelope, sealed)
    assert answer.status == 422, answer.body[:300]
    assert _refusal_code(answer) == "ATTACHMENT_MISMATCH"
    assert hashlib.sha256(SECRET).hexdigest() in answer.body.decode()
    assert (_count(receiver, attachments), _count(receiver, attachment_segments)) == before


def _receiver_keys(receiver: Receiver) -> list[tuple[Any, x509.Certificate]]:
    return [(k.private_key, k.certificate) for k in receiver.node.keys.decryption_keys()]


# --- a signed PDF beside the XML, verified on the receiving node, streamed --------------------


def _pdf() -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, "Register extract (test): vehicle JTNB11HK103000001.")
    return bytes(pdf.output())


async def _signed_by(sender: Signer) -> bytes:
    return await async_sign_pdf(_pdf(), sender.seal.pdf_signer(), reason="Выписка", location=SENDER)


async def _delivered(
    receiver: Receiver, sender: Signer, sender_client: PeerClient, content: bytes
) -> tuple[str, str]:
    envelope = sender.document(
        "cis-enforcement.Request", now(), Attachments=attachment_list(content)
    )
    answer = await _deliver(sender_client, receiver.url, envelope, content)
    assert answer.status == 200, answer.body[:300]
    return header_field(envelope, "ConversationId"), header_field(envelope, "MessageId")


async def _verify(receiver: Receiver, message_id: str) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {receiver.token}", "X-Purpose": "Проверка ИП 1"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{receiver.api}/messages/{message_id}/attachments/1/verifications", headers=headers
        ) as response,
    ):
        return response.status, await response.json()


async def test_a_signed_pdf_attachment_is_verified_streamed_and_recorded(
    receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    signed = await _signed_by(sender)
    conversation_id, message_id = await _delivered(receiver, sender, sender_client, signed)
    status, check = await _verify(receiver, message_id)
    assert status == 201, check
    assert check["indication"] == "TOTAL_PASSED", check
    assert [s["signer_body_id"] for s in check["signatures"]] == [SENDER]
    assert check["sha256"] == hashlib.sha256(signed).hexdigest()
    # Recorded: audited, and the message's view shows it beside the file.
    (event,) = [
        e
        for e in audit_rows(receiver.node.store, "attachment.verified")
        if message_id in str(e["subjects"])
    ]
    assert event["details"]["indication"] == "TOTAL_PASSED"
    headers = {"Authorization": f"Bearer {receiver.token}", "X-Purpose": "Проверка ИП 1"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{receiver.api}/messages/{message_id}", headers=headers) as response,
    ):
        view = await response.json()
    (recorded,) = view["attachment_checks"]
    assert (recorded["number"], recorded["indication"], recorded["signers"]) == (
        1,
        "TOTAL_PASSED",
        SENDER,
    )
    with receiver.node.store.read() as conn:  # kept sealed with the file's name, not in clear
        sealed = conn.execute(
            sa.select(attachments.c.meta).where(attachments.c.message_id == message_id)
        ).scalar_one()
    assert b"TOTAL_PASSED" not in sealed and SENDER.encode() not in sealed
    # The console: a button beside the file verifies it again, the page shows the result.
    page = await _console_verify(receiver, conversation_id, message_id)
    assert 'id="attachment-check-1"' in page and "Подписи действительны" in page, page


async def _console_verify(receiver: Receiver, conversation_id: str, message_id: str) -> str:
    """Press the button beside the file on the message page; the page it leads back to."""
    message = f"{receiver.console}/conversations/{conversation_id}/messages/{message_id}"
    async with _console(receiver, conversation_id) as http:
        async with http.get(message) as page:
            text = await page.text()
            assert 'id="verify-attachment-1"' in text
            token = _CSRF.search(text).group(1)  # type: ignore[union-attr]
        async with http.post(f"{message}/attachments/1/verify", data={"csrf_token": token}) as page:
            assert page.status == 200, await page.text()
            return await page.text()


async def test_a_pdf_signed_by_an_untrusted_key_fails_by_name(
    receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    pki = make_pki()  # a CA the receiver does not trust
    untrusted = simple_signer_from(pki.seal_key, pki.seal, [pki.ca])
    signed = await async_sign_pdf(_pdf(), untrusted, reason="Выписка", location=SENDER)
    _, message_id = await _delivered(receiver, sender, sender_client, signed)
    status, check = await _verify(receiver, message_id)
    assert status == 201, check
    assert check["indication"] != "TOTAL_PASSED"
    assert check["sub_indication"] == "NO_CERTIFICATE_CHAIN_FOUND", check


async def test_a_pdf_altered_in_storage_is_refused_as_damaged(
    receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    signed = await _signed_by(sender)
    _, message_id = await _delivered(receiver, sender, sender_client, signed)
    with receiver.node.store.transaction() as conn:
        ((attachment_id, _, _),) = attachment_store.parts_of(conn, message_id)
        where = (attachment_segments.c.attachment_id == attachment_id) & (
            attachment_segments.c.segment_no == 0
        )
        sealed = bytearray(
            conn.execute(sa.select(attachment_segments.c.ciphertext).where(where)).scalar_one()
        )
        sealed[len(sealed) // 2] ^= 0x01
        conn.execute(attachment_segments.update().where(where).values(ciphertext=bytes(sealed)))
    status, answer = await _verify(receiver, message_id)
    assert status == 500, answer
    assert answer["error"]["code"] == "ATTACHMENT_DAMAGED"
    assert "резервной копии" in answer["error"]["message_ru"]


async def test_a_file_not_pdf_or_not_signed_is_refused_with_what_to_do(
    receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    for content, code in [(CONTENT, "ATTACHMENT_NOT_PDF"), (_pdf(), "ATTACHMENT_NOT_SIGNED")]:
        conversation_id, message_id = await _delivered(receiver, sender, sender_client, content)
        status, answer = await _verify(receiver, message_id)
        assert (status, answer["error"]["code"]) == (422, code), answer
        assert "Что сделать" in answer["error"]["message_ru"]
    # The console says the same in Russian, and the message page then shows why.
    message = f"{receiver.console}/conversations/{conversation_id}/messages/{message_id}"
    async with _console(receiver, conversation_id) as http:
        async with http.get(message) as page:
            token = _CSRF.search(await page.text()).group(1)  # type: ignore[union-attr]
        async with http.post(f"{message}/attachments/1/verify", data={"csrf_token": token}) as r:
            assert r.status == 422 and "PDF-файл не подписан" in await r.text()
        async with http.get(message) as page:
            assert "PDF не подписан — проверять нечего" in await page.text()
