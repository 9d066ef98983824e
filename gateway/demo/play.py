"""The demo scenario: four real nodes on loopback exchange signed documents over mutual TLS.

Every step goes through a node's local API exactly as a case system would use it, and each
document that crossed the wire is fetched back, written to ``DIR/exchanged`` and verified with
the receiving side's trust (the printed indication is that verification's).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
from fpdf import FPDF

from gateway.app import admin, users
from gateway.app.context import AppContext
from gateway.app.passwords import hash_password
from gateway.config import NodeConfig
from gateway.crypto.algorithms import suite_name
from gateway.crypto.pades import sign_pdf
from gateway.crypto.xades import verify_document
from gateway.demo.setup import NodePorts, publish_endpoints
from gateway.exchange.node import Node
from gateway.exchange.service import Actor, Role
from gateway.schemas import VALID_EXAMPLES_DIR

EXAMPLES = VALID_EXAMPLES_DIR
DELIVERY_WAIT_SECONDS = 30.0
"""How long the demo waits for one delivery (or the nodes for a new directory) before it
reports a failure."""
ADOPT_POLL_SECONDS = 0.1
"""The nodes' directory watcher at start-up, until they run on the directory that lists their
bound ports (then back to the service's own interval)."""
DEMO_SCOPES = ("operator", "confidential-reader", "administrator", "auditor")
DEMO_USER = "demo"
"""The console user the demo creates on each node, with every role (DEMO ONLY)."""


def _example_json(name: str) -> dict[str, Any]:
    return dict(json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8")))


def example(name: str) -> dict[str, Any]:
    """A valid example document as a template: ids and times are the node's to make."""
    document = _example_json(name)
    for key in ("MessageId", "ConversationId", "Created", "RequestedDeadline", "Attachments"):
        document["header"].pop(key, None)
    return document


def example_files(name: str) -> list[dict[str, Any]]:
    """The files the example lists beside its XML (its signed header's list), which a demo
    uploads and names in its submission (the node writes that list, from what it stored)."""
    listed = _example_json(name)["header"].get("Attachments", {}).get("Attachment", [])
    return listed if isinstance(listed, list) else [listed]


def reply(template: str, to: dict[str, Any], recipient: str) -> dict[str, Any]:
    document = example(template)
    document["header"].update(
        ConversationId=to["conversation_id"], InReplyTo=to["message_id"], Recipient=recipient
    )
    return document


DEMO_PURPOSE = quote("Демонстрация обмена: проверка доставленного документа и квитанции")
"""The purpose the demo states for every read of a document's content (CIS Art. 9.1; the local
API requires one and records it sealed in the audit trail). Percent-encoded: a header is ASCII."""


class ServedNode(Protocol):
    """A node serving its ports (``gateway.web.runtime.NodeRuntime``): what the demo needs of it."""

    node: Node
    peer_port: int | None
    api_port: int | None
    console_port: int | None
    directory_poll_seconds: float

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


Serve = Callable[[Node], ServedNode]
"""Makes a node's runtime (``gateway demo`` passes ``NodeRuntime``: the demo imports no server)."""


class Demo:
    def __init__(self, workdir: Path, serve: Serve, out: Callable[[str], None] = print) -> None:
        self.workdir = workdir
        self.serve = serve
        self.out = out
        self.runtimes: dict[str, ServedNode] = {}
        self.tokens: dict[str, str] = {}
        self.passwords: dict[str, str] = {}
        self.http: aiohttp.ClientSession | None = None
        self.count = 0
        self.failures = 0

    # --- nodes -------------------------------------------------------------------------------

    async def start(self, configs: dict[str, Path]) -> None:
        poll_seconds: dict[str, float] = {}
        for body_id, path in configs.items():
            node = Node.from_config(NodeConfig.from_toml(path))
            # The demo sets its nodes up as their administrator would, audited as "demo".
            ctx = AppContext(node.store, Actor(name="demo", roles=frozenset(Role)), node.config)
            token = admin.add_token(ctx, "demo", DEMO_SCOPES).token
            token_file = path.parent / "api-token"
            token_file.write_text(token + "\n", encoding="ascii")
            token_file.chmod(0o600)
            self.tokens[body_id] = token
            password = secrets.token_urlsafe(12)
            users.add_user(ctx, DEMO_USER, hash_password(password), DEMO_SCOPES)
            (path.parent / "console-password").write_text(password + "\n", encoding="ascii")
            (path.parent / "console-password").chmod(0o600)
            self.passwords[body_id] = password
            # A quick directory watcher until the bound endpoints are published (below).
            runtime = self.serve(node)
            poll_seconds[body_id] = runtime.directory_poll_seconds
            runtime.directory_poll_seconds = ADOPT_POLL_SECONDS
            await runtime.start()
            self.runtimes[body_id] = runtime
        await publish_bound_endpoints(self.runtimes)
        for body_id, runtime in self.runtimes.items():
            runtime.directory_poll_seconds = poll_seconds[body_id]
            config = runtime.node.config
            self.out(
                f"  узел {body_id}: peer https://{config.peer.host}:{runtime.peer_port} (mTLS), "
                f"API http://{config.api.host}:{runtime.api_port}, "
                f"консоль http://{config.console.host}:{runtime.console_port} "
                f"(пользователь {DEMO_USER}, пароль {self.passwords[body_id]})"
            )
        self.http = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()
        for runtime in self.runtimes.values():
            await runtime.stop()

    # --- API calls ---------------------------------------------------------------------------

    def _api(self, body_id: str) -> str:
        runtime = self.runtimes[body_id]
        return f"http://{runtime.node.config.api.host}:{runtime.api_port}/api/v1"

    async def _call(
        self, body_id: str, method: str, path: str, *, json_body: Any = None, raw: bool = False
    ) -> Any:
        assert self.http is not None
        headers = {"Authorization": f"Bearer {self.tokens[body_id]}", "X-Purpose": DEMO_PURPOSE}
        async with self.http.request(
            method, self._api(body_id) + path, json=json_body, headers=headers
        ) as response:
            data = await response.read()
            if response.status >= 400:
                raise RuntimeError(
                    f"{body_id} {method} {path}: HTTP {response.status}: "
                    + data.decode("utf-8", "replace")
                )
            return data if raw else json.loads(data)

    async def upload(
        self, body_id: str, content: bytes, name: str, media_type: str, language: str = "ru"
    ) -> str:
        """Upload one file beside the XML through the node's API (streamed, hashed and sealed
        as it arrives, docs/attachments.md); its id, to name in a submission."""
        assert self.http is not None
        async with self.http.post(
            self._api(body_id) + "/attachments",
            params={"name": name, "language": language},
            data=content,
            headers={
                "Authorization": f"Bearer {self.tokens[body_id]}",
                "Content-Type": media_type,
            },
        ) as response:
            data = await response.read()
            if response.status != 201:
                raise RuntimeError(
                    f"{body_id} POST /attachments: HTTP {response.status}: "
                    + data.decode("utf-8", "replace")
                )
            return str(json.loads(data)["attachment_id"])

    async def upload_listed(
        self, body_id: str, listed: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], ...]:
        """Upload a demonstration file for each entry of an example's list of files beside the
        XML; the submission's ``attachments``, saying what each is (title, translation)."""
        items = []
        for entry in listed:
            content = f"{entry.get('Title', entry['Name'])}\n(демонстрационный файл)\n".encode()
            attachment_id = await self.upload(
                body_id, content, entry["Name"], entry["MediaType"], entry.get("Language", "ru")
            )
            item = {"id": attachment_id, "title": entry.get("Title")}
            if "TranslationOf" in entry:
                item["translation_of"] = entry["TranslationOf"]
            items.append({k: v for k, v in item.items() if v is not None})
        return tuple(items)

    async def send(
        self,
        sender: str,
        document: dict[str, Any],
        title: str,
        attachments: tuple[str | dict[str, Any], ...] = (),
    ) -> dict[str, Any]:
        """Submit through the sender's API (with the uploads ``attachments`` beside the XML),
        wait for the receipt, save and verify both sides."""
        self.count += 1
        step = self.count
        submission = {**document, "attachments": list(attachments)} if attachments else document
        result = await self._call(sender, "POST", "/messages", json_body=submission)
        recipient = document["header"]["Recipient"]
        self.out(f"\n[{step}] {sender} → {recipient}: {title}")
        self.out(f"    сообщение {result['message_id']} принято к отправке")
        for warning in result.get("warnings", []):
            self.out(
                f"    предупреждение {warning['code']} ({warning['article']}): "
                f"{warning['message_ru']}"
            )
        message = await self._wait_delivered(sender, result["message_id"])
        receipt = message.get("receipt") or {}
        await self._save_and_verify(sender, recipient, result["message_id"], step)
        outcome = receipt.get("outcome")
        if outcome == "accepted":
            self.out(f"    квитанция {receipt['receipt_message_id']} получена и проверена")
        else:
            self.failures += 1
            self.out(f"    ОТКЛОНЕНО получателем: {receipt.get('code')}")
        conversation = await self._call(
            recipient, "GET", f"/conversations/{result['conversation_id']}"
        )
        state = conversation["summary"]["state"]
        deadline = conversation["summary"].get("deadline")
        extra = f", срок исполнения {deadline}" if deadline else ""
        self.out(f"    состояние переписки у получателя: {state}{extra}")
        return result

    async def _wait_delivered(self, sender: str, message_id: str) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DELIVERY_WAIT_SECONDS
        while True:
            message = await self._call(sender, "GET", f"/messages/{message_id}")
            if message["summary"]["delivery_state"] in ("delivered", "failed"):
                return message
            if loop.time() > deadline:
                raise RuntimeError(f"message {message_id} was not delivered in time")
            await asyncio.sleep(0.1)

    async def _save_and_verify(
        self, sender: str, recipient: str, message_id: str, step: int
    ) -> None:
        wire = await self._call(sender, "GET", f"/messages/{message_id}/xml", raw=True)
        exchanged = self.workdir / "exchanged"
        exchanged.mkdir(exist_ok=True)
        (exchanged / f"{step:02d}-{sender}-to-{recipient}-{message_id}.xml").write_bytes(wire)
        receiver = self.runtimes[recipient].node
        verified = verify_document(
            wire,
            receiver.trust,
            at=datetime.now(UTC),
            expected_sender=sender,
            require_official=False,
        )
        signers = ", ".join(
            f"{s.role}: {s.indication}, {suite_name(s.signature_algorithm)}"
            for s in verified.report.signatures
        )
        self.out(f"    проверка подписей получателем: {verified.report.indication} ({signers})")
        if not self.runtimes[sender].node.seal.pades_capable:
            self.out(
                "    PDF-копия (PAdES) не формируется: подпись PDF по ГОСТ пока не "
                "поддерживается (pyHanko), см. docs/keys-and-signatures.md"
            )
            return
        pdf = await self._call(sender, "GET", f"/messages/{message_id}/pdf", raw=True)
        renditions = self.workdir / "renditions"
        renditions.mkdir(exist_ok=True)
        (renditions / f"{step:02d}-{sender}-{message_id}.pdf").write_bytes(pdf)


async def publish_bound_endpoints(runtimes: Mapping[str, ServedNode]) -> None:
    """Nodes configured with port 0 bound free ports: re-issue their demo world's directory
    with them (:func:`gateway.demo.setup.publish_endpoints`) and wait until every node runs on
    it (each takes it through its directory watcher; start them with a short
    ``directory_poll_seconds`` such as :data:`ADOPT_POLL_SECONDS`)."""
    if all(r.node.config.peer.port != 0 for r in runtimes.values()):
        return  # the directory already lists the configured ports
    first = next(iter(runtimes.values())).node
    directory_file = first.config.trust.directory_file
    assert directory_file is not None, "a demo node's configuration names its directory file"
    ports = {
        body_id: NodePorts(r.peer_port, r.api_port, r.console_port or 0)
        for body_id, r in runtimes.items()
    }
    new = publish_endpoints(directory_file.parent, first.directory, ports, now=datetime.now(UTC))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DELIVERY_WAIT_SECONDS
    while any(r.node.directory.version != new.version for r in runtimes.values()):
        if loop.time() > deadline:
            raise RuntimeError(f"nodes did not take directory version {new.version} in time")
        await asyncio.sleep(ADOPT_POLL_SECONDS)


WRIT_FILE = "ispolnitelnyj-list.txt"
"""The file the demo's second request carries and its refusal returns (CIS Art. 13)."""


def register_extract_pdf(node: Node) -> bytes:
    """A signed register extract, as a requested body attaches to its answer (CIS Art. 5)."""
    from importlib import resources

    font = resources.files("gateway.render.fonts") / "DejaVuSans.ttf"
    pdf = FPDF()
    pdf.add_page()
    with resources.as_file(font) as path:
        pdf.add_font("DejaVu", fname=str(path))
    pdf.set_font("DejaVu", size=12)
    pdf.multi_cell(
        0,
        8,
        "ВЫПИСКА ИЗ РЕЕСТРА ТРАНСПОРТНЫХ СРЕДСТВ (ДЕМОНСТРАЦИЯ)",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.multi_cell(
        0,
        8,
        "Транспортное средство Toyota Camry, 2019 г.в., VIN JTNB11HK103000001, "
        "гос. номер 123 ABC 02. Сведения вымышлены.",
    )
    return sign_pdf(
        bytes(pdf.output()),
        node.seal.pdf_signer(),
        reason="Выписка из реестра",
        location=node.body_id,
    )


async def play(
    workdir: Path,
    configs: dict[str, Path],
    serve: Serve,
    out: Callable[[str], None],
    *,
    keep_running: bool = False,
) -> int:
    demo = Demo(workdir, serve, out)
    out("Запуск узлов:")
    try:
        await demo.start(configs)
        out("\n— Соглашение СНГ: запрос об имуществе и доходах должника (ст. 6, 7, 11)")
        request = await demo.send("RU-FSSP", example("cis-enforcement.Request"), "Запрос")
        info = await demo.send(
            "KZ-MJ",
            reply("cis-enforcement.AdditionalInfoRequest", request, "RU-FSSP"),
            "Запрос дополнительных сведений (ст. 14)",
        )
        await demo.send(
            "RU-FSSP",
            reply("cis-enforcement.AdditionalInfoAnswer", info, "KZ-MJ"),
            "Дополнительные сведения (ст. 14)",
        )
        loop = asyncio.get_running_loop()
        # pyHanko's synchronous API runs an event loop of its own: keep it off ours.
        extract = await loop.run_in_executor(
            None, register_extract_pdf, demo.runtimes["KZ-MJ"].node
        )
        upload = await demo.upload(
            "KZ-MJ", extract, "vypiska-reestr-ts.pdf", media_type="application/pdf"
        )
        answer = await demo.send(
            "KZ-MJ",
            reply("cis-enforcement.Response", request, "RU-FSSP"),
            "Ответ на запрос с подписанной выпиской из реестра (PDF, PAdES, вложение рядом с XML)",
            attachments=(upload,),
        )
        # The receiving node verifies the PDF as stored, streamed (never held whole), and
        # records the verdict, which its console shows beside the file.
        check = await demo._call(
            "RU-FSSP", "POST", f"/messages/{answer['message_id']}/attachments/1/verifications"
        )
        signers = ", ".join(s["signer_body_id"] for s in check["signatures"])
        out(
            f"    выписка PDF ({len(extract)} байт) проверена у получателя в хранилище: "
            f"{check['indication']} ({signers})"
        )
        if check["indication"] != "TOTAL_PASSED":
            demo.failures += 1

        out("\n— Соглашение СНГ: запрос о счетах должника и отказ (оговорка Казахстана к ст. 6 а))")
        writ = await demo.upload(
            "RU-FSSP",
            "Копия исполнительного листа\n(демонстрационный файл)\n".encode(),
            WRIT_FILE,
            media_type="text/plain",
        )
        second = await demo.send(
            "RU-FSSP",
            example("cis-enforcement.Request"),
            "Запрос о денежных средствах на счетах, с копией исполнительного листа",
            attachments=({"id": writ, "title": "Копия исполнительного листа"},),
        )
        # CIS Art. 13 para. 2: the refusal goes back with the request's documents. The node
        # takes the received file in again from its store, its digest checked, for the refusal.
        returned = await demo._call(
            "KZ-MJ", "POST", f"/messages/{second['message_id']}/attachments/1/returns"
        )
        refusal = reply("cis-enforcement.Refusal", second, "RU-FSSP")
        refusal["body"]["Refusal"].update(
            Ground=["contrary-to-law"],
            Circumstances=(
                "Сведения о денежных средствах на счетах не могут быть представлены: Республика "
                "Казахстан применяет подпункт а) статьи 6 в части, не противоречащей её "
                "законодательству (оговорка Республики Казахстан)."
            ),
            ReturnedDocuments={"FileName": [WRIT_FILE]},
        )
        await demo.send(
            "KZ-MJ",
            refusal,
            "Отказ в исполнении (ст. 13; оговорка к ст. 6 а)) с возвратом документов",
            attachments=(
                {"id": returned["attachment_id"], "title": "Копия исполнительного листа"},
            ),
        )
        out(f"    возвращён {WRIT_FILE}: SHA-256 {returned['sha256'][:16]}…, как получен")

        out("\n— Соглашение Верховных Судов РФ и РК (ст. 5, 6)")
        documents = await demo.upload_listed(
            "RU-VS", example_files("ru-kz-supreme-courts.Request-documents")
        )
        sc = await demo.send(
            "RU-VS",
            example("ru-kz-supreme-courts.Request-documents"),
            "Запрос с документом на казахском языке и его переводом (ст. 5.1, 11)",
            attachments=documents,
        )
        await demo.send(
            "KZ-VS", reply("ru-kz-supreme-courts.Response", sc, "RU-VS"), "Ответ на запрос"
        )
        out(
            f"\nИтог: {demo.count} документов доставлено и подтверждено подписанными "
            f"квитанциями; отклонено: {demo.failures}."
        )
        out(f"Документы, как они шли по сети: {workdir / 'exchanged'}")
        out(f"PDF-копии (PAdES): {workdir / 'renditions'}")
        out(f"Доверенные сертификаты: {workdir / 'trust'}")
        for body_id, path in configs.items():
            out(f"  {body_id}: gateway … --config {path}  (токен API: {path.parent / 'api-token'})")
        if keep_running:
            await _until_interrupted(demo, out)
        return 0 if demo.failures == 0 else 1
    finally:
        await demo.stop()


async def _until_interrupted(demo: Demo, out: Callable[[str], None]) -> None:
    import signal

    out("\nУзлы продолжают работать. Консоли:")
    for body_id, runtime in demo.runtimes.items():
        console = runtime.node.config.console
        out(
            f"  {body_id}: http://{console.host}:{runtime.console_port}/  "
            f"пользователь {DEMO_USER}, пароль {demo.passwords[body_id]}"
        )
    out("Остановить: Ctrl-C.")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def run(
    workdir: Path, configs: dict[str, Path], serve: Serve, *, keep_running: bool = False
) -> int:
    def out(line: str) -> None:
        print(line, flush=True)

    try:
        return asyncio.run(play(workdir, configs, serve, out, keep_running=keep_running))
    except RuntimeError as exc:
        print(f"демо остановлено: {exc}", file=sys.stderr)
        return 1
