"""``gateway keys …``, ``gateway sign`` and ``gateway verify`` end to end, in-process."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from gateway.crypto.certificates import DEMO_LABEL, CertificateProfile, pem_bundle
from gateway.crypto.demo_ca import DemoCA
from gateway.main import main
from tests.crypto.helpers import PASSPHRASE, SENDER, envelope

CONFIG = """
[node]
body_id = "RU-FSSP"

[keys]
dir = "keys"
official = "ivanov"

[trust]
ca_file = "keys/demo-ca/ca.crt.pem"
crl_files = ["keys/demo-ca/crl.pem"]
"""


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GATEWAY_KEY_PASSPHRASE", PASSPHRASE)
    config = tmp_path / "node.toml"
    config.write_text(CONFIG, encoding="utf-8")
    return config


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_demo_node_from_nothing_to_a_verified_document(
    node: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = str(node)
    code, out, _ = run(capsys, "keys", "init-ca", "--config", c)
    assert code == 0 and DEMO_LABEL in out
    assert (
        DEMO_LABEL
        in x509.load_pem_x509_certificate(
            (node.parent / "keys/demo-ca/ca.crt.pem").read_bytes()
        ).subject.rfc4514_string()
    )
    assert run(capsys, "keys", "generate", "seal", "--config", c)[0] == 0
    code, out, _ = run(
        capsys,
        "keys",
        "generate",
        "official",
        "--config",
        c,
        "--name",
        "ivanov",
        "--person",
        "Иванов Иван",
        "--title",
        "Судебный пристав",
        "--algorithm",
        "ec-p384",
    )
    assert code == 0 and "EC P-384" in out
    assert run(capsys, "keys", "generate", "tls", "--config", c)[0] == 0
    assert (
        run(capsys, "keys", "generate", "encryption", "--config", c, "--algorithm", "rsa-3072")[0]
        == 0
    )
    code, out, err = run(capsys, "keys", "generate", "kek", "--config", c)
    assert code == 0, err

    code, out, _ = run(capsys, "keys", "list", "--config", c, "--json")
    listed = {(e["role"], e["name"]): e for e in json.loads(out)}
    assert set(listed) == {
        ("seal", ""),
        ("official", "ivanov"),
        ("tls", ""),
        ("encryption", ""),
        ("kek", ""),
        ("demo-ca", ""),
    }
    assert listed[("encryption", "")]["algorithm"] == "RSA-3072"
    assert (
        "title=" in listed[("official", "ivanov")]["subject"]
        or "2.5.4.12=" in listed[("official", "ivanov")]["subject"]
    )
    assert listed[("seal", "")]["days_to_expiry"] > 700
    tls = x509.load_pem_x509_certificate((node.parent / "keys/tls.crt.pem").read_bytes())
    san = tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    code, out, _ = run(capsys, "keys", "list", "--config", c)
    assert "days left" in out and "official ivanov" in out

    unsigned = node.parent / "unsigned.xml"
    unsigned.write_bytes(envelope())
    code, out, err = run(capsys, "sign", "--config", c, str(unsigned))
    assert code == 0, err
    signed_bytes = out.encode("utf-8")
    signed = node.parent / "signed.xml"
    signed.write_bytes(signed_bytes)
    code, out, _ = run(capsys, "verify", "--config", c, str(signed))
    assert code == 0 and out.startswith("TOTAL_PASSED")
    code, out, _ = run(capsys, "verify", "--config", c, str(signed), "--json")
    report = json.loads(out)
    assert report["indication"] == "TOTAL_PASSED" and len(report["signatures"]) == 2

    tampered = node.parent / "tampered.xml"
    tampered.write_bytes(signed_bytes.replace("Запрос".encode(), "Подлог".encode()))
    code, out, _ = run(capsys, "verify", "--config", c, str(tampered))
    assert code == 1 and "HASH_FAILURE" in out

    # Revoking the seal through the demo CA's CRL makes the same document fail.
    code, out, _ = run(capsys, "keys", "crl", "--config", c, "--revoke", "seal")
    assert code == 0 and "1 revoked" in out
    # One path with `keys revoke` (issue #19): the node stops signing with it too.
    assert "seal REVOKED" in out and "keyCompromise" in out
    code, _, err = run(capsys, "sign", "--config", c, str(unsigned))
    assert code != 0 and "revoked" in err
    code, out, _ = run(capsys, "verify", "--config", c, str(signed))
    assert code == 1 and "REVOKED" in out


def test_csr_and_import_for_a_national_ca(node: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = str(node)
    code, out, _ = run(capsys, "keys", "csr", "seal", "--config", c)
    assert code == 0
    csr = x509.load_pem_x509_csr((node.parent / "keys/seal.csr.pem").read_bytes())
    assert csr.is_signature_valid
    # `gateway keys csr seal > seal.csr`: stdout is the request itself, and openssl takes it.
    assert out.encode("ascii") == (node.parent / "keys/seal.csr.pem").read_bytes()
    (node.parent / "seal.csr").write_text(out, encoding="ascii")
    verified = subprocess.run(
        ["openssl", "req", "-in", str(node.parent / "seal.csr"), "-noout", "-verify"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    assert (
        csr.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_IDENTIFIER)[0].value == SENDER
    )
    # Stand-in for the national CA: certify the request.
    now = datetime.now(UTC)
    national = DemoCA.create(now=now, name="National CA")
    cert = national.issue_from_csr(csr, CertificateProfile(role="seal", body_id=SENDER), now=now)
    issued = node.parent / "issued.pem"
    issued.write_bytes(pem_bundle([cert, national.certificate]))
    code, out, err = run(capsys, "keys", "import", "seal", str(issued), "--config", c)
    assert code == 0, err
    code, out, _ = run(capsys, "keys", "list", "--config", c, "--json")
    (seal,) = [e for e in json.loads(out) if e["role"] == "seal"]
    assert seal["issuer"] == national.certificate.subject.rfc4514_string()
    # A certificate for another key is refused.
    other = national.issue(
        DemoCA.create(now=now).key.public_key(),
        CertificateProfile(role="seal", body_id=SENDER),
        now=now,
    )
    wrong = node.parent / "wrong.pem"
    wrong.write_bytes(pem_bundle([other]))
    code, _, err = run(capsys, "keys", "import", "seal", str(wrong), "--config", c)
    assert code == 2 and "another key" in err


def test_clear_errors(
    node: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    c = str(node)
    code, _, err = run(capsys, "keys", "generate", "official", "--config", c, "--name", "x")
    assert code == 2 and "--person" in err
    code, _, err = run(capsys, "sign", "--config", c, str(node))
    assert code == 2 and ("official" in err or "seal" in err)
    monkeypatch.delenv("GATEWAY_KEY_PASSPHRASE")
    code, _, err = run(capsys, "keys", "init-ca", "--config", c)
    assert code == 2 and "GATEWAY_KEY_PASSPHRASE" in err
