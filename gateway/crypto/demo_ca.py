"""The demo certification authority: one level, for the demo and the tests. NOT FOR PRODUCTION.

Its subject and every certificate it issues say ``DEMO — NOT FOR PRODUCTION``. It lives in the
crypto layer, not in ``gateway/demo/``, because the node's own key commands use it below the
application layer: ``gateway keys init-ca`` makes one in the keys folder (``demo-ca/``),
``gateway keys generate|rotate`` certify new keys with it when it is there, ``gateway keys
revoke`` and ``crl`` put revoked generations on its CRL (``gateway.app.key_setup``,
``gateway.app.keys``). The whole demo PKI of several bodies is ``gateway.demo.pki``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from gateway.crypto import algorithms, gost
from gateway.crypto.algorithms import KeySpec
from gateway.crypto.certificates import (
    DEMO_LABEL,
    KEY_USAGE_FLAGS,
    CertificateProfile,
    UnsupportedKey,
    load_pem_private_key,
    stand_in_key,
    write_private_key,
)

CA_VALIDITY = timedelta(days=3650)
"""Demo CA lifetime: outlives every certificate it issues."""

END_ENTITY_VALIDITY = timedelta(days=730)
"""Demo end-entity lifetime: two years, the common term of national signing certificates."""

CRL_VALIDITY = timedelta(days=7)
"""Demo CRL nextUpdate: a week, like the national CAs' published CRLs."""

BACKDATE = timedelta(minutes=5)
"""notBefore is set this much before ``now``: tolerates small clock differences between nodes."""


def _key_identifier(public_key: Any) -> x509.SubjectKeyIdentifier:
    if isinstance(public_key, gost.GostPublicKey):
        return x509.SubjectKeyIdentifier(public_key.key_identifier())
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


def _authority_key_identifier(public_key: Any) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier(_key_identifier(public_key).digest, None, None)


def _signed_certificate(
    builder: x509.CertificateBuilder, issuer_key: Any, subject_key: Any
) -> x509.Certificate:
    """``builder`` (without its public key) signed by ``issuer_key`` — with GOST when it is a
    GOST key, putting a GOST ``subject_key`` in place of the stand-in."""
    gost_subject = isinstance(subject_key, gost.GostPublicKey)
    gost_issuer = isinstance(issuer_key, gost.GostPrivateKey)
    if gost_subject != gost_issuer:
        # One GOST PKI beside the others, as the national CAs run them: no mixed paths.
        raise ValueError(
            "the demo CA certifies GOST keys with a GOST CA and EC/RSA keys with an EC/RSA CA; "
            "create the CA with --algorithm of the same family (gateway keys init-ca)"
        )
    if gost_issuer:
        builder = builder.public_key(stand_in_key().public_key())
        der = builder.sign(stand_in_key(), hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        return gost.resign_certificate(der, issuer_key, subject_key)
    builder = builder.public_key(subject_key)
    return builder.sign(issuer_key, algorithms.cert_hash_for(issuer_key.public_key()))


@dataclass(slots=True)
class DemoCA:
    """A one-level certification authority for the demo and tests. NOT FOR PRODUCTION."""

    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | gost.GostPrivateKey
    certificate: x509.Certificate
    directory: Path | None = None
    """Where :meth:`save` writes (``ca.key.pem``, ``ca.crt.pem``, ``revoked.json``, ``crl.pem``)."""
    revoked: dict[int, datetime] = field(default_factory=dict)
    """Serial number → revocation time."""
    reasons: dict[int, x509.ReasonFlags] = field(default_factory=dict)
    """Serial number → the reason the CRL states (none: unspecified, the entry says nothing)."""

    KEY_FILE = "ca.key.pem"
    CERT_FILE = "ca.crt.pem"
    REVOKED_FILE = "revoked.json"
    CRL_FILE = "crl.pem"

    @classmethod
    def create(
        cls,
        *,
        now: datetime,
        name: str = "Gateway demo CA",
        spec: KeySpec = algorithms.DEFAULT_KEY_SPEC,
        validity: timedelta = CA_VALIDITY,
        directory: Path | None = None,
    ) -> DemoCA:
        """A new self-signed demo CA; its subject says DEMO — NOT FOR PRODUCTION."""
        key = algorithms.generate_private_key(spec)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEMO_LABEL),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} — {DEMO_LABEL}"),
            ]
        )
        public_key = key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    **{
                        **dict.fromkeys(KEY_USAGE_FLAGS, False),
                        "key_cert_sign": True,
                        "crl_sign": True,
                    }
                ),
                critical=True,
            )
            .add_extension(_key_identifier(public_key), critical=False)
        )
        certificate = _signed_certificate(builder, key, public_key)
        return cls(key=key, certificate=certificate, directory=directory)

    @classmethod
    def load(cls, directory: Path, passphrase: bytes) -> DemoCA:
        """Load a CA written by :meth:`save`."""
        key_path = directory / cls.KEY_FILE
        try:
            key = load_pem_private_key(key_path.read_bytes(), passphrase)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{key_path}: no demo CA here; run `gateway keys init-ca --config NODE.toml`"
            ) from None
        except UnsupportedKey:
            raise ValueError(f"{key_path}: not an EC, RSA or GOST key") from None
        except (ValueError, TypeError):
            raise ValueError(
                f"{key_path}: cannot decrypt the demo CA key with the node's passphrase"
            ) from None
        certificate = x509.load_pem_x509_certificate((directory / cls.CERT_FILE).read_bytes())
        revoked: dict[int, datetime] = {}
        reasons: dict[int, x509.ReasonFlags] = {}
        revoked_path = directory / cls.REVOKED_FILE
        if revoked_path.exists():
            for serial, entry in json.loads(revoked_path.read_text("utf-8")).items():
                # An entry is its time (written before reasons were kept) or {at, reason}.
                at, reason = (
                    (entry, None) if isinstance(entry, str) else (entry["at"], entry["reason"])
                )
                revoked[int(serial, 16)] = datetime.fromisoformat(at)
                if reason is not None:
                    reasons[int(serial, 16)] = x509.ReasonFlags(reason)
        return cls(
            key=key, certificate=certificate, directory=directory, revoked=revoked, reasons=reasons
        )

    def save(self, passphrase: bytes, *, now: datetime | None = None) -> None:
        """Write key (encrypted), certificate, revocation list; ``now`` also writes ``crl.pem``."""
        if self.directory is None:
            raise ValueError("DemoCA.save needs a directory")
        write_private_key(self.directory / self.KEY_FILE, self.key, passphrase)
        (self.directory / self.CERT_FILE).write_bytes(
            self.certificate.public_bytes(serialization.Encoding.PEM)
        )
        (self.directory / self.REVOKED_FILE).write_text(
            json.dumps(
                {
                    f"{s:x}": {
                        "at": t.isoformat(),
                        "reason": self.reasons[s].value if s in self.reasons else None,
                    }
                    for s, t in self.revoked.items()
                },
                indent=1,
            ),
            encoding="utf-8",
        )
        if now is not None:
            (self.directory / self.CRL_FILE).write_bytes(
                self.crl(now=now).public_bytes(serialization.Encoding.PEM)
            )

    @property
    def is_demo(self) -> bool:
        return DEMO_LABEL in self.certificate.subject.rfc4514_string()

    def issue(
        self,
        public_key: Any,
        profile: CertificateProfile,
        *,
        now: datetime,
        validity: timedelta = END_ENTITY_VALIDITY,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> x509.Certificate:
        """Certify ``public_key`` with ``profile``. ``not_before``/``not_after`` override the
        period (tests build expired and not-yet-valid certificates with them)."""
        algorithms.check_public_key(public_key)
        if not profile.demo:
            profile = _with_demo(profile)
        ca_public = self.key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(profile.subject())
            .issuer_name(self.certificate.subject)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - BACKDATE)
            # Never beyond the CA's own life: such a certificate would not validate anyway.
            .not_valid_after(min(not_after or now + validity, self.certificate.not_valid_after_utc))
            .add_extension(_key_identifier(public_key), critical=False)
            .add_extension(_authority_key_identifier(ca_public), critical=False)
        )
        for extension, critical in profile.extensions(public_key):
            builder = builder.add_extension(extension, critical=critical)
        return _signed_certificate(builder, self.key, public_key)

    def issue_from_csr(
        self,
        csr: x509.CertificateSigningRequest,
        profile: CertificateProfile,
        *,
        now: datetime,
        validity: timedelta = END_ENTITY_VALIDITY,
    ) -> x509.Certificate:
        """Certify a request after checking its self-signature."""
        if gost.is_gost_signed(csr):
            public_key: Any = gost.csr_public_key(csr)
            valid = gost.signature_verifies(csr, public_key)
        else:
            public_key, valid = csr.public_key(), csr.is_signature_valid
        if not valid:
            raise ValueError("certificate request: its signature does not verify")
        return self.issue(public_key, profile, now=now, validity=validity)

    def revoke(
        self,
        certificate: x509.Certificate | int,
        *,
        at: datetime,
        reason: x509.ReasonFlags | None = None,
    ) -> None:
        """List the certificate in the next CRL, revoked at ``at``; ``reason`` goes into its
        entry (a key compromise must reach every verifier: it voids what the key signed)."""
        serial = certificate if isinstance(certificate, int) else certificate.serial_number
        self.revoked[serial] = at
        if reason is not None and reason is not x509.ReasonFlags.unspecified:
            self.reasons[serial] = reason

    def crl(
        self, *, now: datetime, next_update_in: timedelta = CRL_VALIDITY
    ) -> x509.CertificateRevocationList:
        """A CRL of everything revoked so far, issued at ``now``."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now)
            .next_update(now + next_update_in)
            .add_extension(_authority_key_identifier(self.key.public_key()), critical=False)
            .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
        )
        for serial, when in sorted(self.revoked.items()):
            entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
            if serial in self.reasons:
                entry = entry.add_extension(x509.CRLReason(self.reasons[serial]), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        if isinstance(self.key, gost.GostPrivateKey):
            der = builder.sign(stand_in_key(), hashes.SHA256()).public_bytes(
                serialization.Encoding.DER
            )
            return gost.resign_crl(der, self.key)
        return builder.sign(self.key, algorithms.cert_hash_for(self.key.public_key()))


def _with_demo(profile: CertificateProfile) -> CertificateProfile:
    return replace(profile, demo=True)
