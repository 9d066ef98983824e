"""The rendition lists the attachments sent beside the XML (docs/attachments.md): name, type,
language, size and SHA-256 as signed in the header, in their own section."""

from __future__ import annotations

import hashlib
from pathlib import Path

from gateway.render.rendition import render_pdf
from gateway.schemas import VALID_EXAMPLES_DIR
from tests.render.conftest import AT
from tests.render.pdftools import page_texts, squeeze, write

ENV = "urn:cis-exchange:envelope:1"
DIGEST = hashlib.sha256(b"scan").hexdigest()
SOURCE = VALID_EXAMPLES_DIR / "cis-enforcement.Request-legal-entity.xml"
"""An example that lists no file of its own."""


def test_attachments_beside_the_xml_are_listed(tmp_path: Path) -> None:
    source = (VALID_EXAMPLES_DIR / "cis-enforcement.Request-legal-entity.xml").read_text(
        encoding="utf-8"
    )
    listed = (
        f'<env:Attachments xmlns:env="{ENV}"><env:Attachment>'
        "<env:Name>исполнительный-лист.pdf</env:Name><env:MediaType>application/pdf"
        "</env:MediaType><env:Language>kk</env:Language><env:Size>1073741824</env:Size>"
        f"<env:Sha256>{DIGEST}</env:Sha256></env:Attachment></env:Attachments>"
    )
    envelope = source.replace("</env:Header>", listed + "</env:Header>", 1).encode()
    assert listed.encode() in envelope
    pdf = render_pdf(envelope, generated_at=AT)
    text = squeeze(" ".join(page_texts(write(tmp_path, "beside.pdf", pdf))))
    for expected in (
        "Вложения, переданные рядом с документом",
        "исполнительный-лист.pdf",
        "application/pdf",
        "1073741824",
        DIGEST[:32],
    ):
        assert squeeze(expected) in text, expected


def test_a_sealed_attachment_is_listed_without_its_wrapped_key(tmp_path: Path) -> None:
    source = (VALID_EXAMPLES_DIR / "cis-enforcement.Request-legal-entity.xml").read_text(
        encoding="utf-8"
    )
    wrapped = "QUJD" * 60
    listed = (
        f'<env:Attachments xmlns:env="{ENV}"><env:Attachment>'
        "<env:Name>акт.pdf</env:Name><env:MediaType>application/pdf</env:MediaType>"
        f"<env:Size>10</env:Size><env:Sha256>{DIGEST}</env:Sha256><env:Sealed>"
        "<env:Format>aes-256-gcm-segments-64k/1</env:Format>"
        "<env:SegmentPrefix>0011223344556677</env:SegmentPrefix>"
        "<env:SealedAs>0b7e4a52-6f0e-4f55-9d3c-5d2f0a1b2c3d</env:SealedAs>"
        f"<env:WrappedKey>{wrapped}</env:WrappedKey></env:Sealed>"
        "</env:Attachment></env:Attachments>"
    )
    envelope = source.replace("</env:Header>", listed + "</env:Header>", 1).encode()
    pdf = render_pdf(envelope, generated_at=AT)
    text = squeeze(" ".join(page_texts(write(tmp_path, "sealed.pdf", pdf))))
    assert squeeze("Зашифровано для получателя AES-256-GCM, сегменты по 64 КиБ") in text
    assert "QUJDQUJD" not in text.replace(" ", "")
