"""Sign and verify envelopes: the official's signature and the body's seal (XAdES-BES).

Layout (docs/architecture.md, "Signatures"; CIS Art. 11.3; SC Art. 5.1)::

    <env:Envelope>
      <env:Header Id="header">…</env:Header>
      <env:Body Id="body">…</env:Body>
      <env:Signatures>
        <env:Official><ds:Signature/></env:Official>   references #header and #body
        <env:Seal><ds:Signature/></env:Seal>           enveloped, URI="": covers the official too
      </env:Signatures>
    </env:Envelope>

Both signatures follow OUR strict XAdES-BES profile (docs/keys-and-signatures.md, "The signature
profile"), made and checked here on lxml trees with lxml's exclusive C14N, hashlib and
``cryptography`` (GOST R 34.10-2012 and Streebog through :mod:`gateway.crypto.gost`) — no
general-purpose XML-DSig engine. Every reference names its transforms
(exclusive C14N; the seal's whole-envelope reference: enveloped-signature, then exclusive
C14N), and SignedInfo is canonicalised with exclusive C14N. The verifier accepts exactly that
shape — the number, URIs and order of the references, their transforms, the one C14N, the
algorithms :mod:`gateway.crypto.algorithms` accepts — and resolves every reference to the
element the layout pins (the Header and Body children of the envelope, the signature's own
SignedProperties and KeyInfo), never by searching the document for an Id.

Because every byte of the envelope except the seal's own ``ds:Signature`` is covered by the
seal, and the verifier refuses comments and processing instructions (exclusive C14N drops
comments, so a comment inside signed text would still verify — FACTS.md), the tree that was
verified is the tree to read: :func:`verify_envelope` hands it back as it received it.

Recipe layer: :func:`sign_document` / :func:`verify_document` (bytes) and
:func:`sign_envelope` / :func:`verify_envelope` (one parsed tree, no re-parse). Failure cannot be
mistaken for success: a :class:`VerifiedDocument` carries its
:class:`~gateway.crypto.report.ValidationReport`, whose ``raise_for_failure()`` raises.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import hmac
from base64 import b64decode, b64encode
from collections import Counter
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from gateway.crypto import algorithms, certificates
from gateway.crypto.algorithms import DigestAlgorithm, SignatureMethod
from gateway.crypto.keys.keystore import KeyRole, SigningKey, WrongRole
from gateway.crypto.report import (
    CertificateInfo,
    ExistenceProof,
    Indication,
    SignatureReport,
    SubIndication,
    ValidationReport,
)
from gateway.crypto.timestamps import (
    DS_NS,
    EXC_C14N,
    XADES_NS,
    add_signature_timestamp,
    verify_signature_timestamp,
)
from gateway.crypto.trust import CLOCK_SKEW, TrustList, certificate_info
from gateway.model.problems import DocumentRejected, Problem
from gateway.xml.parsing import parse_untrusted

ENV_NS = "urn:cis-exchange:envelope:1"

ENVELOPE = f"{{{ENV_NS}}}Envelope"
HEADER = f"{{{ENV_NS}}}Header"
BODY = f"{{{ENV_NS}}}Body"
SENDER = f"{{{ENV_NS}}}Sender"
SIGNATURES = f"{{{ENV_NS}}}Signatures"
OFFICIAL = f"{{{ENV_NS}}}Official"
SEAL = f"{{{ENV_NS}}}Seal"

_DS = f"{{{DS_NS}}}"
_XADES = f"{{{XADES_NS}}}"
DS_SIGNATURE = f"{_DS}Signature"

HEADER_ID = "header"
BODY_ID = "body"

ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"
MIME_TYPE = "text/xml"
DESCRIPTION = "Envelope (urn:cis-exchange:envelope:1)"

OFFICIAL_REFERENCES = 4
"""#header, #body, the XAdES SignedProperties and the KeyInfo."""
SEAL_REFERENCES = 3
"""URI="" (the whole envelope), SignedProperties, KeyInfo."""

_DS_NSMAP = {"ds": DS_NS}
_XADES_NSMAP = {"xades": XADES_NS}


@dataclass(frozen=True, slots=True)
class _Role:
    """What a signature of one role covers, and where it sits."""

    name: str
    holder: str
    """The env:Official / env:Seal element holding the ds:Signature."""
    data_uris: tuple[str, ...]
    data_transforms: tuple[str, ...]


_OFFICIAL = _Role("official", OFFICIAL, (f"#{HEADER_ID}", f"#{BODY_ID}"), (EXC_C14N,))
_SEAL = _Role("seal", SEAL, ("",), (ENVELOPED, EXC_C14N))


class SigningError(DocumentRejected):
    """The envelope cannot be signed as given (layout wrong, already signed, wrong sender)."""


def _problem(code: str, path: str, en: str, ru: str, remedy_ru: str = "") -> Problem:
    return Problem(
        code=code,
        path=path,
        message_en=en,
        message_ru=ru,
        remedy_ru=remedy_ru,
        article="CIS Art. 11.3",
    )


def _c14n(element: etree._Element) -> bytes:
    """Exclusive C14N 1.0 without comments: the one canonicalization of the profile."""
    return bytes(etree.tostring(element, method="c14n", exclusive=True, with_comments=False))


def _digest(algorithm: DigestAlgorithm, data: bytes) -> bytes:
    return algorithm.digest(data)


@functools.lru_cache(maxsize=1024)
def _certificate_digest(algorithm: DigestAlgorithm, der: bytes) -> bytes:
    """A KeyInfo certificate's digest for SigningCertificateV2: every document of a peer
    carries the same few certificates, and Streebog in pure Python (no GOST engine) costs
    milliseconds per certificate."""
    return algorithm.digest(der)


def _envelope_without(root: etree._Element, signature: etree._Element) -> bytes:
    """The enveloped-signature transform, then exclusive C14N: the envelope's canonical bytes
    without ``signature`` — detached around the C14N and put back, not a copy of the tree.

    The transform removes the element node only: its tail text (whitespace after it) stays
    in the document, so it is handed to the parent for the time of the C14N."""
    parent = signature.getparent()
    assert parent is not None
    index = parent.index(signature)
    tail = signature.tail
    previous = signature.getprevious()
    before = previous.tail if previous is not None else parent.text
    signature.tail = None
    parent.remove(signature)
    if tail:
        if previous is not None:
            previous.tail = (before or "") + tail
        else:
            parent.text = (before or "") + tail
    try:
        return _c14n(root)
    finally:
        if previous is not None:
            previous.tail = before
        else:
            parent.text = before
        parent.insert(index, signature)
        signature.tail = tail


# --- signing -------------------------------------------------------------------------------------


def _check_signing_key(key: SigningKey, role: KeyRole, sender: str, signing_time: datetime) -> None:
    if key.role is not role:
        raise WrongRole(
            f"sign_document: the {role} signature needs the {role} key, got the {key.role} key "
            f"({key.location})"
        )
    mismatch = certificates.role_mismatch(key.certificate, str(role))
    if mismatch:
        raise WrongRole(f"{role} key {key.location}: {mismatch}")
    if key.body_id != sender:
        raise WrongRole(
            f"{role} key {key.location} belongs to {key.body_id!r} but the envelope's Sender is "
            f"{sender!r}: sign with the sender's keys"
        )
    cert = key.certificate
    if not cert.not_valid_before_utc <= signing_time <= cert.not_valid_after_utc:
        raise WrongRole(
            f"{role} key {key.location}: its certificate is valid from "
            f"{cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d}, not at "
            f"{signing_time:%Y-%m-%d %H:%M}; renew it (gateway keys generate / csr + import)"
        )


def sign_envelope(
    root: etree._Element,
    official: SigningKey | None,
    seal: SigningKey,
    signing_time: datetime,
    *,
    timestamper: Any = None,
) -> etree._Element:
    """Sign the unsigned envelope ``root`` in place and return it: the official by Id reference
    to ``#header`` and ``#body`` (omitted for machine documents: ``official=None``), then the
    seal over the whole envelope, the official's signature included.

    ``signing_time`` is the claimed xades:SigningTime (never read from the clock here).
    ``timestamper`` (a pyHanko ``TimeStamper``) adds an RFC 3161 SignatureTimeStamp to each
    signature (XAdES-T / B-T). Raises :class:`SigningError` for an envelope that cannot be
    signed and :class:`~gateway.crypto.keys.keystore.WrongRole` for a key that must not sign it.
    """
    signing_time = certificates.utc(signing_time)
    sender = _check_unsigned_layout(root)
    if official is not None:
        _check_signing_key(official, KeyRole.OFFICIAL, sender, signing_time)
    _check_signing_key(seal, KeyRole.SEAL, sender, signing_time)
    return _sign_tree(root, official, seal, signing_time, timestamper)


def signer_certificates(root: etree._Element) -> dict[KeyRole, bytes]:
    """DER of the signer's certificate (the first in its KeyInfo) of each role present in an
    envelope we signed: which generations signed it, read without verifying (the node's own
    stored documents; a peer's are verified by :func:`verify_envelope`)."""
    found: dict[KeyRole, bytes] = {}
    signatures = root.find(SIGNATURES)
    if signatures is None:
        return found
    for role, key_role in ((_OFFICIAL, KeyRole.OFFICIAL), (_SEAL, KeyRole.SEAL)):
        holder = signatures.find(role.holder)
        first = None if holder is None else next(holder.iter(f"{_DS}X509Certificate"), None)
        if first is not None and first.text:
            found[key_role] = b64decode("".join(first.text.split()))
    return found


def resign_envelope(
    root: etree._Element, official: SigningKey | None, seal: SigningKey, signing_time: datetime
) -> etree._Element:
    """Drop the envelope's signatures and sign it again: a document we signed that waits in
    the outbox when a generation that signed it is revoked (compromise) goes out under the
    generations in force now instead of being refused by every peer. Header and body stay
    byte for byte; only the signatures (and their signing time) change."""
    for signatures in root.findall(SIGNATURES):
        root.remove(signatures)
    return sign_envelope(root, official, seal, signing_time)


def sign_document(
    envelope_bytes: bytes,
    official: SigningKey | None,
    seal: SigningKey,
    signing_time: datetime,
    *,
    timestamper: Any = None,
) -> bytes:
    """:func:`sign_envelope` over bytes: parse once (hardened, refusals are DocumentRejected
    with XML_* codes), sign, serialise. Never pretty-print the result."""
    root = parse_untrusted(envelope_bytes)
    sign_envelope(root, official, seal, signing_time, timestamper=timestamper)
    return bytes(etree.tostring(root, encoding="UTF-8", xml_declaration=True))


def _sign_unchecked(
    root: etree._Element,
    official: SigningKey | None,
    seal: SigningKey,
    signing_time: datetime,
    timestamper: Any = None,
) -> bytes:
    """Place and make the signatures, without the checks of :func:`sign_envelope`.

    Hazardous: it signs for any sender with any certificate at any claimed time. Only tests
    that build hostile documents call it.
    """
    _sign_tree(root, official, seal, certificates.utc(signing_time), timestamper)
    return bytes(etree.tostring(root, encoding="UTF-8", xml_declaration=True))


def _sign_tree(
    root: etree._Element,
    official: SigningKey | None,
    seal: SigningKey,
    signing_time: datetime,
    timestamper: Any,
) -> etree._Element:
    signatures = root.find(SIGNATURES)
    if signatures is None:
        signatures = etree.SubElement(root, SIGNATURES)
    if official is not None:
        _sign_role(root, signatures, _OFFICIAL, official, signing_time, timestamper)
    _sign_role(root, signatures, _SEAL, seal, signing_time, timestamper)
    return root


def _sign_role(
    root: etree._Element,
    signatures: etree._Element,
    role: _Role,
    key: SigningKey,
    signing_time: datetime,
    timestamper: Any = None,
    *,
    method: SignatureMethod | None = None,
    digest: DigestAlgorithm | None = None,
) -> etree._Element:
    """Make one signature of ``role`` in ``signatures`` and return its ds:Signature.

    ``method`` / ``digest`` override the algorithms chosen for the key: for tests that make
    what a careless peer would send (SHA-1, RSA-PSS)."""
    chosen_method, chosen_digest = algorithms.signature_method_for(
        certificates.public_key_of(key.certificate)
    )
    method = method or chosen_method
    digest = digest or chosen_digest
    holder = etree.SubElement(signatures, role.holder)
    # The data first: the seal's enveloped reference is the envelope as it is now, before its
    # own signature lands (what the enveloped-signature transform gives back to a verifier).
    parts_to_sign = [root] if role is _SEAL else [root.find(HEADER), root.find(BODY)]
    data = [_c14n(part) for part in parts_to_sign]
    signature = _placed_template(holder, role, key, signing_time, method, digest)
    signed_info, value, key_info, obj = signature
    props = obj[0][0]
    digest_values = [reference[2] for reference in signed_info[2:]]
    for target, data_bytes in zip(
        digest_values, [*data, _c14n(props), _c14n(key_info)], strict=True
    ):
        target.text = b64encode(_digest(digest, data_bytes)).decode("ascii")
    raw = algorithms.xmldsig_sign(key.private_key, method, _c14n(signed_info))
    value.text = b64encode(raw).decode("ascii")
    if timestamper is not None:
        add_signature_timestamp(signature, timestamper)
    return signature


TEMPLATE_CACHE_SIZE = 64
"""Signature templates kept (one per role, key and algorithm: a node has a handful)."""

_TEMPLATES: dict[tuple[Any, ...], etree._Element] = {}


def _placed_template(
    holder: etree._Element,
    role: _Role,
    key: SigningKey,
    signing_time: datetime,
    method: SignatureMethod,
    digest: DigestAlgorithm,
) -> etree._Element:
    """The ds:Signature of ``role`` in ``holder``, complete but for its reference digests and
    signature value. Copied from a template built once per role, key and algorithms: building
    the 40-odd elements costs more than the copy."""
    cache_key = (role.name, method, digest, key.certificate, key.chain)
    template = _TEMPLATES.get(cache_key)
    if template is None:
        template = _template(role, key, method, digest)
        if len(_TEMPLATES) >= TEMPLATE_CACHE_SIZE:
            _TEMPLATES.clear()
        _TEMPLATES[cache_key] = template
    signature = deepcopy(template)
    holder.append(signature)
    signing = signature[3][0][0][0][0]  # Object/QualifyingProperties/SignedProperties/SSP/…
    signing.text = signing_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    return signature


def _template(
    role: _Role, key: SigningKey, method: SignatureMethod, digest: DigestAlgorithm
) -> etree._Element:
    """A detached ds:Signature of ``role`` with everything but SigningTime, the reference
    digests and the signature value."""
    sub = etree.SubElement
    sig_id = f"{role.name}-signature"
    props_id = f"{sig_id}-signed-properties"
    key_info_id = f"{sig_id}-key-info"
    signature = etree.Element(DS_SIGNATURE, Id=sig_id, nsmap=_DS_NSMAP)
    signed_info = sub(signature, f"{_DS}SignedInfo")
    sub(signed_info, f"{_DS}CanonicalizationMethod", Algorithm=EXC_C14N)
    sub(signed_info, f"{_DS}SignatureMethod", Algorithm=method.value)
    reference_ids = []
    for index, uri in enumerate(role.data_uris):
        reference_ids.append(f"{sig_id}-reference-{index}")
        _reference(signed_info, uri, role.data_transforms, digest, Id=reference_ids[-1])
    _reference(signed_info, f"#{props_id}", (EXC_C14N,), digest, Type=SIGNED_PROPERTIES_TYPE)
    _reference(signed_info, f"#{key_info_id}", (EXC_C14N,), digest)
    sub(signature, f"{_DS}SignatureValue")

    key_info = sub(signature, f"{_DS}KeyInfo", Id=key_info_id)
    x509_data = sub(key_info, f"{_DS}X509Data")
    leaf_der = key.certificate.public_bytes(Encoding.DER)
    for der in (leaf_der, *(c.public_bytes(Encoding.DER) for c in key.chain)):
        sub(x509_data, f"{_DS}X509Certificate").text = b64encode(der).decode("ascii")

    qualifying = sub(
        sub(signature, f"{_DS}Object"),
        f"{_XADES}QualifyingProperties",
        Target=f"#{sig_id}",
        nsmap=_XADES_NSMAP,
    )
    props = sub(qualifying, f"{_XADES}SignedProperties", Id=props_id)
    ssp = sub(props, f"{_XADES}SignedSignatureProperties")
    sub(ssp, f"{_XADES}SigningTime")
    cert_digest = sub(
        sub(sub(ssp, f"{_XADES}SigningCertificateV2"), f"{_XADES}Cert"), f"{_XADES}CertDigest"
    )
    sub(cert_digest, f"{_DS}DigestMethod", Algorithm=digest.value)
    sub(cert_digest, f"{_DS}DigestValue").text = b64encode(_digest(digest, leaf_der)).decode()
    claimed = sub(sub(ssp, f"{_XADES}SignerRole"), f"{_XADES}ClaimedRoles")
    sub(claimed, f"{_XADES}ClaimedRole").text = role.name
    objects = sub(props, f"{_XADES}SignedDataObjectProperties")
    for reference_id in reference_ids:
        data_format = sub(objects, f"{_XADES}DataObjectFormat", ObjectReference=f"#{reference_id}")
        sub(data_format, f"{_XADES}Description").text = DESCRIPTION
        sub(data_format, f"{_XADES}MimeType").text = MIME_TYPE
    return signature


def _reference(
    signed_info: etree._Element,
    uri: str,
    transforms: Sequence[str],
    digest: DigestAlgorithm,
    **attributes: str,
) -> etree._Element:
    """Add a ds:Reference (attributes in the order Id, URI, Type) with an empty DigestValue."""
    reference = etree.SubElement(signed_info, f"{_DS}Reference")
    if "Id" in attributes:
        reference.set("Id", attributes.pop("Id"))
    reference.set("URI", uri)
    for name, value in attributes.items():
        reference.set(name, value)
    holder = etree.SubElement(reference, f"{_DS}Transforms")
    for algorithm in transforms:
        etree.SubElement(holder, f"{_DS}Transform", Algorithm=algorithm)
    etree.SubElement(reference, f"{_DS}DigestMethod", Algorithm=digest.value)
    return etree.SubElement(reference, f"{_DS}DigestValue")


def _check_unsigned_layout(root: etree._Element) -> str:
    """Refuse what we must not sign; return the Sender."""
    problems = []
    if root.tag != ENVELOPE:
        problems.append(
            _problem(
                "SIGN_NOT_ENVELOPE",
                "/",
                f"root element is {root.tag}, not env:Envelope",
                "Корневой элемент не env:Envelope",
            )
        )
    else:
        for tag, id_value in ((HEADER, HEADER_ID), (BODY, BODY_ID)):
            found = root.findall(tag)
            if len(found) != 1 or found[0].get("Id") != id_value:
                problems.append(
                    _problem(
                        "SIGN_LAYOUT",
                        f"/Envelope/{tag.split('}')[1]}",
                        f'exactly one {tag.split("}")[1]} with Id="{id_value}" is required',
                        f'Требуется ровно один элемент {tag.split("}")[1]} с Id="{id_value}"',
                    )
                )
        if next(root.iter(DS_SIGNATURE), None) is not None:
            problems.append(
                _problem(
                    "SIGN_ALREADY_SIGNED",
                    "/Envelope/Signatures",
                    "the envelope already carries signatures",
                    "Конверт уже подписан",
                    "Подписывайте неподписанный конверт",
                )
            )
        signatures = root.findall(SIGNATURES)
        if len(signatures) > 1 or (signatures and len(signatures[0])):
            problems.append(
                _problem(
                    "SIGN_LAYOUT",
                    "/Envelope/Signatures",
                    "env:Signatures must be absent or empty before signing",
                    "Элемент env:Signatures должен отсутствовать или быть пустым",
                )
            )
        if signatures and signatures[0] is not root[-1]:
            problems.append(
                _problem(
                    "SIGN_LAYOUT",
                    "/Envelope/Signatures",
                    "env:Signatures must be the envelope's last child",
                    "Элемент env:Signatures должен быть последним",
                )
            )
        if _has_comment_or_pi(root):
            problems.append(
                _problem(
                    "SIGN_COMMENT",
                    "/Envelope",
                    "the envelope holds a comment or processing instruction: signatures do not "
                    "cover them and receivers refuse them",
                    "Конверт содержит комментарий или инструкцию обработки: подпись их не "
                    "защищает, и получатель такой документ отклонит",
                    "Удалите комментарии и инструкции обработки перед подписанием",
                )
            )
    sender: str | None = root.findtext(f"{HEADER}/{SENDER}")
    if not sender:
        problems.append(
            _problem(
                "SIGN_NO_SENDER",
                "/Envelope/Header/Sender",
                "the header names no Sender",
                "В заголовке не указан отправитель",
            )
        )
    if problems or not sender:  # no sender is among the problems
        raise SigningError(problems)
    return sender.strip()


def _has_comment_or_pi(root: etree._Element) -> bool:
    """Comments or processing instructions inside the envelope or around it (prolog, epilog:
    the whole-document reference would include a processing instruction there)."""
    if next(root.iter(etree.Comment, etree.ProcessingInstruction), None) is not None:
        return True
    return (
        next(root.itersiblings(preceding=True), None) is not None
        or next(root.itersiblings(), None) is not None
    )


# --- verification --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifiedDocument:
    """The outcome of :func:`verify_envelope` / :func:`verify_document`.

    Read the document only through :attr:`tree`, and only when :attr:`report` passed (call
    ``report.raise_for_failure()``); both fields are empty otherwise.
    """

    report: ValidationReport
    signed_bytes: bytes = b""
    """The envelope exactly as the seal covers it: its exclusive C14N without the seal's own
    ds:Signature (the input of the seal's whole-envelope digest). Empty unless every
    signature passed. Earlier versions held C14N 1.1 bytes re-parsed into :attr:`tree`; the
    tree is now the verified tree itself, so these bytes are for archiving and hashing."""
    tree: etree._Element | None = field(default=None, repr=False)
    """The envelope tree that was verified — the one given to :func:`verify_envelope` (or
    parsed once by :func:`verify_document`), the seal's signature included. Every part of it
    a reader uses is covered by the seal: the profile pins every reference, and comments and
    processing instructions are refused. None unless every signature passed."""

    @property
    def passed(self) -> bool:
        return self.report.passed


class _Outcome:
    """One signature's verdict while it is being built: its fields so far, made into a
    :class:`SignatureReport` when read (not one frozen copy per field set)."""

    __slots__ = ("_fields", "_report")

    def __init__(self, role: str) -> None:
        self._fields: dict[str, Any] = {
            "role": role,
            "indication": Indication.TOTAL_PASSED,
            "sub_indication": None,
            "message": "signature valid",
        }
        self._report: SignatureReport | None = None

    def set(self, **fields: Any) -> None:
        self._fields.update(fields)
        self._report = None

    def fail(self, indication: Indication, sub: SubIndication, message: str) -> _Outcome:
        self.set(indication=indication, sub_indication=sub, message=message)
        return self

    @property
    def report(self) -> SignatureReport:
        if self._report is None:
            self._report = SignatureReport(**self._fields)
        return self._report

    @property
    def signer_body_id(self) -> str:
        return str(self._fields.get("signer_body_id", ""))

    @property
    def ok(self) -> bool:
        return self._fields["indication"] is Indication.TOTAL_PASSED


class _Refused(Exception):
    """A signature check failed: the verdict to report."""

    def __init__(self, indication: Indication, sub: SubIndication, message: str) -> None:
        super().__init__(message)
        self.indication, self.sub, self.message = indication, sub, message


def _format(message: str) -> _Refused:
    return _Refused(Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE, message)


def verify_document(
    signed_bytes: bytes,
    trust: TrustList,
    at: datetime,
    expected_sender: str | None = None,
    require_official: bool = True,
    existence: ExistenceProof | None = None,
) -> VerifiedDocument:
    """:func:`verify_envelope` over bytes: parse once with the hardened parser (a refusal is a
    FORMAT_FAILURE report), verify the tree. The report's ``document_sha256`` is the SHA-256
    of ``signed_bytes``."""
    digest = hashlib.sha256(signed_bytes).hexdigest()
    try:
        root = parse_untrusted(signed_bytes)
    except DocumentRejected as exc:
        outcome = _Outcome("seal").fail(
            Indication.TOTAL_FAILED,
            SubIndication.FORMAT_FAILURE,
            f"refused before verification: {exc}",
        )
        report = ValidationReport(
            signatures=(outcome.report,),
            validated_at=certificates.utc(at),
            document_sha256=digest,
        )
        return VerifiedDocument(report)
    verified = verify_envelope(root, trust, at, expected_sender, require_official, existence)
    return replace(verified, report=replace(verified.report, document_sha256=digest))


def verify_envelope(
    root: etree._Element,
    trust: TrustList,
    at: datetime,
    expected_sender: str | None = None,
    require_official: bool = True,
    existence: ExistenceProof | None = None,
) -> VerifiedDocument:
    """Verify the seal (and official's signature) of an envelope parsed by
    :func:`gateway.xml.parsing.parse_untrusted`, at time ``at``.

    ``existence``: the node's own proof that this document existed at some time (its
    receipt, an audit checkpoint; looked up by ``gateway.exchange.existence``). When a
    signer's certificate was revoked, or expired, after that time, the signature stays
    valid and its report names the evidence; without it such a signature is INDETERMINATE
    (REVOKED_NO_POE, OUT_OF_BOUNDS_NO_POE). An RFC 3161 timestamp is used first.

    ``expected_sender``: the body the transport authenticated (the peer's TLS certificate);
    the envelope's Sender must equal it. ``require_official``: False for machine documents
    (receipts, rejections) that carry only the seal. The tree is not changed (a signature is
    detached for a moment during the check and put back). The report's ``document_sha256`` is
    empty: the tree API has no bytes to hash.
    """
    at = certificates.utc(at)

    def done(outcomes: Sequence[_Outcome], signed: bytes = b"") -> VerifiedDocument:
        report = ValidationReport(signatures=tuple(o.report for o in outcomes), validated_at=at)
        # What was signed goes out only with a passing report: nobody reads a failed document.
        if report.passed:
            return VerifiedDocument(report, signed, root)
        return VerifiedDocument(report)

    layout_error, has_official = _check_signed_layout(root)
    if layout_error:
        return done(
            [
                _Outcome("seal").fail(
                    Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE, layout_error
                )
            ]
        )

    outcomes: list[_Outcome] = []
    official: _Outcome | None = None
    if has_official:
        official, _ = _verify_signature(root, _OFFICIAL, trust, at, existence)
        outcomes.append(official)
    elif require_official:
        outcomes.append(
            _Outcome("official").fail(
                Indication.TOTAL_FAILED,
                SubIndication.FORMAT_FAILURE,
                "no official's signature (env:Signatures/env:Official), required for this document "
                "(CIS Art. 11.3; SC Art. 5.1)",
            )
        )
    seal, signed = _verify_signature(root, _SEAL, trust, at, existence)
    outcomes.insert(0, seal)
    if not seal.ok:
        return done(outcomes)
    sender = (root.findtext(f"{HEADER}/{SENDER}") or "").strip()
    _check_sender(seal, sender, expected_sender)
    if official is not None and official.ok:
        _check_sender(official, sender, expected_sender)
    return done(outcomes, signed)


def _check_signed_layout(root: etree._Element) -> tuple[str, bool]:
    """Pin where signatures may be: an error message (or ""), and whether an official is there."""
    if root.tag != ENVELOPE:
        return f"root element is {root.tag}, not env:Envelope", False
    if root.getparent() is not None:
        return "env:Envelope must be the document's root element", False
    if _has_comment_or_pi(root):
        return (
            "the envelope holds a comment or processing instruction: refused, signatures do "
            "not cover them"
        ), False
    children = [child.tag for child in root]
    if children != [HEADER, BODY, SIGNATURES]:
        return "env:Envelope must hold exactly env:Header, env:Body, env:Signatures", False
    header, body, container = root
    if header.get("Id") != HEADER_ID or body.get("Id") != BODY_ID:
        return f'env:Header must carry Id="{HEADER_ID}" and env:Body Id="{BODY_ID}"', False
    seals = container.findall(SEAL)
    officials = container.findall(OFFICIAL)
    if len(seals) != 1:
        return "exactly one env:Seal is required in env:Signatures (the body's seal)", False
    if len(officials) > 1:
        return "at most one env:Official is allowed in env:Signatures", False
    if [c.tag for c in container] != [*(OFFICIAL for _ in officials), SEAL]:
        return "env:Signatures must hold env:Official (optional), then env:Seal", False
    holders = [*officials, *seals]
    for holder in holders:
        if len(holder) != 1 or holder[0].tag != DS_SIGNATURE:
            name = holder.tag.split("}")[1]
            return f"env:{name} must hold exactly one ds:Signature", False
        if (holder.text or "").strip() or (holder[0].tail or "").strip():
            return "text beside a ds:Signature is refused", False
    every = sum(1 for _ in root.iter(DS_SIGNATURE))
    if every != len(holders):
        return (
            f"the envelope holds {every} ds:Signature elements, {len(holders)} expected: "
            "signatures elsewhere are refused (signature wrapping)"
        ), False
    # Every Id once: a verifier elsewhere resolving "#body" by Id must find what we checked.
    repeated = [v for v, n in Counter(root.xpath("//@*[local-name()='Id']")).items() if n > 1]
    if repeated:
        return f'Id="{repeated[0]}" occurs more than once (signature wrapping)', False
    return "", bool(officials)


@dataclass(frozen=True, slots=True)
class _Shape:
    """A signature read against the profile: what to check cryptographically."""

    method: SignatureMethod
    signed_info: etree._Element
    references: tuple[tuple[etree._Element, DigestAlgorithm, bytes], ...]
    """(what the reference covers, digest method, digest value), in order."""
    value: bytes
    signed_properties: etree._Element
    key_info: etree._Element
    certificates_der: tuple[bytes, ...]
    cert_digests: tuple[tuple[DigestAlgorithm, bytes], ...]
    claimed_role: str
    signing_time: str


def _children(element: etree._Element, *tags: str, what: str) -> list[etree._Element]:
    """The element children of ``element``, which must have exactly these tags in order."""
    found = list(element)
    if [c.tag for c in found] != list(tags):
        names = ", ".join(etree.QName(t).localname for t in tags)
        raise _format(f"{what} must hold exactly {names}")
    return found


def _algorithm(element: etree._Element, allowed: str, what: str) -> str:
    if element.get("Algorithm") != allowed or len(element) or len(element.attrib) != 1:
        raise _format(f"{what} must be {allowed}, without parameters")
    return allowed


def _stray_text(*elements: etree._Element) -> bool:
    """Non-whitespace text directly inside one of ``elements`` (element-only content)."""
    return any((e.text or "").strip() or any((c.tail or "").strip() for c in e) for e in elements)


def _b64(text: str | None, what: str) -> bytes:
    try:
        return b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise _format(f"{what} is not base64") from None


def _read_shape(root: etree._Element, signature: etree._Element, role: _Role) -> _Shape:
    """Read ``signature`` against the profile; raise :class:`_Refused` for anything else."""
    signed_info, value_el, key_info, obj = _children(
        signature,
        f"{_DS}SignedInfo",
        f"{_DS}SignatureValue",
        f"{_DS}KeyInfo",
        f"{_DS}Object",
        what="ds:Signature",
    )
    sig_id = signature.get("Id")
    if not sig_id:
        raise _format("ds:Signature carries no Id")
    expected = len(role.data_uris) + 2
    info_children = list(signed_info)
    references = info_children[2:]
    if (
        len(info_children) < 2
        or info_children[0].tag != f"{_DS}CanonicalizationMethod"
        or info_children[1].tag != f"{_DS}SignatureMethod"
        or any(r.tag != f"{_DS}Reference" for r in references)
    ):
        raise _format("SignedInfo must hold CanonicalizationMethod, SignatureMethod, References")
    _algorithm(info_children[0], EXC_C14N, "CanonicalizationMethod")
    method_el = info_children[1]
    if len(method_el) or len(method_el.attrib) != 1:
        raise _format("SignatureMethod takes no parameters")
    # Algorithms before the rest: a SHA-1 signature is refused by policy whatever else it is.
    try:
        method = algorithms.check_signature_method(method_el.get("Algorithm"))
        for digest_method in signature.iter(f"{_DS}DigestMethod"):
            algorithms.check_digest(digest_method.get("Algorithm"))
    except algorithms.WeakAlgorithm as exc:
        raise _Refused(
            Indication.INDETERMINATE, SubIndication.CRYPTO_CONSTRAINTS_FAILURE, str(exc)
        ) from None
    if len(references) != expected:
        raise _format(
            f"the {role.name} signature must have {expected} references, not {len(references)}"
        )

    key_info_id = key_info.get("Id")
    qualifying = _children(obj, f"{_XADES}QualifyingProperties", what="ds:Object")[0]
    if qualifying.get("Target") != f"#{sig_id}":
        raise _format("QualifyingProperties must target its own ds:Signature")
    parts = list(qualifying)
    if (
        not parts
        or parts[0].tag != f"{_XADES}SignedProperties"
        or ([p.tag for p in parts[1:]] not in ([], [f"{_XADES}UnsignedProperties"]))
    ):
        raise _format("QualifyingProperties must hold SignedProperties (and UnsignedProperties)")
    if len(parts) == 2:
        unsigned = _children(
            parts[1], f"{_XADES}UnsignedSignatureProperties", what="UnsignedProperties"
        )
        if any(p.tag != f"{_XADES}SignatureTimeStamp" for p in unsigned[0]):
            raise _format("UnsignedSignatureProperties may hold only SignatureTimeStamp")
        for stamp in unsigned[0]:
            c14n_el, token = _children(
                stamp,
                f"{_DS}CanonicalizationMethod",
                f"{_XADES}EncapsulatedTimeStamp",
                what="SignatureTimeStamp",
            )
            if len(c14n_el) or len(token):
                raise _format("SignatureTimeStamp must hold its method and token only")
    # Nothing signs what follows (the seal's own SignatureValue, its unsigned properties, text
    # between the parts): it must hold nothing a reader could take for signed content.
    if len(value_el):
        raise _format("SignatureValue must hold its base64 value only")
    unsigned_parts = list(parts[1].iter()) if len(parts) == 2 else []
    if _stray_text(
        signature,
        obj,
        qualifying,
        *(e for e in unsigned_parts if e.tag != f"{_XADES}EncapsulatedTimeStamp"),
    ):
        raise _format("text outside the signed parts of a ds:Signature is refused")
    props = parts[0]
    props_id = props.get("Id")
    if not props_id or not key_info_id:
        raise _format("SignedProperties and KeyInfo must carry an Id")

    uris = [*role.data_uris, f"#{props_id}", f"#{key_info_id}"]
    transforms = [*(role.data_transforms for _ in role.data_uris), (EXC_C14N,), (EXC_C14N,)]
    types = [*(None for _ in role.data_uris), SIGNED_PROPERTIES_TYPE, None]
    data_ids: dict[str, int] = {}
    read = []
    for index, reference in enumerate(references):
        if reference.get("URI") != uris[index] or reference.get("Type") != types[index]:
            raise _format(
                f'reference {index + 1} must be URI="{uris[index]}"'
                + (f' Type="{types[index]}"' if types[index] else " without Type")
            )
        if set(reference.attrib) - {"Id", "URI", "Type"}:
            raise _format(f"reference {index + 1} carries unknown attributes")
        if reference.get("Id") and index < len(role.data_uris):
            data_ids[reference.get("Id")] = index
        holder, digest_method, digest_value = _children(
            reference,
            f"{_DS}Transforms",
            f"{_DS}DigestMethod",
            f"{_DS}DigestValue",
            what=f"reference {uris[index]!r}",
        )
        names = [t.get("Algorithm") for t in holder]
        if names != list(transforms[index]) or any(
            t.tag != f"{_DS}Transform" or len(t) or len(t.attrib) != 1 for t in holder
        ):
            raise _format(
                f"reference {uris[index]!r} must name the transforms "
                f"{', '.join(transforms[index])} and no others"
            )
        read.append(
            (
                DigestAlgorithm(digest_method.get("Algorithm")),
                _b64(digest_value.text, "DigestValue"),
            )
        )

    certs = _children(key_info, f"{_DS}X509Data", what="KeyInfo")[0]
    if not len(certs) or any(c.tag != f"{_DS}X509Certificate" for c in certs):
        raise _Refused(
            Indication.INDETERMINATE,
            SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
            "KeyInfo/X509Data must hold the X509Certificate chain, signer first",
        )
    ders = tuple(_b64(c.text, "X509Certificate") for c in certs)

    ssp, sdop = _children(
        props,
        f"{_XADES}SignedSignatureProperties",
        f"{_XADES}SignedDataObjectProperties",
        what="SignedProperties",
    )
    signing_time, cert_v2, signer_role = _children(
        ssp,
        f"{_XADES}SigningTime",
        f"{_XADES}SigningCertificateV2",
        f"{_XADES}SignerRole",
        what="SignedSignatureProperties",
    )
    cert_digests = []
    for cert in cert_v2:
        if cert.tag != f"{_XADES}Cert" or [c.tag for c in cert][:1] != [f"{_XADES}CertDigest"]:
            raise _format("SigningCertificateV2 must hold Cert/CertDigest elements")
        digest_method, digest_value = _children(
            cert[0], f"{_DS}DigestMethod", f"{_DS}DigestValue", what="CertDigest"
        )
        cert_digests.append(
            (
                DigestAlgorithm(digest_method.get("Algorithm")),
                _b64(digest_value.text, "CertDigest/DigestValue"),
            )
        )
    if not cert_digests:
        raise _format("SigningCertificateV2 names no certificate")
    claimed = _children(
        _children(signer_role, f"{_XADES}ClaimedRoles", what="SignerRole")[0],
        f"{_XADES}ClaimedRole",
        what="ClaimedRoles",
    )[0]
    formats = list(sdop)
    if not formats or any(
        f.tag != f"{_XADES}DataObjectFormat"
        or (f.get("ObjectReference") or "").removeprefix("#") not in data_ids
        for f in formats
    ):
        raise _format("each DataObjectFormat must name a data reference of this signature")

    if role is _SEAL:
        # The enveloped reference: the envelope without this signature (_check_signature).
        covered: list[etree._Element] = [signature]
    else:
        covered = [root[0], root[1]]  # Header, Body: pinned by _check_signed_layout
    covered += [props, key_info]
    return _Shape(
        method=method,
        signed_info=signed_info,
        references=tuple(
            (target, digest, value) for target, (digest, value) in zip(covered, read, strict=True)
        ),
        value=_b64(value_el.text, "SignatureValue"),
        signed_properties=props,
        key_info=key_info,
        certificates_der=ders,
        cert_digests=tuple(cert_digests),
        claimed_role=(claimed.text or "").strip(),
        signing_time=(signing_time.text or "").strip(),
    )


def _verify_signature(
    root: etree._Element,
    role: _Role,
    trust: TrustList,
    at: datetime,
    existence: ExistenceProof | None = None,
) -> tuple[_Outcome, bytes]:
    """One signature's verdict, and (for the seal) the canonical envelope it covers."""
    outcome = _Outcome(role.name)
    signature = root.find(f"{SIGNATURES}/{role.holder}/{DS_SIGNATURE}")
    assert signature is not None  # _check_signed_layout placed it
    try:
        return outcome, _check_signature(root, signature, role, trust, at, outcome, existence)
    except _Refused as refused:
        outcome.fail(refused.indication, refused.sub, refused.message)
        return outcome, b""


def _check_signature(
    root: etree._Element,
    signature: etree._Element,
    role: _Role,
    trust: TrustList,
    at: datetime,
    outcome: _Outcome,
    existence: ExistenceProof | None = None,
) -> bytes:
    shape = _read_shape(root, signature, role)
    outcome.set(
        signature_algorithm=shape.method.value, digest_algorithm=shape.references[0][1].value
    )

    try:
        signer = _signer(shape.certificates_der[0])
        intermediates = [_certificate(der) for der in shape.certificates_der[1:]]
    except ValueError as exc:
        raise _Refused(
            Indication.INDETERMINATE,
            SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
            f"unreadable certificate in KeyInfo: {exc}",
        ) from None
    leaf, public_key = signer.certificate, signer.public_key
    outcome.set(
        chain=(signer.info, *(certificate_info(c) for c in intermediates)),
        signer_subject=signer.info.subject,
        signer_body_id=signer.body_id,
    )
    if signer.weakness:
        raise _Refused(
            Indication.INDETERMINATE, SubIndication.CRYPTO_CONSTRAINTS_FAILURE, signer.weakness
        )

    # The references, in order. The seal's first one is the envelope without this signature.
    signed = b""
    for index, (target, digest, expected) in enumerate(shape.references):
        if target is signature:
            signed = data = _envelope_without(root, signature)
        else:
            data = _c14n(target)
        if not hmac.compare_digest(_digest(digest, data), expected):
            uri = shape.signed_info[2 + index].get("URI")
            raise _Refused(
                Indication.TOTAL_FAILED,
                SubIndication.HASH_FAILURE,
                f"signed data changed: digest mismatch for reference {uri!r}",
            )
    # SigningCertificateV2: the first Cert is the signer's; others must be in KeyInfo.
    for index, (digest, expected) in enumerate(shape.cert_digests):
        candidates = shape.certificates_der[:1] if index == 0 else shape.certificates_der
        if not any(
            hmac.compare_digest(_certificate_digest(digest, der), expected) for der in candidates
        ):
            raise _Refused(
                Indication.TOTAL_FAILED,
                SubIndication.HASH_FAILURE,
                "SigningCertificateV2 does not name the certificate in KeyInfo",
            )
    try:
        algorithms.xmldsig_verify(public_key, shape.method, shape.value, _c14n(shape.signed_info))
    except algorithms.SignatureMismatch as exc:
        raise _Refused(
            Indication.TOTAL_FAILED,
            SubIndication.SIG_CRYPTO_FAILURE,
            f"signature value does not verify: {exc}",
        ) from None

    if shape.claimed_role != role.name:
        raise _Refused(
            Indication.TOTAL_FAILED,
            SubIndication.SIG_CONSTRAINTS_FAILURE,
            f"the {role.name} signature claims the role {shape.claimed_role!r}",
        )
    claimed = _claimed_time(shape.signing_time)
    outcome.set(claimed_signing_time=claimed)
    if claimed > at + CLOCK_SKEW:
        raise _Refused(
            Indication.TOTAL_FAILED,
            SubIndication.SIG_CONSTRAINTS_FAILURE,
            f"claimed signing time {claimed.isoformat()} is after the validation "
            f"time {at.isoformat()}",
        )

    # A timestamp (B-T), when there is one, proves the signature existed at its time.
    stamp = verify_signature_timestamp(signature, trust, at)
    if stamp.present and not stamp.proves_existence:
        assert stamp.sub_indication is not None
        raise _Refused(stamp.indication, stamp.sub_indication, f"timestamp: {stamp.message}")
    proven = stamp.time if stamp.proves_existence else None
    outcome.set(timestamp_time=proven)
    if proven is not None and claimed > proven + CLOCK_SKEW:
        raise _Refused(
            Indication.TOTAL_FAILED,
            SubIndication.SIG_CONSTRAINTS_FAILURE,
            f"claimed signing time {claimed.isoformat()} is after the timestamp "
            f"{proven.isoformat()}",
        )

    # The certificate path at the claimed signing time, with the CRLs known now.
    path = trust.validate(
        leaf, intermediates, moment=min(claimed, at), at=at, body_id=outcome.signer_body_id
    )
    outcome.set(revocation=path.revocation)
    if path.chain:
        outcome.set(chain=tuple(certificate_info(c) for c in path.chain))
    # Without a timestamp, the node's own records may prove existence (never a later time
    # than the timestamp would: a timestamp, when present, is the proof used).
    record = existence if proven is None and existence is not None else None
    if record is not None:
        proven = certificates.utc(record.time)
    revoked_after_proof = (
        path.sub_indication is SubIndication.REVOKED_NO_POE
        and proven is not None
        and path.revoked_at is not None
        and path.revoked_at > proven
    )
    if not path.passed and not revoked_after_proof:
        assert path.sub_indication is not None
        message = path.message
        if record is not None:
            message += f"; the node's proof of existence ({record.evidence}) is not before it"
        raise _Refused(path.indication, path.sub_indication, message)
    expires = leaf.not_valid_after_utc
    expired_after_proof = expires < at and proven is not None and proven <= expires
    if expires < at and not expired_after_proof:
        raise _Refused(
            Indication.INDETERMINATE,
            SubIndication.OUT_OF_BOUNDS_NO_POE,
            f"certificate expired {expires:%Y-%m-%d} and no timestamp proves the signature "
            "was made before",
        )
    mismatch = signer.official_mismatch if role is _OFFICIAL else signer.seal_mismatch
    if mismatch:
        raise _Refused(
            Indication.TOTAL_FAILED,
            SubIndication.SIG_CONSTRAINTS_FAILURE,
            f"certificate cannot make the {role.name} signature: {mismatch}",
        )
    if record is not None and (revoked_after_proof or expired_after_proof):
        # Only when the records decided the verdict: the report says what it rests on.
        outcome.set(
            existence_time=record.time,
            existence_evidence=record.evidence,
            message=(
                f"signature valid: existed at {certificates.utc(record.time).isoformat()} "
                f"({record.evidence}), before the "
                + (
                    f"revocation at {path.revoked_at.isoformat()}"
                    if revoked_after_proof and path.revoked_at is not None
                    else f"expiry at {expires.isoformat()}"
                )
            ),
        )
    return signed


CERTIFICATE_CACHE_SIZE = 4096
"""Certificates read from KeyInfo kept loaded (by DER): every document of a peer carries the
same few; past this the cache is emptied (what peers send must not grow it without bound)."""

_CERTIFICATES: dict[bytes, x509.Certificate] = {}
_SIGNERS: dict[bytes, _Signer] = {}


@dataclass(frozen=True, slots=True)
class _Signer:
    """What verification needs of a signing certificate that does not depend on time."""

    certificate: x509.Certificate
    public_key: Any
    info: CertificateInfo
    body_id: str
    weakness: str
    """Why the key breaks the algorithm policy (empty when it does not)."""
    official_mismatch: str
    seal_mismatch: str


def _certificate(der: bytes) -> x509.Certificate:
    """The certificate of ``der``, loaded once (ValueError when it is not one)."""
    cert = _CERTIFICATES.get(der)
    if cert is None:
        cert = x509.load_der_x509_certificate(der)
        if len(_CERTIFICATES) >= CERTIFICATE_CACHE_SIZE:
            _CERTIFICATES.clear()
        _CERTIFICATES[der] = cert
    return cert


def _signer(der: bytes) -> _Signer:
    signer = _SIGNERS.get(der)
    if signer is None:
        cert = _certificate(der)
        public_key = certificates.public_key_of(cert)
        try:
            algorithms.check_public_key(public_key)
            weakness = ""
        except algorithms.WeakAlgorithm as exc:
            weakness = str(exc)
        signer = _Signer(
            certificate=cert,
            public_key=public_key,
            info=certificate_info(cert),
            body_id=certificates.body_id_of(cert),
            weakness=weakness,
            official_mismatch=certificates.role_mismatch(cert, "official"),
            seal_mismatch=certificates.role_mismatch(cert, "seal"),
        )
        if len(_SIGNERS) >= CERTIFICATE_CACHE_SIZE:
            _SIGNERS.clear()
        _SIGNERS[der] = signer
    return signer


def _claimed_time(text: str) -> datetime:
    """xades:SigningTime (signed, but only claimed: no timestamp proves it)."""
    try:
        claimed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _format("no valid xades:SigningTime") from None
    if claimed.tzinfo is None:
        raise _format("xades:SigningTime has no time zone")
    return claimed.astimezone(UTC)


def _check_sender(outcome: _Outcome, sender: str, expected_sender: str | None) -> None:
    if expected_sender is not None and sender != expected_sender:
        outcome.fail(
            Indication.TOTAL_FAILED,
            SubIndication.SIG_CONSTRAINTS_FAILURE,
            f"envelope Sender {sender!r} is not the expected sender {expected_sender!r}",
        )
    elif (body_id := outcome.signer_body_id) != sender:
        outcome.fail(
            Indication.TOTAL_FAILED,
            SubIndication.SIG_CONSTRAINTS_FAILURE,
            f"signer belongs to {body_id or '(no organizationIdentifier)'!r}, "
            f"but the envelope's Sender is {sender!r}",
        )
