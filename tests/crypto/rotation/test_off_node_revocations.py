"""`gateway audit verify-export` away from the node, with the seal CA's CRL (`--ca`, `--crl`):
the standard record any auditor's stack reads says which seal certificates were revoked, when
and why. A checkpoint dated after its seal's revocation is refused; one of a seal revoked for
key compromise proves nothing by itself — a later checkpoint of the seal in force, or its TSA
token, must vouch for it — exactly as `gateway audit verify` judges them on the node."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.app.audit_checkpoints import checkpoint_file_line
from gateway.crypto.demo_ca import DemoCA
from gateway.crypto.keys.keystore import SigningKey
from gateway.main import main
from gateway.store import Store
from tests.crypto.rotation.conftest import (
    PASSPHRASE,
    NodeDir,
    checkpoint_signed_now,
    timestamped_checkpoint,
)
from tests.https import loopback_certificate


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _node_cli(node: NodeDir, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out = _cli(capsys, *args, "--config", str(node.config_path))
    assert code == 0, out
    return out


def _rotate_and_revoke_generation_1(
    node: NodeDir, capsys: pytest.CaptureFixture[str], reason: str
) -> None:
    # A CRL states times to the second: a revocation in the same second as a checkpoint would
    # read as before it (and is then refused, erring on the safe side).
    time.sleep(1 - datetime.now(UTC).microsecond / 1e6)
    ca = ("--demo-ca", str(node.ca_dir))
    _node_cli(node, capsys, "keys", "rotate", "seal", *ca)
    _node_cli(node, capsys, "keys", "activate", "seal", "--generation", "2", "--at", "now")
    _node_cli(node, capsys, "keys", "revoke", "seal", "--generation", "1", "--reason", reason, *ca)


def _seal_pem(node: NodeDir, folder: Path, generations: tuple[int, ...] = (1, 2)) -> Path:
    """The seal generations' certificates, as the directory publishes them."""
    keys = node.keystore()
    try:
        pem = b"".join(keys.cert_path("seal", None, n).read_bytes() for n in generations)
    finally:
        keys.close()
    path = folder / f"seal-{'-'.join(map(str, generations))}.pem"
    path.write_bytes(pem)
    return path


def _first_checkpoint(node: NodeDir, capsys: pytest.CaptureFixture[str], path: Path) -> Path:
    """Generation 1's checkpoint over an event (``audit verify`` records one), kept in a file."""
    _node_cli(node, capsys, "audit", "verify")
    _node_cli(node, capsys, "audit", "checkpoint", "--out", str(path))
    return path


def _export(node: NodeDir, capsys: pytest.CaptureFixture[str], folder: Path) -> Path:
    segment = folder / "segment.jsonl"
    _node_cli(node, capsys, "audit", "export", "--from", "1", "--out", str(segment))
    return segment


def _crl_args(node: NodeDir) -> tuple[str, ...]:
    return (
        "--ca",
        str(node.ca_dir / DemoCA.CERT_FILE),
        "--crl",
        str(node.ca_dir / DemoCA.CRL_FILE),
    )


def _forged_after_revocation(store: Store, old_seal: SigningKey, folder: Path) -> Path:
    """A checkpoint line the holder of the revoked generation-1 key signs today."""
    forged = checkpoint_signed_now(store, old_seal)
    path = folder / "forged.jsonl"
    line = {
        "statement": forged.statement,
        "signature": forged.signature.hex(),
        "certificate": forged.certificate.hex(),
    }
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    return path


def test_the_crl_refuses_a_checkpoint_signed_after_the_seal_s_revocation(
    node_on_each_store: tuple[NodeDir, Store], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    node, store = node_on_each_store
    before = _first_checkpoint(node, capsys, tmp_path / "checkpoints.jsonl")
    keys = node.keystore()
    old_seal = keys.load("seal", generation=1)  # the key stays on disk after its revocation
    keys.close()
    _rotate_and_revoke_generation_1(node, capsys, "superseded")
    forged = _forged_after_revocation(store, old_seal, tmp_path)
    segment = _export(node, capsys, tmp_path)
    verify = ("audit", "verify-export", str(segment), "--seal", str(_seal_pem(node, tmp_path)))

    # Without the CRL the auditor cannot know of the revocation, and is told so.
    code, out = _cli(capsys, *verify, "--checkpoint", str(before), "--checkpoint", str(forged))
    assert code == 0, out
    assert "отзывы печати не проверены" in out and "--crl" in out
    # With it: what generation 1 signed before its revocation holds; after it, refused.
    code, out = _cli(capsys, *verify, "--checkpoint", str(before), *_crl_args(node))
    assert code == 0, out
    assert "отзывы печати проверены по спискам отзыва от" in out
    code, out = _cli(
        capsys, *verify, "--checkpoint", str(before), "--checkpoint", str(forged), *_crl_args(node)
    )
    assert code == 1, out
    assert "forged.jsonl:1" in out and "revoked" in out and "superseded" in out
    # A later CRL that no longer lists it (a CA may drop an expired certificate's entry) does
    # not undo what an earlier one stated.
    ca = node.ca()
    ca.revoked.clear()
    later = tmp_path / "later.crl"
    later.write_bytes(
        ca.crl(now=datetime.now(UTC) + timedelta(minutes=1)).public_bytes(Encoding.PEM)
    )
    code, out = _cli(
        capsys, *verify, "--checkpoint", str(forged), *_crl_args(node), "--crl", str(later)
    )
    assert code == 1 and "revoked" in out and "superseded" in out, out
    code, out = _cli(
        capsys,
        *verify,
        "--checkpoint",
        str(forged),
        "--ca",
        _crl_args(node)[1],
        "--crl",
        str(later),
    )
    assert code == 0, out  # that later list alone does not know of it


def test_a_crl_is_taken_only_with_the_ca_that_signed_it(
    node_on_each_store: tuple[NodeDir, Store], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    node, _store = node_on_each_store
    checkpoints = tmp_path / "checkpoints.jsonl"
    _node_cli(node, capsys, "audit", "checkpoint", "--out", str(checkpoints))
    segment = _export(node, capsys, tmp_path)
    verify = (
        *("audit", "verify-export", str(segment), "--checkpoint", str(checkpoints)),
        *("--seal", str(_seal_pem(node, tmp_path, (1,)))),
    )
    crl = str(node.ca_dir / DemoCA.CRL_FILE)

    code, out = _cli(capsys, *verify, "--crl", crl)
    assert code == 2 and "CA_CERTIFICATE_REQUIRED" in out, out
    stranger, _key = loopback_certificate(tmp_path, subject="Not the seal's CA")
    code, out = _cli(capsys, *verify, "--crl", crl, "--ca", str(stranger))
    assert code == 1 and "REVOCATION_UNKNOWN" in out and "none of the CA" in out, out
    # The right CA, but a CRL another CA signed: the seal's revocation cannot be known.
    other = DemoCA.create(now=datetime.now(UTC), name="Another CA")
    other_crl = tmp_path / "other.crl"
    other_crl.write_bytes(other.crl(now=datetime.now(UTC)).public_bytes(Encoding.DER))
    code, out = _cli(
        capsys, *verify, "--ca", str(node.ca_dir / DemoCA.CERT_FILE), "--crl", str(other_crl)
    )
    assert code == 1 and "REVOCATION_UNKNOWN" in out and "no CRL signed by" in out, out
    # The right CA and its CRL, but one past its next update: the auditor is told it is stale.
    stale = tmp_path / "stale.crl"
    issued = datetime.now(UTC) - timedelta(days=10)
    stale.write_bytes(
        node.ca().crl(now=issued, next_update_in=timedelta(days=1)).public_bytes(Encoding.PEM)
    )
    code, out = _cli(
        capsys, *verify, "--ca", str(node.ca_dir / DemoCA.CERT_FILE), "--crl", str(stale)
    )
    assert code == 0, out
    assert f"по спискам отзыва от {issued:%Y-%m-%d %H:%M} UTC" in out
    assert "список отзыва устарел" in out and f"{issued + timedelta(days=1):%Y-%m-%d %H:%M}" in out
    code, out = _cli(capsys, *verify, *_crl_args(node))
    assert code == 0 and "устарел" not in out, out


def test_a_compromised_seal_s_checkpoint_needs_a_trusted_one_or_its_tsa_token(
    node_on_each_store: tuple[NodeDir, Store], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    node, store = node_on_each_store
    plain = _first_checkpoint(node, capsys, tmp_path / "plain.jsonl")
    stamped = timestamped_checkpoint(node, store)
    timestamped = tmp_path / "timestamped.jsonl"
    timestamped.write_text(checkpoint_file_line(stamped) + "\n", encoding="utf-8")
    _rotate_and_revoke_generation_1(node, capsys, "keyCompromise")
    crl = x509.load_pem_x509_crl((node.ca_dir / DemoCA.CRL_FILE).read_bytes())
    (entry,) = list(crl)
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.key_compromise
    )
    segment = _export(node, capsys, tmp_path)
    verify = ("audit", "verify-export", str(segment), "--seal", str(_seal_pem(node, tmp_path)))

    code, out = _cli(capsys, *verify, "--checkpoint", str(plain), *_crl_args(node))
    assert code == 1, out
    assert "key compromise" in out and "no checkpoint of a trusted seal" in out
    # Its TSA token, valid under the CA given, dates the checkpoint before the revocation.
    code, out = _cli(capsys, *verify, "--checkpoint", str(timestamped), *_crl_args(node))
    assert code == 0, out
    altered = json.loads(timestamped.read_text())
    token = bytes.fromhex(altered["timestamp"])
    altered["timestamp"] = (token[:-40] + bytes(b ^ 1 for b in token[-40:])).hex()
    timestamped.write_text(json.dumps(altered) + "\n", encoding="utf-8")
    code, out = _cli(capsys, *verify, "--checkpoint", str(timestamped), *_crl_args(node))
    assert code == 1 and "key compromise" in out, out
    # A checkpoint of the seal in force, covering those events, vouches for them.
    later = tmp_path / "later.jsonl"
    _node_cli(node, capsys, "audit", "checkpoint", "--out", str(later))
    code, out = _cli(
        capsys, *verify, "--checkpoint", str(plain), "--checkpoint", str(later), *_crl_args(node)
    )
    assert code == 0, out


def test_revocations_written_before_reasons_were_kept_still_load(tmp_path: Path) -> None:
    """A demo CA's ``revoked.json`` of an earlier version (serial → time) loads; what is
    saved now keeps the reason, which its CRL states."""
    now = datetime.now(UTC).replace(microsecond=0)
    ca = DemoCA.create(now=now, directory=tmp_path)
    ca.save(PASSPHRASE)
    (tmp_path / DemoCA.REVOKED_FILE).write_text(
        json.dumps({"1f": (now - timedelta(days=1)).isoformat()}), encoding="utf-8"
    )
    loaded = DemoCA.load(tmp_path, PASSPHRASE)
    assert loaded.revoked == {0x1F: now - timedelta(days=1)} and loaded.reasons == {}
    loaded.revoke(0x20, at=now, reason=x509.ReasonFlags.key_compromise)
    loaded.save(PASSPHRASE, now=now)
    again = DemoCA.load(tmp_path, PASSPHRASE)
    assert again.reasons == {0x20: x509.ReasonFlags.key_compromise}
    entries = {e.serial_number: e for e in again.crl(now=now)}
    assert not list(entries[0x1F].extensions)
    reason = entries[0x20].extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise
