"""Key rotation: generations of a key, when each is active, revocations, and what to publish.

Theory of operation
-------------------
A key (one file stem of the key store: ``seal``, ``tls``, ``official-ivanov`` …) may have
several **generations**. Generation 1 is the key the folder always had (``seal.key.pem`` /
``seal.crt.pem``); generation *N* ≥ 2 lives beside it as ``seal.N.key.pem`` /
``seal.N.crt.pem`` (``seal.N.csr.pem`` while a national CA certifies it; on a PKCS#11 token
the key's label is ``seal.N``).

A small JSON **manifest** per key, ``<stem>.generations.json``, records:

* ``generations``: number, creation time, and — once revoked — the revocation time and reason;
* ``activations``: ``(generation, at)`` pairs, the *schedule*. The generation active at time
  *t* is the one of the latest activation whose ``at`` ≤ *t* (``at = null`` means "from the
  beginning": generation 1 of a key rotated for the first time).

Every gateway process reads the manifest (it notices a change by the file's mtime) and asks
"which generation is active at *t*": with the switch scheduled at a fixed time, all processes
switch together, without restart, and none signs with a revoked generation.

States of a generation at *t* (:meth:`KeyGenerations.status`)::

    pending     made, not active yet (no activation, or one scheduled after t)
    active      the one the schedule names at t
    superseded  was active, a later activation replaced it
    revoked     revoked at or before t: never used again (signing refuses it)

Publication: during a rollover peers must accept both certificates, so the depositary lists
every generation that is active, pending, or superseded less than :data:`SUPERSEDED_OVERLAP`
ago (:func:`publication`), and :func:`directory_with_certificates` builds the next directory
version from the current one.

The manifest is written atomically (temporary file, fsync, rename) under an exclusive lock, so
two administrators cannot lose each other's changes and a reader never sees half a file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from gateway.crypto import certificates
from gateway.crypto.files import check_format, locked, parse_json, write_json_atomically
from gateway.crypto.keys import schedule
from gateway.model.directory import BodyCertificate, CertificateRole, Directory
from gateway.model.numbers import whole_number
from gateway.model.problems import ConfigurationError

MANIFEST_SUFFIX = ".generations.json"
MANIFEST_FORMAT = "gateway-key-generations"
MANIFEST_VERSION = 1
MAX_MANIFEST_BYTES = 256 * 1024
"""A manifest is a few hundred bytes per generation; far more is not ours."""
MAX_GENERATIONS = 999
"""Generations per key: one a year for centuries; more means something rotates in a loop."""
MAX_ACTIVATIONS = 10_000
"""Entries in a schedule: bounded so that a hostile file cannot make resolution slow."""

SUPERSEDED_OVERLAP = timedelta(days=30)
"""How long a superseded certificate stays published: documents signed before the switch may
still sit in a peer's or our outbox (retries run for days), and a peer pins the seal against
the directory in force when the document arrives. Thirty days outlasts every retry schedule."""

EXPIRY_WARNING = timedelta(days=30)
"""Keys whose certificate ends sooner than this are flagged: time for a CA to certify a new key
and for the depositary to publish it (a directory version takes days to agree)."""

ACTIVATION_SKEW = timedelta(minutes=5)
"""An activation may lie this little in the past (clocks differ); further back it would rewrite
which key was in force when, and is refused."""


class RotationError(ConfigurationError):
    """A rotation step cannot be done; the message says which key and what to do."""


class RevocationReason(StrEnum):
    """CRL reason codes of RFC 5280 §5.3.1 that an administrator states."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "keyCompromise"
    """The private key leaked or may have: stop at once, tell the depositary and the peers."""
    AFFILIATION_CHANGED = "affiliationChanged"
    SUPERSEDED = "superseded"
    """Replaced by a newer generation in an ordinary rotation."""
    CESSATION_OF_OPERATION = "cessationOfOperation"
    PRIVILEGE_WITHDRAWN = "privilegeWithdrawn"
    """An official lost the authority to sign (CIS Art. 11.3)."""


class GenerationStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Generation:
    number: int
    """1 for the original files (``seal.key.pem``), N for ``seal.N.key.pem``."""
    created_at: datetime | None
    """None for generation 1 when the manifest was made after it (its creation is unknown)."""
    revoked_at: datetime | None = None
    """From this time on the generation is never used (signing refuses it)."""
    reason: RevocationReason | None = None


@dataclass(frozen=True, slots=True)
class Activation:
    generation: int
    at: datetime | None
    """From when; None: from the beginning (the original generation)."""


BEGINNING = datetime.min.replace(tzinfo=UTC)
"""When the original generation of a key came into force: before anything it signed."""
NEVER = datetime.max.replace(tzinfo=UTC)
"""When a generation never activated comes into force: after anything it could sign."""


@dataclass(frozen=True, slots=True)
class Signer:
    """One generation of a key as a verifier of its earlier statements sees it: its
    certificate, and the window in which it could sign (from its first activation until its
    revocation). A statement claiming a time outside that window is refused; one signed by a
    generation revoked for key compromise proves its time only with other evidence (a signed
    audit checkpoint of a trusted generation made before the revocation)."""

    number: int
    certificate: x509.Certificate
    in_force_from: datetime = BEGINNING
    revoked_at: datetime | None = None
    reason: RevocationReason | None = None

    @property
    def compromised(self) -> bool:
        return self.revoked_at is not None and self.reason is RevocationReason.KEY_COMPROMISE


def always_in_force(certificates_: Iterable[x509.Certificate]) -> tuple[Signer, ...]:
    """Certificates known without a manifest (a key folder never rotated, or a test): each in
    force from the beginning and never revoked."""
    return tuple(Signer(n, c) for n, c in enumerate(certificates_, start=1))


def generation_stem(stem: str, generation: int) -> str:
    """File stem and token label of a generation: ``seal`` (1), ``seal.2``, ``official-x.3``."""
    if not 1 <= generation <= MAX_GENERATIONS:
        raise RotationError(f"generation must be 1..{MAX_GENERATIONS}, got {generation}")
    return stem if generation == 1 else f"{stem}.{generation}"


def split_generation_stem(stem: str) -> tuple[str, int]:
    """``seal.2`` → (``seal``, 2); ``seal`` → (``seal``, 1). Key names never hold a dot."""
    base, dot, digits = stem.rpartition(".")
    number = whole_number(digits, 6) if dot and not digits.startswith("0") else None
    if number is not None and 2 <= number <= MAX_GENERATIONS:
        return base, number
    return stem, 1


@dataclass(frozen=True, slots=True)
class KeyGenerations:
    """The manifest of one key: its generations and the activation schedule."""

    stem: str
    """Base stem (``seal``, ``official-ivanov``)."""
    generations: tuple[Generation, ...]
    activations: tuple[Activation, ...]

    @classmethod
    def original(cls, stem: str) -> KeyGenerations:
        """What a key without a manifest is: generation 1, active from the beginning."""
        return cls(stem, (Generation(1, None),), (Activation(1, None),))

    # --- questions ----------------------------------------------------------------------------

    def generation(self, number: int) -> Generation:
        for g in self.generations:
            if g.number == number:
                return g
        raise RotationError(
            f"{self.stem}: no generation {number} (known: "
            f"{', '.join(str(g.number) for g in self.generations)}); see `gateway keys list`"
        )

    @property
    def next_number(self) -> int:
        return max(g.number for g in self.generations) + 1

    def active_at(self, at: datetime) -> int | None:
        """The generation the schedule names at ``at`` (None: none activated yet)."""
        chosen = schedule.current(self.activations, at)
        return None if chosen is None else chosen.generation

    def revoked_at(self, number: int, at: datetime) -> bool:
        g = self.generation(number)
        return g.revoked_at is not None and g.revoked_at <= certificates.utc(at)

    def ever_active_before(self, number: int, at: datetime) -> bool:
        at = certificates.utc(at)
        return any(
            a.generation == number and (a.at is None or a.at <= at) for a in self.activations
        )

    def superseded_at(self, number: int, at: datetime) -> datetime | None:
        """When ``number`` stopped being active (the first later activation of another one
        that is in force at ``at``), or None if it is active or never was."""
        at = certificates.utc(at)
        if self.active_at(at) == number or not self.ever_active_before(number, at):
            return None
        return schedule.left_service(self.activations, at, lambda a: a.generation == number)

    def status(self, number: int, at: datetime) -> GenerationStatus:
        if self.revoked_at(number, at):
            return GenerationStatus.REVOKED
        if self.active_at(at) == number:
            return GenerationStatus.ACTIVE
        if self.ever_active_before(number, at):
            return GenerationStatus.SUPERSEDED
        return GenerationStatus.PENDING

    def scheduled_after(self, at: datetime) -> tuple[Activation, ...]:
        """Activations planned for later than ``at``."""
        at = certificates.utc(at)
        return tuple(a for a in self.activations if a.at is not None and a.at > at)

    # --- changes (each returns a new manifest) ------------------------------------------------

    def with_new_generation(self, now: datetime) -> tuple[KeyGenerations, int]:
        number = self.next_number
        if number > MAX_GENERATIONS:
            raise RotationError(f"{self.stem}: {MAX_GENERATIONS} generations already")
        g = Generation(number, certificates.utc(now))
        return replace(self, generations=(*self.generations, g)), number

    def with_activation(self, number: int, at: datetime, *, now: datetime) -> KeyGenerations:
        """Schedule ``number`` to become active at ``at``. Activations still planned (after
        ``now``) are dropped: a new plan replaces the future, never the past."""
        at, now = certificates.utc(at), certificates.utc(now)
        if at < now - ACTIVATION_SKEW:
            raise RotationError(
                f"{self.stem}: activation time {at.isoformat()} is in the past; activation "
                "cannot change which key was in force before now (use --at now or a later time)"
            )
        g = self.generation(number)
        if g.revoked_at is not None:
            raise RotationError(
                f"{generation_stem(self.stem, number)} was revoked at {g.revoked_at.isoformat()} "
                f"({g.reason}): it is never activated again; rotate to a new generation"
            )
        kept = tuple(a for a in self.activations if a.at is None or a.at <= now)
        if len(kept) + 1 > MAX_ACTIVATIONS:
            raise RotationError(f"{self.stem}: too many activations recorded")
        return replace(self, activations=(*kept, Activation(number, at)))

    def with_revocation(
        self, number: int, at: datetime, reason: RevocationReason, *, now: datetime | None = None
    ) -> KeyGenerations:
        """Revoke ``number`` from ``at`` on; switches to it still planned after ``now``
        (default ``at``) are cancelled, so the generation in force before stays in force."""
        g = self.generation(number)
        if g.revoked_at is not None:
            raise RotationError(
                f"{generation_stem(self.stem, number)} is already revoked "
                f"({g.revoked_at.isoformat()}, {g.reason})"
            )
        revoked = replace(g, revoked_at=certificates.utc(at), reason=reason)
        cutoff = certificates.utc(now or at)
        return replace(
            self,
            generations=tuple(revoked if x.number == number else x for x in self.generations),
            activations=tuple(
                a
                for a in self.activations
                if a.generation != number or a.at is None or a.at <= cutoff
            ),
        )

    def signers(self, certificates_by_number: dict[int, x509.Certificate]) -> tuple[Signer, ...]:
        """Each generation that has a certificate, with when it was in force: what a statement
        this key signed on an earlier day is judged by (:mod:`gateway.crypto.statements`)."""
        return tuple(
            Signer(
                g.number,
                certificates_by_number[g.number],
                in_force_from=self.in_force_from(g.number),
                revoked_at=g.revoked_at,
                reason=g.reason,
            )
            for g in self.generations
            if g.number in certificates_by_number
        )

    def in_force_from(self, number: int) -> datetime:
        """The earliest time ``number`` was scheduled in force (``BEGINNING`` for the original
        generation; ``NEVER`` for one never activated)."""
        times = [a.at or BEGINNING for a in self.activations if a.generation == number]
        return min(times) if times else NEVER

    # --- JSON ---------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "stem": self.stem,
            "generations": [
                {
                    "generation": g.number,
                    "created_at": schedule.time_text(g.created_at),
                    "revoked_at": schedule.time_text(g.revoked_at),
                    "reason": g.reason.value if g.reason else None,
                }
                for g in self.generations
            ],
            "activations": [
                {"generation": a.generation, "at": schedule.time_text(a.at)}
                for a in self.activations
            ],
        }

    @classmethod
    def from_json(cls, doc: Any, where: str) -> KeyGenerations:
        """Parse a manifest, refusing anything malformed (the message names the field)."""
        doc = check_format(
            doc, where, format=MANIFEST_FORMAT, version=MANIFEST_VERSION, error=RotationError
        )
        _only_keys(doc, {"format", "version", "stem", "generations", "activations"}, where)
        stem = doc.get("stem")
        if not isinstance(stem, str) or not stem or "." in stem or "/" in stem:
            raise RotationError(f"{where}: 'stem' must be a key stem such as 'seal'")
        raw_generations = _list(doc, "generations", MAX_GENERATIONS, where)
        raw_activations = _list(doc, "activations", MAX_ACTIVATIONS, where)
        generations = []
        for i, item in enumerate(raw_generations):
            at = f"{where}: generations[{i}]"
            if not isinstance(item, dict):
                raise RotationError(f"{at} must be an object")
            _only_keys(item, {"generation", "created_at", "revoked_at", "reason"}, at)
            reason = item.get("reason")
            try:
                parsed_reason = RevocationReason(reason) if reason is not None else None
            except ValueError:
                raise RotationError(f"{at}.reason {reason!r} is not an RFC 5280 reason") from None
            generations.append(
                Generation(
                    _number(item.get("generation"), f"{at}.generation"),
                    schedule.parse_time(item.get("created_at"), f"{at}.created_at", RotationError),
                    schedule.parse_time(item.get("revoked_at"), f"{at}.revoked_at", RotationError),
                    parsed_reason,
                )
            )
        numbers = [g.number for g in generations]
        if not numbers or len(set(numbers)) != len(numbers):
            raise RotationError(f"{where}: 'generations' must list each generation once")
        activations = []
        for i, item in enumerate(raw_activations):
            at = f"{where}: activations[{i}]"
            if not isinstance(item, dict):
                raise RotationError(f"{at} must be an object")
            _only_keys(item, {"generation", "at"}, at)
            number = _number(item.get("generation"), f"{at}.generation")
            if number not in numbers:
                raise RotationError(f"{at}.generation {number} is not among 'generations'")
            activations.append(
                Activation(number, schedule.parse_time(item.get("at"), f"{at}.at", RotationError))
            )
        return cls(stem, tuple(generations), tuple(activations))


def _number(value: Any, where: str) -> int:
    if type(value) is not int or not 1 <= value <= MAX_GENERATIONS:
        raise RotationError(f"{where} must be an integer 1..{MAX_GENERATIONS}")
    return value


def _list(doc: dict[str, Any], key: str, limit: int, where: str) -> list[Any]:
    value = doc.get(key)
    if not isinstance(value, list) or len(value) > limit:
        raise RotationError(f"{where}: {key!r} must be a list of at most {limit} entries")
    return value


def _only_keys(doc: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(doc) - allowed
    if unknown:
        raise RotationError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")


# --- manifest files --------------------------------------------------------------------------


def manifest_path(directory: Path, stem: str) -> Path:
    return Path(directory) / f"{stem}{MANIFEST_SUFFIX}"


def read_generations(directory: Path, stem: str) -> KeyGenerations:
    """The manifest of ``stem``; a key without one is generation 1, active from the beginning."""
    path = manifest_path(directory, stem)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return KeyGenerations.original(stem)
    doc = parse_json(
        path,
        raw,
        limit=MAX_MANIFEST_BYTES,
        what="a key manifest",
        remedy="restore it from the backup of the keys",
        error=RotationError,
    )
    manifest = KeyGenerations.from_json(doc, str(path))
    if manifest.stem != stem:
        raise RotationError(f"{path}: names key {manifest.stem!r}, expected {stem!r}")
    return manifest


def update_generations(
    directory: Path, stem: str, change: Callable[[KeyGenerations], KeyGenerations]
) -> KeyGenerations:
    """Read, change and write the manifest of ``stem`` under its lock; return the new one."""
    with locked(directory, f"{stem}{MANIFEST_SUFFIX}"):
        updated = change(read_generations(directory, stem))
        write_json_atomically(manifest_path(directory, stem), updated.to_json())
        return updated


# --- publication -------------------------------------------------------------------------------

_DIRECTORY_ROLE = {
    "seal": CertificateRole.SEAL,
    "tls": CertificateRole.TLS,
    "encryption": CertificateRole.ENCRYPTION,
}
"""Key-store roles whose own certificate the directory lists; officials are published through
the CA that certifies them (``officials-ca``)."""


@dataclass(frozen=True, slots=True)
class GenerationInfo:
    """One generation of one key as the folder holds it (for publication and expiry checks):
    what :meth:`KeyFolder.generation_infos` lists."""

    role: str
    name: str
    generation: int
    stem: str
    """``seal.2``: the generation's file stem and token label."""
    stem_base: str
    """``seal``: the key's stem (and its manifest's)."""
    manifest: KeyGenerations
    certificate: x509.Certificate | None
    chain: tuple[x509.Certificate, ...]


class HasGeneration(Protocol):
    @property
    def generation(self) -> int: ...


class KeyFolder(Protocol):
    """What rotation reads of a keys folder. :class:`gateway.crypto.keys.keystore.KeyStore` is one;
    a protocol rather than that class because the keystore builds on this module (its
    manifests), and an import back would close a cycle."""

    def generation_infos(self) -> list[GenerationInfo]: ...

    def generations(self, role: str, name: str = "") -> KeyGenerations: ...

    def key_path(self, role: str, name: str = "", generation: int = 1) -> Path: ...

    def cert_path(self, role: str, name: str = "", generation: int = 1) -> Path: ...

    def tls(self, at: datetime | None = None) -> HasGeneration: ...


@dataclass(frozen=True, slots=True)
class PublishedCertificate:
    """One certificate the depositary must list for this body in the next directory version."""

    role: CertificateRole
    key: str
    """Key-store stem of the generation it comes from (``seal.2``; for ``officials-ca``, the
    official key whose chain ends in it)."""
    status: GenerationStatus
    certificate: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def sha256(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def to_body_certificate(self) -> BodyCertificate:
        return BodyCertificate(self.role, self.der)

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role.value,
            "key": self.key,
            "status": self.status.value,
            "sha256": self.sha256,
            "not_after": self.certificate.not_valid_after_utc.isoformat(),
            "pem": self.pem,
        }


def published_from_json(doc: Any) -> list[PublishedCertificate]:
    """Read what ``gateway keys publish --json`` printed (the depositary's input), checking
    each PEM against its stated SHA-256."""
    if not isinstance(doc, dict) or not isinstance(doc.get("certificates"), list):
        raise RotationError("publication: expected the JSON of `gateway keys publish --json`")
    result = []
    for i, item in enumerate(doc["certificates"]):
        where = f"publication: certificates[{i}]"
        try:
            cert = x509.load_pem_x509_certificate(str(item["pem"]).encode("ascii"))
            entry = PublishedCertificate(
                CertificateRole(item["role"]),
                str(item["key"]),
                GenerationStatus(item["status"]),
                cert,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RotationError(f"{where}: {exc}") from None
        if entry.sha256 != item.get("sha256"):
            raise RotationError(f"{where}: the PEM does not match its sha256")
        result.append(entry)
    return result


def _published_status(
    manifest: KeyGenerations, number: int, now: datetime
) -> GenerationStatus | None:
    status = manifest.status(number, now)
    if status is GenerationStatus.REVOKED:
        return None
    if status is GenerationStatus.SUPERSEDED:
        ended = manifest.superseded_at(number, now)
        if ended is None or now - ended > SUPERSEDED_OVERLAP:
            return None
    return status


def publication(keystore: KeyFolder, now: datetime) -> list[PublishedCertificate]:
    """Every certificate of this node the directory must list at ``now``: per role, the active
    generation, the pending ones (so peers accept them from the switch on) and the ones
    superseded less than :data:`SUPERSEDED_OVERLAP` ago; never a revoked or expired one."""
    now = certificates.utc(now)
    found: dict[tuple[CertificateRole, str], PublishedCertificate] = {}
    for info in keystore.generation_infos():
        if info.certificate is None or info.certificate.not_valid_after_utc < now:
            continue
        status = _published_status(info.manifest, info.generation, now)
        if status is None:
            continue
        if info.role in _DIRECTORY_ROLE:
            role, cert = _DIRECTORY_ROLE[info.role], info.certificate
        elif info.role == "official" and info.chain:
            role, cert = CertificateRole.OFFICIALS_CA, info.chain[-1]
        else:
            continue
        key = (role, cert.fingerprint(hashes.SHA256()).hex())
        if key not in found or status is GenerationStatus.ACTIVE:
            found[key] = PublishedCertificate(role, info.stem, status, cert)
    order = {GenerationStatus.ACTIVE: 0, GenerationStatus.PENDING: 1}
    return sorted(found.values(), key=lambda p: (p.role.value, order.get(p.status, 2), p.key))


def directory_with_certificates(
    directory: Directory,
    body_id: str,
    role: CertificateRole | str,
    certificates_: Iterable[x509.Certificate | BodyCertificate | bytes],
    version: int,
    issued_at: datetime,
    *,
    extend: bool = False,
) -> Directory:
    """The next directory version: ``body_id``'s certificates of ``role`` replaced by
    ``certificates_`` (or, with ``extend``, added to the ones listed). Unsigned: the
    depositary signs the result (``gateway.exchange.directory_signing.sign_directory``)."""
    role = CertificateRole(role)
    changed = _with_role(directory, body_id, role, list(certificates_), extend=extend)
    return _next_version(directory, changed, version, issued_at)


def directory_with_publication(
    directory: Directory,
    body_id: str,
    published: Sequence[PublishedCertificate],
    version: int,
    issued_at: datetime,
) -> Directory:
    """The next directory version with every role in ``published`` replaced by what
    :func:`publication` listed (roles it does not mention keep their certificates)."""
    if not published:
        raise RotationError("nothing to publish")
    changed = directory
    for role in dict.fromkeys(p.role for p in published):
        certs = [p.certificate for p in published if p.role is role]
        changed = _with_role(changed, body_id, role, certs, extend=False)
    return _next_version(directory, changed, version, issued_at)


def _next_version(
    current: Directory, changed: Directory, version: int, issued_at: datetime
) -> Directory:
    if version <= current.version:
        raise RotationError(
            f"directory version {version} must be greater than the current {current.version}"
        )
    if certificates.utc(issued_at) < current.issued_at:
        raise RotationError("the new directory version cannot be issued before the current one")
    return replace(changed, version=version, issued_at=certificates.utc(issued_at))


def _with_role(
    directory: Directory,
    body_id: str,
    role: CertificateRole,
    items: Sequence[x509.Certificate | BodyCertificate | bytes],
    *,
    extend: bool,
) -> Directory:
    if all(body.id != body_id for body in directory.bodies):
        raise RotationError(f"body {body_id} is not in directory version {directory.version}")
    new = [_body_certificate(role, c) for c in items]
    if not new and not extend:
        raise RotationError(f"{body_id}: a directory entry needs at least one {role} certificate")
    for item in new:
        cert = x509.load_der_x509_certificate(item.der)
        if role is CertificateRole.OFFICIALS_CA:
            continue  # a CA: no body id, no end-entity profile
        owner = certificates.body_id_of(cert)
        if owner != body_id:
            raise RotationError(
                f"{role} certificate {item.sha256[:16]}… belongs to {owner or '(no body)'}, "
                f"not {body_id} (organizationIdentifier)"
            )
        mismatch = certificates.role_mismatch(cert, role.value)
        if mismatch:
            raise RotationError(f"{role} certificate {item.sha256[:16]}…: {mismatch}")
    bodies = []
    for body in directory.bodies:
        if body.id != body_id:
            bodies.append(body)
            continue
        kept = [c for c in body.certificates if c.role is not role or extend]
        seen = {(c.role, c.sha256) for c in kept}
        for item in new:
            if (item.role, item.sha256) not in seen:
                kept.append(item)
                seen.add((item.role, item.sha256))
        bodies.append(replace(body, certificates=tuple(kept)))
    return replace(directory, bodies=tuple(bodies))


def _body_certificate(
    role: CertificateRole, item: x509.Certificate | BodyCertificate | bytes
) -> BodyCertificate:
    if isinstance(item, BodyCertificate):
        if item.role is not role:
            raise RotationError(f"certificate for {item.role} given where {role} is replaced")
        return item
    if isinstance(item, x509.Certificate):
        return BodyCertificate(role, item.public_bytes(serialization.Encoding.DER))
    return BodyCertificate(role, bytes(item))


# --- for the running node -------------------------------------------------------------------


def next_switch(manifest: KeyGenerations, after: datetime) -> datetime | None:
    """The first scheduled activation after ``after``: when a process must take the new
    generation (e.g. rebuild its TLS context and ``ReloadableContext.swap`` it)."""
    planned = manifest.scheduled_after(after)
    return min(a.at for a in planned if a.at is not None) if planned else None


@dataclass(frozen=True, slots=True)
class TlsIdentity:
    """The TLS key and certificate files in force at a time (``ssl`` loads files)."""

    generation: int
    cert_file: Path
    key_file: Path
    next_switch: datetime | None
    """When to look again (None: nothing scheduled)."""


def tls_identity(keystore: KeyFolder, at: datetime) -> TlsIdentity:
    """The TLS generation in force at ``at``, refusing a revoked one (``KeyRevoked``). The
    peer link builds ``server_context``/``client_context`` from these files and swaps them in
    when :attr:`TlsIdentity.generation` differs from the one it runs with."""
    key = keystore.tls(at=at)
    return TlsIdentity(
        generation=key.generation,
        cert_file=keystore.cert_path("tls", "", key.generation),
        key_file=keystore.key_path("tls", "", key.generation),
        next_switch=next_switch(keystore.generations("tls"), certificates.utc(at)),
    )


# --- expiry ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpiringKey:
    """A key in use (active or pending) whose certificate ends within the warning period."""

    role: str
    name: str
    generation: int
    status: GenerationStatus
    not_after: datetime
    days_left: int
    """Negative: already expired."""
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "name": self.name,
            "generation": self.generation,
            "status": self.status.value,
            "not_after": self.not_after.isoformat(),
            "days_left": self.days_left,
            "sha256": self.sha256,
        }


def expiring_keys(
    keystore: KeyFolder, now: datetime, within: timedelta = EXPIRY_WARNING
) -> list[ExpiringKey]:
    """Active or pending keys whose certificate ends before ``now + within`` (or already has),
    soonest first — for ``gateway keys list``, the scheduled check, /metrics and the API.
    An active key is not flagged once a successor that outlives the warning period is
    scheduled to become active before it ends."""
    now = certificates.utc(now)
    infos = [i for i in keystore.generation_infos() if i.certificate is not None]
    result = []
    for info in infos:
        status = info.manifest.status(info.generation, now)
        if status not in (GenerationStatus.ACTIVE, GenerationStatus.PENDING):
            continue
        assert info.certificate is not None
        not_after = info.certificate.not_valid_after_utc
        if not_after - now > within:
            continue
        # Handled: a successor that outlives the warning period is scheduled to take over
        # before this certificate ends. A pending generation nobody activates is not enough.
        successor = any(
            other.stem_base == info.stem_base
            and other.generation != info.generation
            and other.certificate is not None
            and other.certificate.not_valid_after_utc - now > within
            and any(
                a.generation == other.generation and a.at is not None and now < a.at <= not_after
                for a in info.manifest.activations
            )
            for other in infos
        )
        if status is GenerationStatus.ACTIVE and successor:
            continue
        result.append(
            ExpiringKey(
                role=info.role,
                name=info.name,
                generation=info.generation,
                status=status,
                not_after=not_after,
                days_left=(not_after - now).days,
                sha256=info.certificate.fingerprint(hashes.SHA256()).hex(),
            )
        )
    return sorted(result, key=lambda e: e.not_after)
