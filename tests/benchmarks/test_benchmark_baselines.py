"""Smoke tests of the benchmark harness: every baseline runs, does what it claims, and the
script prints its table and JSON line. Tiny hop counts; the figures themselves are not judged."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.exceptions import InvalidDigest
from signxml.xades import XAdESVerifier

from benchmarks import run
from benchmarks.baselines import (
    OFFICIAL_LOCATION,
    OFFICIAL_REFERENCES,
    SEAL_LOCATION,
    SEAL_REFERENCES,
    RawVerificationError,
    add_placeholder,
    count_ops,
    make_raw_hop,
    make_signxml_hop,
    prepare_identity,
    raw_sign,
    raw_verify,
    signxml_signer,
    verification_config,
)
from benchmarks.documents import (
    ENV_NS,
    REQUEST_EXAMPLE,
    REQUEST_SIZE,
    generated_request,
    hardened_parser,
    make_identities,
    padded_example,
    parse_hardened,
    receipt_document,
    request_document,
)
from benchmarks.harness import (
    Figures,
    Registered,
    RunSettings,
    hop_measurement,
    percentile,
    reported_measurement,
    summary_json,
    table,
    time_hops,
)
from gateway.schemas import SCHEMA_DIR
from tests.tooling import require_tool

REPO_ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
# Certificates are checked against the real clock by signxml, so they are made valid now.
IDS = make_identities(datetime.now(UTC))
REQUEST = request_document(NOW)[0]
E = f"{{{ENV_NS}}}"


def _signxml_signed(request: bytes) -> bytes:
    parser = hardened_parser()
    root = parse_hardened(request, parser)
    add_placeholder(root, "Official")
    root = signxml_signer("official").sign(
        root,
        key=IDS.sender_official.key,
        cert=[IDS.sender_official.certificate],
        reference_uri=["#header", "#body"],
        always_add_key_value=False,
    )
    add_placeholder(root, "Seal")
    root = signxml_signer("seal").sign(
        root,
        key=IDS.sender_seal.key,
        cert=[IDS.sender_seal.certificate],
        always_add_key_value=False,
    )
    return etree.tostring(root, encoding="utf-8")


def _raw_signed(request: bytes) -> bytes:
    parser = hardened_parser()
    root = parse_hardened(request, parser)
    raw_sign(root, "Official", prepare_identity(IDS.sender_official), ["header", "body"], parser)
    raw_sign(root, "Seal", prepare_identity(IDS.sender_seal), None, parser)
    return etree.tostring(root, encoding="utf-8")


def _raw_verify_both(wire: bytes) -> None:
    root = parse_hardened(wire, hardened_parser())
    official, seal = IDS.sender_official.certificate, IDS.sender_seal.certificate
    raw_verify(
        root,
        "Official",
        official.public_key(),
        prepare_identity(IDS.sender_official).certificate_der,
        OFFICIAL_REFERENCES,
    )
    raw_verify(
        root,
        "Seal",
        seal.public_key(),
        prepare_identity(IDS.sender_seal).certificate_der,
        SEAL_REFERENCES,
    )


def _signxml_verify_both(wire: bytes) -> None:
    root = parse_hardened(wire, hardened_parser())
    XAdESVerifier().verify(
        root,
        x509_cert=IDS.sender_official.certificate,
        expect_config=verification_config(OFFICIAL_LOCATION, OFFICIAL_REFERENCES),
    )
    XAdESVerifier().verify(
        root,
        x509_cert=IDS.sender_seal.certificate,
        expect_config=verification_config(SEAL_LOCATION, SEAL_REFERENCES),
    )


def _tamper_body(wire: bytes) -> bytes:
    root = parse_hardened(wire, hardened_parser())
    body = root.find(f"{E}Body")
    field = next(e for e in body.iter("*") if e.text and e.text.strip())
    field.text = field.text + " (изменено)"
    return etree.tostring(root, encoding="utf-8")


def test_generated_request_is_about_the_target_size_and_russian():
    generated = generated_request(NOW)
    assert REQUEST_SIZE <= len(generated) < REQUEST_SIZE + 1024
    assert "должник" in generated.decode()
    root = parse_hardened(generated, hardened_parser())
    assert root.find(f"{E}Header").get("Id") == "header"
    assert root.find(f"{E}Body").get("Id") == "body"


def test_benchmark_request_is_the_schema_example_padded_and_still_valid():
    request, source = request_document(NOW)
    assert source == REQUEST_EXAMPLE
    assert REQUEST_SIZE <= len(request) < REQUEST_SIZE + 1024
    schema = etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "envelope.xsd")))
    parser = hardened_parser()
    assert schema.validate(parse_hardened(request, parser)), schema.error_log.last_error
    receipt = parse_hardened(receipt_document("unused", NOW), parser)
    assert schema.validate(receipt), schema.error_log.last_error


def test_both_paths_do_the_same_cryptographic_work():
    signxml_ops = count_ops(make_signxml_hop)
    raw_ops = count_ops(make_raw_hop)
    assert signxml_ops == raw_ops
    # Official + seal + receipt seal: each signed once and verified once.
    references = OFFICIAL_REFERENCES + 2 * SEAL_REFERENCES
    assert (raw_ops.ecdsa_sign, raw_ops.ecdsa_verify) == (3, 3)
    assert raw_ops.reference_digests == 2 * references
    assert raw_ops.certificate_digests == 6


def test_signxml_verifies_the_raw_floor_signatures():
    _signxml_verify_both(_raw_signed(REQUEST))


def test_raw_floor_verifies_signxml_signatures():
    _raw_verify_both(_signxml_signed(REQUEST))


def test_raw_floor_rejects_a_tampered_body():
    tampered = _tamper_body(_raw_signed(REQUEST))
    with pytest.raises(RawVerificationError, match="digest mismatch"):
        _raw_verify_both(tampered)
    with pytest.raises(InvalidDigest):
        _signxml_verify_both(tampered)


def test_raw_floor_refuses_a_repeated_id():
    root = parse_hardened(_raw_signed(REQUEST), hardened_parser())
    decoy = etree.SubElement(root.find(f"{E}Body"), f"{E}Decoy", Id="header")
    decoy.text = "x"
    with pytest.raises(RawVerificationError, match="occurs twice"):
        raw_verify(
            root,
            "Official",
            IDS.sender_official.certificate.public_key(),
            prepare_identity(IDS.sender_official).certificate_der,
            OFFICIAL_REFERENCES,
        )


@pytest.mark.parametrize("make_hop", [make_signxml_hop, make_raw_hop])
def test_each_baseline_measures_a_few_hops(make_hop):
    measure = hop_measurement("probe", make_hop, count=lambda: count_ops(make_hop))
    figures = measure(RunSettings(hops=3))
    assert figures.hops == 3 and len(figures.latencies_ms) == 3
    assert figures.hops_per_s > 0
    assert 0 < figures.p50_ms <= figures.p99_ms
    assert figures.cpu_ms_per_hop > 0
    assert figures.crypto_ops is not None and figures.crypto_ops.ecdsa_sign == 3


def test_a_worker_that_cannot_set_up_fails_the_run_instead_of_hanging():
    # ``dict`` is a picklable factory whose "hop" (an empty dict) cannot be called: the
    # worker's warm-up fails, as a gateway hop would whose database is unreachable.
    with pytest.raises(RuntimeError, match="failed to set up"):
        time_hops(dict, RunSettings(hops=2, workers=2))


def test_a_self_timed_measurement_lands_in_stores():
    reported = {"hops_per_s": 12.5, "p50_ms": 70.0, "p99_ms": 140.0}
    measure = reported_measurement("gateway hop", "sqlite", lambda hops: dict(reported))
    figures = measure(RunSettings(hops=5))
    registered = Registered("gateway sqlite", "store", measure, parallel=False)
    summary = json.loads(summary_json([(registered, figures)]))
    assert summary == {"baselines": {}, "stores": {"sqlite": reported}}
    assert "gateway hop" in table([figures])
    broken = reported_measurement("gateway hop", "sqlite", lambda hops: {"hops_per_s": 1.0})
    with pytest.raises(ValueError, match="p50_ms"):
        broken(RunSettings(hops=1))


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_table_has_a_row_per_measurement():
    rows = [Figures("a", "-", 1, 2, 1.0, (1.0, 3.0)), Figures("b", "sqlite", 2, 4, 2.0, (2.0,))]
    lines = table(rows).splitlines()
    assert lines[0].split()[:2] == ["measurement", "store"]
    assert lines[2].startswith("a") and lines[3].startswith("b")
    assert "sqlite" in lines[3]


def test_padded_example_reaches_the_size_and_keeps_the_kind(tmp_path):
    small = generated_request(NOW, size=2048)
    example = tmp_path / "cis-request.xml"
    example.write_bytes(small)
    padded = padded_example(example, size=REQUEST_SIZE)
    assert padded is not None and len(padded) >= REQUEST_SIZE
    root = parse_hardened(padded, hardened_parser())
    assert root.findtext(f"{E}Header/{E}Kind") == "Request"
    receipt = tmp_path / "receipt.xml"
    receipt.write_bytes(small.replace(b">Request<", b">Answer<"))
    assert padded_example(receipt) is None


def test_main_prints_the_table_then_the_json_line(capsys):
    assert run.main(["--hops", "2", "--workers", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(lines[-1])
    assert set(figures) == {"baselines", "stores"}
    assert set(figures["baselines"]) == {
        "signxml",
        "raw floor",
        "stack floor",
        "stack floor (postgresql)",
        "stack floor (offered 300/s)",
    }
    for entry in figures["baselines"].values():
        assert {"hops_per_s", "p50_ms", "p99_ms"} <= set(entry)
    assert figures["baselines"]["stack floor"]["receiver_documents_per_hop"] > 0
    assert any(line.startswith("measurement") for line in lines)


def test_script_runs_from_the_repository_root_with_a_pool():
    result = subprocess.run(
        [
            sys.executable,
            "benchmarks/run.py",
            "--hops",
            "4",
            "--workers",
            "2",
            "--only",
            "raw floor",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures["baselines"]) == {"raw floor", "raw floor (2 workers)"}


def test_xmlsec1_accepts_the_raw_floor_signatures(tmp_path):
    """An outside verifier agrees that the raw floor makes real XAdES signatures."""
    xmlsec1 = require_tool("xmlsec1", "xmlsec1")
    document = tmp_path / "signed.xml"
    document.write_bytes(_raw_signed(REQUEST))
    anchor = tmp_path / "ca.pem"
    anchor.write_bytes(IDS.ca.certificate.public_bytes(Encoding.PEM))
    id_attrs = []
    for element in ("Header", "Body", "SignedProperties", "KeyInfo"):
        id_attrs += ["--id-attr:Id", element]
    for index in (1, 2):  # the official, then the seal
        result = subprocess.run(
            [
                xmlsec1,
                "--verify",
                *id_attrs,
                "--trusted-pem",
                str(anchor),
                "--node-xpath",
                f"(//*[local-name()='Signature'])[{index}]",
                str(document),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "OK" in result.stderr.splitlines()
        assert "SignedInfo References (ok/all): " in result.stderr
