"""Hostile and broken input at a running node's peer endpoint: each refused with its code, nothing
stored changing (row counts of messages, conversations, outbox, receipts, delivery attempts), and
the refusal in the audit trail (403 and 413 of the endpoint as ``peer.refused``; a failed TLS
handshake, where no HTTP request exists, in the log only).

The receiver is KZ-MJ, a real :class:`~gateway.web.runtime.NodeRuntime` on its directory port;
crafted bytes are POSTed over mutual TLS with :class:`~gateway.web.peer_client.PeerClient`,
signed with RU-FSSP's (or another body's) real keys. Where TLS is not the point the pipeline is
called directly (:meth:`Node.receive`). The module runs once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.app.scheduled import deadline_reminders_body
from gateway.config import KeysSection, NodeConfig
from gateway.crypto import algorithms
from gateway.crypto.certificates import CertificateProfile, write_private_key
from gateway.crypto.demo_ca import DemoCA
from gateway.crypto.keys.keystore import KeyStore
from gateway.crypto.trust import TrustList
from gateway.crypto.xades import verify_document
from gateway.demo.play import reply
from gateway.demo.setup import DEMO_PASSPHRASE, DEPOSITARY_ID, DemoWorld
from gateway.exchange import receiving as receiving_module
from gateway.exchange.directory import build_directory_xml
from gateway.exchange.directory_signing import sign_directory, verify_directory
from gateway.exchange.node import Node
from gateway.exchange.receiving import Disposition, ReceiveOutcome
from gateway.jobs.scheduler import JobRun
from gateway.model.directory import DirectoryBody, Suite
from gateway.model.limits import MAX_MESSAGE_BYTES
from gateway.store import conversations as conv_store
from gateway.store import messages as msg_store
from gateway.web.peer_client import (
    PeerClient,
    PeerResponse,
    PeerTransportError,
    TransportErrorCode,
)
from gateway.web.runtime import http_status
from tests.integration.exchange_world import (
    Receiver,
    Signer,
    audit_rows,
    body_fields,
    conversation_state,
    header_field,
    post,
    receiving,
    row_counts,
    tls_client,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

RECEIVER = "KZ-MJ"
SENDER = "RU-FSSP"
REQUEST = "cis-enforcement.Request"


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgresql"])
async def receiver(request: pytest.FixtureRequest, world: DemoWorld) -> AsyncIterator[Receiver]:
    async with receiving(request, world, "rejections") as running:
        yield running


def now() -> datetime:
    return datetime.now(UTC)


def assert_signed_rejection(
    receiver: Receiver, answer: PeerResponse, message_id: str, codes: set[str]
) -> str:
    """The answer is a Rejection sealed by the receiver, naming the message; its code."""
    assert answer.status in (409, 422), answer
    verified = verify_document(
        answer.body, receiver.node.trust, at=now(), expected_sender=RECEIVER, require_official=False
    )
    assert verified.report.passed, verified.report.summary()
    assert header_field(answer.body, "Kind") == "Rejection"
    assert header_field(answer.body, "Recipient") == SENDER
    fields = body_fields(answer.body)
    assert fields["RejectedMessageId"] == message_id
    assert fields["Code"] in codes, fields
    return fields["Code"]


def assert_audited_rejection(receiver: Receiver, before: int, code: str) -> None:
    rejected = audit_rows(receiver.node.store, "message.rejected")[before:]
    assert [r["details"]["code"] for r in rejected] == [code]
    assert rejected[0]["actor"] == f"peer:{SENDER}"


def rejections_so_far(receiver: Receiver) -> int:
    return len(audit_rows(receiver.node.store, "message.rejected"))


# --- the good path, replays and reused ids ---


async def test_accepted_once_and_a_replay_gets_the_same_receipt(
    receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    document = sender.document(REQUEST, now(), Recipient=RECEIVER)
    message_id = header_field(document, "MessageId")
    before = row_counts(receiver.node.store)

    first = await post(sender_client, receiver.url, document)
    assert first.status == 200
    fields = body_fields(first.body)
    assert header_field(first.body, "Kind") == "Receipt"
    assert fields["ReceivedMessageId"] == message_id
    after_first = row_counts(receiver.node.store)
    # The request and the receipt the node signed for it; one new conversation.
    assert after_first["messages"] == before["messages"] + 2
    assert after_first["conversations"] == before["conversations"] + 1
    assert after_first["receipts"] == before["receipts"] + 1

    replay = await post(sender_client, receiver.url, document)
    assert replay.status == 200
    assert replay.body == first.body, "a replay is answered with the very same receipt bytes"
    assert row_counts(receiver.node.store) == after_first
    received = [
        r
        for r in audit_rows(receiver.node.store, "message.received")
        if r["subjects"]["message"] == message_id
    ]
    assert len(received) == 1


async def test_a_different_document_under_a_stored_message_id_is_refused(
    receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    original = sender.document(REQUEST, now(), Recipient=RECEIVER)
    message_id = header_field(original, "MessageId")
    assert (await post(sender_client, receiver.url, original)).status == 200
    before, audited = row_counts(receiver.node.store), rejections_so_far(receiver)

    other = sender.document(REQUEST, now(), Recipient=RECEIVER, MessageId=message_id)
    assert other != original
    answer = await post(sender_client, receiver.url, other)

    assert_signed_rejection(receiver, answer, message_id, {"MESSAGE_ID_REUSED"})
    assert row_counts(receiver.node.store) == before
    assert_audited_rejection(receiver, audited, "MESSAGE_ID_REUSED")


async def test_a_concurrent_duplicate_delivery_gets_the_same_receipt(
    receiver: Receiver, sender: Signer
) -> None:
    """The same message processed twice at once (a sender restarted while its first attempt
    was still being processed): stored once, never answered with a Rejection, which would make
    the sender record as refused what this node accepted."""
    for _ in range(3):
        document = sender.document(REQUEST, now(), Recipient=RECEIVER)
        before = row_counts(receiver.node.store)
        start = threading.Barrier(2)

        def deliver(
            payload: bytes = document, barrier: threading.Barrier = start
        ) -> ReceiveOutcome:
            barrier.wait()
            return receiver.node.receive(SENDER, payload)

        answers = await asyncio.gather(asyncio.to_thread(deliver), asyncio.to_thread(deliver))

        # Each gets the receipt, or a retryable 503 TRY_AGAIN (PostgreSQL, when the other
        # transaction's rows appear mid-way); never a Rejection. The retry gets the receipt.
        received = {Disposition.ACCEPTED, Disposition.REPLAYED}
        dispositions = [a.disposition for a in answers]
        assert all(d in (*received, Disposition.TRY_AGAIN) for d in dispositions), [
            a.body[:200] for a in answers
        ]
        assert Disposition.ACCEPTED in dispositions
        receipt = next(a.body for a in answers if a.disposition is Disposition.ACCEPTED)
        assert all(a.body in (receipt, b"TRY_AGAIN") for a in answers)
        retried = receiver.node.receive(SENDER, document)
        assert (retried.disposition, retried.body) == (Disposition.REPLAYED, receipt)
        after = row_counts(receiver.node.store)
        assert after["messages"] == before["messages"] + 2
        assert after["conversations"] == before["conversations"] + 1


# --- documents refused by the pipeline ---


async def test_a_tampered_document_is_refused(
    receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    document = sender.document(REQUEST, now(), Recipient=RECEIVER)
    number = b"184512/26/77039"
    assert number in document
    tampered = document.replace(number, b"184512/26/77038")
    before, audited = row_counts(receiver.node.store), rejections_so_far(receiver)

    answer = await post(sender_client, receiver.url, tampered)

    message_id = header_field(document, "MessageId")
    assert_signed_rejection(receiver, answer, message_id, {"SIGNATURE_HASH_FAILURE"})
    assert row_counts(receiver.node.store) == before
    assert_audited_rejection(receiver, audited, "SIGNATURE_HASH_FAILURE")


async def test_a_document_for_another_body_is_refused(
    receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    document = sender.document(REQUEST, now(), Recipient="KZ-VS")
    before, audited = row_counts(receiver.node.store), rejections_so_far(receiver)

    answer = await post(sender_client, receiver.url, document)

    message_id = header_field(document, "MessageId")
    assert_signed_rejection(receiver, answer, message_id, {"WRONG_RECIPIENT"})
    assert row_counts(receiver.node.store) == before
    assert_audited_rejection(receiver, audited, "WRONG_RECIPIENT")


async def test_a_document_of_another_body_over_our_tls_identity_is_refused(
    world: DemoWorld, receiver: Receiver, sender_client: PeerClient
) -> None:
    """RU-FSSP's TLS certificate, a document RU-VS signed and sends: the TLS identity is the
    sender, so RU-VS's document cannot come over RU-FSSP's link."""
    forged = Signer.of(world, "RU-VS").document(REQUEST, now(), Recipient=RECEIVER)
    before, audited = row_counts(receiver.node.store), rejections_so_far(receiver)

    answer = await post(sender_client, receiver.url, forged)

    # The signatures are RU-VS's own and valid; the envelope's Sender is not the body the TLS
    # connection proved: the documented code, SENDER_MISMATCH. The Rejection goes to the TLS
    # identity, never to the body the document claims.
    code = assert_signed_rejection(
        receiver, answer, header_field(forged, "MessageId"), {"SENDER_MISMATCH"}
    )
    assert row_counts(receiver.node.store) == before
    assert_audited_rejection(receiver, audited, code)


async def test_a_seal_whose_certificate_expired_is_refused(
    world: DemoWorld, receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    ca = DemoCA.load(world.root / "pki" / "RU" / "ca", DEMO_PASSPHRASE)
    at = now()
    # Valid from the CA's own start (WORLD_AGE ago) until an hour ago.
    period = {
        "not_before": ca.certificate.not_valid_before_utc,
        "not_after": at - timedelta(hours=1),
    }
    seal = ca.issue(
        sender.seal.private_key.public_key(),
        CertificateProfile(role="seal", body_id=SENDER, demo=True),
        now=at,
        **period,
    )
    official = ca.issue(
        sender.official.private_key.public_key(),
        CertificateProfile(
            role="official",
            body_id=SENDER,
            common_name="Иванов Иван Иванович",
            title="Начальник отдела",
            demo=True,
        ),
        now=at,
        **period,
    )
    # Signed while the certificates were valid (the signer refuses otherwise), received after
    # they expired, with no proof that the signatures existed before.
    document = sender.with_certificates(seal=seal, official=official).document(
        REQUEST, at - timedelta(days=1), Recipient=RECEIVER
    )
    before, audited = row_counts(receiver.node.store), rejections_so_far(receiver)

    answer = await post(sender_client, receiver.url, document)

    message_id = header_field(document, "MessageId")
    code = assert_signed_rejection(
        receiver,
        answer,
        message_id,
        {"SIGNATURE_EXPIRED", "SIGNATURE_OUT_OF_BOUNDS_NO_POE"},
    )
    assert row_counts(receiver.node.store) == before
    assert_audited_rejection(receiver, audited, code)


async def test_a_seal_not_listed_in_the_directory_is_refused(
    world: DemoWorld, receiver: Receiver, sender: Signer, sender_client: PeerClient
) -> None:
    """A valid seal certificate from the sender's own CA, but not the one the directory pins.

    That may only mean this node's directory is behind (the sender activated a new seal as the
    depositary published it): the answer is 503 with the code, so that the sender retries until
    this node catches up — a signed Rejection would lose the request for good."""
    ca = DemoCA.load(world.root / "pki" / "RU" / "ca", DEMO_PASSPHRASE)
    key = algorithms.generate_private_key(algorithms.DEFAULT_KEY_SPEC)
    unlisted = ca.issue(
        key.public_key(), CertificateProfile(role="seal", body_id=SENDER, demo=True), now=now()
    )
    rogue = dataclasses.replace(
        sender, seal=dataclasses.replace(sender.seal, certificate=unlisted, private_key=key)
    )
    document = rogue.document(REQUEST, now(), Recipient=RECEIVER)
    before, audited = row_counts(receiver.node.store), rejections_so_far(receiver)

    answer = await post(sender_client, receiver.url, document)

    assert answer.status == 503
    assert answer.body.strip() == b"SEAL_NOT_IN_DIRECTORY"
    assert row_counts(receiver.node.store) == before
    assert_audited_rejection(receiver, audited, "SEAL_NOT_IN_DIRECTORY")


def _directory_with_kz(world: DemoWorld, node: Node, **participation: date) -> Node:
    """``node`` given a newer directory, signed by the depositary, whose KZ participation in the
    CIS agreement has the given dates."""
    return _directory_changed(
        world,
        node,
        lambda body: dataclasses.replace(
            body,
            participations=tuple(
                dataclasses.replace(p, **participation) if p.agreement == "cis-enforcement" else p
                for p in body.participations
            ),
        ),
    )


def _directory_changed(
    world: DemoWorld, node: Node, change: Callable[[DirectoryBody], DirectoryBody]
) -> Node:
    """``node`` given a newer directory, signed by the depositary, with ``change`` applied to
    every Kazakh body."""
    bodies = [change(body) if body.state == "KZ" else body for body in node.directory.bodies]
    newer = dataclasses.replace(
        node.directory, version=node.directory.version + 1, issued_at=now(), bodies=tuple(bodies)
    )
    depositary_dir = world.root / "pki" / "depositary"
    keys = KeyStore(
        KeysSection(dir=depositary_dir / DEPOSITARY_ID),
        DEPOSITARY_ID,
        environ={KeysSection().passphrase_env: DEMO_PASSPHRASE.decode()},
    )
    signed = sign_directory(build_directory_xml(newer), keys.seal())
    anchor = TrustList.from_pem_files(
        world.root / "trust" / "depositary-ca.pem", require_revocation=False
    )
    node.update_directory(verify_directory(signed, anchor, at=now()))
    return node


@pytest.mark.parametrize(
    ("participation", "code"),
    [
        (lambda today: {"withdrawn_from": today - timedelta(days=1)}, "AGREEMENT_WITHDRAWN"),
        (lambda today: {"in_force_from": today + timedelta(days=30)}, "AGREEMENT_NOT_IN_FORCE"),
    ],
    ids=["withdrawn", "not-yet-in-force"],
)
async def test_a_party_not_in_force_is_refused(
    world: DemoWorld,
    receiver: Receiver,
    sender: Signer,
    participation: Callable[[date], dict[str, date]],
    code: str,
) -> None:
    """Straight into the pipeline (TLS is not the point): a node whose directory says
    Kazakhstan's participation in the CIS agreement is not in force today."""
    node = Node.from_config(NodeConfig.from_toml(receiver.config))
    try:
        _directory_with_kz(world, node, **participation(now().date()))
        document = sender.document(REQUEST, now(), Recipient=RECEIVER)
        before, audited = row_counts(node.store), rejections_so_far(receiver)

        answer = node.receive(SENDER, document)

        assert answer.disposition is Disposition.REFUSED
        assert body_fields(answer.body)["Code"] == code
        assert body_fields(answer.body)["RejectedMessageId"] == header_field(document, "MessageId")
        assert row_counts(node.store) == before
        assert_audited_rejection(receiver, audited, code)
    finally:
        node.close()


async def test_a_signature_suite_the_recipient_does_not_accept_is_refused(
    world: DemoWorld, receiver: Receiver, sender: Signer
) -> None:
    """Straight into the pipeline: a directory in which KZ-MJ accepts GOST only; RU-FSSP's
    ECDSA-signed document is refused with the suite code, nothing stored (issue 18)."""
    node = Node.from_config(NodeConfig.from_toml(receiver.config))
    try:
        _directory_changed(
            world,
            node,
            lambda body: dataclasses.replace(
                body, accepts=(Suite.GOST_2012_256, Suite.GOST_2012_512)
            ),
        )
        document = sender.document(REQUEST, now(), Recipient=RECEIVER)
        before, audited = row_counts(node.store), rejections_so_far(receiver)

        answer = node.receive(SENDER, document)

        assert answer.disposition is Disposition.REFUSED
        fields = body_fields(answer.body)
        assert fields["Code"] == "SIGNATURE_SUITE_NOT_ACCEPTED"
        assert row_counts(node.store) == before
        assert_audited_rejection(receiver, audited, "SIGNATURE_SUITE_NOT_ACCEPTED")
    finally:
        node.close()


async def test_requests_received_before_a_withdrawal_are_completed_after_it(
    world: DemoWorld, receiver: Receiver, sender: Signer
) -> None:
    """CIS Art. 24: Kazakhstan's withdrawal takes effect today. Requests its node received
    yesterday are still answered (delay notice, then response) and withdrawn by the requesting
    party; a request sent today is refused. Both conversations close, so the reminder job,
    run after their due date, flags neither."""
    yesterday = now() - timedelta(days=1)
    moment = [yesterday]
    node = Node.from_config(NodeConfig.from_toml(receiver.config), clock=lambda: moment[0])
    try:
        _directory_with_kz(world, node, withdrawn_from=now().date())
        answered, withdrawn = (
            sender.document(REQUEST, yesterday, Recipient=RECEIVER) for _ in range(2)
        )
        for document in (answered, withdrawn):
            assert node.receive(SENDER, document).disposition is Disposition.ACCEPTED
        moment[0] = now()

        late = sender.document(REQUEST, now(), Recipient=RECEIVER)
        refused = node.receive(SENDER, late)
        assert refused.disposition is Disposition.REFUSED
        assert body_fields(refused.body)["Code"] == "AGREEMENT_WITHDRAWN"

        answered_id = header_field(answered, "ConversationId")
        for kind in ("DelayNotice", "Response"):
            _, warnings = node.submit(
                reply(
                    f"cis-enforcement.{kind}",
                    {
                        "conversation_id": answered_id,
                        "message_id": header_field(answered, "MessageId"),
                    },
                    SENDER,
                ),
                actor="operator-test",
            )
            assert {w.code for w in warnings} >= {"AGREEMENT_TERMINATED_CONVERSATION_CONTINUES"}
        withdrawal = sender.document(
            "cis-enforcement.Withdrawal",
            now(),
            Recipient=RECEIVER,
            ConversationId=header_field(withdrawn, "ConversationId"),
            InReplyTo=header_field(withdrawn, "MessageId"),
        )
        assert node.receive(SENDER, withdrawal).disposition is Disposition.ACCEPTED

        assert conversation_state(node.store, answered_id) == "answered"
        assert conversation_state(node.store, header_field(withdrawn, "ConversationId")) == (
            "withdrawn"
        )
        after_due = now() + timedelta(days=90)
        run = JobRun("deadline-reminders", after_due, after_due, "KZ-MJ@test:1")
        reminders = deadline_reminders_body(node.config, node.store)(run)
        # Deadline reminders only: the originals by post of our answers (CIS Art. 10 para. 1)
        # are rightly reminded, the agreement's withdrawal notwithstanding.
        flagged = {r.conversation_id for r in reminders if not r.original_of}
        assert not flagged & {answered_id, header_field(withdrawn, "ConversationId")}
    finally:
        node.close()


async def test_a_conversation_moved_after_the_snapshot_is_decided_again(
    receiver: Receiver, sender: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write moves a known conversation only at the version its snapshot read (no locked
    read first): a writer that moved it in between, here to the same state, makes the receive
    decide again on a new snapshot, and the document is stored once."""
    node = Node.from_config(NodeConfig.from_toml(receiver.config))
    try:
        request = sender.document(REQUEST, now(), Recipient=RECEIVER)
        assert node.receive(SENDER, request).disposition is Disposition.ACCEPTED
        conversation_id = header_field(request, "ConversationId")
        with node.store.read() as conn:
            before = conv_store.get(conn, conversation_id)
        assert before is not None
        taken = receiving_module._snapshot
        snapshots: list[int | None] = []

        def snapshot_then_a_concurrent_move(node_: Node, header: Any) -> Any:
            snapshot = taken(node_, header)
            snapshots.append(snapshot.conversation.version if snapshot.conversation else None)
            if len(snapshots) == 1:
                with node_.store.transaction() as conn:
                    assert conv_store.transition(
                        conn,
                        conversation_id,
                        expected_state=before.state,
                        new_state=before.state,
                        now=now(),
                    )
            return snapshot

        monkeypatch.setattr(receiving_module, "_snapshot", snapshot_then_a_concurrent_move)
        withdrawal = sender.document(
            "cis-enforcement.Withdrawal",
            now(),
            Recipient=RECEIVER,
            ConversationId=conversation_id,
            InReplyTo=header_field(request, "MessageId"),
        )
        assert node.receive(SENDER, withdrawal).disposition is Disposition.ACCEPTED
        assert snapshots == [before.version, before.version + 1]
        with node.store.read() as conn:
            after = conv_store.get(conn, conversation_id)
            stored = msg_store.get(conn, header_field(withdrawal, "MessageId"))
        assert after is not None and stored is not None
        assert (after.state, after.version) == ("withdrawn", before.version + 2)
    finally:
        node.close()


# --- refused before the pipeline: TLS, the directory, the size limit ---


async def test_a_client_without_certificate_fails_the_handshake(
    world: DemoWorld, receiver: Receiver, sender: Signer
) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=world.root / "trust" / "bodies-ca.pem")
    before = row_counts(receiver.node.store)
    wrapped = receiver.runtime.server_tls.connections_wrapped

    async with PeerClient(context) as anonymous:
        with pytest.raises(PeerTransportError) as failed:
            await anonymous.post_message(
                receiver.url, sender.document(REQUEST, now(), Recipient=RECEIVER)
            )

    # TLS 1.3: the client thinks its handshake is done; the server then drops the connection
    # instead of reading a request (asyncio resets it without an alert, hence CONNECTION_LOST).
    assert failed.value.code in (TransportErrorCode.TLS_FAILED, TransportErrorCode.CONNECTION_LOST)
    assert failed.value.response is None
    assert receiver.runtime.server_tls.connections_wrapped > wrapped, "it reached the server"
    # The same at the socket: not one byte of HTTP comes back.
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", receiver.runtime.peer_port, ssl=context, server_hostname="127.0.0.1"
    )
    writer.write(b"POST /exchange/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    try:
        answered = await asyncio.wait_for(reader.read(100), 10)
    except (ssl.SSLError, ConnectionResetError):
        answered = b""
    finally:
        writer.close()
    assert answered == b""
    assert row_counts(receiver.node.store) == before


async def test_a_certificate_from_an_unknown_ca_fails_the_handshake(
    world: DemoWorld, receiver: Receiver, sender: Signer, tmp_path: Path
) -> None:
    foreign = DemoCA.create(now=now(), name="Foreign CA")
    keys_dir = _tls_identity(foreign, tmp_path)
    before = row_counts(receiver.node.store)

    async with PeerClient(tls_client(keys_dir, world)) as stranger:
        with pytest.raises(PeerTransportError) as failed:
            await stranger.post_message(
                receiver.url, sender.document(REQUEST, now(), Recipient=RECEIVER)
            )

    assert failed.value.code in (TransportErrorCode.TLS_FAILED, TransportErrorCode.CONNECTION_LOST)
    assert failed.value.response is None
    assert row_counts(receiver.node.store) == before


async def test_a_certificate_not_in_the_directory_gets_403(
    world: DemoWorld,
    receiver: Receiver,
    sender: Signer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issued by RU's CA (so the handshake succeeds) for RU-FSSP, but not the TLS certificate
    the directory lists for RU-FSSP."""
    ca = DemoCA.load(world.root / "pki" / "RU" / "ca", DEMO_PASSPHRASE)
    keys_dir = _tls_identity(ca, tmp_path)
    before, audited = row_counts(receiver.node.store), rejections_so_far(receiver)
    endpoint = len(audit_rows(receiver.node.store, "peer.refused"))

    with caplog.at_level(logging.WARNING, logger="gateway.web.peer_server"):
        async with PeerClient(tls_client(keys_dir, world)) as unlisted:
            with pytest.raises(PeerTransportError) as failed:
                await unlisted.post_message(
                    receiver.url, sender.document(REQUEST, now(), Recipient=RECEIVER)
                )

    assert failed.value.status == 403
    assert failed.value.response is not None
    assert failed.value.response.body.strip() == b"PEER_UNKNOWN"
    assert row_counts(receiver.node.store) == before
    # Refused before the pipeline: not a document's rejection, but audited as the endpoint's
    # refusal of an unknown peer (per address, code and minute: gateway.exchange.refusals).
    assert rejections_so_far(receiver) == audited
    assert any("peer not in the directory refused" in r.getMessage() for r in caplog.records)
    (event,) = audit_rows(receiver.node.store, "peer.refused")[endpoint:]
    assert event["actor"] == "peer-unknown:127.0.0.1"
    assert event["details"] == {"code": "PEER_UNKNOWN"}


async def test_an_oversize_body_gets_413(receiver: Receiver, sender_client: PeerClient) -> None:
    payload = b"<" + b"x" * MAX_MESSAGE_BYTES
    before, audited = row_counts(receiver.node.store), rejections_so_far(receiver)
    endpoint = len(audit_rows(receiver.node.store, "peer.refused"))

    with pytest.raises(PeerTransportError) as failed:
        await sender_client.post_message(receiver.url, payload)

    assert failed.value.status == 413, failed.value.code
    assert failed.value.response is not None
    assert failed.value.response.body.strip() == b"MESSAGE_TOO_LARGE"
    assert not failed.value.retryable
    assert row_counts(receiver.node.store) == before
    assert rejections_so_far(receiver) == audited
    (event,) = audit_rows(receiver.node.store, "peer.refused")[endpoint:]
    assert event["actor"] == f"peer:{SENDER}"
    assert event["details"] == {"code": "MESSAGE_TOO_LARGE"}


def _tls_identity(ca: DemoCA, folder: Path) -> Path:
    """A TLS key and certificate for RU-FSSP issued by ``ca``, laid out as a keys folder."""
    key = algorithms.generate_private_key(algorithms.DEFAULT_KEY_SPEC)
    certificate = ca.issue(
        key.public_key(),
        CertificateProfile(role="tls", body_id=SENDER, demo=True, ip_addresses=("127.0.0.1",)),
        now=now(),
    )
    write_private_key(folder / "tls.key.pem", key, DEMO_PASSPHRASE)
    chain: list[x509.Certificate] = [certificate, ca.certificate]
    (folder / "tls.crt.pem").write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    )
    return folder


_PARSER_ENTRY_POINTS = ("fromstring", "XML", "parse", "iterparse", "XMLParser", "XMLPullParser")
"""Every way into libxml2's parser that lxml offers (and signxml used): counting their calls
counts the parses of one receive."""


async def test_a_received_request_is_parsed_once(
    receiver: Receiver, sender: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One parse: the tree that is verified is the tree validated, judged and stored."""
    from lxml import etree

    # Warm up this thread: the schema registry loads its per-thread XMLSchema copy (a parse of
    # the XSD, not of a document) on first use. Both receives run here, in this thread.
    warm_up = receiver.node.receive(SENDER, sender.document(REQUEST, now(), Recipient=RECEIVER))
    assert warm_up.disposition is Disposition.ACCEPTED
    document = sender.document(REQUEST, now(), Recipient=RECEIVER)
    calls: list[str] = []
    for name in _PARSER_ENTRY_POINTS:
        original = getattr(etree, name)

        def counting(*args: object, _name: str = name, _original=original, **kw: object):  # type: ignore[no-untyped-def]
            calls.append(_name)
            return _original(*args, **kw)

        monkeypatch.setattr(etree, name, counting)

    answer = receiver.node.receive(SENDER, document)

    monkeypatch.undo()
    assert answer.disposition is Disposition.ACCEPTED, answer.body[:300]
    # The hardened parser makes one parser object and feeds it: one parse of the request.
    # Building and signing the Receipt parses nothing.
    assert len(calls) == 1, calls


async def test_an_unknown_agreement_is_refused_without_a_server_error(
    receiver: Receiver, sender: Signer
) -> None:
    """Issue finding: an envelope naming an unknown agreement raised a KeyError (a 500) while
    the node built its signed Rejection. A Rejection cannot name an agreement the schema does
    not know, so the answer is the plain code (HTTP 400); nothing is stored, it is audited."""
    document = sender.document(REQUEST, now(), Recipient=RECEIVER)
    forged = document.replace(b">cis-enforcement<", b">mystery-agreement<", 1)
    assert forged != document
    before, audited = row_counts(receiver.node.store), rejections_so_far(receiver)

    answer = receiver.node.receive(SENDER, forged)

    assert answer.disposition is Disposition.REFUSED
    assert answer.code.startswith("SIGNATURE_"), answer.code
    assert (answer.content_type, answer.body) == ("text/plain", answer.code.encode())
    assert http_status(answer) == 400
    assert row_counts(receiver.node.store) == before
    assert_audited_rejection(receiver, audited, answer.code)
