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

Both signatures are XAdES-BES made by signxml with C14N 1.1 (FACTS.md: its XAdES with exclusive
C14N fails its own verifier). Verification pins each signature's location and its number of
references, passes our trust anchors (never the system store), judges the certificate path at
the claimed signing time with :class:`~gateway.crypto.trust.TrustList`, checks that the signer
belongs to the envelope's Sender, and hands back only what was signed — the tree signxml
re-parsed from the canonical bytes the seal covers (defence against signature wrapping).

This module is the recipe layer: :func:`sign_document` and :func:`verify_document`. Their
failure cannot be mistaken for success: a :class:`VerifiedDocument` carries its
:class:`~gateway.crypto.report.ValidationReport`, whose ``raise_for_failure()`` raises.
"""

from __future__ import annotations

import hashlib
from base64 import b64decode
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, SignatureConstructionMethod
from signxml.exceptions import InvalidDigest, InvalidInput, InvalidSignature, SignXMLException
from signxml.util import namespaces as sx_namespaces
from signxml.xades import (
    XAdESDataObjectFormat,
    XAdESSignatureConfiguration,
    XAdESSigner,
    XAdESVerifier,
    XAdESVerifyResult,
)

from gateway.crypto import algorithms, certificates
from gateway.crypto.keystore import KeyRole, SigningKey, WrongRole
from gateway.crypto.report import (
    CertificateInfo,
    Indication,
    RevocationStatus,
    SignatureReport,
    SubIndication,
    ValidationReport,
)
from gateway.crypto.timestamps import add_signature_timestamp, verify_signature_timestamp
from gateway.crypto.trust import CLOCK_SKEW, TrustList, certificate_info
from gateway.model.problems import DocumentRejected, Problem
from gateway.xml.parsing import parse_untrusted

ENV_NS = "urn:cis-exchange:envelope:1"
DS_NS = sx_namespaces.ds
XADES_NS = sx_namespaces.xades

ENVELOPE = f"{{{ENV_NS}}}Envelope"
HEADER = f"{{{ENV_NS}}}Header"
BODY = f"{{{ENV_NS}}}Body"
SENDER = f"{{{ENV_NS}}}Sender"
SIGNATURES = f"{{{ENV_NS}}}Signatures"
OFFICIAL = f"{{{ENV_NS}}}Official"
SEAL = f"{{{ENV_NS}}}Seal"
DS_SIGNATURE = f"{{{DS_NS}}}Signature"

HEADER_ID = "header"
BODY_ID = "body"

OFFICIAL_LOCATION = f"./{{{ENV_NS}}}Signatures/{{{ENV_NS}}}Official/"
SEAL_LOCATION = f"./{{{ENV_NS}}}Signatures/{{{ENV_NS}}}Seal/"

OFFICIAL_REFERENCES = 4
"""#header, #body, the XAdES SignedProperties and the KeyInfo (signxml adds the last two)."""
SEAL_REFERENCES = 3
"""URI="" (the whole envelope), SignedProperties, KeyInfo."""

C14N = CanonicalizationMethod.CANONICAL_XML_1_1

ALLOWED_TRANSFORMS = frozenset(
    {
        SignatureConstructionMethod.enveloped.value,
        CanonicalizationMethod.CANONICAL_XML_1_0.value,
        CanonicalizationMethod.CANONICAL_XML_1_1.value,
        CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value,
    }
)
"""Transforms a reference may use: no XPath, XSLT or base64 (they widen what an attacker can
make a signature appear to cover)."""

ALLOWED_C14N = frozenset(
    {
        CanonicalizationMethod.CANONICAL_XML_1_0.value,
        CanonicalizationMethod.CANONICAL_XML_1_1.value,
        CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value,
    }
)

_NS = {"ds": DS_NS, "xades": XADES_NS, "env": ENV_NS}


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


# --- signing -------------------------------------------------------------------------------------


class _Signer(XAdESSigner):
    """signxml's XAdES signer with the signing time given, not read from the clock."""

    def __init__(self, signing_time: datetime, claimed_role: str, public_key: Any) -> None:
        method, digest = algorithms.signature_method_for(public_key)
        super().__init__(
            claimed_roles=[claimed_role],
            data_object_format=XAdESDataObjectFormat(
                Description="Envelope (urn:cis-exchange:envelope:1)", MimeType="text/xml"
            ),
            signature_algorithm=method,
            digest_algorithm=digest,
            c14n_algorithm=C14N,
        )
        self._signing_time = certificates.utc(signing_time)

    def add_signing_time(
        self, signed_signature_properties: Any, sig_root: Any, signing_settings: Any
    ) -> None:
        element = etree.SubElement(
            signed_signature_properties, f"{{{XADES_NS}}}SigningTime", nsmap=self.namespaces
        )
        element.text = self._signing_time.strftime("%Y-%m-%dT%H:%M:%SZ")


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


def sign_document(
    envelope_bytes: bytes,
    official: SigningKey | None,
    seal: SigningKey,
    signing_time: datetime,
    *,
    timestamper: Any = None,
) -> bytes:
    """Sign an unsigned envelope: the official by Id reference to ``#header`` and ``#body``
    (omitted for machine documents: ``official=None``), then the seal over the whole envelope.

    ``timestamper`` (a pyHanko ``TimeStamper``) adds an RFC 3161 SignatureTimeStamp to each
    signature (XAdES-T / B-T). Returns the signed document's bytes: never pretty-print them.
    """
    signing_time = certificates.utc(signing_time)
    # Hardened parsing (gateway.xml.parsing): refusals are DocumentRejected with XML_* codes.
    root = parse_untrusted(envelope_bytes)
    sender = _check_unsigned_layout(root)
    if official is not None:
        _check_signing_key(official, KeyRole.OFFICIAL, sender, signing_time)
    _check_signing_key(seal, KeyRole.SEAL, sender, signing_time)

    return _sign_unchecked(root, official, seal, signing_time, timestamper)


def _sign_unchecked(
    root: etree._Element,
    official: SigningKey | None,
    seal: SigningKey,
    signing_time: datetime,
    timestamper: Any = None,
) -> bytes:
    """Place and make the signatures, without the checks of :func:`sign_document`.

    Hazardous: it signs for any sender with any certificate at any claimed time. Only
    :func:`sign_document` and tests that build hostile documents call it.
    """
    signatures = root.find(SIGNATURES)
    if signatures is None:
        signatures = etree.SubElement(root, SIGNATURES)
    if official is not None:
        holder = etree.SubElement(signatures, OFFICIAL)
        etree.SubElement(holder, DS_SIGNATURE, Id="placeholder")
        root = _Signer(signing_time, "official", official.certificate.public_key()).sign(
            root,
            key=official.private_key,
            cert=[official.certificate, *official.chain],
            reference_uri=[f"#{HEADER_ID}", f"#{BODY_ID}"],
            id_attribute="Id",
        )
        if timestamper is not None:
            add_signature_timestamp(
                root.find(f"{SIGNATURES}/{OFFICIAL}/{DS_SIGNATURE}"), timestamper
            )
    signatures = root.find(SIGNATURES)
    holder = etree.SubElement(signatures, SEAL)
    etree.SubElement(holder, DS_SIGNATURE, Id="placeholder")
    root = _Signer(signing_time, "seal", seal.certificate.public_key()).sign(
        root,
        key=seal.private_key,
        cert=[seal.certificate, *seal.chain],
        id_attribute="Id",
    )
    if timestamper is not None:
        add_signature_timestamp(root.find(f"{SIGNATURES}/{SEAL}/{DS_SIGNATURE}"), timestamper)
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


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
        if root.findall(f".//{DS_SIGNATURE}"):
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
    sender = root.findtext(f"{HEADER}/{SENDER}")
    if not sender:
        problems.append(
            _problem(
                "SIGN_NO_SENDER",
                "/Envelope/Header/Sender",
                "the header names no Sender",
                "В заголовке не указан отправитель",
            )
        )
    if problems:
        raise SigningError(problems)
    return sender.strip()  # type: ignore[union-attr]


# --- verification --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifiedDocument:
    """The outcome of :func:`verify_document`.

    Read the document only through :attr:`tree` / :attr:`signed_bytes`, and only when
    :attr:`report` passed (call ``report.raise_for_failure()``): they are what the seal covers,
    re-parsed from the canonical bytes — never the tree as received.
    """

    report: ValidationReport
    signed_bytes: bytes = b""
    """Canonical (C14N 1.1) bytes of the envelope the seal covers (its own signature removed);
    empty unless every signature passed."""
    tree: etree._Element | None = field(default=None, repr=False)
    """``signed_bytes`` parsed (by signxml); None unless every signature passed."""

    @property
    def passed(self) -> bool:
        return self.report.passed


@dataclass(slots=True)
class _Outcome:
    """One signature's verdict while it is being built."""

    role: str
    indication: Indication = Indication.TOTAL_PASSED
    sub: SubIndication | None = None
    message: str = "signature valid"
    subject: str = ""
    body_id: str = ""
    signing_time: datetime | None = None
    signature_algorithm: str = ""
    digest_algorithm: str = ""
    chain: tuple[CertificateInfo, ...] = ()
    revocation: RevocationStatus = RevocationStatus.NOT_CHECKED
    timestamp_time: datetime | None = None
    results: list[Any] = field(default_factory=list)

    def fail(self, indication: Indication, sub: SubIndication, message: str) -> _Outcome:
        self.indication, self.sub, self.message = indication, sub, message
        return self

    @property
    def ok(self) -> bool:
        return self.indication is Indication.TOTAL_PASSED

    def report(self) -> SignatureReport:
        return SignatureReport(
            role=self.role,
            indication=self.indication,
            sub_indication=self.sub,
            message=self.message,
            signer_subject=self.subject,
            signer_body_id=self.body_id,
            claimed_signing_time=self.signing_time,
            signature_algorithm=self.signature_algorithm,
            digest_algorithm=self.digest_algorithm,
            chain=self.chain,
            revocation=self.revocation,
            timestamp_time=self.timestamp_time,
        )


def verify_document(
    signed_bytes: bytes,
    trust: TrustList,
    at: datetime,
    expected_sender: str | None = None,
    require_official: bool = True,
) -> VerifiedDocument:
    """Verify an envelope's seal (and official's signature) at time ``at``.

    ``expected_sender``: the body the transport authenticated (the peer's TLS certificate);
    the envelope's Sender must equal it. ``require_official``: False for machine documents
    (receipts, rejections) that carry only the seal.
    """
    at = certificates.utc(at)
    digest = hashlib.sha256(signed_bytes).hexdigest()

    def done(
        outcomes: Sequence[_Outcome], sealed: tuple[bytes, etree._Element] | None = None
    ) -> VerifiedDocument:
        report = ValidationReport(
            signatures=tuple(o.report() for o in outcomes), validated_at=at, document_sha256=digest
        )
        # What was signed goes out only with a passing report: nobody reads a failed document.
        if sealed is not None and report.passed:
            return VerifiedDocument(report, sealed[0], sealed[1])
        return VerifiedDocument(report)

    try:
        root = parse_untrusted(signed_bytes)
    except DocumentRejected as exc:
        return done(
            [
                _Outcome("seal").fail(
                    Indication.TOTAL_FAILED,
                    SubIndication.FORMAT_FAILURE,
                    f"refused before verification: {exc}",
                )
            ]
        )
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
        official = _verify_signature(
            root, "official", OFFICIAL_LOCATION, OFFICIAL_REFERENCES, trust, at
        )
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
    seal = _verify_signature(root, "seal", SEAL_LOCATION, SEAL_REFERENCES, trust, at)
    outcomes.insert(0, seal)

    if not seal.ok:
        return done(outcomes)
    envelope_result = next(r for r in seal.results if _is_data(r))
    tree = envelope_result.signed_xml
    if tree is None or tree.tag != ENVELOPE:
        seal.fail(
            Indication.TOTAL_FAILED,
            SubIndication.FORMAT_FAILURE,
            'the seal does not cover the envelope (reference must be URI="")',
        )
        return done(outcomes)
    sender = (tree.findtext(f"{HEADER}/{SENDER}") or "").strip()
    _check_sender(seal, sender, expected_sender)
    if official is not None and official.ok:
        _check_official_covers(official, tree)
        if official.ok:
            _check_sender(official, sender, expected_sender)
    return done(outcomes, (envelope_result.signed_data, tree))


def _check_signed_layout(root: etree._Element) -> tuple[str, bool]:
    """Pin where signatures may be: an error message (or ""), and whether an official is there."""
    if root.tag != ENVELOPE:
        return f"root element is {root.tag}, not env:Envelope", False
    containers = root.findall(f".//{SIGNATURES}")
    if len(containers) != 1 or containers[0].getparent() is not root:
        return "exactly one env:Signatures, child of env:Envelope, is required", False
    container = containers[0]
    seals = container.findall(SEAL)
    officials = container.findall(OFFICIAL)
    if len(seals) != 1:
        return "exactly one env:Seal is required in env:Signatures (the body's seal)", False
    if len(officials) > 1:
        return "at most one env:Official is allowed in env:Signatures", False
    if len(container) != len(seals) + len(officials):
        return "env:Signatures holds elements other than env:Official and env:Seal", False
    holders = [*officials, *seals]
    for holder in holders:
        if len(holder) != 1 or holder[0].tag != DS_SIGNATURE:
            name = holder.tag.split("}")[1]
            return f"env:{name} must hold exactly one ds:Signature", False
    every = root.findall(f".//{DS_SIGNATURE}")
    if len(every) != len(holders):
        return (
            f"the envelope holds {len(every)} ds:Signature elements, {len(holders)} expected: "
            "signatures elsewhere are refused (signature wrapping)"
        ), False
    for id_value in (HEADER_ID, BODY_ID):
        if len(root.xpath("//*[@*[local-name()='Id']=$v]", v=id_value)) != 1:
            return f'exactly one element may carry Id="{id_value}"', False
    return "", bool(officials)


def _is_data(result: Any) -> bool:
    if isinstance(result, XAdESVerifyResult):
        return False
    return result.signed_xml is None or result.signed_xml.tag != f"{{{DS_NS}}}KeyInfo"


def _verify_signature(
    root: etree._Element, role: str, location: str, references: int, trust: TrustList, at: datetime
) -> _Outcome:
    outcome = _Outcome(role)
    signature = root.find(f"{location}{{{DS_NS}}}Signature")
    if signature is None:
        return outcome.fail(
            Indication.TOTAL_FAILED,
            SubIndication.FORMAT_FAILURE,
            f"no {role} signature at its place",
        )

    # Algorithms first: a SHA-1 signature is refused by policy whatever else it is.
    signed_info = signature.find(f"{{{DS_NS}}}SignedInfo")
    if signed_info is None:
        return outcome.fail(Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE, "no SignedInfo")
    try:
        method = algorithms.check_signature_method(
            signed_info.find(f"{{{DS_NS}}}SignatureMethod").get("Algorithm")  # type: ignore[union-attr]
        )
        outcome.signature_algorithm = method.value
        digests = [d.get("Algorithm") for d in signature.iter(f"{{{DS_NS}}}DigestMethod")]
        for uri in digests:
            algorithms.check_digest(uri)
        outcome.digest_algorithm = digests[0] or "" if digests else ""
    except AttributeError:
        return outcome.fail(
            Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE, "no SignatureMethod"
        )
    except algorithms.WeakAlgorithm as exc:
        return outcome.fail(
            Indication.INDETERMINATE, SubIndication.CRYPTO_CONSTRAINTS_FAILURE, str(exc)
        )
    c14n = signed_info.find(f"{{{DS_NS}}}CanonicalizationMethod")
    if c14n is None or c14n.get("Algorithm") not in ALLOWED_C14N:
        return outcome.fail(
            Indication.TOTAL_FAILED,
            SubIndication.FORMAT_FAILURE,
            "canonicalization method not accepted",
        )
    for transform in signed_info.iter(f"{{{DS_NS}}}Transform"):
        if transform.get("Algorithm") not in ALLOWED_TRANSFORMS:
            return outcome.fail(
                Indication.TOTAL_FAILED,
                SubIndication.FORMAT_FAILURE,
                f"transform {transform.get('Algorithm')} is not accepted",
            )

    # The signing certificate: the first X509Certificate; the others may be its issuers.
    try:
        certs = [
            x509.load_der_x509_certificate(b64decode("".join((c.text or "").split())))
            for c in signature.findall(
                f"{{{DS_NS}}}KeyInfo/{{{DS_NS}}}X509Data/{{{DS_NS}}}X509Certificate"
            )
        ]
    except ValueError as exc:
        return outcome.fail(
            Indication.INDETERMINATE,
            SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
            f"unreadable certificate in KeyInfo: {exc}",
        )
    if not certs:
        return outcome.fail(
            Indication.INDETERMINATE,
            SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
            "no X509Certificate in KeyInfo",
        )
    leaf, intermediates = certs[0], certs[1:]
    outcome.subject = leaf.subject.rfc4514_string()
    outcome.body_id = certificates.body_id_of(leaf)
    outcome.chain = tuple(certificate_info(c) for c in certs)
    try:
        algorithms.check_public_key(leaf.public_key())
    except algorithms.WeakAlgorithm as exc:
        return outcome.fail(
            Indication.INDETERMINATE, SubIndication.CRYPTO_CONSTRAINTS_FAILURE, str(exc)
        )

    # The signature itself. signxml's own certificate-time check is neutralised (we judge
    # validity at the claimed signing time below); the certificate it uses is the one we
    # path-validate, and its digest is bound by SigningCertificateV2.
    config = XAdESSignatureConfiguration(
        location=location,
        expect_references=references,
        signature_methods=algorithms.ACCEPTED_SIGNATURE_METHODS,
        digest_algorithms=algorithms.ACCEPTED_DIGESTS,
        verification_time=leaf.not_valid_before_utc,
    )
    try:
        results = XAdESVerifier().verify(
            root, x509_cert=leaf, expect_config=config, id_attribute="Id"
        )
    except InvalidDigest as exc:
        return outcome.fail(
            Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE, f"signed data changed: {exc}"
        )
    except InvalidSignature as exc:
        if "references" in str(exc):
            return outcome.fail(Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE, str(exc))
        return outcome.fail(
            Indication.TOTAL_FAILED,
            SubIndication.SIG_CRYPTO_FAILURE,
            f"signature value does not verify: {exc}",
        )
    except (InvalidInput, SignXMLException, etree.DocumentInvalid, etree.XMLSyntaxError) as exc:
        return outcome.fail(
            Indication.TOTAL_FAILED,
            SubIndication.FORMAT_FAILURE,
            f"malformed {role} signature: {exc}",
        )
    outcome.results = list(results)

    # Claimed signing time (signed, but only claimed: no timestamp proves it).
    props = next((r for r in results if isinstance(r, XAdESVerifyResult)), None)
    time_text = (
        props.signed_properties.findtext("xades:SigningTime", namespaces=_NS) if props else None
    )
    try:
        claimed = datetime.fromisoformat((time_text or "").strip().replace("Z", "+00:00"))
    except ValueError:
        return outcome.fail(
            Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE, "no valid xades:SigningTime"
        )
    if claimed.tzinfo is None:
        return outcome.fail(
            Indication.TOTAL_FAILED,
            SubIndication.FORMAT_FAILURE,
            "xades:SigningTime has no time zone",
        )
    claimed = claimed.astimezone(UTC)
    outcome.signing_time = claimed
    if claimed > at + CLOCK_SKEW:
        return outcome.fail(
            Indication.TOTAL_FAILED,
            SubIndication.SIG_CONSTRAINTS_FAILURE,
            f"claimed signing time {claimed.isoformat()} is after the validation "
            f"time {at.isoformat()}",
        )

    # A timestamp (B-T), when there is one, proves the signature existed at its time.
    stamp = verify_signature_timestamp(signature, trust, at)
    if stamp.present and not stamp.proves_existence:
        assert stamp.sub_indication is not None
        return outcome.fail(stamp.indication, stamp.sub_indication, f"timestamp: {stamp.message}")
    proven = stamp.time if stamp.proves_existence else None
    outcome.timestamp_time = proven
    if proven is not None and claimed > proven + CLOCK_SKEW:
        return outcome.fail(
            Indication.TOTAL_FAILED,
            SubIndication.SIG_CONSTRAINTS_FAILURE,
            f"claimed signing time {claimed.isoformat()} is after the timestamp "
            f"{proven.isoformat()}",
        )

    # The certificate path at the claimed signing time, with the CRLs known now.
    path = trust.validate(
        leaf, intermediates, moment=min(claimed, at), at=at, body_id=outcome.body_id
    )
    outcome.revocation = path.revocation
    if path.chain:
        outcome.chain = tuple(certificate_info(c) for c in path.chain)
    revoked_after_proof = (
        path.sub_indication is SubIndication.REVOKED_NO_POE
        and proven is not None
        and path.revoked_at is not None
        and path.revoked_at > proven
    )
    if not path.passed and not revoked_after_proof:
        assert path.sub_indication is not None
        return outcome.fail(path.indication, path.sub_indication, path.message)
    expires = leaf.not_valid_after_utc
    if expires < at and (proven is None or proven > expires):
        return outcome.fail(
            Indication.INDETERMINATE,
            SubIndication.OUT_OF_BOUNDS_NO_POE,
            f"certificate expired {expires:%Y-%m-%d} and no timestamp proves the signature "
            "was made before",
        )
    mismatch = certificates.role_mismatch(leaf, role)
    if mismatch:
        return outcome.fail(
            Indication.TOTAL_FAILED,
            SubIndication.SIG_CONSTRAINTS_FAILURE,
            f"certificate cannot make the {role} signature: {mismatch}",
        )
    return outcome


def _check_sender(outcome: _Outcome, sender: str, expected_sender: str | None) -> None:
    if expected_sender is not None and sender != expected_sender:
        outcome.fail(
            Indication.TOTAL_FAILED,
            SubIndication.SIG_CONSTRAINTS_FAILURE,
            f"envelope Sender {sender!r} is not the expected sender {expected_sender!r}",
        )
    elif outcome.body_id != sender:
        outcome.fail(
            Indication.TOTAL_FAILED,
            SubIndication.SIG_CONSTRAINTS_FAILURE,
            f"signer belongs to {outcome.body_id or '(no organizationIdentifier)'!r}, "
            f"but the envelope's Sender is {sender!r}",
        )


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=False, with_comments=False)


def _check_official_covers(official: _Outcome, sealed: etree._Element) -> None:
    """The official must have signed exactly the Header and Body the seal covers."""
    data = [r for r in official.results if _is_data(r)]
    signed = sorted(
        (r.signed_xml.tag, _c14n(r.signed_xml)) for r in data if r.signed_xml is not None
    )
    expected = sorted(
        (el.tag, _c14n(el)) for el in (sealed.find(HEADER), sealed.find(BODY)) if el is not None
    )
    if len(data) != 2 or signed != expected:
        official.fail(
            Indication.TOTAL_FAILED,
            SubIndication.FORMAT_FAILURE,
            "the official's signature does not cover exactly the sealed Header and Body",
        )


# --- tree API (interim: over the byte API until the strict profile lands) -------------------


def sign_envelope(
    root: etree._Element,
    official: SigningKey | None,
    seal: SigningKey,
    signing_time: datetime,
    *,
    timestamper: Any = None,
) -> etree._Element:
    signed = sign_document(
        etree.tostring(root, encoding="UTF-8"),
        official,
        seal,
        signing_time,
        timestamper=timestamper,
    )
    return parse_untrusted(signed)


def verify_envelope(
    root: etree._Element,
    trust: TrustList,
    at: datetime,
    expected_sender: str | None = None,
    require_official: bool = True,
) -> VerifiedDocument:
    return verify_document(
        etree.tostring(root, encoding="UTF-8"), trust, at, expected_sender, require_official
    )
