"""Envelope encryption without a database: KEK files, seal/open, rings, debtor tags, PKCS#11."""

from __future__ import annotations

import json
import secrets
import stat
from pathlib import Path

import pytest

from gateway.crypto import at_rest
from gateway.crypto.at_rest import (
    DecryptionFailed,
    KekFileError,
    KeyEncryptionKey,
    UnknownKek,
    open_payload,
    payload_aad,
    seal_payload,
    search_tag,
)
from gateway.crypto.keys import kek as keks
from gateway.crypto.keys.kek import (
    FileKek,
    KekRing,
    TokenKek,
    generate_file_kek,
    generate_token_kek,
    load_file_kek,
)
from gateway.crypto.keys.pkcs11 import TokenError, TokenSession
from tests.tooling import softhsm_token as prepared_token

FAST = keks.SCRYPT_MIN_LOG2_N  # the cheapest scrypt the loader accepts keeps tests quick
PASS = b"correct horse battery staple"


def _kek() -> FileKek:
    return FileKek(f"kek-{secrets.token_hex(4)}", secrets.token_bytes(32))


def test_file_kek_round_trip_and_file_shape(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    key_id = generate_file_kek(path, PASS, scrypt_log2_n=FAST)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["kek.json"]  # no temporary file left
    doc = json.loads(path.read_text())
    assert doc["format"] == "gateway-kek" and doc["version"] == 1 and doc["key_id"] == key_id
    kek = load_file_kek(path, PASS)
    assert isinstance(kek, KeyEncryptionKey)
    assert kek.key_id == key_id
    sealed = seal_payload(b"secret", kek, b"aad")
    again = load_file_kek(path, PASS)  # the same key comes back from the file
    assert open_payload(sealed, again, b"aad") == b"secret"
    assert "key" not in repr(kek).lower().replace("key_id", "")


def _peak_rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def test_a_default_cost_kek_costs_the_process_no_scrypt_memory(tmp_path: Path) -> None:
    """At the default cost (N = 2**17: 128 MiB) scrypt runs in a helper process, so unlocking
    the KEK adds nothing to the node's peak resident memory (it made the ~270 MB start-up peak
    of a node that serves with ~150 MB); the key it derives is the in-process one."""
    path = tmp_path / "kek.json"
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    before = _peak_rss_mib()
    key_id = generate_file_kek(path, PASS)
    kek = load_file_kek(path, PASS)
    grown = _peak_rss_mib() - before
    assert grown < 32, f"unlocking a default-cost KEK raised the peak RSS by {grown:.0f} MiB"
    assert json.loads(path.read_text())["kdf"]["log2_n"] == keks.SCRYPT_LOG2_N
    assert kek.key_id == key_id
    salt = secrets.token_bytes(16)
    helper = keks._scrypt_in_helper(PASS, salt, FAST)
    assert helper == keks._passphrase_key(PASS, salt, FAST)  # FAST runs in process
    with pytest.raises(KekFileError, match="wrong passphrase"):
        load_file_kek(path, b"not it")


def test_file_kek_refuses_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    generate_file_kek(path, PASS, scrypt_log2_n=FAST)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        generate_file_kek(path, PASS, scrypt_log2_n=FAST)
    assert path.read_bytes() == before


def test_file_kek_wrong_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    generate_file_kek(path, PASS, scrypt_log2_n=FAST)
    with pytest.raises(KekFileError, match="wrong passphrase"):
        load_file_kek(path, b"not it")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("key_id", "kek-forged", "wrong passphrase, or the file was altered"),
        ("kdf", {"name": "scrypt", "log2_n": 10, "r": 8, "p": 1}, "kdf"),
        ("kdf", {"name": "scrypt", "log2_n": 30, "r": 8, "p": 1}, "kdf"),
        ("version", 2, "version"),
        ("format", "other", "format"),
        ("nonce", "!!!", "base64"),
        ("cipher", "AES-128-CBC", "cipher"),
    ],
)
def test_file_kek_tampered_file_refused(tmp_path: Path, field: str, value, message: str) -> None:
    path = tmp_path / "kek.json"
    generate_file_kek(path, PASS, scrypt_log2_n=FAST)
    doc = json.loads(path.read_text())
    doc[field] = value
    path.write_text(json.dumps(doc))
    with pytest.raises(KekFileError, match=message):
        load_file_kek(path, PASS)


def test_file_kek_not_json_or_huge(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    path.write_bytes(b"\x00garbage")
    with pytest.raises(KekFileError, match="not JSON"):
        load_file_kek(path, PASS)
    path.write_bytes(b" " * (keks.KEK_FILE_MAX_BYTES + 1))
    with pytest.raises(KekFileError, match="too large"):
        load_file_kek(path, PASS)
    with pytest.raises(KekFileError, match="cannot read"):
        load_file_kek(tmp_path / "missing.json", PASS)


def test_seal_open_and_ciphertext_hides_plaintext() -> None:
    kek = _kek()
    plaintext = "Иванов Иван 1980-01-01".encode()
    sealed = seal_payload(plaintext, kek, payload_aad("m-1"))
    assert plaintext not in sealed.ciphertext and b"1980" not in sealed.ciphertext
    assert sealed.kek_id == kek.key_id
    assert len(sealed.wrapped_dek) == at_rest.WRAPPED_KEY_BYTES
    assert open_payload(sealed, kek, payload_aad("m-1")) == plaintext
    # Fresh data key and nonce each time: equal plaintexts do not look equal at rest.
    other = seal_payload(plaintext, kek, payload_aad("m-1"))
    assert other.ciphertext != sealed.ciphertext and other.wrapped_dek != sealed.wrapped_dek


def test_tampering_is_rejected() -> None:
    kek = _kek()
    sealed = seal_payload(b"payload bytes", kek, payload_aad("m-1"))
    flipped = bytearray(sealed.ciphertext)
    flipped[3] ^= 0x01
    cases = [
        (
            at_rest.SealedPayload(bytes(flipped), sealed.nonce, sealed.wrapped_dek, sealed.kek_id),
            "m-1",
        ),
        (
            at_rest.SealedPayload(sealed.ciphertext, bytes(12), sealed.wrapped_dek, sealed.kek_id),
            "m-1",
        ),
        (sealed, "m-2"),  # the same ciphertext presented as another message's
    ]
    for tampered, message_id in cases:
        with pytest.raises(DecryptionFailed, match="failed authentication"):
            open_payload(tampered, kek, payload_aad(message_id))
    wrapped = bytearray(sealed.wrapped_dek)
    wrapped[0] ^= 0x80
    with pytest.raises(DecryptionFailed, match="integrity"):
        open_payload(
            at_rest.SealedPayload(sealed.ciphertext, sealed.nonce, bytes(wrapped), sealed.kek_id),
            kek,
            payload_aad("m-1"),
        )
    assert payload_aad("m-1") != payload_aad("m-1", "attachment:0")


def test_wrong_kek_and_ring() -> None:
    old, new = _kek(), _kek()
    sealed = seal_payload(b"x", old, b"aad")
    with pytest.raises(UnknownKek, match=old.key_id):
        open_payload(sealed, KekRing.single(new), b"aad")
    # A KEK with the right id but the wrong key fails integrity, not silently.
    impostor = FileKek(old.key_id, secrets.token_bytes(32))
    with pytest.raises(DecryptionFailed):
        open_payload(sealed, impostor, b"aad")
    ring = KekRing([old, new], active_id=new.key_id)
    assert open_payload(sealed, ring, b"aad") == b"x"
    assert seal_payload(b"y", ring, b"aad").kek_id == new.key_id
    assert ring.key_ids == {old.key_id, new.key_id}
    with pytest.raises(at_rest.AtRestError, match="not among"):
        KekRing([old], active_id=new.key_id)
    with pytest.raises(at_rest.AtRestError, match="twice"):
        KekRing([old, old], active_id=old.key_id)


def test_bad_key_ids_refused() -> None:
    for bad in ("", "has space", "x" * 65, "kek/../../etc"):
        with pytest.raises(at_rest.AtRestError):
            FileKek(bad, secrets.token_bytes(32))


def test_search_tags_normalise_and_depend_on_key_and_field() -> None:
    keys = at_rest.search_keys(secrets.token_bytes(32))
    tag = search_tag(keys.tag, "debtor", "Семёнов  Пётр-Иванович")
    assert tag == search_tag(keys.tag, "debtor", "СЕМЕНОВ Петр Иванович ")
    assert tag != search_tag(keys.tag, "debtor", "Семенов Петр")
    assert tag != search_tag(
        at_rest.search_keys(secrets.token_bytes(32)).tag, "debtor", "Семенов Петр Иванович"
    )
    assert "семенов".encode() not in tag and len(tag) == 32
    case = search_tag(keys.tag, "case", "184512/26/77039-ИП")
    assert case == search_tag(keys.tag, "case", "№ 184512/26/77039 – ип")
    assert case != search_tag(keys.tag, "debtor", "184512/26/77039-ИП")
    assert keys.tag != keys.display
    with pytest.raises(at_rest.AtRestError, match="empty"):
        search_tag(keys.tag, "debtor", " -- ")


@pytest.fixture
def softhsm_token() -> tuple[str, str, str]:
    return prepared_token("gw-kek")


def test_token_kek_on_softhsm(softhsm_token: tuple[str, str, str]) -> None:
    module, label, pin = softhsm_token
    token = TokenSession.open(Path(module), label, pin)
    key_id = generate_token_kek(token, f"kek-hsm-{secrets.token_hex(4)}")
    kek = TokenKek(token, key_id)
    assert isinstance(kek, KeyEncryptionKey)
    sealed = seal_payload(b"on the token", kek, payload_aad("m-1"))
    assert sealed.kek_id == key_id
    assert open_payload(sealed, kek, payload_aad("m-1")) == b"on the token"
    bad = bytearray(sealed.wrapped_dek)
    bad[5] ^= 1
    with pytest.raises(DecryptionFailed):
        open_payload(
            at_rest.SealedPayload(sealed.ciphertext, sealed.nonce, bytes(bad), sealed.kek_id),
            kek,
            payload_aad("m-1"),
        )
    # Mixed ring: a file KEK's rows re-wrapped under the token and opened again.
    file_kek = _kek()
    old = seal_payload(b"file-wrapped", file_kek, b"a")
    ring = KekRing([file_kek, kek], active_id=kek.key_id)
    dek = at_rest.unwrap_data_key(at_rest.WrappedKey(old.kek_id, old.wrapped_dek), ring)
    rewrapped = at_rest.wrap_data_key(dek, ring)
    assert rewrapped.kek_id == kek.key_id
    moved = at_rest.SealedPayload(old.ciphertext, old.nonce, rewrapped.blob, rewrapped.kek_id)
    assert open_payload(moved, KekRing.single(kek), b"a") == b"file-wrapped"
    with pytest.raises(at_rest.AtRestError, match="exactly one AES key"):
        TokenKek(token, "no-such-key")
    with pytest.raises(at_rest.AtRestError, match="already holds"):
        generate_token_kek(token, key_id)


def test_token_kek_wrong_token_is_a_clear_error(softhsm_token: tuple[str, str, str]) -> None:
    module, _, pin = softhsm_token
    with pytest.raises(TokenError, match="no PKCS#11 token labelled"):
        TokenSession.open(Path(module), "no-such-token", pin)
