"""Trust anchors, CRLs and certification-path validation.

A :class:`TrustList` holds the CA certificates this node trusts (from ``[trust] ca_file``, or
from the directory of bodies with ``body_anchors``: body id → the CA certificates allowed to
certify that body) and the CRLs it knows. :meth:`TrustList.validate` builds and checks the path
with ``cryptography``'s X.509 verifier (Rust, RFC 5280 / Web PKI rules for CA certificates),
checks every certificate of the path against the CRLs itself, and answers with an ETSI
indication:

=========================================  ===============================================
what happened                              indication / sub-indication
=========================================  ===============================================
no path to a trust anchor                  INDETERMINATE / NO_CERTIFICATE_CHAIN_FOUND
expired / not yet valid at signing time    TOTAL_FAILED / EXPIRED, NOT_YET_VALID
revoked before the signing time            TOTAL_FAILED / REVOKED
revoked after the claimed (unproven) time  INDETERMINATE / REVOKED_NO_POE
no usable CRL and revocation required      INDETERMINATE / TRY_LATER (fail closed)
SHA-1/MD5 in the chain, short keys         INDETERMINATE / CRYPTO_CONSTRAINTS_FAILURE
=========================================  ===============================================

No network: CRLs are given, never fetched (the nodes talk only to each other).

Paths are cached: building one costs ~200 µs (cryptography's path builder) against ~16 µs for
a lookup, and every document of a peer carries the same chain. The cache lives on the
:class:`TrustList` instance — immutable, rebuilt (``with_crls``, a new directory, a new CA file)
whenever the anchors or the CRLs change, so a cached path never outlives the trust it was built
with — and is keyed by the certificates given (they hash and compare by their DER). What
depends on time still runs on every call: each certificate's validity at the moment judged,
and revocation with the CRLs current at ``at``. A path that was built at one moment is reused
at another only if every certificate of it is valid then; otherwise it is built again. Other
facts that do not depend on time (a certificate's algorithms, which CRLs an issuer signed and
whether their signatures verify) are worked out once per trust list too.

Why not pyhanko-certvalidator here: it costs ~35 ms per path in pure-Python name handling,
a hundred times the signature itself; the XML hot path cannot afford it (PAdES validation,
off the hot path, still uses it through pyHanko).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import itertools
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.crypto import algorithms, certificates, gost
from gateway.crypto.report import CertificateInfo, Indication, RevocationStatus, SubIndication
from gateway.model.problems import ConfigurationError

if TYPE_CHECKING:
    from gateway.config import NodeConfig

CLOCK_SKEW = timedelta(minutes=5)
"""How far a claimed signing time may lie after ``at``: nodes' clocks differ a little; more
than this and the signature claims to come from the future."""

PATH_CACHE_SIZE = 1024
"""Paths (and per-certificate facts) kept per trust list: one per signing certificate in use
(two per body, a few bodies, rotations) fits many times over; past it a cache is emptied and
refills."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PathResult:
    """The verdict on one certificate's path at one moment."""

    indication: Indication
    sub_indication: SubIndication | None
    message: str
    chain: tuple[x509.Certificate, ...] = ()
    """Signer first, trust anchor last (empty when no path was found)."""
    revocation: RevocationStatus = RevocationStatus.NOT_CHECKED
    revoked_at: datetime | None = None
    """When a certificate of the path was revoked (REVOKED, REVOKED_NO_POE)."""

    @property
    def passed(self) -> bool:
        return self.indication is Indication.TOTAL_PASSED


INFO_CACHE_SIZE = 4096
"""Certificates whose report view is kept: the signers and CAs of every peer many times over."""

_INFO_CACHE: dict[x509.Certificate, CertificateInfo] = {}


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """A CRL file's content, PEM or DER; ValueError when it is neither."""
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


@dataclass(frozen=True, slots=True)
class Revocation:
    """What its issuer's CRLs say of one certificate: the earliest revocation any of them
    states, or none; dated by the newest of them."""

    as_of: datetime
    """The newest CRL's thisUpdate: what they say holds up to then."""
    next_update: datetime | None
    """When the newest one promised its successor: past it, a newer CRL may list more."""
    revoked_at: datetime | None
    reason: str | None
    """RFC 5280's reason name (``keyCompromise``, ``superseded``…); ``unspecified`` when the
    entry gives none."""


def certificate_info(cert: x509.Certificate) -> CertificateInfo:
    """The report's view of a certificate (cached: rendering names as RFC 4514 strings costs
    about 100 µs a certificate, and every document of a peer repeats them; certificates hash
    and compare by their DER)."""
    info = _INFO_CACHE.get(cert)
    if info is None:
        info = CertificateInfo(
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            serial=f"{cert.serial_number:x}",
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            sha256=hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
        )
        if len(_INFO_CACHE) >= INFO_CACHE_SIZE:
            _INFO_CACHE.clear()
        _INFO_CACHE[cert] = info
    return info


class TrustList:
    """CA certificates we trust, with the CRLs we know. Immutable once built."""

    def __init__(
        self,
        anchors: Iterable[x509.Certificate],
        crls: Iterable[x509.CertificateRevocationList] = (),
        *,
        require_revocation: bool = True,
        body_anchors: Mapping[str, Iterable[x509.Certificate]] | None = None,
    ) -> None:
        self.anchors: tuple[x509.Certificate, ...] = tuple(anchors)
        if not self.anchors:
            raise ConfigurationError("trust list: no trust anchor; set [trust] ca_file")
        # Which anchors may certify which body (from the directory of bodies): without it, any
        # trusted CA may certify any body id — acceptable for one demo CA, not for many states.
        self.body_anchors: dict[str, frozenset[bytes]] | None = (
            None
            if body_anchors is None
            else {
                body: frozenset(c.fingerprint(hashes.SHA256()) for c in certs)
                for body, certs in body_anchors.items()
            }
        )
        self.crls: tuple[x509.CertificateRevocationList, ...] = tuple(crls)
        self.require_revocation = require_revocation
        self._builder = (
            x509.verification.PolicyBuilder()
            .store(x509.verification.Store(list(self.anchors)))
            .extension_policies(
                ca_policy=x509.verification.ExtensionPolicy.webpki_defaults_ca(),
                # End-entity extensions are judged per role by the caller (key usage, title).
                ee_policy=x509.verification.ExtensionPolicy.permit_all(),
            )
        )
        self._paths: dict[tuple[x509.Certificate, ...], tuple[x509.Certificate, ...]] = {}
        # Facts about a certificate or a CRL that do not depend on time, worked out once.
        self._weak: dict[x509.Certificate, str] = {}
        self._crls_of: dict[x509.Certificate, tuple[x509.CertificateRevocationList, ...]] = {}

    @classmethod
    def from_pem_files(
        cls,
        ca_file: Path,
        crl_files: Sequence[Path] = (),
        *,
        require_revocation: bool = True,
    ) -> TrustList:
        """From a PEM bundle of CA certificates and PEM or DER CRL files."""
        try:
            anchors = certificates.load_pem_certificates(Path(ca_file).read_bytes())
        except FileNotFoundError:
            raise ConfigurationError(f"[trust] ca_file {ca_file} does not exist") from None
        if not anchors:
            raise ConfigurationError(f"[trust] ca_file {ca_file} holds no PEM certificate")
        crls = []
        for path in crl_files:
            try:
                data = Path(path).read_bytes()
            except FileNotFoundError:
                raise ConfigurationError(f"[trust] crl_files: {path} does not exist") from None
            try:
                crls.append(load_crl(data))
            except ValueError as exc:
                raise ConfigurationError(
                    f"[trust] crl_files: {path} is not a CRL ({exc})"
                ) from None
        return cls(anchors, crls, require_revocation=require_revocation)

    @classmethod
    def from_config(cls, config: NodeConfig) -> TrustList:
        if config.trust.ca_file is None:
            raise ConfigurationError(
                f"{config.path}: [trust] ca_file is not set; name the PEM file of trusted CAs"
            )
        return cls.from_pem_files(
            config.trust.ca_file,
            config.trust.crl_files,
            require_revocation=config.trust.require_revocation_check,
        )

    @classmethod
    def configured(cls, config: NodeConfig | None) -> TrustList | None:
        """The node's ``[trust]`` (:meth:`from_config`), or None without a configuration or
        its ``ca_file`` (a command run before the node was set up)."""
        if config is None or config.trust.ca_file is None:
            return None
        return cls.from_config(config)

    def anchors_pem(self) -> bytes:
        return certificates.pem_bundle(self.anchors)

    def with_crls(self, crls: Iterable[x509.CertificateRevocationList]) -> TrustList:
        """A copy with more CRLs (a fresh CRL arrived)."""
        copy = TrustList(
            self.anchors, (*self.crls, *crls), require_revocation=self.require_revocation
        )
        copy.body_anchors = self.body_anchors
        return copy

    def revocation_record(self, certificate: x509.Certificate) -> Revocation:
        """What the trustworthy CRLs of ``certificate``'s issuer (one of the anchors) say of it
        — revoked, when (the earliest any states) and why — whatever the time now: a verifier
        away from the node judging what a certificate signed in the past. The record's date is
        the newest CRL's. Raises ValueError naming what is missing when no anchor issued it or
        no CRL of that issuer verifies."""
        issuer = next(
            (a for a in self.anchors if certificates.directly_issued_by(certificate, a)), None
        )
        if issuer is None:
            raise ValueError(
                f"{certificate.subject.rfc4514_string()}: none of the CA certificates given "
                f"issued it (its issuer is {certificate.issuer.rfc4514_string()})"
            )
        crls = [
            c for c in self.crls if c.issuer == issuer.subject and self._crl_trustworthy(c, issuer)
        ]
        if not crls:
            raise ValueError(
                f"no CRL signed by {issuer.subject.rfc4514_string()} among those given: the "
                f"revocation of {certificate.subject.rfc4514_string()} cannot be known"
            )
        newest = max(crls, key=lambda c: c.last_update_utc)
        # Any of them that lists it counts: a CA may drop an expired certificate's entry from
        # later lists, and what a compromised key signed stays suspect after its expiry.
        entries = [
            e
            for c in crls
            if (e := c.get_revoked_certificate_by_serial_number(certificate.serial_number))
        ]
        if not entries:
            return Revocation(newest.last_update_utc, newest.next_update_utc, None, None)
        entry = min(entries, key=lambda e: e.revocation_date_utc)
        try:
            reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            reason = x509.ReasonFlags.unspecified
        return Revocation(
            newest.last_update_utc, newest.next_update_utc, entry.revocation_date_utc, reason.value
        )

    # --- validation ---------------------------------------------------------------------------

    def validate(
        self,
        certificate: x509.Certificate,
        intermediates: Sequence[x509.Certificate] = (),
        *,
        moment: datetime,
        at: datetime,
        body_id: str | None = None,
    ) -> PathResult:
        """Validate ``certificate``'s path at ``moment`` (the claimed signing time) with the
        CRLs current at ``at`` (the time of validation). With ``body_anchors`` configured,
        the path must end at an anchor assigned to ``body_id``."""
        moment = certificates.utc(moment)
        at = certificates.utc(at)
        for cert in (certificate, *intermediates):
            weak = self._weakness(cert)
            if weak:
                return PathResult(
                    Indication.INDETERMINATE, SubIndication.CRYPTO_CONSTRAINTS_FAILURE, weak
                )
        if moment < certificate.not_valid_before_utc:
            return PathResult(
                Indication.TOTAL_FAILED,
                SubIndication.NOT_YET_VALID,
                f"certificate valid only from {certificate.not_valid_before_utc.isoformat()}, "
                f"signed at {moment.isoformat()}",
            )
        if moment > certificate.not_valid_after_utc:
            return PathResult(
                Indication.TOTAL_FAILED,
                SubIndication.EXPIRED,
                f"certificate expired {certificate.not_valid_after_utc.isoformat()}, "
                f"signed at {moment.isoformat()}",
            )
        try:
            chain = self._path(certificate, intermediates, moment)
        except x509.verification.VerificationError as exc:
            return PathResult(
                Indication.INDETERMINATE,
                SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
                f"no valid path to a trusted CA at {moment.isoformat()}: {exc}",
            )
        if self.body_anchors is not None:
            allowed = self.body_anchors.get(body_id or "", frozenset())
            if chain[-1].fingerprint(hashes.SHA256()) not in allowed:
                return PathResult(
                    Indication.INDETERMINATE,
                    SubIndication.CHAIN_CONSTRAINTS_FAILURE,
                    f"{chain[-1].subject.rfc4514_string()} is not a CA the directory assigns "
                    f"to body {body_id!r}",
                    chain,
                )
        for cert in chain[1:-1]:
            weak = self._weakness(cert)
            if weak:
                return PathResult(
                    Indication.INDETERMINATE, SubIndication.CRYPTO_CONSTRAINTS_FAILURE, weak, chain
                )
        revocation = RevocationStatus.GOOD
        for subject, issuer in itertools.pairwise(chain):
            known, revoked_at = self._revocation(subject, issuer, at)
            # Naming the certificate costs ~50 µs: only when the message is needed.
            who = certificate_info(subject).subject if not known or revoked_at else ""
            if not known:
                if self.require_revocation:
                    return PathResult(
                        Indication.INDETERMINATE,
                        SubIndication.TRY_LATER,
                        f"revocation status of {who} unknown: no current CRL from its issuer; "
                        "load a fresh CRL ([trust] crl_files)",
                        chain,
                        RevocationStatus.UNKNOWN,
                    )
                revocation = RevocationStatus.NOT_CHECKED
                continue
            if revoked_at is None:
                continue
            if revoked_at <= moment:
                return PathResult(
                    Indication.TOTAL_FAILED,
                    SubIndication.REVOKED,
                    f"{who} was revoked at {revoked_at.isoformat()}, before the signing time",
                    chain,
                    RevocationStatus.REVOKED,
                    revoked_at,
                )
            return PathResult(
                Indication.INDETERMINATE,
                SubIndication.REVOKED_NO_POE,
                f"{who} was revoked at {revoked_at.isoformat()}, after the claimed signing time "
                f"{moment.isoformat()} which nothing proves (no timestamp)",
                chain,
                RevocationStatus.REVOKED,
                revoked_at,
            )
        return PathResult(
            Indication.TOTAL_PASSED, None, "certificate path valid", chain, revocation
        )

    def _path(
        self,
        certificate: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        moment: datetime,
    ) -> tuple[x509.Certificate, ...]:
        """The path from ``certificate`` to an anchor, valid at ``moment``: from the cache when
        every certificate of the cached path is valid at ``moment``, else built (and cached).
        Raises ``VerificationError`` when there is none (failures are not cached)."""
        key = (certificate, *intermediates)
        chain = self._paths.get(key)
        if chain is not None and all(
            c.not_valid_before_utc <= moment <= c.not_valid_after_utc for c in chain
        ):
            return chain
        if any(gost.is_gost_certificate(c) or gost.is_gost_signed(c) for c in key):
            chain = self._gost_path(certificate, intermediates, moment)
        else:
            verifier = self._builder.time(moment).build_client_verifier()
            chain = tuple(verifier.verify(certificate, list(intermediates)).chain)
        _remember(self._paths, key, chain)
        return chain

    def _gost_path(
        self,
        certificate: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        moment: datetime,
    ) -> tuple[x509.Certificate, ...]:
        """The path of a GOST certificate, which ``cryptography``'s verifier cannot check: up
        by issuer name, each signature verified with gostcrypto, each CA valid at ``moment``,
        a CA by its basic constraints (within its path length) and allowed to sign
        certificates by its key usage, ending at a trust anchor (RFC 5280 §6.1, the rules the
        verifier applies to EC and RSA paths). Raises ``VerificationError`` like it."""
        chain = [certificate]
        candidates = [*intermediates, *self.anchors]
        anchors = set(self.anchors)
        while chain[-1] not in anchors:
            if len(chain) > MAX_GOST_PATH:
                raise x509.verification.VerificationError(
                    f"no path within {MAX_GOST_PATH} certificates"
                )
            child = chain[-1]
            issuer = next(
                (
                    c
                    for c in candidates
                    if c not in chain and certificates.directly_issued_by(child, c)
                ),
                None,
            )
            if issuer is None:
                raise x509.verification.VerificationError(
                    f"no trusted issuer verifies {child.subject.rfc4514_string()}"
                )
            problem = _ca_problem(issuer, moment, len(chain) - 1)
            if problem:
                raise x509.verification.VerificationError(problem)
            chain.append(issuer)
        return tuple(chain)

    def _revocation(
        self, subject: x509.Certificate, issuer: x509.Certificate, at: datetime
    ) -> tuple[bool, datetime | None]:
        """(is the status known from a current CRL of ``issuer``, revocation time if revoked)."""
        known = False
        crls = self._crls_of.get(issuer)
        if crls is None:
            # Comparing names builds Python objects: do it once per issuer, not per call.
            crls = tuple(
                c
                for c in self.crls
                if c.issuer == issuer.subject and self._crl_trustworthy(c, issuer)
            )
            _remember(self._crls_of, issuer, crls)
        for crl in crls:
            if not self._crl_current(crl, at):
                continue
            known = True
            entry = crl.get_revoked_certificate_by_serial_number(subject.serial_number)
            if entry is not None:
                return True, entry.revocation_date_utc
        return known, None

    def _weakness(self, cert: x509.Certificate) -> str:
        weak = self._weak.get(cert)
        if weak is None:
            weak = _weakness(cert)
            _remember(self._weak, cert, weak)
        return weak

    @staticmethod
    def _crl_current(crl: x509.CertificateRevocationList, at: datetime) -> bool:
        """Issued before ``at`` (allowing clock skew) and not past its nextUpdate."""
        if crl.last_update_utc > at + CLOCK_SKEW:
            return False
        return crl.next_update_utc is not None and crl.next_update_utc >= at

    def _crl_trustworthy(
        self, crl: x509.CertificateRevocationList, issuer: x509.Certificate
    ) -> bool:
        """What does not depend on time: complete, issued by a key allowed to sign CRLs,
        and its signature verifies."""
        # A critical extension we do not know (delta CRL, partitioned scope) could mean the
        # list is not complete: we do not take it as proof of "not revoked".
        if any(ext.critical and ext.oid not in _KNOWN_CRL_EXTENSIONS for ext in crl.extensions):
            return False
        try:
            usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
            if not usage.crl_sign:
                return False
        except x509.ExtensionNotFound:
            pass
        if gost.is_gost_certificate(issuer):
            return gost.signature_verifies(crl, gost.public_key_of(issuer))
        try:
            return crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
        except (TypeError, ValueError, UnsupportedAlgorithm):
            return False


MAX_GOST_PATH = 5
"""Longest GOST path built (leaf, intermediates, anchor): national PKIs have two or three."""


def _ca_problem(ca: x509.Certificate, moment: datetime, below: int) -> str:
    """Why ``ca`` cannot issue at ``moment`` with ``below`` CA certificates under it (empty when
    it can)."""
    who = ca.subject.rfc4514_string()
    if not ca.not_valid_before_utc <= moment <= ca.not_valid_after_utc:
        return f"CA {who} is not valid at {moment.isoformat()}"
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return f"{who} has no basic constraints: it is not a CA"
    if not constraints.ca:
        return f"{who} is not a CA (basicConstraints cA=FALSE)"
    if constraints.path_length is not None and below > constraints.path_length:
        return f"CA {who} allows {constraints.path_length} CAs below it, not {below}"
    usage = certificates.key_usage_of(ca)
    if usage is not None and not usage.key_cert_sign:
        return f"CA {who} may not sign certificates (keyUsage lacks keyCertSign)"
    return ""


K = TypeVar("K")
V = TypeVar("V")


def _remember(cache: dict[K, V], key: K, value: V) -> None:
    """Keep ``value``; a full cache is emptied first (certificates come from peers: the caches
    must not grow with whatever they send). Races between threads only recompute a value."""
    if len(cache) >= PATH_CACHE_SIZE:
        cache.clear()
    cache[key] = value


_KNOWN_CRL_EXTENSIONS = frozenset(
    {x509.oid.ExtensionOID.CRL_NUMBER, x509.oid.ExtensionOID.AUTHORITY_KEY_IDENTIFIER}
)


def _weakness(cert: x509.Certificate) -> str:
    """Why ``cert`` breaks our algorithm policy (empty when it does not)."""
    try:
        algorithms.check_public_key(certificates.public_key_of(cert))
    except (algorithms.WeakAlgorithm, gost.GostError) as exc:
        return f"{cert.subject.rfc4514_string()}: {exc}"
    except UnsupportedAlgorithm as exc:
        return f"{cert.subject.rfc4514_string()}: {exc}"
    if gost.is_gost_signed(cert):
        return ""
    try:
        hash_algorithm = cert.signature_hash_algorithm
    except Exception:
        return f"{cert.subject.rfc4514_string()}: unknown signature algorithm"
    if hash_algorithm is not None and hash_algorithm.name in algorithms.WEAK_CERTIFICATE_HASHES:
        who = cert.subject.rfc4514_string()
        return f"{who}: certificate signed with {hash_algorithm.name.upper()}, which is refused"
    return ""


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run the validator's coroutine from synchronous code, even when called on a thread whose
    event loop is running (then on a short-lived helper thread; verification belongs in an
    executor anyway, DESIGN.md)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
