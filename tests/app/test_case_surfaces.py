"""The operator's case acts — a proceeding marked closed (CIS Art. 9.6), the original by post
marked sent and received (CIS Art. 10 para. 1), a received document disclosed (CIS Art. 9.2) —
from the command line, the local API and the console. Each surface calls the same function of
gateway.app (gateway.app.proceedings, gateway.app.originals, gateway.app.disclosures), so for
each act the audit events the three record are compared — the same codes, subjects' names and
details — and the state they leave: the closing instant, the original's dates and tracking, the
disclosure's record and its sealed recipient and purpose. Each surface acts as its own actor
(``cli:<login>``, ``token:<label>``, the console's user) on its own conversation. A subject the
node does not hold is 404 on the API and the console and leaves nothing. SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.app import admin
from gateway.app.context import AppContext, command_line_actor, serving_context
from gateway.config import NodeConfig
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.kek_ring import load_kek_ring
from gateway.crypto.keys.keystore import KeyStore
from gateway.exchange.local_service import LocalNodeService
from gateway.exchange.service import Role
from gateway.main import main as gateway
from gateway.store import Store, conversations, disclosures, messages, originals
from gateway.web.console import NodeIdentity
from tests.app.surfaces import (
    SURFACES,
    audit_of,
    compare_surfaces,
    last_seq,
    local_api,
    signed_in_console,
)
from tests.app.surfaces import Surfaces as ThreeSurfaces
from tests.store import factory

BODY, PEER = "RU-FSSP", "KZ-MJ"
API_LABEL = "case-system"
CONSOLE_USER = "clerk"
CASE_ROLES = [Role.OPERATOR, Role.CONFIDENTIAL_READER]
IDENTITY = NodeIdentity.of(BODY, "Федеральная служба судебных приставов", "UTC")

CLOSED_AT = (datetime.now(UTC) - timedelta(hours=1)).replace(second=0, microsecond=0)
"""After the conversation opened (two days ago), not in the future; whole minutes, as the
console's form asks them (in its zone, UTC here)."""
TODAY = datetime.now(UTC).date().isoformat()
"""The node's date (its zone: UTC) for the original's marks."""
TRACKING = "EMS RA123456789RU"
RECIPIENT = "Образцов Иван Иванович"
PURPOSE = "Ознакомление должника с запросом по исполнительному производству."


@pytest.fixture
def node_toml(tmp_path: Path, store: Store) -> Path:
    """A node on the test's store with a KEK of its own (a disclosure seals under it)."""
    data = tmp_path / "data"
    data.mkdir()
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("case-surfaces-passphrase\n", encoding="utf-8")
    passphrase.chmod(0o600)
    url = store.engine.url.render_as_string(hide_password=False)
    path = tmp_path / "node.toml"
    path.write_text(
        f'[node]\nbody_id = "{BODY}"\ndata_dir = "{data}"\n\n'
        f'[keys]\ndir = "{tmp_path / "keys"}"\npassphrase_file = "{passphrase}"\n\n'
        f'[database]\nurl = "{url}"\n',
        encoding="utf-8",
    )
    assert gateway(["keys", "generate", "kek", "--config", str(path)]) == 0
    return path


@dataclass
class Surfaces(ThreeSurfaces):
    """The node's three ways in, and its KEK ring (what a disclosure sealed opens with it)."""

    ring: KekRing


@pytest.fixture
async def surfaces(aiohttp_client: Any, store: Store, node_toml: Path) -> Any:
    config = NodeConfig.from_toml(node_toml)
    keys = KeyStore.from_config(config)
    ring = load_kek_ring(keys)
    clock = lambda: datetime.now(UTC)  # noqa: E731
    serving = serving_context(store, config, clock, keys, ring)
    ctx = AppContext(store, command_line_actor(), config)

    api = await local_api(aiohttp_client, store, serving)
    token = admin.add_token(ctx, API_LABEL, [str(r) for r in CASE_ROLES]).token

    # The console's pages read the conversation through the node's own service; its acts go
    # through ``serving`` (gateway.app), as the running node's do.
    node = SimpleNamespace(store=store, clock=clock, kek_ring=ring)
    service = LocalNodeService(node, None)  # type: ignore[arg-type]
    user = (CONSOLE_USER, CASE_ROLES)
    console, csrf = await signed_in_console(
        aiohttp_client, store, node_toml, service, serving, user, IDENTITY
    )
    yield Surfaces(store, node_toml, api, token, console, csrf, ring)
    keys.close()


# --- the subject of each surface: a conversation KZ-MJ opened with a request to us, and our
# --- response in it (both documents are followed by their original by post) ----------------


@dataclass(frozen=True)
class Subject:
    conversation_id: str
    received: str
    """The peer's request (in): an original to receive, a document to disclose."""
    sent: str
    """Our response (out): an original to send."""


def _document(message_id: str) -> bytes:
    return (
        '<env:Envelope xmlns:env="urn:cis-exchange:envelope:1"><env:MessageId>'
        f"{message_id}</env:MessageId></env:Envelope>"
    ).encode()


def _subject(s: Surfaces, surface: str) -> Subject:
    opened = datetime.now(UTC) - timedelta(days=2)
    with s.store.transaction() as conn:
        cid = factory.open_conversation(conn, opened, state="answered", deadline=None)
        received = factory.header(cid, opened)
        sent = factory.header(cid, opened, kind="Response", sender=BODY, recipient=PEER)
        messages.insert_received(conn, received, _document(received.message_id), s.ring, opened)
        messages.insert_sent(conn, sent, _document(sent.message_id), s.ring, opened)
    return Subject(cid, received.message_id, sent.message_id)


def _after_sending(s: Surfaces, surface: str) -> Subject:
    """A subject whose response's original is already marked sent (by the command line)."""
    subject = _subject(s, surface)
    s.cli(
        "originals", "sent", "--message", subject.sent, "--sent-on", TODAY, "--tracking", TRACKING
    )
    return subject


# --- the acts --------------------------------------------------------------------------------


async def _close(s: Surfaces, surface: str, subject: Subject) -> None:
    cid, reference = subject.conversation_id, "постановление № 7 об окончании ИП"
    if surface == "cli":
        s.cli(
            "proceedings", "close", "--conversation", cid,
            "--closed-at", CLOSED_AT.isoformat(), "--reference", reference,
        )  # fmt: skip
    elif surface == "api":
        body = {"closed_at": CLOSED_AT.isoformat(), "reference": reference}
        answer = await s.post_api(f"/conversations/{cid}/proceeding-closed", body)
        assert answer["proceeding_closed_at"] == CLOSED_AT.isoformat(), answer
    else:
        form = {"closed_at": f"{CLOSED_AT:%Y-%m-%dT%H:%M}", "reference": reference}
        await s.post_console(f"/conversations/{cid}/proceeding-closed", form)


async def _original_sent(s: Surfaces, surface: str, subject: Subject) -> None:
    mid = subject.sent
    if surface == "cli":
        s.cli("originals", "sent", "--message", mid, "--sent-on", TODAY, "--tracking", TRACKING)
    elif surface == "api":
        body = {"sent_on": TODAY, "tracking": TRACKING}
        answer = await s.post_api(f"/messages/{mid}/original/sent", body)
        assert (answer["sent_on"], answer["tracking"]) == (TODAY, TRACKING), answer
    else:
        path = f"/conversations/{subject.conversation_id}/messages/{mid}/original/sent"
        await s.post_console(path, {"sent_on": TODAY, "tracking": TRACKING})


async def _original_received(s: Surfaces, surface: str, subject: Subject) -> None:
    mid = subject.received
    if surface == "cli":
        s.cli("originals", "received", "--message", mid, "--received-on", TODAY)
    elif surface == "api":
        answer = await s.post_api(f"/messages/{mid}/original/received", {"received_on": TODAY})
        assert answer["received_on"] == TODAY, answer
    else:
        path = f"/conversations/{subject.conversation_id}/messages/{mid}/original/received"
        await s.post_console(path, {"received_on": TODAY})


async def _disclose(s: Surfaces, surface: str, subject: Subject) -> None:
    mid = subject.received
    if surface == "cli":
        out = s.config.parent / f"disclosed-{surface}"
        out.mkdir()
        s.cli(
            "disclose", mid, "--to", RECIPIENT, "--category", "debtor",
            "--purpose", PURPOSE, "--out", str(out),
        )  # fmt: skip
        assert (out / f"{mid}.xml").read_bytes() == _document(mid)
    elif surface == "api":
        body = {"recipient": RECIPIENT, "category": "debtor", "purpose": PURPOSE}
        answer = await s.post_api(f"/messages/{mid}/disclosures", body)
        assert (answer["message_id"], answer["article"]) == (mid, "CIS Art. 9.2"), answer
    else:
        form = {"MessageId": mid, "Recipient": RECIPIENT, "Category": "debtor", "Purpose": PURPOSE}
        await s.post_console(f"/conversations/{subject.conversation_id}/actions/disclose", form)


# --- what each act leaves in the store, without who did it or which subject it was ----------


def _closed(s: Surfaces, subject: Subject) -> Any:
    with s.store.read() as conn:
        stored = conversations.get(conn, subject.conversation_id)
    assert stored is not None and stored.proceeding_closed_at is not None
    return stored.proceeding_closed_at.astimezone(UTC)


def _original_of(message_id: Callable[[Subject], str]) -> Callable[[Surfaces, Subject], Any]:
    def state(s: Surfaces, subject: Subject) -> Any:
        with s.store.read() as conn:
            row = originals.get(conn, message_id(subject))
        assert row is not None
        recorded = row.to_json()
        return {k: recorded[k] for k in ("kind", "direction", "sent_on", "tracking", "received_on")}

    return state


def _disclosed(s: Surfaces, subject: Subject) -> Any:
    now = datetime.now(UTC)
    with s.store.transaction() as conn:
        (record,) = disclosures.list_for_message(conn, subject.received)
        sealed = disclosures.open_sealed(conn, s.ring, record.disclosure_id, now)
    return {
        "category": record.category,
        "article": record.article,
        "consent_request_id": record.consent_request_id,
        "the stored document": record.document_sha256
        == hashlib.sha256(_document(subject.received)).digest(),
        "recipient": sealed.recipient,
        "purpose": sealed.purpose,
    }


Act = Callable[[Surfaces, str, Subject], Awaitable[None]]


@dataclass(frozen=True)
class Case:
    kinds: tuple[str, ...]
    act: Act
    state: Callable[[Surfaces, Subject], Any]
    setup: Callable[[Surfaces, str], Subject] = _subject
    varying: frozenset[str] = frozenset()
    """Detail keys whose values name which one it was."""


CASES = {
    "proceeding-close": Case(("proceeding.closed",), _close, _closed),
    "original-sent": Case(("original.sent",), _original_sent, _original_of(lambda s: s.sent)),
    "original-received": Case(
        ("original.received",), _original_received, _original_of(lambda s: s.received)
    ),
    "original-received-of-ours": Case(
        ("original.received",),
        lambda s, surface, subject: _original_received(
            s, surface, Subject(subject.conversation_id, subject.sent, subject.sent)
        ),
        _original_of(lambda s: s.sent),
        setup=_after_sending,
    ),
    "disclose": Case(("document.disclosed",), _disclose, _disclosed),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_each_case_act_records_the_same_from_cli_api_and_console(
    surfaces: Surfaces, name: str
) -> None:
    """The events alike (:func:`compare_surfaces`), then the state each surface's act left."""
    subjects = await compare_surfaces(
        surfaces, CASES[name], {"api": f"token:{API_LABEL}", "console": CONSOLE_USER}
    )
    left = [CASES[name].state(surfaces, subjects[surface]) for surface in SURFACES]
    assert left[0] == left[1] == left[2], left


async def test_a_subject_the_node_does_not_hold_is_not_found_and_nothing_is_recorded(
    surfaces: Surfaces,
) -> None:
    """The use cases refuse an unknown conversation or message with their rule's code
    (UNKNOWN_CONVERSATION, UNKNOWN_MESSAGE; the command line prints it); the servers answer
    404, as for any read of it, and nothing is recorded."""
    missing = str(uuid.uuid4())
    before = last_seq(surfaces.store)
    api_calls = (
        (
            f"/conversations/{missing}/proceeding-closed",
            {"closed_at": CLOSED_AT.isoformat(), "reference": "пост. № 1"},
        ),
        (f"/messages/{missing}/original/sent", {"sent_on": TODAY, "tracking": TRACKING}),
        (f"/messages/{missing}/original/received", {"received_on": TODAY}),
        (
            f"/messages/{missing}/disclosures",
            {"recipient": RECIPIENT, "category": "debtor", "purpose": PURPOSE},
        ),
    )
    for path, body in api_calls:
        response = await surfaces.api.post(
            f"/api/v1{path}",
            json=body,
            headers={"Authorization": f"Bearer {surfaces.api_token}"},
        )
        assert response.status == 404, (path, await response.text())
        assert (await response.json())["error"]["code"] == "NOT_FOUND"
    console_calls = (
        (
            f"/conversations/{missing}/proceeding-closed",
            {"closed_at": f"{CLOSED_AT:%Y-%m-%dT%H:%M}", "reference": "пост. № 1"},
        ),
        (
            f"/conversations/{missing}/messages/{missing}/original/sent",
            {"sent_on": TODAY, "tracking": TRACKING},
        ),
        (
            f"/conversations/{missing}/messages/{missing}/original/received",
            {"received_on": TODAY},
        ),
    )
    for path, form in console_calls:
        response = await surfaces.console.post(path, data={**form, "csrf_token": surfaces.csrf})
        assert response.status == 404, (path, await response.text())
    kinds = ("proceeding.closed", "original.sent", "original.received", "document.disclosed")
    assert audit_of(surfaces.store, *kinds, "disclosure.refused", after=before) == []
