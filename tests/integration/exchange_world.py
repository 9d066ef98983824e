"""Helpers for the exchange's integration tests: configuration variants of a demo world, documents
signed with a body's real keys, row counts and the audit trail of a node's store, processes of
``gateway serve``.

Nothing here is a double: the world is :func:`gateway.demo.setup.build_world`'s (demo PKI per
state, the depositary, a signed directory of bodies), documents are signed by
:func:`gateway.crypto.xades.sign_document` with the bodies' key files, and the stores are the
nodes' own (SQLite files or PostgreSQL schemas).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from lxml import etree

from gateway.app.tls import client_context
from gateway.config import NodeConfig
from gateway.crypto import segments
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.keystore import KeyStore, SigningKey
from gateway.crypto.recipient import encrypt_for
from gateway.crypto.xades import sign_document
from gateway.demo.play import example
from gateway.demo.setup import DEMO_PASSPHRASE, DemoWorld
from gateway.exchange.documents import complete_header
from gateway.exchange.node import Node
from gateway.exchange.service import Actor, Role
from gateway.model.directory import CertificateRole
from gateway.store import Store, open_store, tokens
from gateway.store import attachments as attachment_store
from gateway.store import conversations as conv_store
from gateway.store.engine import migrate
from gateway.store.tables import (
    audit_events,
    conversations,
    delivery_attempts,
    messages,
    outbox,
    receipts,
)
from gateway.web.peer_client import PeerClient, PeerResponse, PeerTransportError, messages_url
from gateway.web.runtime import NodeRuntime
from gateway.xml.convert import json_to_xml, to_bytes
from gateway.xml.parsing import parse_untrusted
from gateway.xml.schemas import default_registry

GATEWAY = Path(sys.executable).with_name("gateway")
"""The console script of the virtualenv running the tests."""

SERVE_START_SECONDS = 60.0
"""How long a ``gateway serve`` process may take to print that it listens (imports, keys,
migrations on a loaded 2-core machine take a few seconds)."""

API_SCOPES = ("operator", "confidential-reader", "administrator", "auditor")

COUNTED = {
    "messages": messages,
    "conversations": conversations,
    "outbox": outbox,
    "receipts": receipts,
    "delivery_attempts": delivery_attempts,
}
"""Tables whose row counts must not move when a document is refused."""

ENV = "{urn:cis-exchange:envelope:1}"


# --- configurations -----------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    # JSON's strings, numbers, booleans and arrays of them are valid TOML.
    return json.dumps(value)


def node_config(
    world: DemoWorld,
    body_id: str,
    tag: str,
    *,
    database_url: str = "",
    peer_port: int | None = None,
    api_port: int | None = None,
) -> Path:
    """A variant of the world's configuration of ``body_id``, written beside it (relative paths
    keep working): its own data folder ``data-<tag>`` (so each test module starts from an empty
    store), optionally a database URL and other ports. The peer port defaults to the one the
    directory lists, so peers can reach the node; the API and the console bind free ports
    (port 0: read them back from the runtime, or from ``gateway serve``'s first line)."""
    source = world.nodes[body_id].config_path
    raw = tomllib.loads(source.read_text(encoding="utf-8"))
    raw["node"]["data_dir"] = f"data-{tag}"
    raw["peer"]["port"] = peer_port if peer_port is not None else world.nodes[body_id].peer_port
    raw["api"]["port"] = api_port if api_port is not None else 0
    raw["console"]["port"] = 0
    if database_url:
        raw["database"] = {"url": database_url}
    path = source.with_name(f"node-{tag}.toml")
    write_toml(path, raw)
    return path


@contextmanager
def node_on_store(
    request: pytest.FixtureRequest, world: DemoWorld, body_id: str, tag: str
) -> Iterator[Node]:
    """``body_id``'s node (no server: it submits, signs and receives in process) on the store
    ``request.param`` names (``sqlite``: its own data folder; ``postgresql``: a schema)."""
    database_url = ""
    if request.param == "postgresql":
        database_url = request.getfixturevalue("pg_schema")(tag)
    config = node_config(world, body_id, f"{tag}-{request.param}", database_url=database_url)
    node = Node.from_config(NodeConfig.from_toml(config))
    try:
        yield node
    finally:
        node.close()


def write_toml(path: Path, raw: dict[str, dict[str, Any]]) -> None:
    """Write a node configuration of plain tables (what tomllib read back) to ``path``."""
    lines = []
    for section, table in raw.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def limit_attachments(config: Path, limit: int) -> None:
    """Set a node configuration's ``[limits] max_message_bytes`` and ``max_attachment_bytes``."""
    raw = tomllib.loads(config.read_text(encoding="utf-8"))
    raw["limits"] = {"max_message_bytes": limit, "max_attachment_bytes": limit}
    write_toml(config, raw)


def attachment_list(content: bytes, name: str = "исполнительный лист.pdf") -> dict[str, object]:
    """The signed header's ``Attachments`` listing ``content`` as one PDF named ``name``."""
    return {
        "Attachment": [
            {
                "Name": name,
                "MediaType": "application/pdf",
                "Size": len(content),
                "Sha256": hashlib.sha256(content).hexdigest(),
            }
        ]
    }


@dataclass(frozen=True)
class Sealing:
    """How a confidential part is sealed by hand: its part key, segment prefix and the
    sender's id for it (``sealed_as``)."""

    part_key: bytes
    prefix: bytes
    sealed_as: str

    @classmethod
    def new(cls, sealed_as: str | None = None) -> Sealing:
        return cls(segments.new_part_key(), segments.new_prefix(), sealed_as or str(uuid.uuid4()))

    def seal(self, content: bytes) -> bytes:
        """``content`` as the records a sender streams (every segment sealed, the last final)."""
        writer = segments.SegmentWriter(self.part_key, self.prefix, self.sealed_as)
        sealed = b"".join(c for _, c in writer.feed(content))
        last, _ = writer.finish()
        return sealed + last[1]


def hand_sealed(
    receiver: Node,
    sender: Signer,
    sealing: Sealing,
    listed_as: bytes,
    *,
    wrapped_to: list[x509.Certificate] | None = None,
    alter_wrapped: bool = False,
) -> tuple[bytes, bytes, bytes]:
    """A confidential request from ``sender`` to ``receiver``'s body listing ``listed_as``'s
    size and digest, sealed with ``sealing``, its part key wrapped to the receiver's encryption
    certificates (or ``wrapped_to``; ``alter_wrapped``: one bit of the wrapping flipped),
    signed and encrypted to the receiver as a delivery goes: the CMS, the wrapped key and the
    signed document."""
    ours = [
        x509.load_der_x509_certificate(c.der)
        for c in receiver.index.body(receiver.body_id).certificates
        if c.role is CertificateRole.ENCRYPTION
    ]
    wrapped = bytearray(encrypt_for(sealing.part_key, wrapped_to or ours))
    if alter_wrapped:
        wrapped[-20] ^= 0x01
    listed = attachment_list(listed_as)
    listed["Attachment"][0]["Sealed"] = {  # type: ignore[index]
        "Format": "aes-256-gcm-segments-64k/1",
        "SegmentPrefix": sealing.prefix.hex(),
        "SealedAs": sealing.sealed_as,
        "WrappedKey": base64.b64encode(bytes(wrapped)).decode(),
    }
    signed = sender.document(
        "cis-enforcement.Request", datetime.now(UTC), Confidential=True, Attachments=listed
    )
    return encrypt_for(signed, ours), bytes(wrapped), signed


def counts_and_scan(store: Store) -> tuple[dict[Any, int], dict[Any, int]]:
    """The conversation counts the node kept at each commit, and the same counted by a scan,
    by (state, agreement, requesting party, requested party): equal whenever the node is right."""
    c = conversations.c
    key = (c.state, c.agreement, c.requesting_party, c.requested_party)
    with store.read() as conn:
        counted = conv_store.count_by_key(conn)
        rows = conn.execute(sa.select(*key, sa.func.count()).group_by(*key)).all()
    return counted, {(r[0], r[1], r[2], r[3]): r[4] for r in rows}


def open_node_store(config_path: Path) -> Store:
    """The store a node with this configuration uses, migrated."""
    config = NodeConfig.from_toml(config_path)
    # 0700, as the gateway makes it: gateway serve refuses a data folder others may list.
    config.node.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = open_store(config.database_url)
    migrate(store.engine)
    return store


def create_token(store: Store, now: datetime) -> str:
    """A local API token with every role (what the demo gives its case system)."""
    token = f"integration-{os.urandom(16).hex()}"
    with store.transaction() as conn:
        tokens.create(conn, token, label="integration", scopes=API_SCOPES, now=now)
    return token


# --- documents ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signer:
    """A body's real signing keys, to craft documents as that body's node would."""

    body_id: str
    seal: SigningKey
    official: SigningKey

    @classmethod
    def of(cls, world: DemoWorld, body_id: str) -> Signer:
        keys = KeyStore.from_config(NodeConfig.from_toml(world.nodes[body_id].config_path))
        return cls(body_id, keys.seal(), keys.official("chief"))

    def with_certificates(self, *, seal: Any, official: Any) -> Signer:
        """The same keys presenting other certificates (expired ones, say)."""
        return replace(
            self,
            seal=replace(self.seal, certificate=seal),
            official=replace(self.official, certificate=official),
        )

    def unsigned(self, template: str, now: datetime, **header: Any) -> etree._Element:
        document = example(template)
        document["header"].update(header)
        completed = complete_header(
            document["header"], sender=self.body_id, now=now, opens_conversation=True
        )
        if "Sender" in header:  # a forger claims another sender
            completed["Sender"] = header["Sender"]
        return json_to_xml({"header": completed, "body": document["body"]}, default_registry())

    def sign(self, root: etree._Element, now: datetime) -> bytes:
        return sign_document(to_bytes(root), self.official, self.seal, now)

    def document(self, template: str, now: datetime, **header: Any) -> bytes:
        """``template`` (a valid example's name) as a signed document from this body."""
        return self.sign(self.unsigned(template, now, **header), now)


def header_field(document: bytes, name: str) -> str:
    root = parse_untrusted(document)
    element = root.find(f"{ENV}Header/{ENV}{name}")
    return (element.text or "").strip() if element is not None else ""


def body_fields(document: bytes) -> dict[str, str]:
    """The child elements of the body's single element (a Receipt's or a Rejection's fields)."""
    root = parse_untrusted(document)
    element = root.find(f"{ENV}Body")[0]
    return {etree.QName(c).localname: (c.text or "").strip() for c in element}


def tls_client(keys_dir: Path, world: DemoWorld, *, cert: str = "tls.crt.pem") -> Any:
    """An mTLS client context from a key folder, trusting the directory's CAs."""
    anchors = (world.root / "trust" / "bodies-ca.pem").read_text("ascii")
    return client_context(
        keys_dir / cert, keys_dir / "tls.key.pem", anchors, password=DEMO_PASSPHRASE
    )


# --- what a store holds ---------------------------------------------------------------------------


@dataclass
class Receiver:
    """KZ-MJ's node, running: what a module's tests send to (``url``) and look into."""

    runtime: NodeRuntime
    config: Path
    url: str

    @property
    def node(self) -> Node:
        return self.runtime.node


@contextlib.asynccontextmanager
async def receiving(
    request: pytest.FixtureRequest,
    world: DemoWorld,
    tag: str,
    *,
    configure: Callable[[Path], None] | None = None,
    console: bool = True,
) -> AsyncIterator[Receiver]:
    """KZ-MJ's node on the store ``request.param`` names (``sqlite`` or ``postgresql``, a
    schema of its own), delivery off; ``configure`` edits its NODE.toml before it starts."""
    database_url = ""
    if request.param == "postgresql":
        database_url = request.getfixturevalue("pg_schema")(tag)
    config = node_config(world, "KZ-MJ", f"{tag}-{request.param}", database_url=database_url)
    if configure is not None:
        configure(config)
    runtime = NodeRuntime(Node.from_config(NodeConfig.from_toml(config)))
    await runtime.start(deliver=False, console=console)
    try:
        yield Receiver(runtime, config, messages_url(f"https://127.0.0.1:{runtime.peer_port}"))
    finally:
        await runtime.stop()


async def post(client: PeerClient, url: str, payload: bytes) -> PeerResponse:
    """The peer's answer whatever its status (a refusal's body included)."""
    try:
        return await client.post_message(url, payload)
    except PeerTransportError as error:
        if error.response is None:
            raise
        return error.response


def row_counts(store: Store) -> dict[str, int]:
    with store.read() as conn:
        return {
            name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for name, table in COUNTED.items()
        }


def audit_rows(store: Store, kind: str) -> list[dict[str, Any]]:
    """Audit events of ``kind``, oldest first, with subjects and details decoded."""
    with store.read() as conn:
        rows = conn.execute(
            sa.select(audit_events).where(audit_events.c.kind == kind).order_by(audit_events.c.seq)
        ).all()
    return [
        {
            "seq": r.seq,
            "actor": r.actor,
            "subjects": json.loads(r.subjects),
            "details": json.loads(r.details),
        }
        for r in rows
    ]


def conversation_state(store: Store, conversation_id: str) -> str | None:
    with store.read() as conn:
        return conn.execute(
            sa.select(conversations.c.state).where(
                conversations.c.conversation_id == conversation_id
            )
        ).scalar_one_or_none()


# --- gateway serve as a process -------------------------------------------------------------------


@dataclass
class ServeProcess:
    """A ``gateway serve`` process; its output goes to a log file beside the config."""

    config: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def api_url(self) -> str:
        """From the line ``gateway serve`` prints once it listens: the bound ports."""
        found = re.search(r"API (http://\S+/api/v1)", self.output())
        assert found, f"gateway serve did not say where its API listens:\n{self.output()}"
        return found.group(1)

    def output(self) -> str:
        return self.log.read_text("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind runs in the node."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM (the node stops its worker and servers), SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def start_serve(config: Path, *options: str, env: dict[str, str] | None = None) -> ServeProcess:
    """Start ``gateway serve --config [OPTIONS]`` and wait until it says it listens; ``env``
    adds to the environment (``GATEWAY_CRASH_AT``, say)."""
    log = config.with_suffix(f".{time.monotonic_ns()}.log")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(GATEWAY), "serve", "--config", str(config), *options],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    serve = ServeProcess(config, process, log)
    deadline = time.monotonic() + SERVE_START_SECONDS
    while "peer https://" not in serve.output():
        if process.poll() is not None or time.monotonic() > deadline:
            serve.kill()
            raise AssertionError(f"gateway serve did not start:\n{serve.output()}")
        time.sleep(0.1)
    return serve


@contextlib.contextmanager
def serving(config: Path, *options: str) -> Iterator[ServeProcess]:
    serve = start_serve(config, *options)
    try:
        yield serve
    finally:
        serve.stop()


# --- two nodes in this process --------------------------------------------------------------------

OPERATOR = Actor("operator-test", frozenset({Role.OPERATOR}))
"""A case system's operator, as the local service sees it."""
READ_PURPOSE = "Исполнительное производство № 12345/26/77001-ИП: проверка ответа"
"""The purpose stated for reading a document's content (CIS Art. 9.1)."""


def pair_configs(world: DemoWorld, request: pytest.FixtureRequest) -> dict[str, Path]:
    """RU-FSSP's and KZ-MJ's configuration files on the store ``request.param`` names
    (``sqlite``: the world's own; ``postgresql``: a schema each, via ``pg_schema``)."""
    bodies = ("RU-FSSP", "KZ-MJ")
    if request.param != "postgresql":
        return {b: world.nodes[b].config_path for b in bodies}
    schema = request.getfixturevalue("pg_schema")
    return {
        b: node_config(world, b, "pg", database_url=schema(b.lower().replace("-", "_")))
        for b in bodies
    }


@contextmanager
def node_pair(
    world: DemoWorld, tag: str, pg_schema: Callable[[str], str] | None = None
) -> Iterator[tuple[Node, Node]]:
    """RU-FSSP and KZ-MJ as nodes in this process, each on a store of its own (``tag``): a
    SQLite file, or with ``pg_schema`` (the fixture) a PostgreSQL schema."""

    def url(body: str) -> str:
        return pg_schema(f"{tag}_{body.lower().replace('-', '_')}") if pg_schema else ""

    ru, kz = (
        Node.from_config(
            NodeConfig.from_toml(node_config(world, body, tag, database_url=url(body)))
        )
        for body in ("RU-FSSP", "KZ-MJ")
    )
    try:
        yield ru, kz
    finally:
        ru.close()
        kz.close()


def padded_request() -> dict[str, Any]:
    """The benchmark's ~10 KB request, as a case system's JSON."""
    from benchmarks.gateway_hop import request_document

    return request_document()


def stored_file_bytes(conn: Any, attachment_id: str, keys: KekRing) -> bytes:
    """A stored file, read back and decrypted from its segments."""
    opened = attachment_store.reader(conn, attachment_id, keys)
    return b"".join(
        b"".join(opened.batch(conn, first))
        for first in range(0, opened.segment_count, attachment_store.READ_BATCH_SEGMENTS)
    )
