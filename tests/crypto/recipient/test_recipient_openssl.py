"""Interoperability with OpenSSL's ``cms`` command (OpenSSL 3.0+): another implementation reads
what we write, and we read what it writes, for every key type we support."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms

from gateway.crypto.recipient import (
    UnsupportedScheme,
    decrypt,
    encrypt_for,
    is_encrypted,
)
from tests.crypto.recipient.conftest import KINDS, Party
from tests.tooling import require_tool

DOCUMENT = (
    "<env:Envelope xmlns:env='urn:cis-exchange:envelope:1'><env:Body Id='body'>"
    "Конфиденциально (CIS Art. 16)</env:Body></env:Envelope>"
).encode()

KEYOPTS = {
    # What makes openssl use the schemes the gateway accepts (its defaults are SHA-1 KDF for
    # ECDH and PKCS#1 v1.5 for RSA, both refused).
    "ec-p256": ["-keyopt", "ecdh_kdf_md:sha256"],
    "ec-p384": ["-keyopt", "ecdh_kdf_md:sha384"],
    "rsa-3072": ["-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"],
    "other": ["-keyopt", "ecdh_kdf_md:sha256"],
}


@pytest.fixture(scope="module")
def openssl() -> str:
    path = require_tool("openssl", "openssl")
    version = subprocess.run([path, "version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.split()[1].split(".")[0])
    if major < 3:
        pytest.fail(f"OpenSSL 3.0 or later is needed for AES-GCM in CMS, found {version.stdout}")
    return path


def openssl_decrypt(openssl: str, cms: bytes, party: Party, tmp_path: Path) -> bytes:
    source = tmp_path / f"in-{party.name}.der"
    source.write_bytes(cms)
    command = [openssl, "cms", "-decrypt", "-binary", "-inform", "DER", "-in", str(source)]
    command += ["-inkey", str(party.key_pem), "-recip", str(party.cert_pem)]
    done = subprocess.run(
        command,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def openssl_encrypt(
    openssl: str,
    recipients: list[Party],
    tmp_path: Path,
    *,
    cipher: str = "-aes-256-gcm",
    keyopts: bool = True,
    extra: tuple[str, ...] = (),
) -> bytes:
    source = tmp_path / "document.xml"
    source.write_bytes(DOCUMENT)
    target = tmp_path / "openssl.der"
    command = [openssl, "cms", "-encrypt", "-binary", cipher, *extra]
    command += ["-in", str(source), "-outform", "DER", "-out", str(target)]
    for party in recipients:
        command += ["-recip", str(party.cert_pem)]
        if keyopts:
            command += KEYOPTS[party.name]
    done = subprocess.run(command, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return target.read_bytes()


def test_openssl_decrypts_what_we_encrypt(openssl: str, party: Party, tmp_path: Path) -> None:
    cms = encrypt_for(DOCUMENT, [party.certificate])
    assert openssl_decrypt(openssl, cms, party, tmp_path) == DOCUMENT


def test_openssl_decrypts_our_multi_recipient_cms(
    openssl: str, parties: dict[str, Party], tmp_path: Path
) -> None:
    recipients = [parties[kind] for kind in KINDS]
    cms = encrypt_for(DOCUMENT, [p.certificate for p in recipients])
    for party in recipients:
        assert openssl_decrypt(openssl, cms, party, tmp_path) == DOCUMENT


def test_we_decrypt_what_openssl_encrypts(openssl: str, party: Party, tmp_path: Path) -> None:
    cms = openssl_encrypt(openssl, [party], tmp_path)
    assert is_encrypted(cms)
    assert asn1_cms.ContentInfo.load(cms)["content_type"].native == ("authenticated_enveloped_data")
    assert decrypt(cms, party.key, party.certificate) == DOCUMENT


def test_we_decrypt_openssl_streamed_ber(openssl: str, party: Party, tmp_path: Path) -> None:
    # -stream writes indefinite-length BER, as a sender streaming a large document would.
    cms = openssl_encrypt(openssl, [party], tmp_path, extra=("-stream",))
    assert cms[1] == 0x80  # indefinite length: really BER
    assert is_encrypted(cms)
    assert decrypt(cms, party.key, party.certificate) == DOCUMENT


def test_we_decrypt_openssl_recipients_named_by_key_identifier(
    openssl: str, party: Party, tmp_path: Path
) -> None:
    cms = openssl_encrypt(openssl, [party], tmp_path, extra=("-keyid",))
    (info,) = asn1_cms.ContentInfo.load(cms)["content"]["recipient_infos"]
    rid = (
        info.chosen["rid"]
        if info.name == "ktri"
        else (info.chosen["recipient_encrypted_keys"][0]["rid"])
    )
    assert rid.name in {"subject_key_identifier", "r_key_id"}
    assert decrypt(cms, party.key, party.certificate) == DOCUMENT


def test_we_decrypt_openssl_multi_recipient(
    openssl: str, parties: dict[str, Party], tmp_path: Path
) -> None:
    recipients = [parties[kind] for kind in KINDS]
    cms = openssl_encrypt(openssl, recipients, tmp_path)
    for party in recipients:
        assert decrypt(cms, party.key, party.certificate) == DOCUMENT


@pytest.mark.parametrize(
    ("kind", "cipher", "reason"),
    [
        ("ec-p256", "-aes-256-gcm", "sha1kdf.*ecdh_kdf_md:sha256"),
        ("rsa-3072", "-aes-256-gcm", "PKCS#1 v1.5.*rsa_padding_mode:oaep"),
        ("ec-p256", "-aes-256-cbc", "EnvelopedData.*no integrity"),
    ],
    ids=["ecdh-sha1-kdf", "rsa-pkcs1v15", "enveloped-cbc"],
)
def test_openssl_defaults_we_refuse_are_named(
    openssl: str, parties: dict[str, Party], tmp_path: Path, kind: str, cipher: str, reason: str
) -> None:
    party = parties[kind]
    cms = openssl_encrypt(openssl, [party], tmp_path, cipher=cipher, keyopts=False)
    assert is_encrypted(cms)
    with pytest.raises(UnsupportedScheme, match=reason):
        decrypt(cms, party.key, party.certificate)
