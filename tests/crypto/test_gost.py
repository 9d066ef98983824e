"""GOST R 34.10-2012 in the XAdES profile, chains and CRLs, and interop with OpenSSL's engine.

OpenSSL's GOST engine (Debian ``libengine-gost-openssl``) is the independent reference: our
Streebog digests, our signatures over SignedInfo, and its keys and certificates in our chains.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from gateway.config import KeysSection
from gateway.crypto import algorithms, certificates, gost, gost_native
from gateway.crypto.algorithms import KeySpec, SignatureMethod, Suite
from gateway.crypto.certificates import CertificateProfile
from gateway.crypto.demo_ca import DemoCA
from gateway.crypto.keys import pkcs11
from gateway.crypto.keys.keystore import KeyStore
from gateway.crypto.report import Indication, SubIndication
from gateway.crypto.trust import TrustList
from gateway.crypto.xades import _sign_unchecked, sign_document, verify_document
from gateway.demo.pki import build_demo_pki
from gateway.xml.parsing import parse_untrusted
from tests.crypto.helpers import (
    NOW,
    PASSPHRASE,
    RECIPIENT,
    SENDER,
    VERIFY_AT,
    CryptoPKI,
    envelope,
)
from tests.tooling import softhsm_token

OPENSSL = shutil.which("openssl")
DS = "{http://www.w3.org/2000/09/xmldsig#}"
SPECS = [KeySpec.GOST_256, KeySpec.GOST_512]


def _openssl(*args: str, cwd: Path, data: bytes | None = None) -> subprocess.CompletedProcess[str]:
    assert OPENSSL, "openssl is part of the test environment (.ci/run installs it)"
    return subprocess.run(
        [OPENSSL, *args], cwd=cwd, input=None, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module", params=SPECS, ids=lambda s: s.value)
def gost_pki(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> CryptoPKI:
    root = tmp_path_factory.mktemp(f"pki-{request.param.value}")
    pki = build_demo_pki(
        root,
        [SENDER, RECIPIENT],
        now=NOW,
        passphrase=PASSPHRASE.encode(),
        spec=request.param,
        roles=("seal", "official"),
    )
    return CryptoPKI(pki=pki, root=root)


@pytest.fixture(scope="module")
def signed(gost_pki: CryptoPKI) -> bytes:
    store = gost_pki.store()
    return sign_document(envelope(), store.official(), store.seal(), NOW)


def test_streebog_matches_openssl_and_pure_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = envelope() * 40  # ~40 KB, several Streebog blocks and a partial one
    (tmp_path / "data").write_bytes(data)
    for bits in (256, 512):
        out = _openssl("dgst", "-engine", "gost", f"-md_gost12_{bits}", "data", cwd=tmp_path)
        expected = out.stdout.split("= ")[-1].strip()
        assert gost.streebog(data, bits).hex() == expected
        monkeypatch.setenv(gost_native.DISABLE_ENV, "0")
        assert gost.streebog(data, bits).hex() == expected
        monkeypatch.delenv(gost_native.DISABLE_ENV)
    assert gost_native.available(), "libengine-gost-openssl provides gostprov.so here"


@pytest.mark.parametrize("bits", [256, 512])
def test_native_and_pure_python_signatures_agree(
    bits: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The libcrypto path (OpenSSL's GOST engine) and gostcrypto verify each other's
    signatures, and both refuse a changed one."""
    assert gost_native.available(), "libengine-gost-openssl is installed here (.ci/run)"
    key = gost.GostPrivateKey.generate(bits)
    data = envelope()
    native = key.sign(data)
    monkeypatch.setenv(gost_native.DISABLE_ENV, "0")
    pure = key.sign(data)
    assert key.public_key().verify(native, data)
    forged = bytearray(native)
    forged[1] ^= 1
    assert not key.public_key().verify(bytes(forged), data)
    monkeypatch.delenv(gost_native.DISABLE_ENV)
    assert key.public_key().verify(pure, data)
    assert not key.public_key().verify(bytes(forged), data)
    assert not key.public_key().verify(pure, data + b" ")


def test_gost_round_trip_reports_the_suite(gost_pki: CryptoPKI, signed: bytes) -> None:
    verified = verify_document(signed, gost_pki.trust(), VERIFY_AT, expected_sender=SENDER)
    assert verified.passed, verified.report.signatures
    bits = gost_pki.store().seal().certificate
    size = gost.public_key_of(bits).bits
    method = SignatureMethod.GOST_2012_512 if size == 512 else SignatureMethod.GOST_2012_256
    for signature in verified.report.signatures:
        assert signature.signature_algorithm == method.value
        assert algorithms.suite_of(SignatureMethod(signature.signature_algorithm)) in (
            Suite.GOST_2012_256,
            Suite.GOST_2012_512,
        )
    root = etree.fromstring(signed)
    digests = {d.get("Algorithm") for d in root.iter(f"{DS}DigestMethod")}
    assert digests == {f"urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34112012-{size}"}


def test_signed_info_verifies_with_openssl(
    gost_pki: CryptoPKI, signed: bytes, tmp_path: Path
) -> None:
    """SignatureValue is s || r big-endian (RFC 4491 §2.2.2): exactly what ``openssl dgst
    -verify`` takes, no conversion; r || s (the ECDSA order of RFC 4050) does not verify."""
    root = etree.fromstring(signed)
    seal = gost_pki.store().seal()
    size = gost.public_key_of(seal.certificate).bits
    (tmp_path / "pub.pem").write_bytes(
        certificates.public_key_of(seal.certificate).public_bytes(serialization.Encoding.PEM)
    )
    official = gost_pki.store().official()
    (tmp_path / "official.pem").write_bytes(
        certificates.public_key_of(official.certificate).public_bytes(serialization.Encoding.PEM)
    )
    signatures = list(root.iter(f"{DS}Signature"))
    assert len(signatures) == 2
    for signature, pub in zip(signatures, ("official.pem", "pub.pem"), strict=True):
        signed_info = signature.find(f"{DS}SignedInfo")
        c14n = etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False)
        value = base64.b64decode(signature.findtext(f"{DS}SignatureValue") or "")
        (tmp_path / "si").write_bytes(c14n)
        (tmp_path / "sig").write_bytes(value)
        half = len(value) // 2
        (tmp_path / "rs").write_bytes(value[half:] + value[:half])
        args = ("dgst", "-engine", "gost", f"-md_gost12_{size}", "-verify", pub)
        assert "Verified OK" in _openssl(*args, "-signature", "sig", "si", cwd=tmp_path).stdout
        assert "Verified OK" not in _openssl(*args, "-signature", "rs", "si", cwd=tmp_path).stdout


def test_tampered_gost_document_fails(gost_pki: CryptoPKI, signed: bytes) -> None:
    tampered = signed.replace("Запрос".encode(), "Запрес".encode())
    report = verify_document(tampered, gost_pki.trust(), VERIFY_AT).report
    assert [s.sub_indication for s in report.signatures] == [SubIndication.HASH_FAILURE] * 2
    root = etree.fromstring(signed)
    value = list(root.iter(f"{DS}SignatureValue"))[-1]  # the seal's: nothing covers it
    raw = bytearray(base64.b64decode(value.text or ""))
    raw[5] ^= 1
    value.text = base64.b64encode(bytes(raw)).decode()
    report = verify_document(etree.tostring(root), gost_pki.trust(), VERIFY_AT).report
    assert report.signatures[0].sub_indication is SubIndication.SIG_CRYPTO_FAILURE


def test_expired_gost_certificate(gost_pki: CryptoPKI) -> None:
    seal = gost_pki.reissued(
        gost_pki.store().seal(),
        not_before=NOW - timedelta(days=400),
        not_after=NOW - timedelta(days=1),
    )
    doc = _sign_unchecked(parse_untrusted(envelope()), None, seal, NOW)
    report = verify_document(doc, gost_pki.trust(), VERIFY_AT, require_official=False).report
    assert report.signatures[0].sub_indication is SubIndication.EXPIRED


def test_revoked_gost_certificate_by_gost_crl(gost_pki: CryptoPKI, signed: bytes) -> None:
    ca = gost_pki.pki.ca
    seal = gost_pki.store().seal()
    saved = dict(ca.revoked)
    ca.revoke(seal.certificate, at=NOW - timedelta(hours=1))
    try:
        crl = ca.crl(now=NOW)
    finally:
        ca.revoked = saved
    assert gost.is_gost_signed(crl)
    assert gost.signature_verifies(crl, gost.public_key_of(ca.certificate))
    trust = TrustList([ca.certificate], [crl])
    report = verify_document(signed, trust, VERIFY_AT).report
    assert report.signatures[0].sub_indication is SubIndication.REVOKED
    # A CRL whose GOST signature does not verify is no proof: revocation unknown, fail closed.
    forged = bytearray(crl.public_bytes(serialization.Encoding.DER))
    forged[-3] ^= 1
    bad = TrustList([ca.certificate], [x509.load_der_x509_crl(bytes(forged))])
    report = verify_document(signed, bad, VERIFY_AT).report
    assert report.signatures[0].sub_indication is SubIndication.TRY_LATER


def test_gost_chain_needs_a_trusted_gost_ca(
    gost_pki: CryptoPKI, signed: bytes, test_pki: CryptoPKI
) -> None:
    report = verify_document(signed, test_pki.trust(), VERIFY_AT).report
    assert report.signatures[0].indication is Indication.INDETERMINATE
    assert report.signatures[0].sub_indication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND


def test_gost_key_file_is_openssl_readable(gost_pki: CryptoPKI, tmp_path: Path) -> None:
    store = gost_pki.store()
    key_file = store.key_path("seal")
    out = _openssl(
        "pkey",
        "-engine",
        "gost",
        "-in",
        str(key_file),
        "-passin",
        f"pass:{PASSPHRASE}",
        "-pubout",
        cwd=tmp_path,
    )
    ours = gost.load_pem_private_key(key_file.read_bytes(), PASSPHRASE.encode())
    theirs = gost.GostPublicKey.from_spki(
        base64.b64decode("".join(out.stdout.strip().splitlines()[1:-1]))
    )
    assert theirs == ours.public_key()


OPENSSL_CNF = """[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[seal]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,nonRepudiation
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[crl]
database = index.txt
default_md = md_gost12_256
default_crl_days = 7
"""
"""The commands of docs/keys-and-signatures.md, "Interop with OpenSSL's GOST engine"."""

OPENSSL_PASS = PASSPHRASE.replace(" ", "_")
"""The key store's passphrase, as one word for ``-passout pass:``."""

OPENSSL_PKI = (
    "genpkey -engine gost -algorithm gost2012_256 -pkeyopt paramset:A -out ca.key",
    "req -engine gost -new -x509 -key ca.key -md_gost12_256 -days 3650 -subj /O=GOST-CA/CN=GOST-CA"
    " -config gost.cnf -extensions ca -out ca.pem",
    "genpkey -engine gost -algorithm gost2012_256 -pkeyopt paramset:A -out seal.key",
    f"req -engine gost -new -key seal.key -md_gost12_256 -config gost.cnf"
    f" -subj /C=RU/O=Test/2.5.4.97={SENDER}/CN=seal -out seal.csr",
    "x509 -engine gost -req -in seal.csr -CA ca.pem -CAkey ca.key -md_gost12_256 -days 365"
    " -set_serial 7 -extfile gost.cnf -extensions seal -out seal.pem",
    f"pkcs8 -engine gost -topk8 -v2 aes-256-cbc -in seal.key -passout pass:{OPENSSL_PASS}"
    " -out seal.key.pem",
    "ca -engine gost -gencrl -keyfile ca.key -cert ca.pem -config gost.cnf -name crl -out crl.pem",
)


def test_openssl_made_ca_and_keys_are_accepted(tmp_path: Path) -> None:
    """A CA and a body's seal made with ``openssl req -engine gost``: the key store loads the
    key (encrypted by OpenSSL) as the body's seal, we sign with it, and the chain validates
    with the CA's GOST CRL from ``openssl ca``."""
    (tmp_path / "gost.cnf").write_text(OPENSSL_CNF)
    (tmp_path / "index.txt").write_text("")
    for command in OPENSSL_PKI:
        done = _openssl(*command.split(), cwd=tmp_path)
        assert done.returncode == 0, (command, done.stderr)
    ca_cert = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    seal_cert = x509.load_pem_x509_certificate((tmp_path / "seal.pem").read_bytes())
    assert gost.signature_verifies(seal_cert, gost.public_key_of(ca_cert))
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "seal.key.pem").write_bytes((tmp_path / "seal.key.pem").read_bytes())
    (keys / "seal.crt.pem").write_bytes(certificates.pem_bundle([seal_cert, ca_cert]))
    store = KeyStore(
        KeysSection(dir=keys),
        SENDER,
        environ={"GATEWAY_KEY_PASSPHRASE": OPENSSL_PASS},
    )
    at = seal_cert.not_valid_before_utc + timedelta(minutes=1)
    seal = store.seal(at=at)
    assert isinstance(seal.private_key, gost.GostPrivateKey)
    assert seal.algorithm == "GOST 2012-256"
    doc = sign_document(envelope(), None, seal, at)
    crl = x509.load_pem_x509_crl((tmp_path / "crl.pem").read_bytes())
    assert gost.is_gost_signed(crl)
    trust = TrustList([ca_cert], [crl])
    verified = verify_document(doc, trust, at + timedelta(minutes=1), require_official=False)
    assert verified.passed, verified.report.signatures


def test_gost_path_needs_a_ca_to_issue(gost_pki: CryptoPKI) -> None:
    """A certificate issued by the seal (a valid GOST signature, but cA=FALSE) has no path;
    nor has one whose issuer's signature does not verify."""
    seal = gost_pki.store().seal()
    rogue_ca = DemoCA(key=seal.private_key, certificate=seal.certificate)
    profile = CertificateProfile(role="seal", body_id=SENDER, common_name="rogue")
    rogue = rogue_ca.issue(
        algorithms.generate_private_key(
            KeySpec.GOST_256
            if gost.public_key_of(seal.certificate).bits == 256
            else KeySpec.GOST_512
        ).public_key(),
        profile,
        now=NOW,
    )
    trust = gost_pki.trust()
    result = trust.validate(rogue, [seal.certificate], moment=NOW, at=VERIFY_AT)
    assert result.sub_indication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND
    assert "not a CA" in result.message
    forged = bytearray(seal.certificate.public_bytes(serialization.Encoding.DER))
    forged[-5] ^= 1
    bad = x509.load_der_x509_certificate(bytes(forged))
    result = trust.validate(bad, [], moment=NOW, at=VERIFY_AT)
    assert result.sub_indication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND
    assert trust.validate(seal.certificate, [], moment=NOW, at=VERIFY_AT).passed


def test_token_gost_key_decoding_and_mechanisms() -> None:
    """What a GOST token gives (CKA_VALUE little-endian X || Y, CKA_GOSTR3410_PARAMS) reads as
    the key the certificate carries; the mechanisms are TC26's vendor values."""
    for bits in (256, 512):
        public = gost.GostPrivateKey.generate(bits).public_key()
        size = bits // 8
        value = public.point[:size][::-1] + public.point[size:][::-1]
        params = core.ObjectIdentifier(public.paramset).dump()
        assert pkcs11.gost_public_key(value, params) == public
    assert pkcs11.GOST_SIGN_MECHANISMS == {256: 0xD4321008, 512: 0xD4321009}


def test_softhsm_has_no_gost_mechanism_and_says_so() -> None:
    """Debian's SoftHSM2 has no GOST mechanism (not even GOST 2001): the token path cannot be
    exercised here. The gateway notices and refuses clearly instead of failing inside."""
    module, label, pin = softhsm_token("gw-spare-2")
    token = pkcs11.TokenSession.open(Path(module), label, pin)
    assert not token.supports_gost(256) and not token.supports_gost(512)
    with pytest.raises(pkcs11.TokenError, match="vendor's tool"):
        token.generate("seal-gost", KeySpec.GOST_256)


def test_gost_certificate_request_for_a_national_ca(gost_pki: CryptoPKI, tmp_path: Path) -> None:
    """`gateway keys csr` for a GOST key: a PKCS#10 request self-signed with GOST, which
    OpenSSL verifies and the demo CA certifies."""
    key = gost_pki.store().seal().private_key
    profile = CertificateProfile(role="seal", body_id=SENDER, organization="Test")
    csr = certificates.build_csr(key, profile)
    assert gost.is_gost_signed(csr)
    assert gost.csr_public_key(csr) == key.public_key()
    (tmp_path / "seal.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    checked = _openssl(
        "req", "-engine", "gost", "-in", "seal.csr", "-verify", "-noout", cwd=tmp_path
    )
    assert "verify OK" in (checked.stdout + checked.stderr), checked.stderr
    cert = gost_pki.pki.ca.issue_from_csr(csr, profile, now=NOW)
    assert certificates.public_key_of(cert) == key.public_key()
    forged = bytearray(csr.public_bytes(serialization.Encoding.DER))
    forged[-4] ^= 1
    with pytest.raises(ValueError, match="does not verify"):
        gost_pki.pki.ca.issue_from_csr(x509.load_der_x509_csr(bytes(forged)), profile, now=NOW)
