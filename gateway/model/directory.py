"""The directory of bodies (CIS Art. 18) as plain data.

The parties tell the depositary which central, territorial and other bodies act for them
(CIS Art. 18 paras. 1–3) and notify it of every change (para. 4). The depositary publishes the
result as a signed, versioned document; every node loads it to know who its peers are, where
they listen and which certificates speak for them. XML form: ``gateway/schemas/directory.xsd``;
building, parsing and look-ups: :mod:`gateway.exchange.directory`.
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from gateway.model.bodies import Body, BodyLevel
from gateway.model.limits import DEFAULT_MAX_ATTACHMENT_BYTES, DEFAULT_MAX_DELIVERY_BYTES
from gateway.model.profiles import Participation, Reservation

DIRECTORY_NAMESPACE = "urn:cis-exchange:directory:1"


class CertificateRole(StrEnum):
    """What a certificate published for a body is used for (docs/architecture.md, key roles)."""

    SEAL = "seal"
    """The body's electronic seal: signs every document it sends (CIS Art. 11.3)."""
    OFFICIALS_CA = "officials-ca"
    """The CA that issues the body's officials' signing certificates (CIS Art. 11.3)."""
    TLS = "tls"
    """The node's mutual-TLS client and server certificate."""
    ENCRYPTION = "encryption"
    """Documents to this body may be encrypted to this certificate's key."""


class Suite(StrEnum):
    """An algorithm suite a body signs with or accepts, as the directory names it.

    ``ecdsa``: ECDSA P-256/SHA-256 (and P-384/SHA-384); ``rsa-pkcs1`` / ``rsa-pss``: RSA
    PKCS#1 v1.5 / PSS with SHA-256 (and SHA-384/-512); ``gost2012-256`` / ``gost2012-512``:
    GOST R 34.10-2012 with Streebog of the same size (SMEV 3 URIs). Which XML-DSig methods
    belong to which suite: :func:`gateway.crypto.algorithms.suite_of`."""

    ECDSA = "ecdsa"
    RSA_PKCS1 = "rsa-pkcs1"
    RSA_PSS = "rsa-pss"
    GOST_2012_256 = "gost2012-256"
    GOST_2012_512 = "gost2012-512"


LEGACY_SUITES = (Suite.ECDSA, Suite.RSA_PKCS1, Suite.RSA_PSS)
"""What a body whose directory entry names no suites signs with and accepts: the suites the
gateway had before suites were published (older directories stay valid and mean the same)."""


@dataclass(frozen=True, slots=True)
class BodyCertificate:
    role: CertificateRole
    der: bytes
    """The X.509 certificate, DER-encoded (the published bytes: what fingerprints are taken of)."""

    @property
    def sha256(self) -> str:
        """Lower-case hex SHA-256 of the DER: the identity an operator compares by phone."""
        return hashlib.sha256(self.der).hexdigest()

    @property
    def pem(self) -> str:
        return ssl.DER_cert_to_PEM_cert(self.der)

    @classmethod
    def from_pem(cls, role: CertificateRole, pem: str | bytes) -> BodyCertificate:
        text = pem.decode("ascii") if isinstance(pem, bytes) else pem
        return cls(role, ssl.PEM_cert_to_DER_cert(text.strip()))

    def __repr__(self) -> str:  # the DER bytes would drown any log line
        return f"BodyCertificate({self.role.value}, sha256={self.sha256[:16]}…)"


@dataclass(frozen=True, slots=True)
class BodyName:
    lang: str
    """BCP 47 language tag: ``ru`` (the working language, CIS Art. 19), ``kk``, ``en`` …"""
    text: str


@dataclass(frozen=True, slots=True)
class DirectoryBody:
    id: str
    """Body id (``RU-FSSP``), also its certificates' ``organizationIdentifier``."""
    state: str
    """ISO 3166-1 alpha-2 of the party the body acts for; the id's first two letters."""
    level: BodyLevel
    """Central or territorial/other (CIS Art. 18 paras. 1–2)."""
    names: tuple[BodyName, ...]
    endpoint: str
    """``https://`` URL of the body's gateway peer endpoint."""
    certificates: tuple[BodyCertificate, ...]
    """Several per role during a key rollover; at least one seal and one TLS certificate."""
    calendar: str
    """State code whose working days count for deadlines this body must meet (CIS Art. 12)."""
    zone: str = ""
    """IANA time zone where the body receives (``Asia/Almaty``): its day of receipt is the
    local date there. Empty: the zone of its state's capital (gateway.rules.clock)."""
    max_message_bytes: int = DEFAULT_MAX_DELIVERY_BYTES
    """Largest delivery (signed XML and attachment parts) the body's node accepts."""
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
    """Largest single attachment the body's node accepts."""
    reservations: tuple[Reservation, ...] = ()
    """Reservations and declarations of the body's state (CIS Art. 25; KZ on Art. 6 a))."""
    participations: tuple[Participation, ...] = ()
    """One per agreement the body exchanges under, with its dates (CIS Art. 22–24; SC Art. 13)."""
    signs_with: tuple[Suite, ...] = ()
    """Suites the body's seal and officials sign with, several during a rotation from one
    suite to another. Empty: :data:`LEGACY_SUITES`."""
    accepts: tuple[Suite, ...] = ()
    """Suites the body accepts on documents it receives. Empty: :data:`LEGACY_SUITES`."""

    @property
    def signing_suites(self) -> tuple[Suite, ...]:
        return self.signs_with or LEGACY_SUITES

    @property
    def accepted_suites(self) -> tuple[Suite, ...]:
        return self.accepts or LEGACY_SUITES

    def name(self, lang: str = "ru") -> str:
        """The name in ``lang``, else the first published one."""
        for name in self.names:
            if name.lang == lang:
                return name.text
        return self.names[0].text if self.names else self.id

    def certificates_for(self, role: CertificateRole) -> tuple[BodyCertificate, ...]:
        return tuple(c for c in self.certificates if c.role is role)

    def to_body(self) -> Body:
        """The short form other layers use (:class:`gateway.model.bodies.Body`)."""
        return Body(
            self.id,
            self.state,
            self.level,
            self.name("ru"),
            tuple(p.agreement for p in self.participations),
        )


@dataclass(frozen=True, slots=True)
class PublishedCalendar:
    """A state's days off and transferred working days, as its party notified the depositary.

    Both nodes count deadlines by the same published calendar (CIS Art. 12: the requested
    party's working days), on top of the ``holidays`` package's weekends and holidays; a state
    without one falls back to ``holidays`` plus each node's configuration.
    """

    state: str
    """ISO 3166-1 alpha-2 code."""
    version: int
    """Bumped by the party with every change (a decree moving a day off)."""
    days_off: frozenset[date] = frozenset()
    """Days off the package may not know (decrees); they win over it."""
    working_days: frozenset[date] = frozenset()
    """Transferred working days (a working Saturday); they win over the package."""


@dataclass(frozen=True, slots=True)
class Directory:
    version: int
    """Strictly increasing with every publication; a node refuses anything not newer (rollback)."""
    issued_at: datetime
    """When the depositary issued this version (time-zone aware)."""
    depositary: str
    """Id of the publisher, e.g. ``CIS-EC`` (the CIS Executive Committee, CIS Art. 25 final)."""
    bodies: tuple[DirectoryBody, ...]
    calendars: tuple[PublishedCalendar, ...] = ()
    """Working calendars the parties published, at most one per state."""
