"""Rendering envelopes as PDFs: text, Cyrillic, every field, confidential marking, determinism."""

from __future__ import annotations

import base64
import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from gateway.crypto.report import Indication, SignatureReport, ValidationReport
from gateway.model.problems import DocumentRejected
from gateway.render.rendition import CONFIDENTIAL_MARK, MAX_FIELDS, render_pdf
from gateway.schemas import VALID_EXAMPLES_DIR
from tests.render import samples
from tests.render.conftest import AT, Pki
from tests.render.pdftools import page_texts, squeeze, without_furniture, write

EXAMPLES = sorted(VALID_EXAMPLES_DIR.glob("*.xml"))


@pytest.fixture(scope="module")
def request_pages(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    pdf = render_pdf(samples.cis_request(confidential=True), generated_at=AT)
    return page_texts(write(tmp_path_factory.mktemp("r"), "request.pdf", pdf))


@pytest.fixture(scope="module")
def open_request_pages(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A non-confidential request whose attachment's declared SHA-256 is wrong."""
    doc = samples.cis_request(confidential=False).replace(
        samples.ATTACHMENT_SHA256.encode(), b"0" * 64
    )
    pdf = render_pdf(doc, generated_at=AT)
    return page_texts(write(tmp_path_factory.mktemp("o"), "open.pdf", pdf))


def test_confidential_mark_in_header_and_footer_of_every_page(request_pages: list[str]) -> None:
    assert len(request_pages) >= 4, "the sample is long enough to need several pages"
    for number, text in enumerate(request_pages, start=1):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        assert lines[0] == CONFIDENTIAL_MARK, f"page {number}: no mark in the header"
        assert lines[-1] == CONFIDENTIAL_MARK, f"page {number}: no mark in the footer"
        assert f"стр. {number} из {len(request_pages)}" in text


def test_every_field_value_appears(request_pages: list[str]) -> None:
    text = "\n".join(request_pages)
    flat = squeeze(text)
    for value in (
        "12345/26/77001-ИП",
        "ФС № 041234567",
        "Иванович",
        "800229300123",
        "Имеются ли у должника счета в банках Республики Казахстан?",
        "значение неизвестного поля",
    ):
        assert squeeze(value) in flat, value
    assert squeeze(samples.LONG_OPERATIVE_PART) in squeeze(without_furniture(request_pages)), (
        "long value wrapped over pages, nothing lost"
    )
    # Dates and booleans in readable Russian form; repeated elements numbered.
    assert "29.02.1980" in text and "14.05.2026" in text
    assert "Вопрос № 1" in text and "Вопрос № 2" in text
    # Unknown element: shown under its own name; attribute: shown as a field.
    assert "ZzUnknownField" in text
    assert "period-years (атрибут)" in text


def test_header_title_bodies_and_ids(request_pages: list[str]) -> None:
    first = request_pages[0]
    assert "Запрос" in first
    assert "Федеральная служба судебных приставов" in first  # Cyrillic extracts as text
    assert "Министерство юстиции Республики Казахстан" in squeeze(first) or (
        squeeze("Министерство юстиции Республики Казахстан") in squeeze(first)
    )
    assert "6f1c2a3e-8d4b-4c1e-9a7f-1b2c3d4e5f60" in first
    assert "0a9b8c7d-6e5f-4a3b-8c1d-2e3f4a5b6c7d" in first
    assert "23.11.2026 10:00:00 UTC" in first
    assert "10.12.2026" in first


def test_attachments_listed_not_reproduced(request_pages: list[str]) -> None:
    text = "\n".join(request_pages)
    assert "решение суда.pdf" in text
    assert "application/pdf" in text
    assert str(len(samples.ATTACHMENT_BYTES)) in text
    assert samples.ATTACHMENT_SHA256 in squeeze(text)
    content = base64.b64encode(samples.ATTACHMENT_BYTES).decode()
    assert content[:40] not in squeeze(text)
    assert "fake judgment copy" not in text


def test_attachment_digest_mismatch_is_shown(open_request_pages: list[str]) -> None:
    text = "\n".join(open_request_pages)
    assert "НЕ СОВПАДАЕТ" in text
    assert samples.ATTACHMENT_SHA256 in squeeze(text)


def test_not_confidential_has_no_mark(open_request_pages: list[str]) -> None:
    assert all(CONFIDENTIAL_MARK not in text for text in open_request_pages)
    assert "Конфиденциальный документ" in open_request_pages[0]


@pytest.mark.parametrize(
    ("make", "title", "expected"),
    [
        (samples.sc_response, "Информация о результатах исполнения запроса", "А40-123456/2026"),
        (samples.cis_receipt, "Квитанция о получении", "11111111-2222-4333-8444-555555555555"),
    ],
)
def test_other_kinds(tmp_path: Path, make, title: str, expected: str) -> None:
    pages = page_texts(write(tmp_path, "k.pdf", render_pdf(make(), generated_at=AT)))
    assert title in squeeze(pages[0]) or squeeze(title) in squeeze(pages[0])
    assert expected in "\n".join(pages)
    assert "стр. 1 из" in pages[0]
    assert "Документ не подписан" in "\n".join(pages)


def test_deterministic_for_same_input_and_time() -> None:
    doc = samples.cis_receipt()
    first = render_pdf(doc, generated_at=AT)
    assert first.startswith(b"%PDF-")
    assert render_pdf(doc, generated_at=AT) == first
    assert render_pdf(doc, generated_at=AT + timedelta(seconds=1)) != first


def test_naive_time_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        render_pdf(samples.sc_response(), generated_at=datetime(2026, 11, 23))


def test_doctype_refused() -> None:
    doc = b'<!DOCTYPE x [<!ENTITY e "boom">]>' + samples.sc_response()
    with pytest.raises(DocumentRejected) as caught:
        render_pdf(doc, generated_at=AT)
    assert caught.value.code == "RENDITION_DOCTYPE"


def test_too_many_fields_refused() -> None:
    body = "<p:Note>x</p:Note>" * (MAX_FIELDS + 1)
    doc = samples.envelope(agreement="cis-enforcement", kind="Request", body=body)
    with pytest.raises(DocumentRejected) as caught:
        render_pdf(doc, generated_at=AT)
    assert caught.value.code == "RENDITION_TOO_LARGE"


def test_not_an_envelope_refused() -> None:
    with pytest.raises(DocumentRejected) as caught:
        render_pdf(b"<Envelope/>", generated_at=AT)
    assert caught.value.code == "RENDITION_NOT_ENVELOPE"


def test_bidi_override_is_neutralised(tmp_path: Path) -> None:
    doc = samples.sc_response().replace(
        "Запрос исполнен.".encode(), "Запрос \u202eнелопси\u202c.".encode()
    )
    text = "\n".join(page_texts(write(tmp_path, "b.pdf", render_pdf(doc, generated_at=AT))))
    assert "\u202e" not in text
    assert "\ufffd" in text


def _signatures_block(pki: Pki) -> str:
    der = pki.seal.public_bytes(Encoding.DER)
    cert = base64.b64encode(der).decode()
    digest = base64.b64encode(hashlib.sha256(der).digest()).decode()
    ds, xades = "http://www.w3.org/2000/09/xmldsig#", "http://uri.etsi.org/01903/v1.3.2#"
    signature = f"""<ds:Signature xmlns:ds="{ds}" xmlns:xades="{xades}">
        <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
        <ds:Object><xades:QualifyingProperties><xades:SignedProperties>
          <xades:SignedSignatureProperties>
            <xades:SigningTime>2026-11-23T10:00:01Z</xades:SigningTime>
            <xades:SigningCertificateV2><xades:Cert><xades:CertDigest>
              <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
              <ds:DigestValue>{digest}</ds:DigestValue>
            </xades:CertDigest></xades:Cert></xades:SigningCertificateV2>
          </xades:SignedSignatureProperties>
        </xades:SignedProperties></xades:QualifyingProperties></ds:Object>
      </ds:Signature>"""
    return f"""
  <env:Signatures><env:Seal>{signature}</env:Seal></env:Signatures>"""


def test_signatures_listed(tmp_path: Path, pki: Pki) -> None:
    doc = samples.envelope(
        agreement="cis-enforcement",
        kind="Withdrawal",
        body="<p:Reason>Долг погашен</p:Reason>",
        signatures=_signatures_block(pki),
    )
    report = ValidationReport(
        signatures=(SignatureReport("seal", Indication.TOTAL_PASSED, None, "signature valid"),),
        validated_at=AT,
    )
    # An lxml element (an already verified tree) renders like bytes, with its report.
    pdf = render_pdf(etree.fromstring(doc), generated_at=AT, report=report)
    text = "\n".join(page_texts(write(tmp_path, "s.pdf", pdf)))
    assert "Электронная печать органа" in text
    assert "CN=FSSP Seal" in text
    assert "RU-FSSP" in text
    assert "23.11.2026 10:00:01 UTC" in text
    fingerprint = hashlib.sha256(pki.seal.public_bytes(Encoding.DER)).hexdigest()
    assert fingerprint in squeeze(text)
    assert "Результат проверки" in text and "TOTAL_PASSED" in text
    assert squeeze("подписи не проверялись") not in squeeze(text)
    assert isinstance(pki.seal, x509.Certificate)


def _render_example(path: Path) -> bytes:
    return render_pdf(path.read_bytes(), generated_at=AT)


@pytest.fixture(scope="module")
def example_pdfs() -> dict[str, bytes]:
    """All schema examples rendered at once, on every core: rendering is CPU-bound Python."""
    workers = max(1, min(len(EXAMPLES), os.cpu_count() or 1))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return {
            p.name: pdf
            for p, pdf in zip(EXAMPLES, pool.map(_render_example, EXAMPLES), strict=True)
        }


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_schema_examples_render(
    tmp_path: Path, example: Path, example_pdfs: dict[str, bytes]
) -> None:
    """Every example of gateway/schemas/examples/valid renders; every leaf value is on the page."""
    root = etree.fromstring(example.read_bytes())
    pages = page_texts(write(tmp_path, "e.pdf", example_pdfs[example.name]))
    text = squeeze("\n".join(pages))
    assert pages and all("стр. " in page for page in pages)
    env = "{urn:cis-exchange:envelope:1}"
    message_id = root.findtext(f"{env}Header/{env}MessageId")
    assert message_id and message_id.strip() in text
    confidential = root.findtext(f"{env}Header/{env}Confidential") == "true"
    for page in pages:
        lines = [line.strip() for line in page.splitlines() if line.strip()]
        marked = lines[0] == CONFIDENTIAL_MARK and lines[-1] == CONFIDENTIAL_MARK
        assert marked is confidential
    body = root.find(f"{env}Body")
    assert body is not None
    for el in body.iter():
        if not isinstance(el.tag, str) or len(el) or not (el.text or "").strip():
            continue
        parent = el.getparent()
        if (
            etree.QName(el).localname == "Content"
            and parent is not None
            and parent.find("{urn:cis-exchange:common:1}Sha256") is not None
        ):
            # Attachment bytes are never printed; their SHA-256 is.
            continue
        value = el.text.strip()
        if value in ("true", "false") or (len(value) == 10 and value[4] == "-"):
            continue  # shown as да/нет and DD.MM.YYYY
        if "T" in value and value[:4].isdigit() and value.count(":") >= 2:
            continue  # dateTime, shown as DD.MM.YYYY HH:MM:SS
        assert squeeze(value) in text, f"{etree.QName(el).localname}={value!r} missing"
