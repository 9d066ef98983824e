"""The key store: loading once, and errors that name the key and what to do."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.config import KeysSection
from gateway.crypto import algorithms
from gateway.crypto.demo_ca import END_ENTITY_VALIDITY
from gateway.crypto.keys.keystore import (
    BadPassphrase,
    KeyNotFound,
    KeyRole,
    KeyStore,
    PassphraseMissing,
    WrongRole,
    key_stem,
)
from tests.crypto.helpers import NOW, PASSPHRASE, RECIPIENT, SENDER, CryptoPKI


def copy_of(test_pki: CryptoPKI, tmp_path: Path, body: str = SENDER) -> Path:
    target = tmp_path / "keys"
    shutil.copytree(test_pki.pki.body_dirs[body], target)
    return target


def store_for(directory: Path, environ: dict[str, str] | None = None, **keys: object) -> KeyStore:
    env = {"GATEWAY_KEY_PASSPHRASE": PASSPHRASE} if environ is None else environ
    return KeyStore(KeysSection(dir=directory, **keys), SENDER, environ=env)  # type: ignore[arg-type]


def test_keys_load_once_and_expose_what_signers_need(test_pki: CryptoPKI) -> None:
    store = test_pki.store()
    seal = store.seal()
    assert store.seal() is seal  # cached: loading an RSA key costs ~40 ms
    assert seal.role is KeyRole.SEAL and seal.body_id == SENDER
    assert seal.algorithm == "EC P-256"
    assert seal.chain[0].subject == test_pki.pki.ca.certificate.subject
    assert not seal.on_token and seal.location.endswith("seal.key.pem")
    official = store.official()
    assert official.name == "chief" and official.role is KeyRole.OFFICIAL
    signature = seal.sign(b"receipt")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    seal.certificate.public_key().verify(signature, b"receipt", ec.ECDSA(hashes.SHA256()))
    tls = store.tls()
    assert tls.role is KeyRole.TLS


def test_bad_passphrase_names_the_file_and_the_variable(
    test_pki: CryptoPKI, tmp_path: Path
) -> None:
    store = store_for(copy_of(test_pki, tmp_path), {"GATEWAY_KEY_PASSPHRASE": "wrong"})
    with pytest.raises(BadPassphrase) as caught:
        store.seal()
    message = str(caught.value)
    assert "seal.key.pem" in message and "GATEWAY_KEY_PASSPHRASE" in message


def test_missing_passphrase_variable(test_pki: CryptoPKI, tmp_path: Path) -> None:
    store = store_for(copy_of(test_pki, tmp_path), {}, passphrase_env="MY_PASS")
    with pytest.raises(PassphraseMissing, match=r"MY_PASS.*passphrase_file"):
        store.seal()


def test_passphrase_from_a_file(test_pki: CryptoPKI, tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n", encoding="utf-8")
    store = store_for(copy_of(test_pki, tmp_path), {}, passphrase_file=secret)
    assert store.seal().body_id == SENDER
    missing = store_for(copy_of(test_pki, tmp_path / "b"), {}, passphrase_file=tmp_path / "none")
    with pytest.raises(PassphraseMissing, match="does not exist"):
        missing.seal()


def test_missing_key_and_missing_certificate(test_pki: CryptoPKI, tmp_path: Path) -> None:
    directory = copy_of(test_pki, tmp_path)
    (directory / "seal.key.pem").unlink()
    store = store_for(directory)
    with pytest.raises(KeyNotFound, match=r"seal.key.pem does not exist.*keys generate seal"):
        store.seal()
    (directory / "official-chief.crt.pem").unlink()
    with pytest.raises(KeyNotFound, match="no certificate"):
        store.official("chief")
    with pytest.raises(KeyNotFound, match=r"\[keys\] official"):
        store.official()


def test_wrong_role(test_pki: CryptoPKI, tmp_path: Path) -> None:
    directory = copy_of(test_pki, tmp_path)
    store = store_for(directory)
    with pytest.raises(WrongRole, match="tls key cannot sign documents"):
        store.signing_key("tls")
    # A seal certificate filed as an official's.
    shutil.copy(directory / "seal.key.pem", directory / "official-x.key.pem")
    shutil.copy(directory / "seal.crt.pem", directory / "official-x.crt.pem")
    with pytest.raises(WrongRole, match="not an official's certificate"):
        store.official("x")
    # A certificate for another key.
    shutil.copy(directory / "official-chief.crt.pem", directory / "seal.crt.pem")
    with pytest.raises(WrongRole, match="issued for another key"):
        store.seal()


def test_keys_of_another_body(test_pki: CryptoPKI) -> None:
    store = KeyStore(
        KeysSection(dir=test_pki.pki.body_dirs[RECIPIENT]),
        SENDER,
        environ={"GATEWAY_KEY_PASSPHRASE": PASSPHRASE},
    )
    with pytest.raises(WrongRole, match="belongs to body 'KZ-MJ'"):
        store.seal()


def test_official_names_are_checked() -> None:
    assert key_stem("official", "ivanov") == "official-ivanov"
    with pytest.raises(Exception, match="lower-case"):
        key_stem("official", "../etc")


def test_listing(test_pki: CryptoPKI) -> None:
    entries = {(e.role, e.name): e for e in test_pki.store().entries()}
    assert set(entries) == {("seal", ""), ("official", "chief"), ("tls", ""), ("encryption", "")}
    seal = entries[("seal", "")]
    assert seal.algorithm == "EC P-256"
    assert "2.5.4.97=RU-FSSP" in seal.subject
    assert seal.days_to_expiry(NOW) == END_ENTITY_VALIDITY.days
    assert seal.to_json(NOW)["location"].endswith("seal.key.pem")
    # The file stem, what revoking a generation remotely asks to be typed.
    assert (seal.stem, entries[("official", "chief")].stem) == ("seal", "official-chief")


def test_weak_keys_are_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    with pytest.raises(algorithms.WeakAlgorithm, match="2048"):
        short = rsa.generate_private_key(65537, 1024)  # noqa: S505 - the point of the test
        algorithms.check_public_key(short.public_key())
    with pytest.raises(algorithms.WeakAlgorithm, match="3072"):
        algorithms.check_public_key(
            rsa.generate_private_key(65537, 2048).public_key(), for_signing=True
        )
    with pytest.raises(algorithms.WeakAlgorithm, match="P-256 or P-384"):
        algorithms.check_public_key(ec.generate_private_key(ec.SECP256K1()).public_key())
    with pytest.raises(algorithms.WeakAlgorithm, match="SHA-1"):
        algorithms.check_digest("http://www.w3.org/2000/09/xmldsig#sha1")
    with pytest.raises(algorithms.WeakAlgorithm, match="MD5"):
        algorithms.check_signature_method("http://www.w3.org/2001/04/xmldsig-more#rsa-md5")
