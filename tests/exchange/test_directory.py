"""Directory of bodies: build ⇄ parse round trip, schema, rules, look-ups, rollback refusal."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from functools import cache

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree

from gateway.exchange.directory import (
    DIRECTORY_SCHEMA,
    MAX_CLOCK_SKEW,
    DirectoryIndex,
    DirectoryRollback,
    UnknownBody,
    build_directory_xml,
    check_update,
    directory_problems,
    load_directory_update,
    parse_directory_xml,
)
from gateway.model.bodies import BodyLevel
from gateway.model.directory import (
    DIRECTORY_NAMESPACE,
    BodyCertificate,
    BodyName,
    CertificateRole,
    Directory,
    DirectoryBody,
)
from gateway.model.limits import MAX_DIRECTORY_BYTES
from gateway.model.problems import DocumentRejected
from gateway.model.profiles import CIS_ENFORCEMENT, Participation, Reservation
from tests.tooling import require_tool

ISSUED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
NS = {"dir": DIRECTORY_NAMESPACE}


@cache
def certificate(body_id: str | None, role: str, serial: int = 1) -> bytes:
    """A self-signed P-256 certificate naming ``body_id`` as organizationIdentifier."""
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, f"{body_id or 'nobody'} {role}")]
    if body_id:
        attributes.append(x509.NameAttribute(x509.ObjectIdentifier("2.5.4.97"), body_id))
    name = x509.Name(attributes)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(ISSUED - timedelta(days=1))
        .not_valid_after(ISSUED + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def body(body_id: str, *, level: BodyLevel = BodyLevel.CENTRAL, **changes) -> DirectoryBody:  # type: ignore[no-untyped-def]
    state = body_id[:2]
    made = DirectoryBody(
        id=body_id,
        state=state,
        level=level,
        names=(BodyName("ru", f"Орган {body_id}"), BodyName("en", f"Body {body_id}")),
        endpoint=f"https://{body_id.lower()}.example:8443/peer",
        certificates=(
            BodyCertificate(CertificateRole.SEAL, certificate(body_id, "seal")),
            BodyCertificate(CertificateRole.TLS, certificate(body_id, "tls")),
            BodyCertificate(CertificateRole.ENCRYPTION, certificate(body_id, "encryption")),
            BodyCertificate(CertificateRole.OFFICIALS_CA, certificate(None, "ca")),
        ),
        calendar=state,
        reservations=tuple(r for r in CIS_ENFORCEMENT.reservations if r.state == state),
        participations=(Participation(state, "cis-enforcement", date(2026, 3, 1)),),
    )
    return replace(made, **changes)


def directory(version: int = 7, **changes) -> Directory:  # type: ignore[no-untyped-def]
    made = Directory(
        version=version,
        issued_at=ISSUED,
        depositary="CIS-EC",
        bodies=(
            body("RU-FSSP"),
            body("KZ-MJ"),
            body(
                "KZ-VS",
                participations=(
                    Participation("KZ", "ru-kz-supreme-courts", date(2026, 4, 14)),
                    Participation(
                        "KZ", "cis-enforcement", date(2026, 3, 1), withdrawn_from=date(2027, 1, 1)
                    ),
                ),
            ),
            body("RU-FSSP-77", level=BodyLevel.TERRITORIAL),
        ),
    )
    return replace(made, **changes)


def codes(error: pytest.ExceptionInfo[DocumentRejected]) -> set[str]:
    return {p.code for p in error.value.problems}


def test_round_trip_is_exact_and_schema_valid() -> None:
    original = directory()
    data = build_directory_xml(original)
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    parsed = parse_directory_xml(data)
    assert parsed == original
    assert parsed.bodies[1].reservations[0].article == "CIS Art. 6 а)"
    assert build_directory_xml(parsed) == data


def test_a_partial_declaration_round_trips_item_by_item() -> None:
    partial = Reservation(
        state="KZ",
        agreement="cis-enforcement",
        code="non-application",
        article="CIS Art. 25",
        text_ru="Не применяет подпункт а) статьи 6 к нотариально заверенным документам.",
        issuer_kinds=frozenset({"notary"}),
        scope=frozenset({"bank-accounts", "Location"}),
        since=date(2026, 3, 1),
    )
    kz = body("KZ-MJ")
    original = directory(
        bodies=(body("RU-FSSP"), replace(kz, reservations=(*kz.reservations, partial)))
    )
    data = build_directory_xml(original)
    assert b'since="2026-03-01"' in data and b"<dir:Scope>Location</dir:Scope>" in data
    parsed = parse_directory_xml(data)
    assert parsed == original
    assert parsed.bodies[1].reservations[1] == partial
    assert DirectoryIndex.of(parsed).publishes_reservations("cis-enforcement")
    assert not DirectoryIndex.of(parsed).publishes_reservations("ru-kz-supreme-courts")


def test_published_limits_round_trip_and_default_to_2_gib() -> None:
    kz = replace(body("KZ-MJ"), max_message_bytes=500_000_000, max_attachment_bytes=100_000_000)
    original = directory(bodies=(body("RU-FSSP"), kz))
    data = build_directory_xml(original)
    assert b"<dir:MaxAttachmentBytes>100000000</dir:MaxAttachmentBytes>" in data
    assert data.count(b"<dir:Limits>") == 1  # a body at the defaults publishes none
    parsed = parse_directory_xml(data)
    assert parsed == original
    assert (parsed.bodies[0].max_message_bytes, parsed.bodies[0].max_attachment_bytes) == (
        2 * 1024**3,
        2 * 1024**3,
    )


def test_xmllint_accepts_the_built_directory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    xmllint = require_tool("xmllint", "libxml2-utils")
    import subprocess

    path = tmp_path / "directory.xml"
    path.write_bytes(build_directory_xml(directory()))
    result = subprocess.run(
        [xmllint, "--noout", "--nonet", "--schema", str(DIRECTORY_SCHEMA), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_room_for_the_depositary_signature_at_the_end() -> None:
    root = etree.fromstring(build_directory_xml(directory()))
    signature = etree.SubElement(root, "{http://www.w3.org/2000/09/xmldsig#}Signature")
    etree.SubElement(signature, "{http://www.w3.org/2000/09/xmldsig#}SignedInfo")
    assert parse_directory_xml(etree.tostring(root)) == directory()
    # Anything else at the end, or a signature in the wrong place, is refused.
    root.remove(signature)
    etree.SubElement(root, f"{{{DIRECTORY_NAMESPACE}}}Extra")
    with pytest.raises(DocumentRejected) as caught:
        parse_directory_xml(etree.tostring(root))
    assert codes(caught) == {"DIRECTORY_SCHEMA_INVALID"}


def _mutate(xpath: str, action) -> bytes:  # type: ignore[no-untyped-def]
    root = etree.fromstring(build_directory_xml(directory()))
    for element in root.xpath(xpath, namespaces=NS):
        action(element)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _set_text(value: str):  # type: ignore[no-untyped-def]
    def action(element) -> None:  # type: ignore[no-untyped-def]
        element.text = value

    return action


def _add_scope(value: str):  # type: ignore[no-untyped-def]
    def action(element) -> None:  # type: ignore[no-untyped-def]
        etree.SubElement(element, f"{{{NS['dir']}}}Scope").text = value

    return action


@pytest.mark.parametrize(
    ("xpath", "action", "code"),
    [
        ("/dir:Directory/dir:Version", _set_text("0"), "DIRECTORY_SCHEMA_INVALID"),
        (
            "/dir:Directory/dir:IssuedAt",
            _set_text("2026-11-01T12:00:00"),
            "DIRECTORY_SCHEMA_INVALID",
        ),
        (
            "//dir:Body[1]/dir:Endpoint",
            _set_text("http://plain.example/"),
            "DIRECTORY_SCHEMA_INVALID",
        ),
        (
            "//dir:Body[1]/dir:Endpoint",
            _set_text("https://u:p@x.example/"),
            "DIRECTORY_SCHEMA_INVALID",
        ),
        ("//dir:Body[2]/dir:Id", _set_text("RU-FSSP"), "DIRECTORY_SCHEMA_INVALID"),  # unique id
        ("//dir:Body[1]/dir:State", _set_text("KZ"), "DIRECTORY_BODY_STATE_MISMATCH"),
        (
            "//dir:Body[1]//dir:Certificate[1]",
            _set_text(base64.b64encode(b"x" * 80).decode()),
            "DIRECTORY_CERTIFICATE_INVALID",
        ),
        (
            "//dir:Body[1]//dir:Certificate[@role='tls']",
            lambda e: e.getparent().remove(e),
            "DIRECTORY_CERTIFICATE_MISSING",
        ),
        (
            "//dir:Body[2]//dir:Certificate[@role='tls']",
            _set_text(base64.b64encode(certificate("RU-FSSP", "tls")).decode()),
            "DIRECTORY_CERTIFICATE_SHARED",
        ),
        (
            "//dir:Body[2]//dir:Certificate[@role='seal']",
            _set_text(base64.b64encode(certificate(None, "seal")).decode()),
            "DIRECTORY_CERTIFICATE_WRONG_BODY",
        ),
        (
            "//dir:Body[3]//dir:Participation[2]",
            lambda e: e.set("withdrawnFrom", "2026-01-01"),
            "DIRECTORY_PARTICIPATION_INVALID",
        ),
        # A partial Art. 25 scope names the request's subjects (cis-enforcement.xsd) only.
        ("//dir:Body[2]//dir:Reservation[1]", _add_scope("Income"), "DIRECTORY_SCHEMA_INVALID"),
        (
            "//dir:Body[2]//dir:Reservation[1]",
            lambda e: e.set("since", "2026-02-30"),
            "DIRECTORY_SCHEMA_INVALID",
        ),
        # Kazakhstan's reservation limits Art. 6 а): a scope belongs to Art. 25 declarations.
        (
            "//dir:Body[2]//dir:Reservation[1]",
            _add_scope("bank-accounts"),
            "DIRECTORY_RESERVATION_INVALID",
        ),
    ],
)
def test_broken_directories_are_refused_with_a_named_problem(xpath, action, code) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DocumentRejected) as caught:
        parse_directory_xml(_mutate(xpath, action))
    assert code in codes(caught)
    assert all(p.article == "CIS Art. 18" for p in caught.value.problems)


def test_builder_refuses_what_a_node_would_refuse() -> None:
    bad = directory(bodies=(body("RU-FSSP", state="KZ"),))
    with pytest.raises(DocumentRejected) as caught:
        build_directory_xml(bad)
    assert "DIRECTORY_BODY_STATE_MISMATCH" in codes(caught)
    naive = directory(issued_at=datetime(2026, 11, 1, 12))  # naive on purpose
    assert "DIRECTORY_TIME_WITHOUT_ZONE" in {p.code for p in directory_problems(naive)}


def test_hostile_bytes_are_refused_before_the_schema() -> None:
    doctype = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<dir:Directory xmlns:dir="urn:cis-exchange:directory:1">&x;</dir:Directory>'
    )
    with pytest.raises(DocumentRejected) as caught:
        parse_directory_xml(doctype)
    assert codes(caught) == {"XML_DOCTYPE_FORBIDDEN"}
    with pytest.raises(DocumentRejected) as caught:
        parse_directory_xml(b" " * (MAX_DIRECTORY_BYTES + 1))
    assert codes(caught) == {"DIRECTORY_TOO_LARGE"}


def test_lookups() -> None:
    index = DirectoryIndex.of(directory())
    assert index.body("KZ-MJ").name() == "Орган KZ-MJ"
    assert index.body("KZ-MJ").name("en") == "Body KZ-MJ"
    assert index.body_by_tls_certificate(certificate("KZ-MJ", "tls")).id == "KZ-MJ"
    assert index.body_by_seal_certificate(certificate("RU-FSSP", "seal")).id == "RU-FSSP"
    fingerprint = BodyCertificate(CertificateRole.TLS, certificate("RU-FSSP", "tls")).sha256
    colons = ":".join(fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()
    assert index.body_by_fingerprint(CertificateRole.TLS, colons).id == "RU-FSSP"
    with pytest.raises(UnknownBody):  # the seal certificate does not open a TLS connection
        index.body_by_tls_certificate(certificate("RU-FSSP", "seal"))
    with pytest.raises(UnknownBody, match="RU-NOPE"):
        index.body("RU-NOPE")
    assert index.agreements_of("KZ-VS", on=date(2026, 12, 31)) == (
        "ru-kz-supreme-courts",
        "cis-enforcement",
    )
    assert index.agreements_of("KZ-VS", on=date(2027, 1, 1)) == ("ru-kz-supreme-courts",)
    assert index.agreements_of("KZ-VS", on=date(2026, 4, 13)) == ("cis-enforcement",)
    assert index.agreements_of("RU-FSSP", on=date(2026, 2, 28)) == ()
    [reservation] = index.reservations_of("KZ-MJ", "cis-enforcement")
    assert reservation.code == "limits-article" and reservation.state == "KZ"
    assert index.reservations_of("RU-FSSP", "cis-enforcement") == ()
    assert index.participation("KZ-MJ", "ru-kz-supreme-courts") is None
    assert [b.id for b in index.bodies_of_state("RU")] == ["RU-FSSP", "RU-FSSP-77"]
    assert index.body("RU-FSSP").to_body().agreements == ("cis-enforcement",)


def test_pem_and_der_forms_agree() -> None:
    der = certificate("RU-FSSP", "seal")
    pem = BodyCertificate(CertificateRole.SEAL, der).pem
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    assert BodyCertificate.from_pem(CertificateRole.SEAL, pem).der == der
    assert "sha256=" in repr(BodyCertificate(CertificateRole.SEAL, der))


@pytest.mark.parametrize("new_version", [6, 7])
def test_update_refuses_older_or_equal_version(new_version: int) -> None:
    current = directory(7)
    with pytest.raises(DirectoryRollback) as caught:
        check_update(current, directory(new_version, issued_at=ISSUED + timedelta(days=1)))
    [problem] = caught.value.problems
    assert problem.code == "DIRECTORY_ROLLBACK"
    assert f"{new_version}" in problem.message_en and "7" in problem.message_en
    assert problem.path == "/Directory/Version"


def test_update_rules() -> None:
    current = directory(7)
    newer = directory(8, issued_at=ISSUED + timedelta(days=1))
    check_update(current, newer)
    check_update(None, current)
    with pytest.raises(DirectoryRollback) as caught:
        check_update(current, directory(8, issued_at=ISSUED - timedelta(seconds=1)))
    assert codes(caught) == {"DIRECTORY_ISSUED_BEFORE_CURRENT"}
    with pytest.raises(DocumentRejected) as caught:
        check_update(current, replace(newer, depositary="SOMEONE-ELSE"))
    assert codes(caught) == {"DIRECTORY_DEPOSITARY_CHANGED"}
    now = ISSUED
    check_update(None, directory(1, issued_at=now + MAX_CLOCK_SKEW), now=now)
    with pytest.raises(DocumentRejected) as caught:
        check_update(None, directory(1, issued_at=now + MAX_CLOCK_SKEW * 2), now=now)
    assert codes(caught) == {"DIRECTORY_ISSUED_IN_FUTURE"}


def test_load_update_from_bytes() -> None:
    current = directory(7)
    data = build_directory_xml(directory(8, issued_at=ISSUED + timedelta(hours=1)))
    assert load_directory_update(data, current, now=ISSUED + timedelta(hours=2)).version == 8
    with pytest.raises(DirectoryRollback):
        load_directory_update(build_directory_xml(current), current)


@pytest.mark.parametrize(
    "issued", ["2026-11-01T24:00:00Z", "2026-11-01T12:00:00.1234567Z", "2026-11-01T12:00:00"]
)
def test_times_python_cannot_read_are_refused_not_crashed(issued: str) -> None:
    with pytest.raises(DocumentRejected) as caught:
        parse_directory_xml(_mutate("/dir:Directory/dir:IssuedAt", _set_text(issued)))
    assert codes(caught) == {"DIRECTORY_SCHEMA_INVALID"}


def test_zoned_participation_dates_are_refused() -> None:
    data = _mutate(
        "//dir:Body[1]//dir:Participation", lambda e: e.set("inForceFrom", "2026-03-01Z")
    )
    with pytest.raises(DocumentRejected) as caught:
        parse_directory_xml(data)
    assert codes(caught) == {"DIRECTORY_SCHEMA_INVALID"}


def test_a_signxml_enveloped_signature_fits_and_verified_bytes_parse() -> None:
    """The signature step the lead adds wraps bytes: sign the built bytes, verify, parse."""
    from cryptography.x509.oid import NameOID as Oid
    from signxml import DigestAlgorithm, SignatureMethod, XMLSigner, XMLVerifier, methods
    from signxml.exceptions import InvalidSignature

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(Oid.COMMON_NAME, "CIS-EC depositary")])
    depositary = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(ISSUED - timedelta(days=1))
        .not_valid_after(ISSUED + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm=SignatureMethod.ECDSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
    )
    signed = etree.tostring(
        signer.sign(etree.fromstring(build_directory_xml(directory())), key=key, cert=[depositary])
    )
    assert parse_directory_xml(signed) == directory()  # the schema has room for it
    verified = XMLVerifier().verify(
        signed,
        x509_cert=depositary.public_bytes(serialization.Encoding.PEM),
        expect_references=1,
    )
    assert parse_directory_xml(etree.tostring(verified.signed_xml)) == directory()
    tampered = signed.replace(b"https://kz-mj.example", b"https://evil.example")
    with pytest.raises(InvalidSignature):
        XMLVerifier().verify(
            tampered,
            x509_cert=depositary.public_bytes(serialization.Encoding.PEM),
            expect_references=1,
        )
