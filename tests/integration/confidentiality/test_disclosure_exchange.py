"""``gateway disclose`` against two real nodes: refused without consent (CIS Art. 9.2), allowed
once the providing body's ConsentDecision "granted" came back through the exchange, recorded
(recipient sealed) and audited; the requested body keeps a confidential request (CIS Art. 16)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gateway.demo.play import reply
from gateway.demo.setup import DemoWorld
from gateway.main import main as cli_main
from gateway.store import disclosures
from tests.integration.confidentiality.harness import Pair
from tests.integration.confidentiality.leakcheck import found_in_bytes

TRUSTEE = "Арбитражный управляющий Образцова Мария Сергеевна"
PURPOSE = "Включение сведений об имуществе должника в конкурсную массу"


async def _disclose(
    pair: Pair,
    capsys: pytest.CaptureFixture[str],
    body_id: str,
    message_id: str,
    to: str,
    category: str,
    out: Path,
) -> tuple[int, str, str]:
    capsys.readouterr()
    config = pair.world.nodes[body_id].config_path
    argv = [
        "disclose",
        "--config",
        str(config),
        message_id,
        "--to",
        to,
        "--category",
        category,
        "--purpose",
        PURPOSE,
        "--out",
        str(out),
    ]
    code = await asyncio.to_thread(cli_main, argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _consent_request(pair: Pair, response: dict[str, str]) -> dict[str, object]:
    document = reply("cis-enforcement.ConsentRequest", response, "KZ-MJ")
    document["body"]["ConsentRequest"]["ThirdParty"]["Name"] = TRUSTEE
    document["body"]["ConsentRequest"]["ProvidedInMessageId"] = response["message_id"]
    return document


async def test_third_party_disclosure_needs_the_providers_consent_exchanged_between_nodes(
    pair: Pair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "handed-over"
    out.mkdir()
    exchange = await pair.confidential_exchange()
    response = exchange["response"]
    response_id = response["message_id"]

    code, stdout, stderr = await _disclose(
        pair, capsys, "RU-FSSP", response_id, TRUSTEE, "third-party", out
    )
    assert code == 1, stderr
    assert "CIS Art. 9.2" in stderr and "ConsentRequest" in stderr
    assert list(out.iterdir()) == []
    refused = [e for e in pair.audit_events("RU-FSSP") if e.kind == "disclosure.refused"]
    assert [(e.subjects["message"], e.details["article"]) for e in refused] == [
        (response_id, "CIS Art. 9.2")
    ]

    # RU-FSSP asks, KZ-MJ (which provided the answer) grants: both through the local APIs.
    request = await pair.submit("RU-FSSP", _consent_request(pair, response))
    decision = reply("cis-enforcement.ConsentDecision", request, "RU-FSSP")
    await pair.submit("KZ-MJ", decision)

    code, stdout, stderr = await _disclose(
        pair, capsys, "RU-FSSP", response_id, TRUSTEE, "third-party", out
    )
    assert code == 0, stderr
    assert "CIS Art. 9.2" in stdout and request["message_id"] in stdout
    assert "условие согласия" in stdout  # the example decision carries a condition
    written = out / f"{response_id}.xml"
    status, wire = await pair.call(
        "RU-FSSP",
        "GET",
        f"/api/v1/messages/{response_id}/xml",
        token=pair.full("RU-FSSP"),
        purpose="сверка",
    )
    assert status == 200
    assert written.read_bytes() == wire  # the signed document exactly as stored
    assert written.stat().st_mode & 0o777 == 0o600

    node = pair.node("RU-FSSP")
    with node.store.read() as conn:
        (record,) = disclosures.list_for_message(conn, response_id)
        opened = disclosures.open_sealed(conn, node.kek_ring, record.disclosure_id, node.clock())
    assert (record.category, record.article, record.consent_request_id) == (
        "third-party",
        "CIS Art. 9.2",
        request["message_id"],
    )
    assert record.actor.startswith("cli:")
    assert (opened.recipient, opened.purpose) == (TRUSTEE, PURPOSE)
    (event,) = [e for e in pair.audit_events("RU-FSSP") if e.kind == "document.disclosed"]
    assert event.subjects["disclosure"] == record.disclosure_id
    assert event.details["consent_request"] == request["message_id"]
    assert "Образцова" not in json.dumps([dict(event.subjects), dict(event.details)])

    # The record can be listed; the sealed recipient is shown only on request, and audited.
    config = str(pair.world.nodes["RU-FSSP"].config_path)
    capsys.readouterr()
    listing = ["disclosures", "--config", config]
    assert await asyncio.to_thread(cli_main, [*listing, "--message", response_id]) == 0
    plain = capsys.readouterr().out
    assert record.disclosure_id in plain and request["message_id"] in plain
    assert "Образцова" not in plain
    argv = [*listing, "--to", "арбитражный управляющий ОБРАЗЦОВА мария сергеевна"]
    assert await asyncio.to_thread(cli_main, [*argv, "--show-recipients"]) == 0
    shown = capsys.readouterr().out
    assert record.disclosure_id in shown and TRUSTEE in shown and PURPOSE in shown
    (read,) = [e for e in pair.audit_events("RU-FSSP") if e.kind == "disclosure.records.read"]
    assert dict(read.details) == {"by_recipient": True, "decrypted": True, "records": 1}

    # The recipient's name is nowhere in clear in the node's files.
    for path in pair.node_dir("RU-FSSP").rglob("*"):
        if path.is_file():
            assert found_in_bytes(path.read_bytes(), [TRUSTEE, "Образцова", PURPOSE]) == []

    # Consent is for this recipient: another third party is still refused.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, _, stderr = await _disclose(
        pair,
        capsys,
        "RU-FSSP",
        response_id,
        "ООО «Коллекторское агентство»",
        "third-party",
        elsewhere,
    )
    assert code == 1 and "CIS Art. 9.2" in stderr
    # The file is never overwritten: a second disclosure to the same directory is refused.
    code, _, stderr = await _disclose(
        pair, capsys, "RU-FSSP", response_id, TRUSTEE, "third-party", out
    )
    assert code == 2 and "уже есть" in stderr


async def test_parties_of_the_proceeding_and_the_confidential_request_kept_by_the_requested(
    pair: Pair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exchange = await pair.confidential_exchange()
    code, stdout, stderr = await _disclose(
        pair,
        capsys,
        "RU-FSSP",
        exchange["response"]["message_id"],
        "Примеров Игорь Витальевич",
        "debtor",
        tmp_path,
    )
    assert code == 0, stderr
    assert "CIS Art. 9.2" in stdout
    # The creditor: CIS Art. 9.3, told where to apply (the answer's DisclosureProcedure).
    creditor_out = tmp_path / "creditor"
    creditor_out.mkdir()
    code, stdout, stderr = await _disclose(
        pair,
        capsys,
        "RU-FSSP",
        exchange["response"]["message_id"],
        "ООО «Северный ветер»",
        "creditor",
        creditor_out,
    )
    assert code == 0, stderr
    assert "CIS Art. 9.3" in stdout
    assert "порядок получения" in stdout and "Департамент юстиции города Алматы" in stdout
    # KZ-MJ was asked to keep the request confidential (CIS Art. 16): not even to the debtor.
    code, stdout, stderr = await _disclose(
        pair,
        capsys,
        "KZ-MJ",
        exchange["request"]["message_id"],
        "Примеров Игорь Витальевич",
        "debtor",
        tmp_path,
    )
    assert code == 1
    assert "CIS Art. 16" in stderr and "ConfidentialityNotice" in stderr


def _cli(world: DemoWorld, message_id: str, out: Path) -> int:
    config = world.nodes["RU-FSSP"].config_path
    argv = ["disclose", "--config", str(config), message_id, "--to", "Кто-то"]
    return cli_main([*argv, "--category", "debtor", "--purpose", PURPOSE, "--out", str(out)])


@pytest.mark.parametrize(
    "message_id",
    ["../../etc/passwd", "not-a-uuid", "{67cb4354-9eee-5402-a4c2-29c38fb53605}", ""],
)
def test_message_id_must_be_a_canonical_uuid(
    world: DemoWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str], message_id: str
) -> None:
    assert _cli(world, message_id, tmp_path) == 2
    assert "UUID" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_node_that_never_ran_has_nothing_to_disclose(
    world: DemoWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No store yet: a dependency unavailable, exit code 3 (docs/operations.md).
    assert _cli(world, "00000000-0000-4000-8000-000000000000", tmp_path) == 3
    assert "не запускался" in capsys.readouterr().err
    assert not world.nodes["RU-FSSP"].config_path.parent.joinpath("data").exists()


async def test_unknown_message_cannot_be_judged(
    pair: Pair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, stderr = await _disclose(
        pair,
        capsys,
        "RU-FSSP",
        "00000000-0000-4000-8000-000000000000",
        "Кто-то",
        "debtor",
        tmp_path,
    )
    assert code == 1 and "не хранится" in stderr  # refused: no such message here


async def test_the_local_api_discloses_only_as_the_agreement_allows(pair: Pair) -> None:
    """POST /api/v1/messages/{id}/disclosures: the same rule as `gateway disclose`."""
    exchange = await pair.confidential_exchange()
    response_id = exchange["response"]["message_id"]
    path = f"/api/v1/messages/{response_id}/disclosures"
    third_party = {"recipient": TRUSTEE, "category": "third-party", "purpose": PURPOSE}

    operator = pair.token("RU-FSSP", ["operator"])
    status, _ = await pair.call("RU-FSSP", "POST", path, token=operator, json_body=third_party)
    assert status == 403  # needs confidential-reader

    status, data = await pair.call(
        "RU-FSSP", "POST", path, token=pair.full("RU-FSSP"), json_body=third_party
    )
    answer = json.loads(data)
    assert status == 403
    assert answer["error"]["code"] == "DISCLOSURE_REFUSED"
    assert answer["error"]["article"] == "CIS Art. 9.2"
    assert answer["error"]["rule"] == "DISCLOSURE_CONSENT_REQUIRED"
    assert TRUSTEE not in data.decode("utf-8")  # the refusal does not echo the recipient

    status, _ = await pair.call(
        "RU-FSSP",
        "POST",
        path,
        token=pair.full("RU-FSSP"),
        json_body={**third_party, "category": "neighbour"},
    )
    assert status == 400

    request = await pair.submit("RU-FSSP", _consent_request(pair, exchange["response"]))
    await pair.submit("KZ-MJ", reply("cis-enforcement.ConsentDecision", request, "RU-FSSP"))
    status, data = await pair.call(
        "RU-FSSP", "POST", path, token=pair.full("RU-FSSP"), json_body=third_party
    )
    assert status == 201, data
    answer = json.loads(data)
    assert answer["article"] == "CIS Art. 9.2" and answer["message_id"] == response_id
    node = pair.node("RU-FSSP")
    with node.store.read() as conn:
        (record,) = disclosures.list_for_message(conn, response_id)
    assert record.disclosure_id == answer["disclosure_id"]
    assert record.actor.startswith("token:")
