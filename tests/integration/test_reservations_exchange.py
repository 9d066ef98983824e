"""Reservations as the directory publishes them, on real nodes (SQLite and PostgreSQL): a
refusal citing an Art. 25 declaration nobody made, or one a partial declaration does not cover,
is refused on submit and on receipt (CIS Art. 13, 25); the partial declaration's warning and the
reciprocity note come back from submit."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.config import NodeConfig
from gateway.demo.play import example, reply
from gateway.demo.setup import DemoWorld
from gateway.exchange.directory import DirectoryIndex
from gateway.exchange.documents import complete_header
from gateway.exchange.node import Node
from gateway.exchange.receiving import Disposition, receive
from gateway.exchange.sending import submit
from gateway.model.problems import DocumentRejected
from gateway.model.profiles import Reservation
from gateway.store import messages as msg_store
from gateway.xml.convert import json_to_xml
from gateway.xml.schemas import default_registry
from tests.integration.exchange_world import Signer, conversation_state, node_config

FRESH = itertools.count()

# Fictitious: Kazakhstan declared partial non-application (CIS Art. 25 para. 2) to notarised
# documents, as far as bank accounts are asked about. No such declaration exists; the test
# publishes it in the nodes' directory to see the rules read it from there.
KZ_PARTIAL = Reservation(
    state="KZ",
    agreement="cis-enforcement",
    code="non-application",
    article="CIS Art. 25",
    text_ru="Не применяет подпункт а) статьи 6 к нотариально заверенным документам.",
    issuer_kinds=frozenset({"notary"}),
    scope=frozenset({"bank-accounts"}),
)


@pytest.fixture(params=["sqlite", "postgresql"])
def pair(request: pytest.FixtureRequest, world: DemoWorld) -> Iterator[tuple[Node, Node]]:
    tag = f"reservations-{request.param}-{next(FRESH)}"
    nodes = []
    try:
        for body_id in ("RU-FSSP", "KZ-MJ"):
            url = ""
            if request.param == "postgresql":
                url = request.getfixturevalue("pg_schema")(f"resv-{body_id.lower()}")
            config = node_config(world, body_id, f"{tag}-{body_id}", database_url=url)
            nodes.append(Node.from_config(NodeConfig.from_toml(config)))
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            node.close()


def _publish(nodes: tuple[Node, Node], reservation: Reservation) -> None:
    """Both nodes read a directory where KZ-MJ carries ``reservation`` beside KZ's own."""
    for node in nodes:
        directory = node.index.directory
        bodies = tuple(
            dataclasses.replace(b, reservations=(*b.reservations, reservation))
            if b.id == "KZ-MJ"
            else b
            for b in directory.bodies
        )
        node.index = DirectoryIndex.of(dataclasses.replace(directory, bodies=bodies))


def _request(issuer: str, assets: list[str], location: bool) -> dict[str, Any]:
    document = example("cis-enforcement.Request")
    request = document["body"]["Request"]
    request["EnforcementDocument"]["Issuer"]["Kind"] = issuer
    subjects: list[dict[str, Any]] = [{"Assets": {"Kind": assets}}]
    if location:
        subjects.append({"Location": {"Target": "debtor-individual"}})
    request["Subjects"] = {"Subject": subjects}
    return document


def _send_request(ru: Node, kz: Node, document: dict[str, Any]) -> tuple[dict[str, str], list]:
    """RU-FSSP submits; KZ-MJ receives the very bytes RU-FSSP stored."""
    submitted = submit(ru, document, actor="operator1")
    header, warnings = submitted.header, submitted.warnings
    with ru.store.read() as conn:
        signed = msg_store.read_document(conn, header.message_id, ru.kek_ring)
    outcome = receive(kz, "RU-FSSP", signed)
    assert outcome.disposition is Disposition.ACCEPTED, outcome.code
    sent = {"conversation_id": header.conversation_id, "message_id": header.message_id}
    return sent, warnings


def _refusal(sent: dict[str, str], *grounds: str) -> dict[str, Any]:
    document = reply("cis-enforcement.Refusal", sent, "RU-FSSP")
    document["body"]["Refusal"]["Ground"] = list(grounds)
    return document


def _signed_refusal(world: DemoWorld, sent: dict[str, str], *grounds: str) -> bytes:
    """The refusal as KZ-MJ's keys sign it, as a peer skipping its own submit checks sends it."""
    signer = Signer.of(world, "KZ-MJ")
    now = datetime.now(UTC)
    document = _refusal(sent, *grounds)
    header = complete_header(document["header"], sender="KZ-MJ", now=now, opens_conversation=False)
    root = json_to_xml({"header": header, "body": document["body"]}, default_registry())
    return signer.sign(root, now)


def test_a_refusal_citing_a_declaration_nobody_made(
    world: DemoWorld, pair: tuple[Node, Node]
) -> None:
    ru, kz = pair
    sent, _ = _send_request(ru, kz, _request("court", ["bank-accounts"], location=False))
    # On submit: refused, nothing stored.
    with pytest.raises(DocumentRejected) as rejected:
        submit(kz, _refusal(sent, "non-application-declaration"), actor="operator1")
    [problem] = rejected.value.problems
    assert (problem.code, problem.article) == ("RESERVATION_ART25_UNDECLARED", "CIS Art. 13, 25")
    assert problem.path == "/Envelope/Body/Refusal/Ground"
    assert conversation_state(kz.store, sent["conversation_id"]) == "in-progress"
    # On receipt (a peer that skipped the check): refused, the conversation left as it was.
    before = conversation_state(ru.store, sent["conversation_id"])
    outcome = receive(ru, "KZ-MJ", _signed_refusal(world, sent, "non-application-declaration"))
    assert (outcome.disposition, outcome.code) == (
        Disposition.REFUSED,
        "RESERVATION_ART25_UNDECLARED",
    )
    assert conversation_state(ru.store, sent["conversation_id"]) == before
    # A ground of Art. 13 itself goes through.
    submit(kz, _refusal(sent, "contrary-to-law"), actor="operator1")
    assert conversation_state(kz.store, sent["conversation_id"]) == "refused"


def test_a_partial_declaration_covers_only_what_it_names(
    world: DemoWorld, pair: tuple[Node, Node]
) -> None:
    ru, kz = pair
    _publish(pair, KZ_PARTIAL)
    # Notarised, asking about accounts (covered) and the debtor's whereabouts (not covered).
    sent, warnings = _send_request(ru, kz, _request("notary", ["bank-accounts"], location=True))
    codes = {w.code for w in warnings}
    assert "RESERVATION_ART25_PARTIAL" in codes and "RESERVATION_KZ_ART6A" in codes
    # Refusing the whole on Art. 25 alone: refused on submit and on receipt.
    before = conversation_state(ru.store, sent["conversation_id"])
    with pytest.raises(DocumentRejected) as rejected:
        submit(kz, _refusal(sent, "non-application-declaration"), actor="operator1")
    assert [p.code for p in rejected.value.problems] == ["RESERVATION_ART25_OUT_OF_SCOPE"]
    outcome = receive(ru, "KZ-MJ", _signed_refusal(world, sent, "non-application-declaration"))
    assert outcome.code == "RESERVATION_ART25_OUT_OF_SCOPE"
    assert conversation_state(ru.store, sent["conversation_id"]) == before
    # Beside another ground it is a warning, and the refusal goes out.
    refusal_warnings = submit(
        kz, _refusal(sent, "non-application-declaration", "contrary-to-law"), actor="operator1"
    ).warnings
    assert [w.code for w in refusal_warnings] == ["RESERVATION_ART25_OUT_OF_SCOPE"]
    assert conversation_state(kz.store, sent["conversation_id"]) == "refused"


def test_a_request_wholly_under_the_declaration_is_refused_on_submit(
    pair: tuple[Node, Node],
) -> None:
    ru, _ = pair
    _publish(pair, KZ_PARTIAL)
    with pytest.raises(DocumentRejected) as rejected:
        submit(ru, _request("notary", ["bank-accounts"], location=False), actor="operator1")
    assert [p.code for p in rejected.value.problems] == ["RESERVATION_ART25_NON_APPLICATION"]


def test_the_kazakh_reservation_comes_from_the_directory(pair: tuple[Node, Node]) -> None:
    ru, kz = pair
    # The demo directory publishes Kazakhstan's reservation to Art. 6 а): RU asking KZ warns.
    warnings = submit(ru, _request("court", ["bank-accounts"], False), actor="operator1").warnings
    assert "RESERVATION_KZ_ART6A" in {w.code for w in warnings}
    # KZ asking RU about accounts: the reciprocity note.
    document = _request("court", ["bank-accounts"], False)
    document["header"]["Recipient"] = "RU-FSSP"
    back = submit(kz, document, actor="operator1").warnings
    assert [w.code for w in back] == ["RESERVATION_RECIPROCITY"]
    # A directory publishing other reservations but not this one: no warning any more.
    for node in (ru, kz):
        directory = node.index.directory
        bodies = tuple(
            dataclasses.replace(b, reservations=(KZ_PARTIAL,) if b.id == "KZ-MJ" else ())
            for b in directory.bodies
        )
        node.index = DirectoryIndex.of(dataclasses.replace(directory, bodies=bodies))
    none = submit(ru, _request("court", ["bank-accounts"], False), actor="operator1").warnings
    assert not {w.code for w in none} & {"RESERVATION_KZ_ART6A", "RESERVATION_RECIPROCITY"}
