"""Keys on a PKCS#11 token (SoftHSM2): the same XAdES round trip, and pyHanko's signer."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.config import KeysSection
from gateway.crypto.algorithms import KeySpec
from gateway.crypto.certificates import CertificateProfile, pem_bundle
from gateway.crypto.keys.keystore import KeyStore, KeyStoreError
from gateway.crypto.xades import sign_document, verify_document
from tests.crypto.helpers import NOW, PASSPHRASE, SENDER, VERIFY_AT, CryptoPKI, envelope
from tests.tooling import SOFTHSM_PIN, require_file, require_tool, softhsm_token

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = SOFTHSM_PIN


@dataclass(frozen=True)
class Token:
    label: str
    keys_dir: Path


@pytest.fixture(scope="module")
def token(test_pki: CryptoPKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Token]:
    require_file(MODULE, "softhsm2")
    require_tool("softhsm2-util", "softhsm2")
    root = tmp_path_factory.mktemp("softhsm")
    _, label, _ = softhsm_token("gw-keys")
    keys_dir = root / "keys"
    shutil.copytree(test_pki.pki.body_dirs[SENDER], keys_dir)
    for stem in ("seal", "official-chief"):
        (keys_dir / f"{stem}.key.pem").unlink()  # these now live on the token
    yield Token(label, keys_dir)


def token_store(token: Token, pin: str = PIN) -> KeyStore:
    section = KeysSection(
        dir=token.keys_dir,
        official="chief",
        pkcs11_module=Path(MODULE),
        pkcs11_token_label=token.label,
    )
    return KeyStore(
        section, SENDER, environ={"GATEWAY_PKCS11_PIN": pin, "GATEWAY_KEY_PASSPHRASE": PASSPHRASE}
    )


@pytest.fixture(scope="module")
def token_keys(token: Token, test_pki: CryptoPKI) -> KeyStore:
    """Generate the seal (EC P-256) and import the official's RSA-3072 key on the token."""
    store = token_store(token)
    session = store.token()
    seal = session.generate("seal", KeySpec.EC_P256)
    # RSA generation on SoftHSM takes seconds: import a software-made key instead, which
    # exercises the same signing path (RSA PKCS#1 v1.5 on the token).
    from pkcs11 import Attribute
    from pkcs11.util.rsa import decode_rsa_private_key

    software = rsa.generate_private_key(65537, 3072)
    der = software.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    attrs = decode_rsa_private_key(der)
    attrs.update(
        {
            Attribute.LABEL: "official-chief",
            Attribute.TOKEN: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
        }
    )
    from pkcs11 import KeyType, ObjectClass
    from pkcs11.util.rsa import encode_rsa_public_key  # noqa: F401 - documents the pair

    session.session.create_object(attrs)
    public_attrs = {
        Attribute.CLASS: ObjectClass.PUBLIC_KEY,
        Attribute.KEY_TYPE: KeyType.RSA,
        Attribute.LABEL: "official-chief",
        Attribute.TOKEN: True,
        Attribute.MODULUS: attrs[Attribute.MODULUS],
        Attribute.PUBLIC_EXPONENT: attrs[Attribute.PUBLIC_EXPONENT],
        Attribute.VERIFY: True,
    }
    session.session.create_object(public_attrs)
    official = session.private_key("official-chief")
    ca = test_pki.pki.ca
    for stem, key, profile in (
        ("seal", seal, CertificateProfile(role="seal", body_id=SENDER, demo=True)),
        (
            "official-chief",
            official,
            CertificateProfile(
                role="official",
                body_id=SENDER,
                common_name="Петров Пётр",
                title="Пристав",
                demo=True,
            ),
        ),
    ):
        cert = ca.issue(key.public_key(), profile, now=NOW)
        (token.keys_dir / f"{stem}.crt.pem").write_bytes(pem_bundle([cert, ca.certificate]))
    return token_store(token)


def test_sign_and_verify_with_token_keys(token_keys: KeyStore, test_pki: CryptoPKI) -> None:
    seal, official = token_keys.seal(), token_keys.official()
    assert seal.on_token and seal.location.startswith("pkcs11:")
    assert official.algorithm == "RSA-3072"
    signed = sign_document(envelope(), official, seal, NOW)
    verified = verify_document(signed, test_pki.trust(), VERIFY_AT, expected_sender=SENDER)
    assert verified.passed, verified.report.summary()
    assert verified.report.signatures[1].signature_algorithm.endswith("rsa-sha256")


def test_token_rsa_pss_and_raw_signing(token_keys: KeyStore) -> None:
    official = token_keys.official()
    data = b"receipt"
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    signature = official.private_key.sign(data, pss, hashes.SHA256())
    official.certificate.public_key().verify(signature, data, pss, hashes.SHA256())
    seal = token_keys.seal()
    from cryptography.hazmat.primitives.asymmetric import ec

    seal.certificate.public_key().verify(seal.sign(data), data, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(TypeError):
        seal.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def test_pdf_signer_on_token_is_pyhankos_pkcs11_signer(token_keys: KeyStore) -> None:
    from pyhanko.sign.pkcs11 import PKCS11Signer

    signer = token_keys.seal().pdf_signer()
    try:
        assert isinstance(signer, PKCS11Signer)
        assert signer.signing_cert.dump() == token_keys.seal().certificate.public_bytes(
            serialization.Encoding.DER
        )
        assert signer.pkcs11_session is not token_keys.token().session  # its own session
    finally:
        signer.pkcs11_session.close()


def test_missing_token_key_and_wrong_pin(token: Token, token_keys: KeyStore) -> None:
    store = token_store(token)
    with pytest.raises(KeyStoreError, match="encryption"):
        (token.keys_dir / "encryption.key.pem").rename(token.keys_dir / "enc.bak")
        try:
            store.encryption()
        finally:
            (token.keys_dir / "enc.bak").rename(token.keys_dir / "encryption.key.pem")
    token_keys.close()  # log out: the next login is checked again
    with pytest.raises(KeyStoreError, match="wrong PIN"):
        token_store(token, pin="0000").seal()
    assert token_keys.seal().on_token  # logs in again with the right PIN


def test_the_pin_from_a_file_or_a_systemd_credential(
    token: Token, token_keys: KeyStore, tmp_path: Path
) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "pkcs11-pin").write_text(PIN)
    section = KeysSection(
        dir=token.keys_dir,
        official="chief",
        pkcs11_module=Path(MODULE),
        pkcs11_token_label=token.label,
    )
    wrong = {"GATEWAY_PKCS11_PIN": "0000", "GATEWAY_KEY_PASSPHRASE": PASSPHRASE}
    from_file = dataclasses.replace(section, pkcs11_pin_file=pin_file)
    from_credential = {**wrong, "CREDENTIALS_DIRECTORY": str(credentials)}
    for store in (
        KeyStore(from_file, SENDER, environ=wrong),
        KeyStore(section, SENDER, environ=from_credential),
    ):
        try:
            assert store.seal().on_token  # logged in: the wrong variable was not used
        finally:
            store.close()


def test_cli_generates_on_the_token(
    token: Token,
    token_keys: KeyStore,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gateway.main import main

    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    config = tmp_path / "node.toml"
    config.write_text(
        f'[node]\nbody_id = "{SENDER}"\n\n[keys]\ndir = "keys"\npkcs11_module = "{MODULE}"\n'
        f'pkcs11_token_label = "{token.label}"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("GATEWAY_PKCS11_PIN", PIN)
    monkeypatch.setenv("GATEWAY_KEY_PASSPHRASE", PASSPHRASE)
    # No demo CA: the key is made on the token and a request is written for a national CA.
    assert main(["keys", "generate", "encryption", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"pkcs11:{token.label}/encryption" in out and "encryption.csr.pem" in out
    assert main(["keys", "list", "--config", str(config), "--json"]) == 0
    import json

    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["role"] == "encryption"
    assert entry["location"] == f"pkcs11:{token.label}/encryption"
    assert "awaiting import" in entry["subject"]


def test_token_key_signs_a_pdf_that_validates(token_keys: KeyStore) -> None:
    from datetime import UTC, datetime

    from gateway.crypto import pades
    from gateway.crypto.demo_ca import DemoCA
    from gateway.crypto.keys.keystore import SigningKey
    from tests.crypto.test_pdf_signer_seam import _pdf

    # pyHanko signs with the clock's time: certify the token's seal key at the clock's time.
    now = datetime.now(UTC)
    ca = DemoCA.create(now=now)
    seal = token_keys.seal()
    cert = ca.issue(
        seal.private_key.public_key(), CertificateProfile(role="seal", body_id=SENDER), now=now
    )
    key = SigningKey(
        role=seal.role,
        name="",
        certificate=cert,
        chain=(ca.certificate,),
        private_key=seal.private_key,
        location=seal.location,
    )
    signer = key.pdf_signer()
    try:
        signed = pades.sign_pdf(_pdf(), signer, reason="seal", location=SENDER)
    finally:
        signer.pkcs11_session.close()
    (report,) = pades.verify_pdf(
        signed, [ca.certificate], datetime.now(UTC), crls=[ca.crl(now=now)]
    )
    assert report.passed, report.summary()
