"""The two baselines a gateway hop is compared with: the same signature work, without the gateway.

One *hop* is what a request costs both nodes, minus transport and storage:

1. the sender signs the request twice — the official (XAdES-BES by Id reference to ``#header``
   and ``#body``, in ``env:Signatures/env:Official``), then the seal (XAdES-BES enveloped over
   the whole envelope, in ``env:Signatures/env:Seal``) — and serialises it;
2. the receiver parses it and verifies both signatures;
3. the receiver seals a receipt (a small envelope) and serialises it;
4. the sender parses the receipt and verifies its seal.

``signxml`` does this with the library the gateway used before its own strict profile
(gateway/crypto/xades.py, exclusive C14N on trees), configured as it was (FACTS.md: C14N 1.1,
placeholders, ``SignatureConfiguration(location=…, expect_references=…)``). ``raw floor`` does the
same cryptographic work with lxml and cryptography directly — hardened parse, C14N of each
referenced part in context, SHA-256 reference digests, C14N of each SignedInfo, ECDSA P-256 —
and nothing else, so it is the floor a faster implementation could approach in Python. Its
signatures have signxml's shape, so each side verifies the other's (tests/benchmarks checks it).

Both count their cryptographic operations (:class:`OpCounter`) in a separate, untimed hop; the
counts must be equal for the comparison to mean anything.

Neither is a verifier to use: the signer's certificate is pinned here (as the gateway's trust
list would give it) and no path validation or revocation check is done — that is the gateway's.
"""

from __future__ import annotations

import hmac
import secrets
from base64 import b64decode, b64encode
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from hashlib import sha256

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.xades import XAdESSignatureConfiguration, XAdESSigner, XAdESVerifier

from benchmarks.documents import (
    DS_NS,
    ENV_NS,
    REQUEST_SIZE,
    Identities,
    Signer,
    hardened_parser,
    make_identities,
    message_id_of,
    parse_hardened,
    receipt_document,
    request_document,
)
from benchmarks.harness import CryptoOps, Hop, OpCounter

XADES_NS = "http://uri.etsi.org/01903/v1.3.2#"
E = f"{{{ENV_NS}}}"
DS = f"{{{DS_NS}}}"
XADES = f"{{{XADES_NS}}}"

C14N_11 = CanonicalizationMethod.CANONICAL_XML_1_1.value
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
ECDSA_SHA256 = SignatureMethod.ECDSA_SHA256.value
SHA256 = DigestAlgorithm.SHA256.value
SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"

OFFICIAL_REFERENCES = 4
"""``#header``, ``#body``, the XAdES SignedProperties and the KeyInfo (signxml signs it too)."""
SEAL_REFERENCES = 3
"""The whole envelope (``URI=""``), SignedProperties, KeyInfo."""

OFFICIAL_LOCATION = f"./{E}Signatures/{E}Official/"
SEAL_LOCATION = f"./{E}Signatures/{E}Seal/"

P256_COORDINATE_BYTES = 32
"""XML-DSig carries an ECDSA signature as r || s, each padded to the curve's size."""


# --- the signxml path -----------------------------------------------------------------------


def signxml_signer(role: str) -> XAdESSigner:
    """signxml's XAdES signer as gateway/crypto/xades.py configured it before the strict
    profile (role: official, seal)."""
    return XAdESSigner(
        claimed_roles=[role],
        signature_algorithm=SignatureMethod.ECDSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_1,
    )


def verification_config(location: str, references: int) -> XAdESSignatureConfiguration:
    return XAdESSignatureConfiguration(
        location=location,
        expect_references=references,
        signature_methods=frozenset({SignatureMethod.ECDSA_SHA256}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
    )


def add_placeholder(root: etree._Element, role: str) -> None:
    """Put signxml's placeholder where the signature of ``role`` (Official, Seal) must land."""
    signatures = root.find(f"{E}Signatures")
    if signatures is None:
        signatures = etree.SubElement(root, f"{E}Signatures")
    slot = etree.SubElement(signatures, f"{E}{role}")
    etree.SubElement(slot, f"{DS}Signature", Id="placeholder", nsmap={"ds": DS_NS})


class _CountingKey:
    """Wraps a private key to count signxml's ECDSA signatures (signxml calls only these)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, counter: OpCounter) -> None:
        self._key = key
        self._counter = counter
        self.key_size = key.key_size

    def sign(self, data: bytes, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        self._counter.ecdsa_sign += 1
        return self._key.sign(data, signature_algorithm)


def _counting_signer(counter: OpCounter, role: str) -> XAdESSigner:
    class CountingSigner(XAdESSigner):
        def _get_digest(self, data, algorithm):  # type: ignore[no-untyped-def]
            counter.reference_digests += 1
            return super()._get_digest(data, algorithm)

        def add_signing_certificate(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            before = counter.reference_digests
            super().add_signing_certificate(*args, **kwargs)
            moved = counter.reference_digests - before
            counter.reference_digests -= moved
            counter.certificate_digests += moved

    return CountingSigner(
        claimed_roles=[role],
        signature_algorithm=SignatureMethod.ECDSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_1,
    )


def _counting_verifier(counter: OpCounter) -> XAdESVerifier:
    class CountingVerifier(XAdESVerifier):
        def _get_digest(self, data, algorithm):  # type: ignore[no-untyped-def]
            counter.reference_digests += 1
            return super()._get_digest(data, algorithm)

        def _verify_cert_digest(self, signing_cert_node, certs, signing_cert):  # type: ignore[no-untyped-def]
            # One check per xades:Cert (signxml computes the fingerprint twice for it).
            counter.certificate_digests += len(self._findall(signing_cert_node, "xades:Cert"))
            return super()._verify_cert_digest(signing_cert_node, certs, signing_cert)

        def _verify_signature_with_pubkey(self, **kwargs):  # type: ignore[no-untyped-def]
            counter.ecdsa_verify += 1
            return super()._verify_signature_with_pubkey(**kwargs)

    return CountingVerifier()


def make_signxml_hop(
    identities: Identities | None = None,
    request: bytes | None = None,
    counter: OpCounter | None = None,
    now: datetime | None = None,
    size: int = REQUEST_SIZE,
) -> Hop:
    """A hop signed and verified with signxml's XAdES, as the gateway does it.

    Keys, certificates and documents (a request of ``size`` bytes) are made once here; the
    returned hop does only the work.
    With ``counter``, signxml's operations are counted (slower: use it for one hop only).
    """
    now = now or datetime.now(UTC)
    ids = identities or make_identities(now)
    request = request or request_document(now, size)[0]
    parser = hardened_parser()
    receipt = receipt_document(message_id_of(parse_hardened(request, parser)), now)
    # A signer per signature: XAdESSigner keeps every Id token it ever issued (``_tokens_used``,
    # 4 per signature), so one long-lived signer grows without bound.
    new_signer = partial(_counting_signer, counter) if counter else signxml_signer
    verifier = _counting_verifier(counter) if counter else XAdESVerifier()

    def key(identity: Signer) -> ec.EllipticCurvePrivateKey:
        return _CountingKey(identity.key, counter) if counter else identity.key  # type: ignore[return-value]

    official_config = verification_config(OFFICIAL_LOCATION, OFFICIAL_REFERENCES)
    seal_config = verification_config(SEAL_LOCATION, SEAL_REFERENCES)

    def seal(root: etree._Element, identity: Signer) -> bytes:
        add_placeholder(root, "Seal")
        signed = new_signer("seal").sign(
            root,
            key=key(identity),
            cert=[identity.certificate],
            always_add_key_value=False,
            id_attribute="Id",
        )
        return etree.tostring(signed, encoding="utf-8")

    def hop() -> None:
        # Sender: official by Id reference, then the seal over everything.
        root = parse_hardened(request, parser)
        add_placeholder(root, "Official")
        root = new_signer("official").sign(
            root,
            key=key(ids.sender_official),
            cert=[ids.sender_official.certificate],
            reference_uri=["#header", "#body"],
            always_add_key_value=False,
            id_attribute="Id",
        )
        wire = seal(root, ids.sender_seal)
        # Receiver: verify both, then seal a receipt.
        received = parse_hardened(wire, parser)
        verifier.verify(
            received,
            x509_cert=ids.sender_official.certificate,
            expect_config=official_config,
            id_attribute="Id",
        )
        verifier.verify(
            received,
            x509_cert=ids.sender_seal.certificate,
            expect_config=seal_config,
            id_attribute="Id",
        )
        receipt_wire = seal(parse_hardened(receipt, parser), ids.receiver_seal)
        # Sender: verify the receipt's seal.
        verifier.verify(
            parse_hardened(receipt_wire, parser),
            x509_cert=ids.receiver_seal.certificate,
            expect_config=seal_config,
            id_attribute="Id",
        )

    return hop


# --- the raw floor --------------------------------------------------------------------------


def _c14n(element: etree._Element) -> bytes:
    """Inclusive C14N of ``element`` in its document context — what signxml does for "C14N 1.1"
    (lxml has no 1.1 serialiser; the two agree on documents without xml:* attributes)."""
    return etree.tostring(element, method="c14n", exclusive=False, with_comments=False)


def _digest(data: bytes, counter: OpCounter | None) -> bytes:
    if counter:
        counter.reference_digests += 1
    return sha256(data).digest()


@dataclass(frozen=True)
class RawIdentity:
    """A signer prepared once: key, certificate as base64 DER, for the template."""

    key: ec.EllipticCurvePrivateKey
    certificate_der: bytes
    certificate_b64: str


def prepare_identity(identity: Signer) -> RawIdentity:
    der = identity.certificate.public_bytes(Encoding.DER)
    return RawIdentity(identity.key, der, b64encode(der).decode())


def _reference_xml(uri: str, transforms: tuple[str, ...], extra: str = "") -> str:
    transform_xml = "".join(f'<ds:Transform Algorithm="{t}"/>' for t in transforms)
    if transform_xml:
        transform_xml = f"<ds:Transforms>{transform_xml}</ds:Transforms>"
    return (
        f'<ds:Reference URI="{uri}"{extra}>{transform_xml}'
        f'<ds:DigestMethod Algorithm="{SHA256}"/><ds:DigestValue/></ds:Reference>'
    )


def _signature_xml(
    signer: RawIdentity,
    role: str,
    data_uris: list[str],
    signing_time: str,
    certificate_digest: str,
) -> str:
    """An XAdES-BES ds:Signature as signxml shapes it, with empty digest and signature values."""
    token = secrets.token_hex(4).upper()
    sig_id = f"Signature{token}"
    ref_id = f"Reference{token}"
    props_id = f"{sig_id}-SignedProperties"
    key_info_id = f"Certificate{token}"
    data_refs = "".join(
        _reference_xml(uri, (ENVELOPED, C14N_11), f' Id="{ref_id}"' if i == 0 else "")
        for i, uri in enumerate(data_uris)
    )
    return (
        f'<ds:Signature xmlns:ds="{DS_NS}" Id="{sig_id}">'
        f'<ds:SignedInfo xmlns:xades="{XADES_NS}">'
        f'<ds:CanonicalizationMethod Algorithm="{C14N_11}"/>'
        f'<ds:SignatureMethod Algorithm="{ECDSA_SHA256}"/>'
        f"{data_refs}"
        + _reference_xml(f"#{props_id}", (), f' Type="{SIGNED_PROPERTIES_TYPE}"')
        + _reference_xml(f"#{key_info_id}", ())
        + "</ds:SignedInfo><ds:SignatureValue/>"
        f'<ds:KeyInfo Id="{key_info_id}"><ds:X509Data><ds:X509Certificate>'
        f"{signer.certificate_b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
        f'<ds:Object xmlns:xades="{XADES_NS}">'
        f'<xades:QualifyingProperties Target="#{sig_id}">'
        f'<xades:SignedProperties Id="{props_id}"><xades:SignedSignatureProperties>'
        f"<xades:SigningTime>{signing_time}</xades:SigningTime>"
        "<xades:SigningCertificateV2><xades:Cert><xades:CertDigest>"
        f'<ds:DigestMethod Algorithm="{SHA256}"/>'
        f"<ds:DigestValue>{certificate_digest}</ds:DigestValue>"
        "</xades:CertDigest></xades:Cert></xades:SigningCertificateV2>"
        f"<xades:SignerRole><xades:ClaimedRoles><xades:ClaimedRole>{role}</xades:ClaimedRole>"
        "</xades:ClaimedRoles></xades:SignerRole>"
        "</xades:SignedSignatureProperties><xades:SignedDataObjectProperties>"
        f'<xades:DataObjectFormat ObjectReference="#{ref_id}">'
        "<xades:Description>Default XAdES payload description</xades:Description>"
        "<xades:MimeType>text/xml</xades:MimeType></xades:DataObjectFormat>"
        "</xades:SignedDataObjectProperties></xades:SignedProperties>"
        "</xades:QualifyingProperties></ds:Object></ds:Signature>"
    )


def raw_sign(
    root: etree._Element,
    role: str,
    signer: RawIdentity,
    data_ids: list[str] | None,
    parser: etree.XMLParser,
    counter: OpCounter | None = None,
) -> None:
    """Sign ``root`` in place, the signature landing in ``env:Signatures/env:<role>``.

    ``data_ids`` are the Ids to reference (the official: header, body); None signs the whole
    envelope (the seal, enveloped).
    """
    signatures = root.find(f"{E}Signatures")
    if signatures is None:
        signatures = etree.SubElement(root, f"{E}Signatures")
    slot = etree.SubElement(signatures, f"{E}{role}")
    if data_ids is None:
        # Enveloped: the digest covers the envelope as it is before the signature lands.
        data_digests = [_digest(_c14n(root), counter)]
        uris = [""]
    else:
        by_id = _ids(root)
        data_digests = [_digest(_c14n(by_id[i]), counter) for i in data_ids]
        uris = [f"#{i}" for i in data_ids]
    if counter:
        counter.certificate_digests += 1
    certificate_digest = b64encode(sha256(signer.certificate_der).digest()).decode()
    signing_time = datetime.now(UTC).isoformat(timespec="seconds")
    signature = etree.fromstring(
        _signature_xml(signer, role.lower(), uris, signing_time, certificate_digest),
        parser=parser,
    )
    slot.append(signature)
    signed_info = signature[0]
    references = signed_info.findall(f"{DS}Reference")
    by_id = {e.get("Id"): e for e in signature.iter() if e.get("Id")}
    digests = [
        *data_digests,
        *(_digest(_c14n(by_id[r.get("URI")[1:]]), counter) for r in references[len(uris) :]),
    ]
    for reference, digest in zip(references, digests, strict=True):
        reference[-1].text = b64encode(digest).decode()
    der = signer.key.sign(_c14n(signed_info), ec.ECDSA(hashes.SHA256()))
    if counter:
        counter.ecdsa_sign += 1
    r, s = decode_dss_signature(der)
    signature[1].text = b64encode(
        r.to_bytes(P256_COORDINATE_BYTES, "big") + s.to_bytes(P256_COORDINATE_BYTES, "big")
    ).decode()


class RawVerificationError(Exception):
    """A digest, certificate digest or signature value did not match."""


def _ids(root: etree._Element) -> dict[str, etree._Element]:
    """Elements by ``Id``; a repeated Id is refused (the signature-wrapping trick)."""
    found: dict[str, etree._Element] = {}
    for element in root.iter("*"):
        value = element.get("Id")
        if value is None:
            continue
        if value in found:
            raise RawVerificationError(f"Id {value!r} occurs twice: refused")
        found[value] = element
    return found


def raw_verify(
    root: etree._Element,
    role: str,
    public_key: ec.EllipticCurvePublicKey,
    certificate_der: bytes,
    expect_references: int,
    counter: OpCounter | None = None,
) -> None:
    """Verify the signature in ``env:Signatures/env:<role>`` of a parsed envelope, or raise.

    Every reference is recomputed (C14N in context, SHA-256), the SigningCertificateV2 digest is
    checked against the pinned certificate, the SignedInfo is canonicalised and the ECDSA value
    checked. Enough for a benchmark; the gateway's verifier checks far more.
    """
    signature = root.find(f"{E}Signatures/{E}{role}/{DS}Signature")
    if signature is None:
        raise RawVerificationError(f"no ds:Signature in env:Signatures/env:{role}")
    signed_info = signature.find(f"{DS}SignedInfo")
    if (
        signed_info.find(f"{DS}CanonicalizationMethod").get("Algorithm") != C14N_11
        or signed_info.find(f"{DS}SignatureMethod").get("Algorithm") != ECDSA_SHA256
    ):
        raise RawVerificationError("unexpected C14N or signature method")
    references = signed_info.findall(f"{DS}Reference")
    if len(references) != expect_references:
        raise RawVerificationError(f"{len(references)} references, {expect_references} expected")
    by_id = _ids(root)
    for reference in references:
        if reference.find(f"{DS}DigestMethod").get("Algorithm") != SHA256:
            raise RawVerificationError("unexpected digest method")
        uri = reference.get("URI")
        if uri == "":
            # Enveloped-signature transform: the envelope without this signature.
            parent = signature.getparent()
            index = parent.index(signature)
            parent.remove(signature)
            try:
                data = _c14n(root)
            finally:
                parent.insert(index, signature)
        elif uri.startswith("#") and uri[1:] in by_id:
            target = by_id[uri[1:]]
            if target in signature.iterancestors() or signature is target:
                raise RawVerificationError(f"reference {uri} covers its own signature")
            data = _c14n(target)
        else:
            raise RawVerificationError(f"reference {uri!r} does not resolve")
        expected = b64decode(reference.find(f"{DS}DigestValue").text)
        if not hmac.compare_digest(_digest(data, counter), expected):
            raise RawVerificationError(f"digest mismatch for reference {uri!r}")
    cert_digest = signature.find(
        f"{DS}Object/{XADES}QualifyingProperties/{XADES}SignedProperties/"
        f"{XADES}SignedSignatureProperties/{XADES}SigningCertificateV2/{XADES}Cert/"
        f"{XADES}CertDigest/{DS}DigestValue"
    )
    if counter:
        counter.certificate_digests += 1
    if cert_digest is None or not hmac.compare_digest(
        sha256(certificate_der).digest(), b64decode(cert_digest.text)
    ):
        raise RawVerificationError("SigningCertificateV2 does not name the pinned certificate")
    raw = b64decode(signature.find(f"{DS}SignatureValue").text)
    if len(raw) != 2 * P256_COORDINATE_BYTES:
        raise RawVerificationError("ECDSA P-256 signature value must be 64 bytes")
    der = encode_dss_signature(
        int.from_bytes(raw[:P256_COORDINATE_BYTES], "big"),
        int.from_bytes(raw[P256_COORDINATE_BYTES:], "big"),
    )
    if counter:
        counter.ecdsa_verify += 1
    try:
        public_key.verify(der, _c14n(signed_info), ec.ECDSA(hashes.SHA256()))
    except Exception as exc:  # cryptography.exceptions.InvalidSignature
        raise RawVerificationError("signature value does not verify") from exc


def make_raw_hop(
    identities: Identities | None = None,
    request: bytes | None = None,
    counter: OpCounter | None = None,
    now: datetime | None = None,
    size: int = REQUEST_SIZE,
) -> Hop:
    """A hop doing signxml's cryptographic work with lxml and cryptography only."""
    now = now or datetime.now(UTC)
    ids = identities or make_identities(now)
    request = request or request_document(now, size)[0]
    parser = hardened_parser()
    receipt = receipt_document(message_id_of(parse_hardened(request, parser)), now)
    official = prepare_identity(ids.sender_official)
    sender_seal = prepare_identity(ids.sender_seal)
    receiver_seal = prepare_identity(ids.receiver_seal)
    official_public = ids.sender_official.certificate.public_key()
    sender_seal_public = ids.sender_seal.certificate.public_key()
    receiver_seal_public = ids.receiver_seal.certificate.public_key()

    def hop() -> None:
        root = parse_hardened(request, parser)
        raw_sign(root, "Official", official, ["header", "body"], parser, counter)
        raw_sign(root, "Seal", sender_seal, None, parser, counter)
        wire = etree.tostring(root, encoding="utf-8")
        received = parse_hardened(wire, parser)
        raw_verify(
            received,
            "Official",
            official_public,
            official.certificate_der,
            OFFICIAL_REFERENCES,
            counter,
        )
        raw_verify(
            received,
            "Seal",
            sender_seal_public,
            sender_seal.certificate_der,
            SEAL_REFERENCES,
            counter,
        )
        receipt_root = parse_hardened(receipt, parser)
        raw_sign(receipt_root, "Seal", receiver_seal, None, parser, counter)
        receipt_wire = etree.tostring(receipt_root, encoding="utf-8")
        raw_verify(
            parse_hardened(receipt_wire, parser),
            "Seal",
            receiver_seal_public,
            receiver_seal.certificate_der,
            SEAL_REFERENCES,
            counter,
        )

    return hop


def count_ops(make_hop: Callable[..., Hop]) -> CryptoOps:
    """Run one hop of ``make_hop`` with counting on, and return its operations."""
    counter = OpCounter()
    make_hop(counter=counter)()
    return counter.freeze()
