"""The stack floor: the least any gateway built on our libraries can do per hop.

The raw floor (benchmarks/baselines.py) is the hop's cryptography alone, in one process. A
gateway also has to carry the request over HTTP twice (the case system's JSON to the local API,
the signed request to the peer over mutual TLS, the receipt back) and keep three durable records
(the sender's signed request before it answers, the receiver's request before its receipt, the
sender's receipt). This measurement does exactly that and nothing else, with the libraries the
gateway uses — aiohttp servers and client, the gateway's own TLS contexts, SQLAlchemy Core on
SQLite with the gateway's pragmas — and the raw floor's signing and verification code:

* the case system (this process) POSTs JSON to the sender's local API and waits for the answer;
* the sender (its own process) reads the JSON, parses the request template, signs it twice
  (official, seal), inserts it and commits, POSTs it to the receiver over mTLS, verifies the
  receipt's seal, inserts the receipt and commits, and answers 201;
* the receiver (its own process) parses the request, verifies both signatures, inserts it and
  commits, seals a receipt and answers with it.

No schema validation, rules, state machine, audit chain, at-rest encryption, path validation,
verification report, queue or retry: whatever the gateway spends beyond this row is its own
work, and this row divided by the raw floor (2 workers) is the highest ratio any design on this
stack can reach. ``run.py`` prints it beside the gateway's rows; alone:
``.venv/bin/python -m benchmarks.stack_floor --hops 2000``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from benchmarks.gateway_hop import (
    CLOSED_LOOP_WINDOW,
    WARM_UP_HOPS,
    _pg_schema,
    closed_loop,
    timed_hops,
)

TOKEN = "stack-floor-token"  # noqa: S105 - the loopback case system's bearer token


def _tls_files(directory: Path) -> dict[str, Path]:
    """The demo CA and a TLS certificate for each node, issued with the gateway's own TLS
    profile (``CertificateProfile(role="tls")``, 127.0.0.1 in the SAN), as PEM files."""
    from gateway.crypto import algorithms
    from gateway.crypto.certificates import (
        DEMO_TLS_DNS_NAMES,
        DEMO_TLS_IP_ADDRESSES,
        CertificateProfile,
    )
    from gateway.crypto.demo_ca import DemoCA

    now = datetime.now(UTC)
    ca = DemoCA.create(now=now)
    files = {"ca": directory / "ca.pem"}
    files["ca"].write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
    for role, body_id in (("receiver", "KZ-MJ"), ("sender", "RU-FSSP")):
        key = algorithms.generate_private_key(algorithms.DEFAULT_KEY_SPEC)
        profile = CertificateProfile(
            role="tls",
            body_id=body_id,
            demo=True,
            dns_names=DEMO_TLS_DNS_NAMES,
            ip_addresses=DEMO_TLS_IP_ADDRESSES,
        )
        files[f"{role}_cert"] = directory / f"{role}.pem"
        files[f"{role}_key"] = directory / f"{role}.key"
        files[f"{role}_cert"].write_bytes(
            ca.issue(key.public_key(), profile, now=now).public_bytes(serialization.Encoding.PEM)
        )
        files[f"{role}_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return files


def _store(url: str) -> Any:
    """SQLAlchemy Core, one table of documents: on SQLite with the gateway's pragmas, on
    PostgreSQL as the gateway's engine connects (no ping on checkout)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, pool_pre_ping=False)

    if url.startswith("sqlite"):

        @sa.event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            for pragma in (
                "PRAGMA journal_mode=WAL",
                "PRAGMA foreign_keys=ON",
                "PRAGMA synchronous=NORMAL",
                "PRAGMA secure_delete=ON",
            ):
                cursor.execute(pragma)
            cursor.close()

    metadata = sa.MetaData()
    documents = sa.Table(
        "documents",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("stored_at", sa.String(32), nullable=False),
    )
    metadata.create_all(engine)
    insert = documents.insert()

    def keep(kind: str, body: bytes) -> None:
        with engine.begin() as connection:
            connection.execute(
                insert, {"kind": kind, "body": body, "stored_at": datetime.now(UTC).isoformat()}
            )

    return keep


SIGNERS = ("sender_official", "sender_seal", "receiver_seal")


def _signers_pem() -> dict[str, tuple[bytes, bytes]]:
    """The hop's signing identities, made once and handed to both node processes as PEM."""
    from benchmarks.documents import make_identities

    ids = make_identities(datetime.now(UTC))
    return {
        role: (
            getattr(ids, role).key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            getattr(ids, role).certificate.public_bytes(serialization.Encoding.PEM),
        )
        for role in SIGNERS
    }


def _serve(
    role: str,
    files: dict[str, str],
    signers: dict[str, tuple[bytes, bytes]],
    store: str,
    ports: Any,
    peer_port: int,
) -> None:
    """One node's process: ``role`` is ``receiver`` (mTLS peer endpoint) or ``sender`` (the
    local API, and a client of the receiver)."""
    from aiohttp import ClientSession, TCPConnector, web
    from lxml import etree

    from benchmarks.baselines import (
        OFFICIAL_REFERENCES,
        SEAL_REFERENCES,
        prepare_identity,
        raw_sign,
        raw_verify,
    )
    from benchmarks.documents import (
        Signer,
        hardened_parser,
        message_id_of,
        parse_hardened,
        receipt_document,
        request_document,
    )
    from gateway.app.tls import client_context, server_context

    now = datetime.now(UTC)
    identity = {
        name: Signer(
            serialization.load_pem_private_key(key, None),  # type: ignore[arg-type]
            x509.load_pem_x509_certificate(cert),
        )
        for name, (key, cert) in signers.items()
    }
    parser = hardened_parser()
    keep = _store(store)
    anchors = Path(files["ca"]).read_text()
    template, _ = request_document(now)
    official = prepare_identity(identity["sender_official"])
    sender_seal = prepare_identity(identity["sender_seal"])
    receiver_seal = prepare_identity(identity["receiver_seal"])
    app = web.Application(client_max_size=1 << 24)

    if role == "receiver":

        async def receive(request: web.Request) -> web.Response:
            received = parse_hardened(await request.read(), parser)
            raw_verify(
                received,
                "Official",
                identity["sender_official"].certificate.public_key(),
                official.certificate_der,
                OFFICIAL_REFERENCES,
            )
            raw_verify(
                received,
                "Seal",
                identity["sender_seal"].certificate.public_key(),
                sender_seal.certificate_der,
                SEAL_REFERENCES,
            )
            keep("request", etree.tostring(received))
            receipt = parse_hardened(receipt_document(message_id_of(received), now), parser)
            raw_sign(receipt, "Seal", receiver_seal, None, parser)
            return web.Response(body=etree.tostring(receipt, encoding="utf-8"))

        app.router.add_post("/peer/v1/messages", receive)
        context = server_context(Path(files["receiver_cert"]), Path(files["receiver_key"]), anchors)
    else:
        client_tls = client_context(Path(files["sender_cert"]), Path(files["sender_key"]), anchors)
        session: dict[str, ClientSession] = {}

        async def open_session(_app: web.Application) -> Any:
            session["peer"] = ClientSession(connector=TCPConnector(ssl=client_tls, limit=64))
            yield
            await session["peer"].close()

        app.cleanup_ctx.append(open_session)

        async def submit(request: web.Request) -> web.Response:
            if request.headers.get("Authorization") != f"Bearer {TOKEN}":
                raise web.HTTPUnauthorized()
            case = json.loads(await request.read())
            root = parse_hardened(template, parser)
            root.set("{urn:stack-floor}case", str(case["case_number"]))
            raw_sign(root, "Official", official, ["header", "body"], parser)
            raw_sign(root, "Seal", sender_seal, None, parser)
            wire = etree.tostring(root, encoding="utf-8")
            keep("request", wire)
            async with session["peer"].post(
                f"https://127.0.0.1:{peer_port}/peer/v1/messages", data=wire
            ) as response:
                answer = await response.read()
                if response.status != 200:
                    raise web.HTTPBadGateway(text=f"peer answered {response.status}")
            receipt = parse_hardened(answer, parser)
            raw_verify(
                receipt,
                "Seal",
                identity["receiver_seal"].certificate.public_key(),
                receiver_seal.certificate_der,
                SEAL_REFERENCES,
            )
            keep("receipt", answer)
            return web.json_response({"message_id": message_id_of(root)}, status=201)

        app.router.add_post("/api/v1/messages", submit)
        context = None

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        ports.put(runner.addresses[0][1])  # port 0 bound: say which port it got
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())


async def _drive(
    api: str, hops: int, pids: tuple[int, int], rate: float | None
) -> dict[str, float]:
    import aiohttp

    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {TOKEN}"},
        connector=aiohttp.TCPConnector(limit=CLOSED_LOOP_WINDOW),
    ) as http:
        counter = iter(range(10**9))

        async def hop() -> float:
            started = time.perf_counter()
            async with http.post(f"{api}/messages", json={"case_number": next(counter)}) as r:
                await r.read()
                if r.status != 201:
                    raise RuntimeError(f"stack floor hop failed: {r.status}")
            return time.perf_counter() - started

        await closed_loop(hop, WARM_UP_HOPS, CLOSED_LOOP_WINDOW, [])
        return await timed_hops(hop, hops, rate, *pids)


def measure_stack_floor(
    hops: int, rate: float | None = None, store: str = "sqlite"
) -> dict[str, float]:
    """Start the two node processes, drive ``hops`` hops through them, stop them; ``rate``: an
    offered load in hops/s (None: a closed loop of CLOSED_LOOP_WINDOW outstanding); ``store``:
    ``sqlite`` (a file per node) or ``postgresql`` (a schema per node, as the gateway rows)."""
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="gw-stack-floor-") as tmp, ExitStack() as cleanups:
        urls = {}
        for role in ("sender", "receiver"):
            if store == "postgresql":
                urls[role], drop = _pg_schema(f"floor_{role}")
                cleanups.callback(drop)
            else:
                urls[role] = f"sqlite:///{tmp}/{role}.db"
        files = {k: str(v) for k, v in _tls_files(Path(tmp)).items()}
        signers = _signers_pem()
        ports = context.Queue()
        receiver = context.Process(
            target=_serve,
            args=("receiver", files, signers, urls["receiver"], ports, 0),
            daemon=True,
        )
        receiver.start()
        sender = None
        try:
            peer_port = ports.get(timeout=60)
            sender = context.Process(
                target=_serve,
                args=("sender", files, signers, urls["sender"], ports, peer_port),
                daemon=True,
            )
            sender.start()
            api = f"http://127.0.0.1:{ports.get(timeout=60)}/api/v1"
            assert sender.pid is not None and receiver.pid is not None
            figures = asyncio.run(_drive(api, hops, (sender.pid, receiver.pid), rate))
        finally:
            for process in (sender, receiver):
                if process is not None:
                    process.terminate()
                    process.join(10)
        # What each node durably kept, per hop: the proof that the row did the work it claims.
        for role, url in urls.items():
            figures[f"{role}_documents_per_hop"] = round(_stored(url) / (hops + WARM_UP_HOPS), 3)
        return figures


def _stored(url: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text("SELECT count(*) FROM documents")).scalar_one())
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hops", type=int, default=2000)
    parser.add_argument("--rate", type=float, help="offered hops/s (default: a closed loop)")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args(argv)
    print(json.dumps(measure_stack_floor(args.hops, args.rate, args.store)))
    return 0


if __name__ == "__main__":  # python -m benchmarks.stack_floor, from the repository root
    raise SystemExit(main())
