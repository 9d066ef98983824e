"""The directory of bodies (CIS Art. 18): XML form, validation, look-ups and the rollback rule.

Flow on a node::

    signed bytes ──verify (lead's signature module, depositary trust anchor)──▶ verified bytes
    verified bytes ──parse_directory_xml──▶ Directory ──check_update(current, new)──▶ install
    Directory ──DirectoryIndex.of──▶ look-ups (by id, by TLS or seal certificate, agreements)

and at the depositary: ``Directory ──build_directory_xml──▶ bytes ──sign──▶ publish``. Both
ends take and return bytes, so the signature step wraps them; the schema leaves room for the
enveloped ``ds:Signature`` as the last child of ``Directory`` (lax: the signature module, not the
schema, checks it). Parse only the bytes the verifier returns: never fields of an unverified tree.

Parsing goes through :func:`gateway.xml.parsing.parse_untrusted` (no DTD, no entities, no
network, bounded size/depth), then ``gateway/schemas/directory.xsd`` (lxml), then the rules the
schema cannot say (:func:`directory_problems`). Every refusal is a
:class:`~gateway.model.problems.DocumentRejected` whose problems name the field and the rule.

Exception tree (besides ``DocumentRejected``)::

    GatewayError
    └── UnknownBody       a look-up found no body (by id or certificate): refuse the peer
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from gateway.crypto import certificates
from gateway.model.bodies import BODY_ID_PATTERN, BodyLevel
from gateway.model.directory import (
    DIRECTORY_NAMESPACE,
    BodyCertificate,
    BodyName,
    CertificateRole,
    Directory,
    DirectoryBody,
    PublishedCalendar,
    Suite,
)
from gateway.model.limits import (
    DEFAULT_MAX_ATTACHMENT_BYTES,
    DEFAULT_MAX_DELIVERY_BYTES,
    MAX_DIRECTORY_BYTES,
)
from gateway.model.problems import ConfigurationError, DocumentRejected, GatewayError, Problem
from gateway.model.profiles import Participation, Reservation
from gateway.rules.reservations import validate_reservations
from gateway.schemas import SCHEMA_DIR
from gateway.xml.parsing import parse_untrusted

DIRECTORY_SCHEMA = SCHEMA_DIR / "directory.xsd"

MAX_BODIES = 1000
"""Above any plausible count of bodies (see ``gateway.model.limits.MAX_DIRECTORY_BYTES``);
bounds the indexes."""

MAX_CLOCK_SKEW = timedelta(minutes=10)
"""A directory issued further in the future than this is refused: the depositary's clock and
ours disagree, or someone is pre-dating a version to outlive the next real one."""

ARTICLE = "CIS Art. 18"

_NS = {"dir": DIRECTORY_NAMESPACE}
_D = f"{{{DIRECTORY_NAMESPACE}}}"
_ORGANIZATION_IDENTIFIER = x509.ObjectIdentifier("2.5.4.97")


class UnknownBody(GatewayError):
    """No body in the directory matches; toward a peer this is a plain refusal."""

    code = "DIRECTORY_UNKNOWN_BODY"


def _problem(code: str, path: str, ru: str, en: str, remedy: str) -> Problem:
    return Problem(
        code=code, path=path, message_ru=ru, message_en=en, remedy_ru=remedy, article=ARTICLE
    )


# --- schema ------------------------------------------------------------------------------------

_local = threading.local()


def _schema() -> etree.XMLSchema:
    """The compiled ``directory.xsd`` for this thread (lxml keeps its error log on the object)."""
    schema = getattr(_local, "schema", None)
    if schema is None:
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
        )
        schema = _local.schema = etree.XMLSchema(etree.parse(str(DIRECTORY_SCHEMA), parser))
    return schema


def validate_directory_tree(root: etree._Element) -> tuple[Problem, ...]:
    """Schema problems of a parsed directory; empty if valid."""
    schema = _schema()
    if schema.validate(root):
        return ()
    return tuple(
        _problem(
            "DIRECTORY_SCHEMA_INVALID",
            (error.path or "/").replace("dir:", ""),
            f"Справочник органов не соответствует схеме directory.xsd (строка {error.line}).",
            f"line {error.line}: {error.message}",
            "Получите у депозитария исправленную версию справочника.",
        )
        for error in list(schema.error_log)[:20]
    )


# --- rules the schema cannot say ---------------------------------------------------------------


def directory_problems(directory: Directory) -> tuple[Problem, ...]:
    """Problems the XSD cannot express: consistency of ids, states, certificates and dates."""
    problems: list[Problem] = []
    if not isinstance(directory.version, int) or directory.version < 1:
        problems.append(
            _problem(
                "DIRECTORY_VERSION_INVALID",
                "/Directory/Version",
                "Версия справочника должна быть целым положительным числом.",
                f"version must be a positive integer, got {directory.version!r}",
                "Укажите номер версии больше предыдущего.",
            )
        )
    if directory.issued_at.tzinfo is None or directory.issued_at.utcoffset() is None:
        problems.append(
            _problem(
                "DIRECTORY_TIME_WITHOUT_ZONE",
                "/Directory/IssuedAt",
                "Время выпуска справочника должно содержать часовой пояс.",
                "issued_at must be time-zone aware",
                "Укажите время в UTC (суффикс Z).",
            )
        )
    if len(directory.bodies) > MAX_BODIES:
        problems.append(
            _problem(
                "DIRECTORY_TOO_MANY_BODIES",
                "/Directory/Bodies",
                f"В справочнике больше {MAX_BODIES} органов.",
                f"{len(directory.bodies)} bodies exceed the limit of {MAX_BODIES}",
                "Проверьте источник справочника.",
            )
        )
    seen_ids: set[str] = set()
    owners: dict[str, str] = {}
    for position, body in enumerate(directory.bodies, start=1):
        where = f"/Directory/Bodies/Body[{position}]"
        problems.extend(_body_problems(body, where))
        if body.id in seen_ids:
            problems.append(
                _problem(
                    "DIRECTORY_DUPLICATE_BODY",
                    f"{where}/Id",
                    f"Орган {body.id} указан в справочнике дважды.",
                    f"body {body.id} appears twice",
                    "Оставьте одну запись на орган.",
                )
            )
        seen_ids.add(body.id)
        for certificate in body.certificates:
            if certificate.role is CertificateRole.OFFICIALS_CA:
                continue  # one national CA may issue the officials of several bodies
            owner = owners.setdefault(certificate.sha256, body.id)
            if owner != body.id:
                problems.append(
                    _problem(
                        "DIRECTORY_CERTIFICATE_SHARED",
                        f"{where}/Certificates",
                        f"Сертификат {certificate.sha256[:16]}… указан и для {owner}, и для "
                        f"{body.id}: по нему нельзя определить орган.",
                        f"certificate {certificate.sha256} is published for {owner} and {body.id}",
                        "У каждого органа должны быть свои ключи печати, TLS и шифрования.",
                    )
                )
    problems.extend(_calendar_problems(directory))
    return tuple(problems)


def _calendar_problems(directory: Directory) -> list[Problem]:
    """A published calendar and zone must be usable by every node (CIS Art. 12): one calendar
    per state, no date both a day off and a working day, zones the tz database knows."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for position, published in enumerate(directory.calendars, start=1):
        where = f"/Directory/Calendars/StateCalendar[{position}]"
        both = published.days_off & published.working_days
        if published.state in seen or both:
            what = (
                f"state {published.state} has two calendars"
                if published.state in seen
                else f"{', '.join(d.isoformat() for d in sorted(both))} both off and working"
            )
            problems.append(
                _problem(
                    "DIRECTORY_CALENDAR_INVALID",
                    where,
                    f"Календарь {published.state} противоречив: {what}.",
                    f"calendar {published.state}: {what}",
                    "Оставьте один календарь на государство и каждую дату в одном списке.",
                )
            )
        seen.add(published.state)
    for position, body in enumerate(directory.bodies, start=1):
        if body.zone and not _known_zone(body.zone):
            problems.append(
                _problem(
                    "DIRECTORY_TIME_ZONE_UNKNOWN",
                    f"/Directory/Bodies/Body[{position}]/TimeZone",
                    f"Часовой пояс {body.zone} органа {body.id} неизвестен.",
                    f"time zone {body.zone!r} of {body.id} is not in the tz database",
                    "Укажите имя часового пояса IANA, например Asia/Almaty.",
                )
            )
    return problems


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _body_problems(body: DirectoryBody, where: str) -> list[Problem]:
    problems: list[Problem] = []
    if not BODY_ID_PATTERN.fullmatch(body.id) or body.id[:2] != body.state:
        problems.append(
            _problem(
                "DIRECTORY_BODY_STATE_MISMATCH",
                f"{where}/State",
                f"Идентификатор органа {body.id} не соответствует государству {body.state}.",
                f"body id {body.id!r} must start with its state code {body.state!r}",
                "Идентификатор органа начинается с кода его государства (RU-FSSP).",
            )
        )
    if not body.names:
        problems.append(
            _problem(
                "DIRECTORY_BODY_WITHOUT_NAME",
                f"{where}/Names",
                f"У органа {body.id} нет наименования.",
                f"body {body.id} has no name",
                "Укажите наименование на русском языке (CIS Art. 19).",
            )
        )
    for role in (CertificateRole.SEAL, CertificateRole.TLS):
        if not body.certificates_for(role):
            problems.append(
                _problem(
                    "DIRECTORY_CERTIFICATE_MISSING",
                    f"{where}/Certificates",
                    f"У органа {body.id} нет сертификата с ролью {role}.",
                    f"body {body.id} has no {role} certificate",
                    "Без сертификатов печати и TLS с органом нельзя обмениваться документами.",
                )
            )
    for position, certificate in enumerate(body.certificates, start=1):
        path = f"{where}/Certificates/Certificate[{position}]"
        problems.extend(_certificate_problems(body.id, certificate, path))
    for position, reservation in enumerate(body.reservations, start=1):
        try:
            validate_reservations([reservation])
        except ConfigurationError as error:
            problems.append(
                _problem(
                    "DIRECTORY_RESERVATION_INVALID",
                    f"{where}/Reservations/Reservation[{position}]",
                    f"Оговорка {reservation.article} органа {body.id} не может быть применена: "
                    f"{error}.",
                    f"reservation {reservation.article} of body {body.id}: {error}",
                    "Исправьте запись по опубликованному депозитарием тексту (CIS Art. 25).",
                )
            )
        if reservation.state != body.state:
            problems.append(
                _problem(
                    "DIRECTORY_RESERVATION_STATE",
                    f"{where}/Reservations",
                    f"Оговорка государства {reservation.state} указана у органа {body.id}.",
                    f"reservation of {reservation.state} listed under body {body.id}",
                    "Оговорки указываются у органов заявившего их государства.",
                )
            )
    for participation in body.participations:
        start, end = participation.in_force_from, participation.withdrawn_from
        if participation.state != body.state or (start and end and end <= start):
            problems.append(
                _problem(
                    "DIRECTORY_PARTICIPATION_INVALID",
                    f"{where}/Participations",
                    f"Участие органа {body.id} в соглашении {participation.agreement} указано "
                    "неверно (государство или даты).",
                    f"participation of {body.id} in {participation.agreement}: state must be "
                    f"{body.state} and withdrawnFrom later than inForceFrom",
                    "Дата выхода должна быть позже даты вступления в силу (CIS Art. 22–24).",
                )
            )
    return problems


def _certificate_problems(body_id: str, certificate: BodyCertificate, where: str) -> list[Problem]:
    try:
        parsed = x509.load_der_x509_certificate(certificate.der)
        identifiers = parsed.subject.get_attributes_for_oid(_ORGANIZATION_IDENTIFIER)
    except ValueError as error:
        return [
            _problem(
                "DIRECTORY_CERTIFICATE_INVALID",
                where,
                f"Сертификат органа {body_id} (роль {certificate.role}) не является "
                "сертификатом X.509 в кодировке DER.",
                f"{certificate.role} certificate of {body_id} is not a DER X.509 certificate: "
                f"{error}",
                "Получите у депозитария исправленную версию справочника.",
            )
        ]
    values = {str(attribute.value) for attribute in identifiers}
    # The seal must name its body (docs/architecture.md); others, if they name one, must agree.
    required = certificate.role is CertificateRole.SEAL
    if certificate.role is not CertificateRole.OFFICIALS_CA and (
        (required and values != {body_id}) or (values and values != {body_id})
    ):
        return [
            _problem(
                "DIRECTORY_CERTIFICATE_WRONG_BODY",
                where,
                f"Сертификат (роль {certificate.role}) выдан не органу {body_id}: "
                f"organizationIdentifier {', '.join(sorted(values)) or 'отсутствует'}.",
                f"{certificate.role} certificate of {body_id} carries organizationIdentifier "
                f"{sorted(values)}",
                "В сертификате должен быть идентификатор органа (OID 2.5.4.97).",
            )
        ]
    return []


# --- build -------------------------------------------------------------------------------------


def build_directory_xml(directory: Directory) -> bytes:
    """The unsigned directory as UTF-8 XML bytes, checked against the schema and the rules.

    Raises ``DocumentRejected`` rather than produce a directory a node would refuse.
    """
    problems = directory_problems(directory)
    if problems:
        raise DocumentRejected(problems)
    root = etree.Element(f"{_D}Directory", nsmap={"dir": DIRECTORY_NAMESPACE})
    _text(root, "Version", str(directory.version))
    _text(root, "IssuedAt", _format_time(directory.issued_at))
    _text(root, "Depositary", directory.depositary)
    bodies = etree.SubElement(root, f"{_D}Bodies")
    for body in directory.bodies:
        _build_body(etree.SubElement(bodies, f"{_D}Body"), body)
    if directory.calendars:
        calendars = etree.SubElement(root, f"{_D}Calendars")
        for published in directory.calendars:
            item = etree.SubElement(calendars, f"{_D}StateCalendar")
            item.set("state", published.state)
            item.set("version", str(published.version))
            for day in sorted(published.days_off):
                _text(item, "DayOff", day.isoformat())
            for day in sorted(published.working_days):
                _text(item, "WorkingDay", day.isoformat())
    problems = validate_directory_tree(root)
    if problems:
        raise DocumentRejected(problems)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _text(parent: etree._Element, name: str, value: str) -> etree._Element:
    element = etree.SubElement(parent, f"{_D}{name}")
    element.text = value
    return element


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _build_body(element: etree._Element, body: DirectoryBody) -> None:
    _text(element, "Id", body.id)
    _text(element, "State", body.state)
    _text(element, "Level", body.level.value)
    names = etree.SubElement(element, f"{_D}Names")
    for name in body.names:
        _text(names, "Name", name.text).set("lang", name.lang)
    _text(element, "Endpoint", body.endpoint)
    _text(element, "Calendar", body.calendar)
    if body.zone:
        _text(element, "TimeZone", body.zone)
    limits = {
        "MaxMessageBytes": (body.max_message_bytes, DEFAULT_MAX_DELIVERY_BYTES),
        "MaxAttachmentBytes": (body.max_attachment_bytes, DEFAULT_MAX_ATTACHMENT_BYTES),
    }
    if any(value != default for value, default in limits.values()):
        published = etree.SubElement(element, f"{_D}Limits")
        for tag, (value, _default) in limits.items():
            _text(published, tag, str(value))
    certificates = etree.SubElement(element, f"{_D}Certificates")
    for certificate in body.certificates:
        text = base64.b64encode(certificate.der).decode("ascii")
        _text(certificates, "Certificate", text).set("role", certificate.role.value)
    if body.reservations:
        reservations = etree.SubElement(element, f"{_D}Reservations")
        for reservation in body.reservations:
            item = etree.SubElement(reservations, f"{_D}Reservation")
            item.set("agreement", reservation.agreement)
            item.set("code", reservation.code)
            item.set("article", reservation.article)
            if reservation.since is not None:
                item.set("since", reservation.since.isoformat())
            _text(item, "Text", reservation.text_ru)
            for issuer in sorted(reservation.issuer_kinds):
                _text(item, "IssuerKind", issuer)
            for subject in sorted(reservation.scope):
                _text(item, "Scope", subject)
    participations = etree.SubElement(element, f"{_D}Participations")
    for participation in body.participations:
        item = etree.SubElement(participations, f"{_D}Participation")
        item.set("agreement", participation.agreement)
        if participation.in_force_from is not None:
            item.set("inForceFrom", participation.in_force_from.isoformat())
        if participation.withdrawn_from is not None:
            item.set("withdrawnFrom", participation.withdrawn_from.isoformat())
    if body.signs_with or body.accepts:
        suites = etree.SubElement(element, f"{_D}Suites")
        for suite in body.signing_suites:
            _text(suites, "SignsWith", suite.value)
        for suite in body.accepted_suites:
            _text(suites, "Accepts", suite.value)


# --- parse -------------------------------------------------------------------------------------


def check_directory_size(data: bytes) -> None:
    """Refuse a directory over ``MAX_DIRECTORY_BYTES`` before a byte of it is parsed (the file
    arrives from outside; the parser's own bound is a peer message's, twice as large)."""
    if len(data) > MAX_DIRECTORY_BYTES:
        raise DocumentRejected(
            [
                _problem(
                    "DIRECTORY_TOO_LARGE",
                    "/",
                    f"Файл справочника больше {MAX_DIRECTORY_BYTES} байт.",
                    f"directory of {len(data)} bytes exceeds {MAX_DIRECTORY_BYTES}",
                    "Проверьте, что загружается справочник органов, полученный от депозитария.",
                )
            ]
        )


def parse_directory_xml(data: bytes) -> Directory:
    """A directory from (verified) XML bytes: hardened parse, schema, then the rules.

    Raises ``DocumentRejected`` naming every problem found.
    """
    check_directory_size(data)
    root = parse_untrusted(data)
    problems = validate_directory_tree(root)
    if problems:
        raise DocumentRejected(problems)
    try:
        directory = Directory(
            version=int(_child_text(root, "Version")),
            issued_at=datetime.fromisoformat(_child_text(root, "IssuedAt")),
            depositary=_child_text(root, "Depositary"),
            bodies=tuple(
                _parse_body(element) for element in root.iterfind("dir:Bodies/dir:Body", _NS)
            ),
            calendars=tuple(
                PublishedCalendar(
                    state=item.get("state", ""),
                    version=int(item.get("version", "0")),
                    days_off=frozenset(
                        date.fromisoformat((day.text or "").strip())
                        for day in item.iterfind("dir:DayOff", _NS)
                    ),
                    working_days=frozenset(
                        date.fromisoformat((day.text or "").strip())
                        for day in item.iterfind("dir:WorkingDay", _NS)
                    ),
                )
                for item in root.iterfind("dir:Calendars/dir:StateCalendar", _NS)
            ),
        )
    except ValueError as error:  # lexical forms XSD allows but Python does not (24:00:00)
        raise DocumentRejected(
            [
                _problem(
                    "DIRECTORY_SCHEMA_INVALID",
                    "/Directory",
                    "Дата или время в справочнике записаны в недопустимой форме.",
                    f"a date or time could not be read: {error}",
                    "Получите у депозитария исправленную версию справочника.",
                )
            ]
        ) from None
    problems = directory_problems(directory)
    if problems:
        raise DocumentRejected(problems)
    return directory


def _child_text(element: etree._Element, name: str) -> str:
    child = element.find(f"dir:{name}", _NS)
    # The schema guarantees presence; ``or ""`` keeps the type honest.
    return (child.text or "").strip() if child is not None else ""


def _parse_body(element: etree._Element) -> DirectoryBody:
    state = _child_text(element, "State")
    return DirectoryBody(
        id=_child_text(element, "Id"),
        state=state,
        level=BodyLevel(_child_text(element, "Level")),
        names=tuple(
            BodyName(name.get("lang", ""), (name.text or "").strip())
            for name in element.iterfind("dir:Names/dir:Name", _NS)
        ),
        endpoint=_child_text(element, "Endpoint"),
        calendar=_child_text(element, "Calendar"),
        zone=_child_text(element, "TimeZone"),
        max_message_bytes=int(
            _child_text(element, "Limits/dir:MaxMessageBytes") or DEFAULT_MAX_DELIVERY_BYTES
        ),
        max_attachment_bytes=int(
            _child_text(element, "Limits/dir:MaxAttachmentBytes") or DEFAULT_MAX_ATTACHMENT_BYTES
        ),
        certificates=tuple(
            BodyCertificate(CertificateRole(item.get("role", "")), _base64(item.text or ""))
            for item in element.iterfind("dir:Certificates/dir:Certificate", _NS)
        ),
        reservations=tuple(
            Reservation(
                state=state,
                agreement=item.get("agreement", ""),
                code=item.get("code", ""),
                article=item.get("article", ""),
                text_ru=_child_text(item, "Text"),
                issuer_kinds=frozenset(
                    (kind.text or "").strip() for kind in item.iterfind("dir:IssuerKind", _NS)
                ),
                scope=frozenset(
                    (scope.text or "").strip() for scope in item.iterfind("dir:Scope", _NS)
                ),
                since=_date(item.get("since")),
            )
            for item in element.iterfind("dir:Reservations/dir:Reservation", _NS)
        ),
        participations=tuple(
            Participation(
                state=state,
                agreement=item.get("agreement", ""),
                in_force_from=_date(item.get("inForceFrom")),
                withdrawn_from=_date(item.get("withdrawnFrom")),
            )
            for item in element.iterfind("dir:Participations/dir:Participation", _NS)
        ),
        signs_with=tuple(
            Suite((item.text or "").strip())
            for item in element.iterfind("dir:Suites/dir:SignsWith", _NS)
        ),
        accepts=tuple(
            Suite((item.text or "").strip())
            for item in element.iterfind("dir:Suites/dir:Accepts", _NS)
        ),
    )


def _base64(text: str) -> bytes:
    # The schema already checked the lexical form (xs:base64Binary allows inner whitespace).
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except binascii.Error:  # pragma: no cover - excluded by the schema
        return b""


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


# --- updates -----------------------------------------------------------------------------------


class DirectoryRollback(DocumentRejected):
    """A directory older than or as old as the installed one: a replay or a rollback attack."""


def check_update(current: Directory | None, new: Directory, *, now: datetime | None = None) -> None:
    """Refuse ``new`` unless it may replace ``current`` (None: nothing installed yet).

    The version must be strictly greater (equal is refused too: two different documents must
    never share a version), the issue time must not go back, the depositary must stay the same,
    and, when ``now`` is given, the issue time must not lie in the future beyond
    :data:`MAX_CLOCK_SKEW`. The signature is the caller's: check it before calling this.
    """
    if now is not None and new.issued_at > now + MAX_CLOCK_SKEW:
        raise DocumentRejected(
            [
                _problem(
                    "DIRECTORY_ISSUED_IN_FUTURE",
                    "/Directory/IssuedAt",
                    f"Справочник выпущен в будущем ({_format_time(new.issued_at)}).",
                    f"directory issued at {_format_time(new.issued_at)}, after now "
                    f"({_format_time(now)}) + {MAX_CLOCK_SKEW}",
                    "Проверьте часы узла и получите справочник у депозитария заново.",
                )
            ]
        )
    if current is None:
        return
    if new.version <= current.version:
        raise DirectoryRollback(
            [
                _problem(
                    "DIRECTORY_ROLLBACK",
                    "/Directory/Version",
                    f"Версия справочника {new.version} не новее установленной "
                    f"({current.version}); справочник не загружен.",
                    f"directory version {new.version} is not newer than the installed "
                    f"version {current.version} (rollback or replay refused)",
                    "Загрузите версию, выпущенную депозитарием позже установленной.",
                )
            ]
        )
    if new.issued_at < current.issued_at:
        raise DirectoryRollback(
            [
                _problem(
                    "DIRECTORY_ISSUED_BEFORE_CURRENT",
                    "/Directory/IssuedAt",
                    "Справочник с большей версией выпущен раньше установленного.",
                    f"version {new.version} issued at {_format_time(new.issued_at)}, before "
                    f"installed version {current.version} ({_format_time(current.issued_at)})",
                    "Сообщите депозитарию: версии и даты выпуска не согласованы.",
                )
            ]
        )
    if new.depositary != current.depositary:
        raise DocumentRejected(
            [
                _problem(
                    "DIRECTORY_DEPOSITARY_CHANGED",
                    "/Directory/Depositary",
                    f"Справочник выпущен другим депозитарием ({new.depositary}, установлен "
                    f"{current.depositary}).",
                    f"depositary changed from {current.depositary} to {new.depositary}",
                    "Смена депозитария выполняется администратором вручную, с новым якорем "
                    "доверия.",
                )
            ]
        )


def load_directory_update(
    data: bytes, current: Directory | None, *, now: datetime | None = None
) -> Directory:
    """Parse verified bytes and check they may replace ``current``: the whole update step."""
    new = parse_directory_xml(data)
    check_update(current, new, now=now)
    return new


# --- look-ups ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DirectoryIndex:
    """Look-ups over one directory version. Build with :meth:`of`; read-only afterwards."""

    directory: Directory
    by_id: Mapping[str, DirectoryBody]
    by_certificate: Mapping[tuple[CertificateRole, str], DirectoryBody]
    """Keyed by role and lower-case hex SHA-256 of the DER."""

    @classmethod
    def of(cls, directory: Directory) -> DirectoryIndex:
        by_id = {body.id: body for body in directory.bodies}
        by_certificate = {
            (certificate.role, certificate.sha256): body
            for body in directory.bodies
            for certificate in body.certificates
        }
        return cls(directory, MappingProxyType(by_id), MappingProxyType(by_certificate))

    def body(self, body_id: str) -> DirectoryBody:
        """The body with this id; :class:`UnknownBody` if the directory has none."""
        try:
            return self.by_id[body_id]
        except KeyError:
            raise UnknownBody(
                f"body {body_id!r} is not in directory version {self.directory.version}"
            ) from None

    def body_by_fingerprint(self, role: CertificateRole, sha256_hex: str) -> DirectoryBody:
        """The body publishing a certificate with this role and SHA-256 (hex, any case, colons
        allowed); :class:`UnknownBody` if none."""
        key = sha256_hex.replace(":", "").strip().lower()
        try:
            return self.by_certificate[(role, key)]
        except KeyError:
            raise UnknownBody(
                f"no body in directory version {self.directory.version} publishes a {role} "
                f"certificate with SHA-256 {key}"
            ) from None

    def body_by_tls_certificate(self, der: bytes) -> DirectoryBody:
        """The peer behind a TLS connection, from its certificate's DER bytes."""
        return self.body_by_fingerprint(CertificateRole.TLS, _sha256(der))

    def body_by_seal_certificate(self, der: bytes) -> DirectoryBody:
        """The body whose seal signed a document, from the signing certificate's DER bytes."""
        return self.body_by_fingerprint(CertificateRole.SEAL, _sha256(der))

    def participation(self, body_id: str, agreement: str) -> Participation | None:
        """The body's participation in ``agreement`` as published, or None."""
        for participation in self.body(body_id).participations:
            if participation.agreement == agreement:
                return participation
        return None

    def agreements_of(self, body_id: str, *, on: date) -> tuple[str, ...]:
        """Agreements in force for the body on ``on`` (from ``inForceFrom``, before
        ``withdrawnFrom``; CIS Art. 22–24, SC Art. 13). Continuation of conversations begun
        before a termination (SC Art. 13.2) is for :mod:`gateway.rules` to decide."""
        return tuple(
            p.agreement
            for p in self.body(body_id).participations
            if p.in_force_from is not None
            and p.in_force_from <= on
            and (p.withdrawn_from is None or on < p.withdrawn_from)
        )

    def publishes_reservations(self, agreement: str) -> bool:
        """The directory carries at least one reservation to ``agreement`` (else the rules fall
        back to the profile's list, :func:`gateway.rules.reservations.reservations_in_use`)."""
        return any(
            r.agreement == agreement for body in self.directory.bodies for r in body.reservations
        )

    def reservations_of(self, body_id: str, agreement: str) -> tuple[Reservation, ...]:
        """Reservations the body's state declared to ``agreement`` (CIS Art. 25)."""
        return tuple(r for r in self.body(body_id).reservations if r.agreement == agreement)

    def bodies_of_state(self, state: str) -> tuple[DirectoryBody, ...]:
        return tuple(body for body in self.directory.bodies if body.state == state)


def _sha256(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


# --- publish first, switch after ---------------------------------------------------------------


def unpublished(
    directory: Directory, body_id: str, role: CertificateRole, certificate: x509.Certificate
) -> str:
    """Why peers holding ``directory`` would refuse what ``certificate`` signs for ``body_id``
    in ``role`` (empty when the directory carries it). Peers pin the seal, TLS and encryption
    certificates themselves; an official's certificate must come from a CA the directory lists
    as the body's officials' CA (CIS Art. 18). Used before a key generation is activated."""
    body = next((b for b in directory.bodies if b.id == body_id), None)
    if body is None:
        return f"directory version {directory.version} does not list body {body_id}"
    listed = [c for c in body.certificates if c.role is role]
    if role is CertificateRole.OFFICIALS_CA:
        for ca in listed:
            if certificates.directly_issued_by(certificate, x509.load_der_x509_certificate(ca.der)):
                return ""
        return (
            f"directory version {directory.version} lists no officials' CA of {body_id} that "
            f"issued this certificate (issuer {certificate.issuer.rfc4514_string()})"
        )
    sha256 = hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()
    if any(c.sha256 == sha256 for c in listed):
        return ""
    return (
        f"directory version {directory.version} does not list this {role.value} certificate "
        f"(sha256 {sha256}) for {body_id}"
    )
