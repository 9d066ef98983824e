"""Documents and keys the benchmark hops work on.

A realistic request is a ~10 KB envelope (``urn:cis-exchange:envelope:1``) with Russian content.
When ``gateway/schemas/examples/valid/`` holds a CIS enforcement Request, that example is
padded to the target size (so the benchmark follows the schema as it evolves); otherwise one is
generated here.
A receipt is the small envelope a receiver seals and sends back.

Keys are ECDSA P-256 with certificates made once per process with ``cryptography`` (FACTS.md:
keep keys loaded). Their subjects follow docs/architecture.md: the body id as
``organizationIdentifier``; an official's certificate carries the person's name and title.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree

from gateway.schemas import VALID_EXAMPLES_DIR

ENV_NS = "urn:cis-exchange:envelope:1"
CIS_NS = "urn:cis-exchange:cis-enforcement:1"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"

REQUEST_SIZE = 10 * 1024
"""Target size in bytes of an unsigned request: a typical request with a few persons, assets and
questions (CIS Art. 11) and no attachments."""

EXAMPLES_DIR = VALID_EXAMPLES_DIR
REQUEST_EXAMPLE = "cis-enforcement.Request.xml"
RECEIPT_EXAMPLE = "cis-enforcement.Receipt.xml"

SENDER = "RU-FSSP"
RECIPIENT = "KZ-MJ"

CERTIFICATE_LIFETIME = timedelta(days=365)
"""Long enough that no benchmark run sees a certificate expire."""


def hardened_parser() -> etree.XMLParser:
    """The parser FACTS.md prescribes for anything read from a peer or a file."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def parse_hardened(data: bytes, parser: etree.XMLParser) -> etree._Element:
    """Parse ``data`` and refuse a DOCTYPE (no entity or DTD tricks get past this point)."""
    root = etree.fromstring(data, parser=parser)
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise ValueError("document carries a DOCTYPE: refused (FACTS.md, lxml hardening)")
    return root


@dataclass(frozen=True)
class Signer:
    """One signing identity: a private key and its certificate."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


@dataclass(frozen=True)
class Identities:
    """The keys of one hop: the sender's official and seal, the receiver's seal."""

    ca: Signer
    sender_official: Signer
    sender_seal: Signer
    receiver_seal: Signer


def _name(body_id: str, common_name: str, title: str | None = None) -> x509.Name:
    attributes = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, body_id[:2]),
        x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, body_id),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ]
    if title:
        attributes.append(x509.NameAttribute(NameOID.TITLE, title))
    return x509.Name(attributes)


def _issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: Signer | None,
    now: datetime,
    is_ca: bool,
) -> x509.Certificate:
    issuer_name = issuer.certificate.subject if issuer else subject
    issuer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + CERTIFICATE_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not is_ca,
                content_commitment=not is_ca,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=is_ca,
                crl_sign=is_ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    return builder.sign(issuer_key, hashes.SHA256())


def make_identities(now: datetime) -> Identities:
    """Make a CA and three ECDSA P-256 signers valid at ``now``."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = Signer(ca_key, _issue(_name("RU-CA", "Демонстрационный УЦ"), ca_key, None, now, True))

    def signer(subject: x509.Name) -> Signer:
        key = ec.generate_private_key(ec.SECP256R1())
        return Signer(key, _issue(subject, key, ca, now, False))

    return Identities(
        ca=ca,
        sender_official=signer(
            _name(SENDER, "Петрова Анна Сергеевна", "судебный пристав-исполнитель")
        ),
        sender_seal=signer(_name(SENDER, "ФССП России")),
        receiver_seal=signer(_name(RECIPIENT, "Минюст Республики Казахстан")),
    )


# --- the request ---------------------------------------------------------------------------

_QUESTIONS = (
    "Имеются ли у должника счета в банках и иных кредитных организациях, их номера и остатки?",
    "Зарегистрированы ли за должником объекты недвижимого имущества, их адреса и "
    "кадастровые номера?",
    "Зарегистрированы ли за должником транспортные средства, их марки и государственные номера?",
    "Является ли должник участником (учредителем) юридических лиц, размер его доли?",
    "Место работы должника, источники и размер доходов за последние три года.",
    "Место жительства (пребывания) должника на территории запрашиваемой Стороны.",
)

_FILLER = (
    "Исполнительное производство возбуждено на основании исполнительного листа, выданного "
    "по решению суда, вступившему в законную силу. Должник добровольно требования "
    "исполнительного документа в установленный срок не исполнил. По имеющимся сведениям "
    "должник выехал на территорию запрашиваемой Стороны, где может иметь имущество и доходы. "
)


def _header_xml(
    message_id: str, conversation_id: str, kind: str, sender: str, recipient: str, created: str
) -> str:
    return (
        f'<env:Header Id="header">'
        f"<env:MessageId>{message_id}</env:MessageId>"
        f"<env:ConversationId>{conversation_id}</env:ConversationId>"
        f"<env:Agreement>cis-enforcement</env:Agreement>"
        f"<env:Kind>{kind}</env:Kind>"
        f"<env:Sender>{sender}</env:Sender>"
        f"<env:Recipient>{recipient}</env:Recipient>"
        f"<env:Created>{created}</env:Created>"
        f"<env:Confidential>false</env:Confidential>"
        f"<env:Urgency>normal</env:Urgency>"
        f"<env:Language>ru</env:Language>"
        f"</env:Header>"
    )


def generated_request(now: datetime, size: int = REQUEST_SIZE) -> bytes:
    """A CIS enforcement request of about ``size`` bytes (UTF-8), unsigned."""
    created = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    questions = "".join(f"<cis:Question>{q}</cis:Question>" for q in _QUESTIONS)
    body_head = (
        f'<env:Body Id="body"><cis:Request xmlns:cis="{CIS_NS}">'
        "<cis:RequestingAuthority>"
        "<cis:Name>Главное управление Федеральной службы судебных приставов по г. Москве"
        "</cis:Name><cis:Address>125009, г. Москва, ул. Тверская, д. 1</cis:Address>"
        "</cis:RequestingAuthority>"
        "<cis:EnforcementDocument>"
        "<cis:Type>исполнительный лист</cis:Type><cis:Number>ФС № 041234567</cis:Number>"
        "<cis:IssuedBy>Тверской районный суд г. Москвы</cis:IssuedBy>"
        "<cis:IssuedOn>2026-03-14</cis:IssuedOn>"
        "<cis:OperativePart>Взыскать с Сидорова Петра Николаевича в пользу "
        "ООО «Северный ветер» задолженность по договору поставки в размере 2 450 000 рублей "
        "00 копеек, проценты за пользование чужими денежными средствами и расходы по уплате "
        "государственной пошлины.</cis:OperativePart>"
        "</cis:EnforcementDocument>"
        "<cis:Proceeding><cis:Number>123456/26/77001-ИП</cis:Number>"
        "<cis:OpenedOn>2026-04-02</cis:OpenedOn></cis:Proceeding>"
        "<cis:Creditor><cis:Organisation><cis:Name>ООО «Северный ветер»</cis:Name>"
        "<cis:RegistrationNumber>1027700000000</cis:RegistrationNumber></cis:Organisation>"
        "</cis:Creditor>"
        "<cis:Debtor><cis:Person><cis:FamilyName>Сидоров</cis:FamilyName>"
        "<cis:GivenName>Пётр</cis:GivenName><cis:Patronymic>Николаевич</cis:Patronymic>"
        "<cis:BirthDate>1979-08-21</cis:BirthDate><cis:BirthPlace>г. Омск</cis:BirthPlace>"
        "<cis:Citizenship>RU</cis:Citizenship>"
        "<cis:LastKnownAddress>Республика Казахстан, г. Астана, пр. Мангилик Ел, д. 10, кв. 5"
        "</cis:LastKnownAddress></cis:Person></cis:Debtor>"
        f"<cis:Questions>{questions}</cis:Questions>"
        "<cis:Explanations>"
    )
    body_tail = "</cis:Explanations></cis:Request></env:Body>"
    head = (
        f'<env:Envelope xmlns:env="{ENV_NS}">'
        + _header_xml(str(uuid.uuid4()), str(uuid.uuid4()), "Request", SENDER, RECIPIENT, created)
        + body_head
    )
    tail = body_tail + "</env:Envelope>"
    filler = []
    used = len((head + tail).encode())
    while used < size:
        filler.append(_FILLER)
        used += len(_FILLER.encode())
    text = (head + "".join(filler) + tail).encode()
    parse_hardened(text, hardened_parser())  # well-formed, or fail here rather than mid-run
    return text


def _is_cis_request(root: etree._Element) -> bool:
    header = root.find(f"{{{ENV_NS}}}Header")
    if root.tag != f"{{{ENV_NS}}}Envelope" or header is None:
        return False
    return (
        header.findtext(f"{{{ENV_NS}}}Kind") == "Request"
        and header.findtext(f"{{{ENV_NS}}}Agreement") == "cis-enforcement"
    )


def padded_example(path: Path, size: int = REQUEST_SIZE) -> bytes | None:
    """The example at ``path`` padded to ``size`` bytes, or None when it is not a CIS Request.

    Padding lengthens the longest text in the body (a free-text field such as explanations),
    which keeps the document schema-valid unless that field has a ``maxLength``.
    """
    parser = hardened_parser()
    try:
        root = parse_hardened(path.read_bytes(), parser)
    except (etree.XMLSyntaxError, ValueError):
        return None
    if not _is_cis_request(root):
        return None
    signatures = root.find(f"{{{ENV_NS}}}Signatures")
    if signatures is not None:
        root.remove(signatures)
    body = root.find(f"{{{ENV_NS}}}Body")
    texts = [e for e in body.iter() if isinstance(e.tag, str) and e.text and e.text.strip()]
    data = etree.tostring(root, encoding="utf-8")
    if not texts or len(data) >= size:
        return data
    longest = max(texts, key=lambda e: len(e.text))
    missing = size - len(data)
    repeats = missing // len(_FILLER.encode()) + 1
    longest.text = longest.text + " " + _FILLER * repeats
    return etree.tostring(root, encoding="utf-8")


def request_document(now: datetime, size: int = REQUEST_SIZE) -> tuple[bytes, str]:
    """The request every hop sends, and where it came from (an example's name or ``generated``)."""
    if EXAMPLES_DIR.is_dir():
        # The plain request first (``cis-enforcement.Request.xml``), then its variants.
        paths = sorted(
            EXAMPLES_DIR.glob("*.xml"), key=lambda p: (p.name != REQUEST_EXAMPLE, p.name)
        )
        for path in paths:
            padded = padded_example(path, size)
            if padded is not None:
                return padded, path.name
    return generated_request(now, size), "generated"


def receipt_document(request_id: str, now: datetime) -> bytes:
    """A small unsigned receipt for the request ``request_id`` (sealed by the receiver).

    The schema's example receipt when there is one (its ids are the example request's: the
    signature work does not depend on them), else a generated one.
    """
    example = EXAMPLES_DIR / RECEIPT_EXAMPLE
    if example.is_file():
        root = parse_hardened(example.read_bytes(), hardened_parser())
        if root.findtext(f"{{{ENV_NS}}}Header/{{{ENV_NS}}}Kind") == "Receipt":
            return etree.tostring(root, encoding="utf-8")
    created = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f'<env:Envelope xmlns:env="{ENV_NS}">'
        + _header_xml(str(uuid.uuid4()), request_id, "Receipt", RECIPIENT, SENDER, created)
        + f'<env:Body Id="body"><cis:Receipt xmlns:cis="{CIS_NS}">'
        f"<cis:ReceivedMessageId>{request_id}</cis:ReceivedMessageId>"
        f"<cis:ReceivedAt>{created}</cis:ReceivedAt>"
        "</cis:Receipt></env:Body></env:Envelope>"
    ).encode()


def message_id_of(root: etree._Element) -> str:
    """The ``env:MessageId`` of a parsed envelope."""
    return root.findtext(f"{{{ENV_NS}}}Header/{{{ENV_NS}}}MessageId") or ""
