"""The depositary's signature on the directory of bodies (CIS Art. 18).

The depositary (the CIS Executive Committee) signs the directory document enveloped, with its
seal; a node accepts a directory only when that signature verifies, the signer's certificate
chains to the configured depositary trust anchor and names the directory's ``Depositary``,
and the version is newer than the one it holds (:func:`gateway.exchange.directory.check_update`).
Only the bytes the signature covers are parsed — never the document as received.

The signature is canonicalised with **exclusive C14N**, the envelopes' one C14N (SMEV 3's
choice, which .NET's SignedXml and the JavaScript XAdES stacks implement), so any peer's
stack verifies the directory too. Versions signed before with C14N 1.1 still verify (a node
reloads the version it holds); any other canonicalisation or transform is refused.
"""

from __future__ import annotations

import base64
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree
from signxml import methods
from signxml.exceptions import InvalidInput, InvalidSignature
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

from gateway.crypto import certificates
from gateway.crypto.algorithms import signature_method_for
from gateway.crypto.keys.keystore import SigningKey
from gateway.crypto.trust import TrustList
from gateway.exchange.directory import check_directory_size, parse_directory_xml
from gateway.model.directory import Directory
from gateway.model.problems import DocumentRejected, Problem
from gateway.xml.parsing import parse_untrusted

DS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
C14N_11 = "http://www.w3.org/2006/12/xml-c14n11"
"""Signed with it before exclusive C14N: accepted when verifying, never used to sign."""
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
ALLOWED_C14N = frozenset({EXC_C14N, C14N_11})


def _rejected(code: str, ru: str, en: str) -> DocumentRejected:
    return DocumentRejected(
        [
            Problem(
                code=code,
                path="/Directory/Signature",
                message_ru=ru,
                message_en=en,
                remedy_ru="Получите справочник органов у депозитария заново и импортируйте его.",
                article="CIS Art. 18",
            )
        ]
    )


def sign_directory(directory_xml: bytes, depositary: SigningKey) -> bytes:
    """Sign a directory built by :func:`gateway.exchange.directory.build_directory_xml`."""
    root = parse_untrusted(directory_xml)
    signature_method, digest = signature_method_for(depositary.certificate.public_key())
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm=signature_method,
        digest_algorithm=digest,
        c14n_algorithm=EXC_C14N,
    )
    signed = signer.sign(
        root, key=depositary.private_key, cert=[depositary.certificate, *depositary.chain]
    )
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


def verify_directory(data: bytes, depositary_trust: TrustList, *, at: datetime) -> Directory:
    """Verify the depositary's signature and parse what it covers; raise DocumentRejected."""
    check_directory_size(data)
    root = parse_untrusted(data)
    certs = root.findall(
        f"{{{DS}}}Signature/{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate"
    )
    if not certs:
        raise _rejected(
            "DIRECTORY_UNSIGNED",
            "Справочник органов не подписан депозитарием.",
            "the directory carries no depositary signature",
        )
    try:
        chain = [x509.load_der_x509_certificate(_b64(c.text or "")) for c in certs]
    except ValueError:
        raise _rejected(
            "DIRECTORY_SIGNATURE_INVALID",
            "Сертификат в подписи справочника не читается.",
            "the certificate in the directory's signature is unreadable",
        ) from None
    signer_cert = chain[0]
    path = depositary_trust.validate(signer_cert, chain[1:], moment=at, at=at)
    if not path.passed:
        raise _rejected(
            "DIRECTORY_SIGNER_UNTRUSTED",
            "Подпись справочника сделана не депозитарием (сертификат не ведёт к доверенному "
            f"сертификату депозитария): {path.sub_indication}.",
            f"the directory's signer does not chain to the depositary anchor: {path.message}",
        )
    _check_algorithms(root)
    try:
        result = XMLVerifier().verify(
            data,
            x509_cert=signer_cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            expect_config=SignatureConfiguration(location="./", expect_references=1),
        )
    except (InvalidSignature, InvalidInput) as exc:
        raise _rejected(
            "DIRECTORY_SIGNATURE_INVALID",
            "Подпись справочника органов не прошла проверку: документ изменён после подписания.",
            f"the directory's signature does not verify: {type(exc).__name__}",
        ) from None
    signed = result[0] if isinstance(result, list) else result
    directory = parse_directory_xml(etree.tostring(signed.signed_xml))
    signer_body = certificates.body_id_of(signer_cert)
    if signer_body != directory.depositary:
        raise _rejected(
            "DIRECTORY_SIGNER_NOT_DEPOSITARY",
            f"Справочник подписан {signer_body}, а в нём депозитарием указан "
            f"{directory.depositary}.",
            f"signed by {signer_body}, but the directory names {directory.depositary}",
        )
    return directory


def _check_algorithms(root: etree._Element) -> None:
    """One canonicalisation for SignedInfo and the reference, enveloped first: what we sign,
    or what we signed before (C14N 1.1). Anything else is refused before verifying."""
    signed_info = root.find(f"{{{DS}}}Signature/{{{DS}}}SignedInfo")
    methods_found = [
        element.get("Algorithm", "")
        for element in (
            []
            if signed_info is None
            else [
                *signed_info.findall(f"{{{DS}}}CanonicalizationMethod"),
                *signed_info.iterfind(f"{{{DS}}}Reference/{{{DS}}}Transforms/{{{DS}}}Transform"),
            ]
        )
    ]
    c14n = {m for m in methods_found if m != ENVELOPED}
    if len(c14n) != 1 or not c14n <= ALLOWED_C14N or ENVELOPED not in methods_found:
        raise _rejected(
            "DIRECTORY_SIGNATURE_INVALID",
            "Подпись справочника использует недопустимую каноникализацию.",
            "the directory's signature must be enveloped with exclusive C14N (or C14N 1.1 "
            f"for versions signed before); found {sorted(set(methods_found))}",
        )


def _b64(text: str) -> bytes:
    return base64.b64decode("".join(text.split()), validate=True)
