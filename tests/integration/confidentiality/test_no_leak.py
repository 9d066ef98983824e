"""Confidential means confidential everywhere (DESIGN.md): a full confidential exchange between
two real nodes, with every logger at DEBUG, leaves none of the documents' personal values in the
log output, in the API's error answers, in /metrics, in file names, or in the bytes on disk."""

from __future__ import annotations

import copy
import json
from typing import Any

from gateway.demo.play import example
from tests.integration.confidentiality.harness import BODIES, Pair, confidential
from tests.integration.confidentiality.leakcheck import (
    CapturingHandler,
    files_under,
    found_in_bytes,
    found_in_text,
    personal_values,
)

VALUES = personal_values("cis-enforcement.Request", "cis-enforcement.Response")
PASSPORT = "4510 123456"
"""A value planted in an element the schema does not know: an error must not echo it."""
LEAKY_LIBRARIES = ("signxml", "xmlschema")
"""Loggers that write document content at DEBUG; gateway.logsafety filters them."""
BAD_BIRTH_DATE = "14.05.1981"
"""The debtor's birth date in a form the schema refuses (xs:date wants 1981-05-14)."""


def test_the_value_list_is_not_empty_and_has_what_matters() -> None:
    for needed in ("Примеров", "1981-05-14", "810514300001", "JTNB11HK103000001"):
        assert needed in VALUES
    assert any(v.startswith("Взыскать с Примерова") for v in VALUES)  # the operative part
    assert len(VALUES) > 40


def _invalid_submissions() -> list[dict[str, Any]]:
    base = confidential(example("cis-enforcement.Request"))
    bad_date = copy.deepcopy(base)
    bad_date["body"]["Request"]["Debtor"]["Individual"]["BirthDate"] = BAD_BIRTH_DATE
    unknown = copy.deepcopy(base)
    unknown["body"]["Request"]["Debtor"]["Individual"]["Passport"] = PASSPORT
    bad_line = copy.deepcopy(base)
    bad_line["body"]["Request"]["Debtor"]["Individual"]["Surname"] = "Примеров  "
    no_debtor = copy.deepcopy(base)
    del no_debtor["body"]["Request"]["Debtor"]
    return [bad_date, unknown, bad_line, no_debtor]


async def test_full_confidential_exchange_leaks_nothing(
    debug_logs: CapturingHandler, pair: Pair
) -> None:
    values = [*VALUES, PASSPORT]
    exchange = await pair.confidential_exchange()
    assert exchange["request"]["conversation_id"] == exchange["response"]["conversation_id"]

    # Reading back is allowed and audited, and must not log what was read either.
    reader = pair.token("RU-FSSP", ["confidential-reader"], "reader")
    status, wire = await pair.call(
        "RU-FSSP",
        "GET",
        f"/api/v1/messages/{exchange['response']['message_id']}",
        token=reader,
        purpose="исполнительное производство",
    )
    assert status == 200
    seen = json.dumps(json.loads(wire), ensure_ascii=False)
    assert "JTNB11HK103000001" in seen and "Алматы" in seen  # the reader sees it: checks are real

    errors: list[str] = []
    for document in _invalid_submissions():
        status, body = await pair.call(
            "RU-FSSP", "POST", "/api/v1/messages", token=pair.full("RU-FSSP"), json_body=document
        )
        assert status == 422, body
        text = body.decode("utf-8")
        assert json.loads(text)["error"]["code"] == "DOCUMENT_REJECTED"
        errors.append(text)
    assert found_in_text("\n".join(errors), values) == []

    metrics = ""
    for body_id in BODIES:
        status, body = await pair.call(body_id, "GET", "/metrics")
        assert status == 200
        metrics += body.decode("utf-8")
    assert "gateway_" in metrics
    assert found_in_text(metrics, values) == []

    for body_id in BODIES:
        data_dir = pair.node(body_id).config.node.data_dir
        names = "\n".join(str(p.relative_to(data_dir)) for p in data_dir.rglob("*"))
        assert found_in_text(names, values) == []

    # Everything but signxml's and xmlschema's own DEBUG output (filtered by gateway.logsafety,
    # checked by the next test):
    # our code, aiohttp, SQLAlchemy with its SQL, parameters and rows, pyHanko, asyncio.
    logs = debug_logs.text(excluding=LEAKY_LIBRARIES)
    assert "sqlalchemy.engine" in logs  # SQL really was logged at DEBUG: the check is real
    assert "gateway.access" in logs  # the access log of all three sites
    assert found_in_text(logs, values) == []


async def test_no_library_logs_a_confidential_document_even_at_debug(
    debug_logs: CapturingHandler, pair: Pair
) -> None:
    await pair.confidential_exchange()
    for document in _invalid_submissions():
        status, _ = await pair.call(
            "RU-FSSP", "POST", "/api/v1/messages", token=pair.full("RU-FSSP"), json_body=document
        )
        assert status == 422
    logs = debug_logs.text()
    assert "sqlalchemy.engine" in logs  # DEBUG really was captured
    # gateway.logsafety keeps signxml's and xmlschema's DEBUG output (canonicalised documents,
    # refused values) out of every handler, whatever level the operator sets.
    assert found_in_text(logs, [*VALUES, PASSPORT]) == []


async def test_confidential_documents_are_unreadable_in_the_database_and_on_disk(
    pair: Pair,
) -> None:
    await pair.confidential_exchange()
    for body_id in BODIES:
        data_dir = pair.node(body_id).config.node.data_dir
        files = files_under(pair.node_dir(body_id))
        assert any(p.name.endswith(".db-wal") for p in files) or any(
            p.suffix == ".db" for p in files
        )
        for path in files:
            assert found_in_bytes(path.read_bytes(), VALUES) == [], path
        assert (data_dir / "gateway.db").stat().st_size > 0
    # After a clean stop SQLite checkpoints the WAL into the main file: look again.
    for runtime in pair.runtimes.values():
        await runtime.stop()
    pair.runtimes.clear()
    for body_id in BODIES:
        for path in files_under(pair.node_dir(body_id)):
            assert found_in_bytes(path.read_bytes(), VALUES) == [], path
