"""Documents read in Russian, through the console the node runtime itself serves (the wiring of
`gateway serve` and the demo): every valid example of every kind, stored in KZ-MJ's real store,
is opened on its message page in Chromium. No enumeration code or English word reaches the
page, no text field renders as binary, and every label on the page is a label of the node's
PDF rendition of the same document (one labelled model, gateway/xml/labels.py). The dashboard
shows the real outbox and key sources, never «не подключены»."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from gateway.exchange.recording import message_header
from gateway.schemas import VALID_EXAMPLES_DIR
from gateway.store import conversations as conv_store
from gateway.store import messages as msg_store
from gateway.store import outbox
from gateway.store.messages import ReceiveOutcome
from gateway.store.tables import messages
from gateway.xml.header import read_header
from gateway.xml.labels import CODES_RU, LANGUAGES_RU
from tests.browser.conftest import PASSWORD, NodeConsole, Nodes, screenshot
from tests.render.pdftools import page_texts, squeeze, write

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

EXAMPLES = sorted(VALID_EXAMPLES_DIR.glob("*.xml"))

ENGLISH = ("true", "false", "True", "False", "None", "null", "not configured")
DENIED = tuple(sorted({*CODES_RU, *LANGUAGES_RU, *ENGLISH}, key=len, reverse=True))
"""Every enumeration code of the schemas, every language code, and English words that a raw
value would bring: none may stand on the page as a word of its own."""
_DENIED = re.compile(r"(?<![\w./@-])(" + "|".join(re.escape(w) for w in DENIED) + r")(?![\w/@-])")
BINARY_NOTE = "двоичные данные"
PURPOSE = "Проверка отображения документа в консоли (браузерный тест)"


def _store_examples(console: NodeConsole) -> list[tuple[str, str, bool]]:
    """Every valid example stored as a received document in the node's store (conversation
    opened as the example's own); (conversation id, message id, confidential) of each."""
    node = console.node
    now = datetime.now(UTC)
    stored = []
    with node.store.transaction() as conn:
        for path in EXAMPLES:
            document = path.read_bytes()
            header = read_header(etree.fromstring(document))
            conv_store.open_conversation(
                conn,
                conversation_id=header.conversation_id,
                agreement=header.agreement,
                requesting_party=header.sender,
                requested_party=header.recipient,
                opening_kind=header.kind,
                state="in-progress",
                confidential=header.confidential,
                deadline=None,
                now=now,
            )
            outcome = msg_store.insert_received(
                conn, message_header(header), document, node.kek_ring, now
            )
            assert outcome is ReceiveOutcome.INSERTED, path.name
            stored.append((header.conversation_id, header.message_id, header.confidential))
    return stored


async def _runtime_console(ctx: Any, console: NodeConsole, username: str) -> tuple[Any, str]:
    """A page signed in to the console the node runtime serves itself (not the fixture's)."""
    base = f"http://127.0.0.1:{console.runtime.console_port}"
    await ctx.clear_cookies()
    page = await ctx.new_page()
    await page.goto(f"{base}/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_selector("#logout-button")
    return page, base


async def _open_message(page: Any, base: str, cid: str, mid: str) -> None:
    await page.goto(f"{base}/conversations/{cid}/messages/{mid}")
    if await page.locator("#purpose-form").count():
        await page.fill("#purpose", PURPOSE)
        await page.click("#purpose-submit")
    await page.locator("#message-body").wait_for()


async def test_every_example_reads_in_russian(nodes: Nodes, context, tmp_path: Path) -> None:
    ctx, _ = context
    stored = await asyncio.get_running_loop().run_in_executor(None, _store_examples, nodes.kz)
    page, base = await _runtime_console(ctx, nodes.kz, "reader")
    kinds_seen = set()
    for (cid, mid, _confidential), path in zip(stored, EXAMPLES, strict=True):
        await _open_message(page, base, cid, mid)
        kinds_seen.add(path.name.split(".")[1].split("-")[0])
        rows = await page.locator("#message-body tr[data-type]").evaluate_all(
            "rows => rows.map(r => [r.dataset.path, r.dataset.type,"
            " r.querySelector('th').innerText, r.querySelector('td').innerText])"
        )
        main = await page.inner_text("#main")
        for field_path, _kind, _label, value in rows:
            if field_path.endswith("/ReasonEn"):  # the schema's English reason, by design
                main = main.replace(value, "")
        denied = sorted({m.group(1) for m in _DENIED.finditer(main)})
        assert denied == [], f"{path.name}: raw codes or English on the page: {denied}"
        headings = await page.locator("#message-body tr.group th").all_inner_texts()
        assert rows, path.name
        for field_path, kind, _label, value in rows:
            if kind == "binary":
                assert field_path.endswith("/Content"), f"{path.name}: {field_path} binary"
            else:
                assert BINARY_NOTE not in value, f"{path.name}: {field_path} ({kind}) as binary"
            if kind == "date":
                assert re.fullmatch(r"\d\d\.\d\d\.\d{4}", value), f"{path.name}: {value}"
        # Labels: the rendition's, from the same model (the node's own signed PDF).
        response = await page.request.get(f"{base}/conversations/{cid}/messages/{mid}/pdf")
        assert response.status == 200, path.name
        pdf_text = squeeze("\n".join(page_texts(write(tmp_path, "m.pdf", await response.body()))))
        labels = [label for _p, kind, label, _v in rows if kind != "binary"] + headings
        missing = sorted({label for label in labels if squeeze(label) not in pdf_text})
        assert missing == [], f"{path.name}: labels not in the rendition: {missing}"
        if path.name == "cis-enforcement.Request.xml":
            by_path = {r[0]: r for r in rows}
            assert by_path["Request/Content"][1] == "text"
            assert by_path["Request/Debtor/Individual/Name"][2] == "Имя"
            await screenshot(page, "document-request")
    assert {"Request", "Response", "Refusal", "Receipt"} <= kinds_seen


async def test_dashboard_wired_under_the_node_runtime(nodes: Nodes, context) -> None:
    """The runtime's own console (as `gateway serve` starts it): the outbox and the keys are
    read from the node, and the page names the node's body and zone."""
    ctx, _ = context
    node = nodes.kz.node
    now = datetime.now(UTC)
    with node.store.transaction() as conn:
        row = conn.execute(messages.select().limit(1)).first()
    if row is None:  # the walk above stores the examples; alone, store them here
        await asyncio.get_running_loop().run_in_executor(None, _store_examples, nodes.kz)
        with node.store.read() as conn:
            row = conn.execute(messages.select().limit(1)).first()
    assert row is not None
    with node.store.transaction() as conn:
        # Due tomorrow: the delivery worker leaves it pending, so the page must list it.
        outbox.enqueue(conn, row.message_id, "RU-FSSP", now + timedelta(days=1))

    page, _ = await _runtime_console(ctx, nodes.kz, "operator")
    item = page.locator(f"#undelivered-{row.message_id}")
    await item.wait_for()
    assert "Ожидает доставки" in await item.inner_text()
    assert await page.locator("#keys-denied").count() == 1  # key expiry: admin and auditor
    text = await page.inner_text("body")
    assert "не подключ" not in text
    identity = await page.inner_text("#node-identity")
    assert "Министерство юстиции Республики Казахстан" in identity and "KZ-MJ" in identity
    assert re.search(r"Алматы, UTC\+5", identity), identity
    assert re.search(r"\(Алматы, UTC\+5\)", await item.inner_text())
    await screenshot(page, "dashboard-runtime")

    admin, _ = await _runtime_console(ctx, nodes.kz, "admin")
    assert await admin.locator("#keys-table, #keys-empty").count() == 1
    assert "не подключ" not in await admin.inner_text("body")
