"""``SigningKey.pdf_signer()``: the seam the PAdES layer (gateway.crypto.pades) signs through."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fpdf import FPDF

from gateway.config import KeysSection
from gateway.crypto import pades
from gateway.crypto.algorithms import KeySpec
from gateway.crypto.keys.keystore import KeyStore
from gateway.demo.pki import build_demo_pki
from tests.crypto.helpers import PASSPHRASE, SENDER


def _pdf() -> bytes:
    doc = FPDF()
    doc.add_page()
    doc.set_font("helvetica", size=12)
    doc.cell(text="Rendition")
    return bytes(doc.output())


@pytest.mark.parametrize("spec", [KeySpec.EC_P256, KeySpec.RSA_3072])
def test_file_key_signs_a_pdf_that_validates(tmp_path: Path, spec: KeySpec) -> None:
    # pyHanko signs with the clock's time, so this PKI is built at the clock's time too.
    now = datetime.now(UTC)
    pki = build_demo_pki(
        tmp_path, [SENDER], now=now, passphrase=PASSPHRASE.encode(), spec=spec, roles=("seal",)
    )
    store = KeyStore(
        KeysSection(dir=pki.body_dirs[SENDER]),
        SENDER,
        environ={"GATEWAY_KEY_PASSPHRASE": PASSPHRASE},
    )
    seal = store.seal()
    signed = pades.sign_pdf(_pdf(), seal.pdf_signer(), reason="seal", location=SENDER)
    (report,) = pades.verify_pdf(
        signed, [pki.ca.certificate], datetime.now(UTC), crls=[pki.ca.crl(now=now)]
    )
    assert report.passed, report.summary()
    assert report.signer_body_id == SENDER
