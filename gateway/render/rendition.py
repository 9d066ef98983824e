"""PDF renditions of envelopes: a readable A4 copy of a document for people and for archives.

CIS Art. 10 asks the parties to keep the exchanged documents; a person (a judge, an enforcement
officer, an auditor) reads them as a page, not as XML. :func:`render_pdf` lays out any envelope
(docs/architecture.md) with fpdf2 in Russian (CIS Art. 19; SC Art. 11): the kind's title, the
agreement, sender and recipient, message and conversation ids, dates, every field of the body,
the attachments (listed, never reproduced), the signatures found in the envelope, and for a
confidential document (CIS Art. 16; SC Art. 8.1) the marking «Конфиденциально» on every page.
:mod:`gateway.crypto.pades` then seals the PDF.

Theory of the body layout: the body is rendered generically from the XML tree, so a schema change
never loses a field. An element with element children is a section (a heading, its children
indented below); an element without is a field (label, value). Attributes are fields of their
element. Labels, the Russian names of codes and each leaf's type (text, date, number, yes/no,
base64 bytes) come from the labelled model shared with the console (:mod:`gateway.xml.labels`,
types from the XSD); an unknown element is shown under its own name. Repeated siblings are
numbered.

The input is hostile like every document from a peer: it is parsed with the hardened settings of
FACTS.md (no DTD, no entities, no network), bidi and control characters in values are shown as
visible marks instead of reordering the page, and the output is deterministic for the same input
and ``generated_at`` (fpdf2's file id is a hash of the content; the creation date is pinned).

Rendering costs 0.25-0.9 s per document on one core (about 0.3 s of it parsing the two fonts,
which fpdf2 cannot share between documents): keep it off the receive path.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from fpdf import FPDF
from fpdf.enums import Align, TableBordersLayout, WrapMode, XPos, YPos
from fpdf.fonts import FontFace
from lxml import etree

from gateway.crypto.report import ValidationReport
from gateway.model.bodies import DEMO_BODIES, Body
from gateway.model.limits import MAX_MESSAGE_BYTES
from gateway.model.problems import DocumentRejected, Problem
from gateway.model.profiles import ENVELOPE_NAMESPACE, PROFILES
from gateway.xml.labels import (
    FieldType,
    child_declaration,
    compact_value,
    field_type,
    format_datetime,
    format_value,
    header_declaration,
    kind_declaration,
    label_for,
    undeclared_type,
)

if TYPE_CHECKING:
    from xmlschema.validators import XsdElement

__all__ = [
    "CONFIDENTIAL_MARK",
    "MAX_ENVELOPE_BYTES",
    "MAX_FIELDS",
    "render_pdf",
]

# --- limits -------------------------------------------------------------------------------------

MAX_ENVELOPE_BYTES = MAX_MESSAGE_BYTES
"""Refuse to render larger inputs: no node signs, sends or accepts a larger envelope
(``gateway.model.limits.MAX_MESSAGE_BYTES``), so one can only be a denial of service on the
renderer, not a document."""

MAX_FIELDS = 20_000
"""Refuse to render a document with more elements and attributes than this. The largest valid
document (a Response with 20 results of 100 assets of a few fields each) stays well below; fpdf2
lays out ~1,000 rows a second, so the limit keeps a hostile document from tying up a worker for
minutes. The signed XML document is unaffected."""

MAX_INDENT_LEVELS = 6
"""Sections nest deeper than this only visually flatten: past six levels (24 mm) the label
column would become too narrow to read on A4. A CIS Response nests six deep."""

MAX_VALUE_CHARS = 50_000
"""A single field longer than this is cut with a visible note. 50,000 is the schema's
``c:LongText`` (the operative part of a judgment), so a valid document is never cut; a longer
value can only come from an invalid one, and the signed XML document keeps it whole."""

LONG_VALUE_CHARS = 1_200
"""Values longer than this leave the label/value table and run full width below their label:
a table row must fit on one page (fpdf2), and ~1,200 characters fill ~20 lines of the value
column, well within a page."""

# --- page geometry (mm, A4 portrait) ------------------------------------------------------------

_MARGIN = 18.0
_INDENT = 4.0
_LABEL_SHARE = 0.36
"""The label column takes this share of the available width; values get the rest."""

CONFIDENTIAL_MARK = "Конфиденциально"
"""The marking printed in the header and footer of every page of a confidential document."""

_XADES_NS = "http://uri.etsi.org/01903/v1.3.2#"
_DS_NS = "http://www.w3.org/2000/09/xmldsig#"

_FONT_FAMILY = "DejaVuSans"
_DER = Encoding.DER

_HEADER_ORDER = (
    "Agreement",
    "Kind",
    "Sender",
    "Recipient",
    "MessageId",
    "ConversationId",
    "InReplyTo",
    "Created",
    "Confidential",
    "Urgency",
    "RequestedDeadline",
    "Language",
)

_CONTENT = "Content"
"""The child of a ``c:Attachment`` that carries its bytes: never printed, measured and hashed."""

_BIDI_AND_CONTROL = re.compile(
    "[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f"
    "\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)
"""Characters that would hide or reorder text on the page (Trojan-Source style): shown as U+FFFD."""


# --- reading the envelope -------------------------------------------------------------------------


def _parser() -> etree.XMLParser:
    # The hardened settings of FACTS.md; a fresh parser per call keeps this thread-safe.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _reject(code: str, path: str, ru: str, en: str, remedy: str) -> DocumentRejected:
    return DocumentRejected([Problem(code, path, ru, en, remedy)])


def _parse(envelope: bytes | etree._Element) -> etree._Element:
    if isinstance(envelope, etree._Element):
        root = envelope
    else:
        if len(envelope) > MAX_ENVELOPE_BYTES:
            raise _reject(
                "RENDITION_TOO_LARGE",
                "/",
                f"Документ больше {MAX_ENVELOPE_BYTES} байт; визуализация не формируется.",
                f"envelope exceeds {MAX_ENVELOPE_BYTES} bytes; no rendition is made",
                "Храните и передавайте XML-оригинал; вложения смотрите отдельно.",
            )
        try:
            doc = etree.fromstring(envelope, _parser()).getroottree()
        except etree.XMLSyntaxError as exc:
            raise _reject(
                "RENDITION_NOT_XML",
                "/",
                "Документ не является правильным XML.",
                f"envelope is not well-formed XML: {exc}",
                "Проверьте документ схемой (xmllint --schema gateway/schemas/envelope.xsd).",
            ) from exc
        if doc.docinfo.doctype:
            raise _reject(
                "RENDITION_DOCTYPE",
                "/",
                "Документ содержит DOCTYPE; такие документы не обрабатываются.",
                "envelope carries a DOCTYPE, which the gateway refuses",
                "Удалите DOCTYPE из документа.",
            )
        root = doc.getroot()
    if root.tag != f"{{{ENVELOPE_NAMESPACE}}}Envelope":
        raise _reject(
            "RENDITION_NOT_ENVELOPE",
            "/",
            f"Корневой элемент {_local(root)} не является env:Envelope.",
            f"root element {root.tag!r} is not {{{ENVELOPE_NAMESPACE}}}Envelope",
            "Передайте документ целиком, с конвертом (docs/architecture.md).",
        )
    return root


def _local(el: etree._Element) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    name: str = etree.QName(tag).localname
    return name


def _env(root: etree._Element, *names: str) -> etree._Element | None:
    el: etree._Element | None = root
    for name in names:
        if el is None:
            return None
        el = el.find(f"{{{ENVELOPE_NAMESPACE}}}{name}")
    return el


def _text(el: etree._Element | None) -> str:
    if el is None:
        return ""
    return "".join(el.itertext()).strip()


def _elements(el: etree._Element) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str)]


def _clean(text: str) -> str:
    text = _BIDI_AND_CONTROL.sub("\ufffd", text.replace("\t", " ").replace("\r\n", "\n"))
    if len(text) > MAX_VALUE_CHARS:
        cut = len(text) - MAX_VALUE_CHARS
        text = f"{text[:MAX_VALUE_CHARS]}… [ещё {cut} знаков — см. XML-оригинал]"
    return text


def _format_value(value: str, decl: XsdElement | None = None) -> str:
    """A leaf's value in readable Russian by its schema type (gateway.xml.labels); codes keep
    their code in brackets, so the archive copy loses nothing. An element the schema does not
    declare (only an invalid document has one) is read by the shape of its value."""
    kind = field_type(decl) if decl is not None else undeclared_type(value)
    if kind is FieldType.TEXT:
        return _clean(value)
    return _clean(format_value(value, kind, with_code=True))


def _body_name(body_id: str) -> str:
    known: dict[str, Body] = {b.id: b for b in DEMO_BODIES}
    body = known.get(body_id)
    return f"{body_id} — {body.name_ru}" if body else body_id


def _is_attachment(el: etree._Element, decl: XsdElement | None) -> bool:
    """An element carrying bytes: by its schema type, one with a base64 child (``c:Attachment``,
    and SC's ``Original``/``Translation``). An element the schema does not declare (an invalid
    document) is judged by structure, so bytes are never printed even then."""
    if decl is not None:
        return any(
            field_type(child_declaration(decl, _local(c))) is FieldType.BINARY
            for c in _elements(el)
        )
    names = {_local(c) for c in _elements(el)}
    return _local(el) == "Attachment" or (
        _CONTENT in names and bool(names & {"Sha256", "FileName"})
    )


def _is_binary(el: etree._Element, parent_decl: XsdElement | None) -> bool:
    if parent_decl is not None:
        return field_type(child_declaration(parent_decl, _local(el))) is FieldType.BINARY
    return _local(el) == _CONTENT


@dataclass(frozen=True, slots=True)
class _Attachment:
    role: str
    """Label of the element that held it: «Вложение», «Оригинал», «Перевод»…"""
    fields: tuple[tuple[str, str], ...]
    """Every declared field (label, value), in document order, content excluded."""
    name: str
    media_type: str
    size: str
    sha256: str


@dataclass(frozen=True, slots=True)
class _SignatureInfo:
    role: str
    subject: str
    body_id: str
    signing_time: str
    certificate_sha256: str


def _attachment(el: etree._Element, role: str, decl: XsdElement | None) -> _Attachment:
    values: dict[str, str] = {}
    fields: list[tuple[str, str]] = []
    content: bytes | None = None
    for name, value in sorted(el.attrib.items()):
        local = etree.QName(name).localname
        values.setdefault(local, value)
        fields.append((f"{label_for(local)} (атрибут)", _format_value(value)))
    for child in _elements(el):
        local = _local(child)
        if _is_binary(child, decl):
            raw = "".join(_text(child).split())
            try:
                content = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                content = None
                values["Sha256"] = (
                    f"{values.get('Sha256', '')} (содержимое вложения не в base64 — не проверено)"
                ).strip()
            continue
        text = _text(child)
        values.setdefault(local, text)
        fields.append(
            (label_for(local, "Attachment"), _format_value(text, child_declaration(decl, local)))
        )

    size = _clean(values.get("Size", ""))
    digest = _clean(values.get("Sha256", ""))
    if content is not None:
        # Inline bytes: print what they are, measured here, so the page matches the XML.
        if size and size != str(len(content)):
            size = f"{size} (заявлено); {len(content)} (вычислено — НЕ СОВПАДАЕТ)"
        size = size or str(len(content))
        actual = hashlib.sha256(content).hexdigest()
        if digest and digest.lower() != actual:
            digest = f"{digest} (заявлено); {actual} (вычислено по вложению — НЕ СОВПАДАЕТ)"
        else:
            digest = digest or actual
    name = _clean(values.get("FileName", ""))
    media_type = _clean(values.get("MediaType", ""))
    return _Attachment(role, tuple(fields), name, media_type, size, digest)


_KEY_INFO_CERTIFICATES = f"{{{_DS_NS}}}KeyInfo/{{{_DS_NS}}}X509Data/{{{_DS_NS}}}X509Certificate"
_SIGNED_SIGNATURE_PROPERTIES = (
    f"{{{_DS_NS}}}Object/{{{_XADES_NS}}}QualifyingProperties/{{{_XADES_NS}}}SignedProperties/"
    f"{{{_XADES_NS}}}SignedSignatureProperties"
)
"""Where the signer's certificates and signed properties stand (docs/keys-and-signatures.md):
read there only, never searched for — elsewhere in a signature (its SignatureValue, its
unsigned properties) nothing is signed."""


def _signer_certificate(sig: etree._Element) -> x509.Certificate | None:
    certs: list[x509.Certificate] = []
    for el in sig.iterfind(_KEY_INFO_CERTIFICATES):
        try:
            certs.append(
                x509.load_der_x509_certificate(base64.b64decode("".join(_text(el).split())))
            )
        except ValueError:
            continue
    if not certs:
        return None
    # XAdES names the signing certificate by digest; prefer it over KeyInfo's order.
    for digest_el in sig.iterfind(
        f"{_SIGNED_SIGNATURE_PROPERTIES}/{{{_XADES_NS}}}SigningCertificateV2/{{{_XADES_NS}}}Cert/"
        f"{{{_XADES_NS}}}CertDigest"
    ):
        value = _text(digest_el.find(f"{{{_DS_NS}}}DigestValue"))
        for cert in certs:
            der = cert.public_bytes(_DER)
            for algo in (hashlib.sha256, hashlib.sha512, hashlib.sha384):
                if base64.b64encode(algo(der).digest()).decode() == value:
                    return cert
    return certs[0]


def _signatures(root: etree._Element) -> list[_SignatureInfo]:
    found: list[_SignatureInfo] = []
    holder = _env(root, "Signatures")
    if holder is None:
        return found
    for slot in _elements(holder):
        role = _local(slot)
        for sig in slot.iter(f"{{{_DS_NS}}}Signature"):
            cert = _signer_certificate(sig)
            subject = body_id = fingerprint = ""
            if cert is not None:
                subject = cert.subject.rfc4514_string()
                ids = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)
                body_id = str(ids[0].value) if ids else ""
                fingerprint = hashlib.sha256(cert.public_bytes(_DER)).hexdigest()
            signing_time = _text(
                sig.find(f"{_SIGNED_SIGNATURE_PROPERTIES}/{{{_XADES_NS}}}SigningTime")
            )
            found.append(
                _SignatureInfo(
                    role,
                    _clean(subject),
                    _clean(body_id),
                    format_value(signing_time, FieldType.DATETIME) if signing_time else "",
                    fingerprint,
                )
            )
    return found


# --- the page ------------------------------------------------------------------------------


_FONT_FILES = (("", "DejaVuSans.ttf"), ("B", "DejaVuSans-Bold.ttf"))
"""Regular and bold DejaVu Sans, shipped as package data in :mod:`gateway.render.fonts`."""


def _add_fonts(pdf: FPDF) -> None:
    """Give ``pdf`` the DejaVu fonts from package data.

    Parsing DejaVu's ~6,000 glyphs costs ~0.15 s per font and per document. The parsed font is
    not shared between documents: fpdf2 subsets the font object in place when it writes the
    file, and a deep copy of it still shares fontTools' tables (checked with fpdf2 2.8.9).
    """
    fonts = resources.files("gateway.render.fonts")
    for style, name in _FONT_FILES:
        # as_file: a real path even when the package is installed as a zip.
        with resources.as_file(fonts / name) as path:
            pdf.add_font(_FONT_FAMILY, style=style, fname=path)


class _RenditionPdf(FPDF):
    """fpdf2 document with the running header and footer of a rendition."""

    def __init__(self, *, confidential: bool, generated_at: datetime, heading: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.confidential = confidential
        self.generated_at = generated_at
        self.heading = heading

    def header(self) -> None:
        self.set_y(8)
        if self.confidential:
            self._mark()
        else:
            self.set_x(_MARGIN)
            self.set_font(_FONT_FAMILY, size=7)
            self.set_text_color(110)
            self.cell(self.w - 2 * _MARGIN, 5, self.heading, align=Align.C)
            self.set_text_color(0)
        self.set_y(_MARGIN)

    def footer(self) -> None:
        # Explicit x and width: a table breaking across pages moves l_margin while it draws.
        width = self.w - 2 * _MARGIN
        self.set_y(-14)
        self.set_x(_MARGIN)
        self.set_font(_FONT_FAMILY, size=7)
        self.set_text_color(110)
        self.cell(width / 2, 5, f"Сформировано {format_datetime(self.generated_at)}", align=Align.L)
        self.cell(width / 2, 5, f"стр. {self.page_no()} из {{nb}}", align=Align.R)
        self.set_text_color(0)
        if self.confidential:
            self.set_xy(_MARGIN, self.get_y() + 5)
            self._mark()

    def _mark(self) -> None:
        self.set_x(_MARGIN)
        self.set_font(_FONT_FAMILY, style="B", size=10)
        self.set_text_color(170, 0, 0)
        self.cell(self.w - 2 * _MARGIN, 5, CONFIDENTIAL_MARK, align=Align.C)
        self.set_text_color(0)


class _Writer:
    """Lays out headings and label/value rows, with indentation for nested sections."""

    def __init__(self, pdf: _RenditionPdf) -> None:
        self.pdf = pdf

    @property
    def width(self) -> float:
        return self.pdf.w - self.pdf.l_margin - self.pdf.r_margin

    def title(self, text: str, subtitle: str) -> None:
        pdf = self.pdf
        pdf.set_font(_FONT_FAMILY, style="B", size=15)
        pdf.multi_cell(0, 7.5, _clean(text), align=Align.C, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font(_FONT_FAMILY, size=9)
        pdf.multi_cell(0, 4.6, _clean(subtitle), align=Align.C, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(3)

    def section(self, text: str, level: int = 0) -> None:
        pdf = self.pdf
        indent = min(level, MAX_INDENT_LEVELS) * _INDENT
        size = 12 if level == 0 else 10
        if pdf.will_page_break(14):
            pdf.add_page()
        pdf.ln(2 if level else 3)
        pdf.set_x(pdf.l_margin + indent)
        pdf.set_font(_FONT_FAMILY, style="B", size=size)
        pdf.multi_cell(
            self.width - indent,
            size * 0.5,
            _clean(text),
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        if level == 0:
            y = pdf.get_y() + 0.5
            pdf.set_draw_color(150)
            pdf.line(pdf.l_margin, y, pdf.w - pdf.r_margin, y)
            pdf.ln(1.5)

    def rows(self, rows: Sequence[tuple[str, str]], level: int = 0) -> None:
        """Label/value rows as a table; long values get their own full-width block."""
        short: list[tuple[str, str]] = []
        for label, value in rows:
            if len(value) <= LONG_VALUE_CHARS:
                short.append((label, value))
                continue
            self._table(short, level)
            short = []
            self._long_value(label, value, level)
        self._table(short, level)

    def _long_value(self, label: str, value: str, level: int) -> None:
        pdf = self.pdf
        indent = min(level, MAX_INDENT_LEVELS) * _INDENT
        if pdf.will_page_break(12):
            pdf.add_page()
        pdf.set_x(pdf.l_margin + indent)
        pdf.set_font(_FONT_FAMILY, size=9)
        pdf.set_text_color(70)
        pdf.multi_cell(self.width - indent, 4.6, _clean(label), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_text_color(0)
        # multi_cell breaks across pages, which a table row cannot do.
        pdf.set_x(pdf.l_margin + indent + 2)
        pdf.multi_cell(
            self.width - indent - 2,
            4.6,
            value,
            align=Align.L,
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        pdf.ln(1.5)

    def _table(self, rows: Sequence[tuple[str, str]], level: int) -> None:
        if not rows:
            return
        pdf = self.pdf
        indent = min(level, MAX_INDENT_LEVELS) * _INDENT
        width = self.width - indent
        # The value column starts at the same x at every level; labels give up the indent.
        label_width = self.width * _LABEL_SHARE - indent
        pdf.set_font(_FONT_FAMILY, size=9)
        pdf.set_x(pdf.l_margin + indent)
        with pdf.table(
            width=width,
            col_widths=(label_width, width - label_width),
            align=Align.L,
            first_row_as_headings=False,
            borders_layout=TableBordersLayout.HORIZONTAL_LINES,
            text_align=(Align.L, Align.L),
            v_align="TOP",
            line_height=4.6,
            padding=(0.8, 1.2, 0.8, 1.2),
            wrapmode=WrapMode.WORD,
        ) as table:
            pdf.set_draw_color(215)
            for label, value in rows:
                row = table.row()
                row.cell(_clean(label), style=FontFace(color=(70, 70, 70)))
                row.cell(value or "—")
        pdf.ln(1)

    def paragraph(self, text: str, size: float = 9) -> None:
        pdf = self.pdf
        pdf.set_font(_FONT_FAMILY, size=size)
        pdf.multi_cell(0, size * 0.5, _clean(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _compact(el: etree._Element, decl: XsdElement | None) -> str | None:
    """One-line forms of small structures (money, periods; :func:`compact_value`), or None to
    render as a section."""
    if el.attrib:
        return None
    parts = {_local(c): c for c in _elements(el)}
    if len(parts) != len(el) or any(len(c) or c.attrib for c in parts.values()):
        return None
    shown = compact_value({name: _text(c) for name, c in parts.items()}, decl)
    return _clean(shown) if shown is not None else None


def _numbered(
    children: Sequence[etree._Element], parent: str = ""
) -> Iterator[tuple[etree._Element, str]]:
    """Children with their labels; repeated names get «№ n» so each one is told apart."""
    counts: dict[str, int] = {}
    for child in children:
        counts[_local(child)] = counts.get(_local(child), 0) + 1
    seen: dict[str, int] = {}
    for child in children:
        name = _local(child)
        label = label_for(name, parent)
        if counts[name] > 1:
            seen[name] = seen.get(name, 0) + 1
            label = f"{label} № {seen[name]}"
        yield child, label


def _render_element(
    writer: _Writer,
    el: etree._Element,
    level: int,
    attachments: list[_Attachment],
    decl: XsdElement | None,
) -> None:
    """Render the fields and sections under ``el`` (``el``'s own heading is the caller's),
    declared ``decl`` in the schema (None: not declared), which types its leaves."""
    pending: list[tuple[str, str]] = [
        (f"{label_for(etree.QName(k).localname)} (атрибут)", _format_value(v))
        for k, v in sorted(el.attrib.items())
    ]
    own_text = (el.text or "").strip()
    children = _elements(el)
    if children and own_text:
        pending.append(("Текст", _clean(own_text)))
    for child, label in _numbered(children, _local(el)):
        grandchildren = _elements(child)
        child_decl = child_declaration(decl, _local(child))
        if _is_attachment(child, child_decl):
            # Attachments are listed in their own section with name, type, size and digest;
            # here a row points there, so the field is visibly present.
            attachments.append(_attachment(child, label, child_decl))
            pending.append((label, f"см. раздел «Вложения», № {len(attachments)}"))
        elif grandchildren and all(
            _is_attachment(g, child_declaration(child_decl, _local(g))) for g in grandchildren
        ):
            first = len(attachments) + 1
            attachments.extend(
                _attachment(
                    g,
                    label_for(_local(g), _local(child)),
                    child_declaration(child_decl, _local(g)),
                )
                for g in grandchildren
            )
            numbers = f"№ {first}" if first == len(attachments) else f"№ {first}–{len(attachments)}"
            pending.append((label, f"{len(grandchildren)}: см. раздел «Вложения», {numbers}"))
        elif grandchildren and (compact := _compact(child, child_decl)) is not None:
            pending.append((label, compact))
        elif grandchildren:
            writer.rows(pending, level)
            pending = []
            writer.section(label, level + 1)
            _render_element(writer, child, level + 1, attachments, child_decl)
        elif child.attrib:
            writer.rows(pending, level)
            pending = []
            writer.section(label, level + 1)
            writer.rows(
                [
                    *(
                        (f"{label_for(etree.QName(k).localname)} (атрибут)", _format_value(v))
                        for k, v in sorted(child.attrib.items())
                    ),
                    ("Значение", _format_value(_text(child), child_decl)),
                ],
                level + 1,
            )
        else:
            pending.append((label, _format_value(_text(child), child_decl)))
        tail = (child.tail or "").strip()
        if tail:
            pending.append(("Текст", _clean(tail)))
    writer.rows(pending, level)


def _header_rows(header: etree._Element | None) -> list[tuple[str, str]]:
    if header is None:
        return [("Заголовок", "отсутствует")]
    decl = header_declaration()
    by_name: dict[str, str] = {}
    extra: list[tuple[str, str]] = []
    for child, label in _numbered(_elements(header)):
        name = _local(child)
        if name == "Attachments":
            continue  # listed in their own section (_beside_rows)
        if name in _HEADER_ORDER and name not in by_name:
            by_name[name] = _text(child)
        else:
            extra.append((label, _format_value(_text(child))))
    rows: list[tuple[str, str]] = []
    for name in _HEADER_ORDER:
        if name not in by_name:
            continue
        value = by_name[name]
        if name == "Agreement":
            known = PROFILES.get(value)
            shown = f"{known.title_ru} ({value})" if known else _clean(value)
        elif name == "Kind":
            profile = PROFILES.get(by_name.get("Agreement", ""))
            kind = profile.kinds.get(value) if profile is not None else None
            shown = f"{kind.title_ru} ({value})" if kind else _clean(value)
        elif name in ("Sender", "Recipient"):
            shown = _clean(_body_name(value))
        else:
            shown = _format_value(value, child_declaration(decl, name))
        rows.append((label_for(name, "Header"), shown))
    for key, value in sorted(header.attrib.items()):
        if key == "Id":
            continue  # the signature's reference target (#header), not a field of the document
        extra.append((f"{label_for(etree.QName(key).localname)} (атрибут)", _format_value(value)))
    return rows + extra


_BESIDE_LABELS = {
    "Name": "Имя файла",
    "MediaType": "Тип",
    "Language": "Язык",
    "Size": "Размер, байт",
    "Sha256": "SHA-256",
}


def _beside_rows(header: etree._Element | None) -> list[list[tuple[str, str]]]:
    """The signed header's list of attachments sent beside the XML (docs/attachments.md)."""
    listed = _env(header, "Attachments") if header is not None else None
    if listed is None:
        return []
    return [
        [
            (_BESIDE_LABELS.get(_local(field), label_for(_local(field))), _beside_value(field))
            for field in _elements(item)
        ]
        for item in _elements(listed)
    ]


def _beside_value(field: etree._Element) -> str:
    if _local(field) == "Sealed":  # its wrapped key is of no use on paper
        return "AES-256-GCM, сегменты по 64 КиБ; ключ файла — для сертификата получателя"
    typed = _BESIDE_TYPES.get(_local(field))
    if typed is not None:
        return _clean(format_value(_text(field), typed, with_code=True))
    return _clean(_text(field))


_BESIDE_TYPES = {"Language": FieldType.LANGUAGE, "RegisterExtract": FieldType.BOOLEAN}
"""The fields of a file beside the XML read as words, like the body's (the rest are text)."""


def _titles(header: etree._Element | None) -> tuple[str, str]:
    agreement = _text(_env(header, "Agreement")) if header is not None else ""
    kind = _text(_env(header, "Kind")) if header is not None else ""
    profile = PROFILES.get(agreement)
    if profile is not None and kind in profile.kinds:
        message_kind = profile.kinds[kind]
        return message_kind.title_ru, f"{profile.title_ru} ({message_kind.article})"
    return (kind or "Документ"), (f"Соглашение: {agreement}" if agreement else "")


def render_pdf(
    envelope: bytes | etree._Element,
    *,
    generated_at: datetime,
    report: ValidationReport | None = None,
) -> bytes:
    """Render an envelope as a readable A4 PDF in Russian and return the PDF's bytes.

    ``envelope`` is the envelope's XML (bytes, parsed here with hardened settings) or an lxml
    element of an already verified document. ``generated_at`` (timezone-aware) is printed in the
    footer and written as the PDF's creation date: the same input and time give the same bytes.
    ``report``, when given, is the signatures' verification result and is printed beside the
    signatures; without it the page says the signatures are listed as found, not verified.

    Raises :class:`~gateway.model.problems.DocumentRejected` if the input is not an envelope.
    """
    if generated_at.tzinfo is None:
        raise ValueError("generated_at must be timezone-aware (e.g. datetime.now(UTC))")
    root = _parse(envelope)
    fields = sum(1 + len(el.attrib) for el in root.iter() if isinstance(el.tag, str))
    if fields > MAX_FIELDS:
        raise _reject(
            "RENDITION_TOO_LARGE",
            "/",
            f"Документ содержит {fields} полей (больше {MAX_FIELDS}); визуализация не формируется.",
            f"envelope has {fields} elements and attributes (> {MAX_FIELDS}); no rendition",
            "Храните и передавайте XML-оригинал.",
        )
    header = _env(root, "Header")
    body = _env(root, "Body")
    confidential = (
        _text(_env(header, "Confidential")) in ("true", "1") if header is not None else False
    )
    title, subtitle = _titles(header)
    message_id = _clean(_text(_env(header, "MessageId"))) if header is not None else ""

    pdf = _RenditionPdf(
        confidential=confidential,
        generated_at=generated_at,
        heading=f"{title} · {message_id}" if message_id else title,
    )
    _add_fonts(pdf)
    pdf.set_margins(_MARGIN, _MARGIN + 4, _MARGIN)
    pdf.set_auto_page_break(auto=True, margin=_MARGIN + 2)
    pdf.set_creation_date(generated_at)
    pdf.set_lang("ru")
    pdf.set_title(_clean(f"{title} {message_id}".strip()))
    pdf.set_creator("cis-exchange-gateway")
    pdf.alias_nb_pages()
    pdf.add_page()

    writer = _Writer(pdf)
    writer.title(title, subtitle)
    writer.section("Реквизиты документа")
    writer.rows(_header_rows(header))

    attachments: list[_Attachment] = []
    writer.section("Содержание документа")
    if body is None or not _elements(body):
        writer.paragraph("Тело документа отсутствует.")
    else:
        agreement = _text(_env(header, "Agreement")) if header is not None else ""
        for child, label in _numbered(_elements(body)):
            decl = kind_declaration(agreement, _local(child))
            if _is_attachment(child, None):  # not where the schema puts one; never printed
                attachments.append(_attachment(child, label, None))
                continue
            writer.section(title if _local(child) == _text(_env(header, "Kind")) else label, 1)
            _render_element(writer, child, 1, attachments, decl)
    for child in _elements(root):
        if _local(child) not in ("Header", "Body", "Signatures"):
            writer.section(label_for(_local(child)), 1)
            _render_element(writer, child, 1, attachments, None)

    if attachments:
        writer.section("Вложения")
        writer.paragraph("Содержимое вложений не воспроизводится; сверяйте по SHA-256.", 8)
        for number, att in enumerate(attachments, start=1):
            writer.section(f"№ {number}. {att.role}: {att.name or 'без имени'}", 1)
            shown = {"Имя файла", "Тип", "Размер, байт", "SHA-256"}
            rows = [(k, v) for k, v in att.fields if k not in shown]
            rows += [
                ("Имя файла", att.name or "—"),
                ("Тип", att.media_type or "—"),
                ("Размер, байт", att.size or "—"),
                ("SHA-256", att.sha256 or "—"),
            ]
            writer.rows(rows, 1)

    beside = _beside_rows(header)
    if beside:
        writer.section("Вложения, переданные рядом с документом")
        writer.paragraph(
            "Файлы переданы отдельными частями той же доставки; размер и SHA-256 подписаны "
            "в заголовке и проверены при получении.",
            8,
        )
        for number, rows in enumerate(beside, start=1):
            writer.section(f"№ {number}. {rows[0][1]}", 1)
            writer.rows(rows, 1)

    _signature_section(writer, _signatures(root), report)

    if isinstance(envelope, bytes | bytearray):
        writer.paragraph(f"SHA-256 XML-оригинала: {hashlib.sha256(envelope).hexdigest()}", 8)
    writer.paragraph(
        "Визуальное представление электронного документа. Юридическую силу имеет подписанный "
        "XML-документ (CIS Art. 10).",
        8,
    )
    return bytes(pdf.output())


_ROLE_RU = {
    "Official": "Подпись уполномоченного лица",
    "Seal": "Электронная печать органа",
}
_REPORT_ROLE = {"Official": "official", "Seal": "seal"}


def _signature_section(
    writer: _Writer, signatures: Sequence[_SignatureInfo], report: ValidationReport | None
) -> None:
    writer.section("Электронные подписи")
    if not signatures:
        writer.paragraph("Документ не подписан.")
        return
    if report is None:
        writer.paragraph(
            "Сведения о подписях приведены так, как они записаны в документе; при формировании "
            "этой копии подписи не проверялись.",
            8,
        )
    verdicts = {s.role: s for s in report.signatures} if report is not None else {}
    for info in signatures:
        rows = [
            ("Подписант", info.subject or "сертификат не найден"),
            ("Орган (organizationIdentifier)", _clean(_body_name(info.body_id)) or "—"),
            ("Время подписания (заявлено)", info.signing_time or "—"),
            ("SHA-256 сертификата", info.certificate_sha256 or "—"),
        ]
        verdict = verdicts.get(_REPORT_ROLE.get(info.role, info.role))
        if verdict is not None:
            sub = f" / {verdict.sub_indication}" if verdict.sub_indication else ""
            rows.append(("Результат проверки", f"{verdict.indication}{sub}: {verdict.message}"))
        writer.section(_ROLE_RU.get(info.role, label_for(info.role)), 1)
        writer.rows(rows, 1)
