"""Key administration use cases: the rotation of key generations and of the KEK ring
(docs/key-rotation.md).

Each function takes an :class:`~gateway.app.context.AppContext` and the node's
:class:`~gateway.crypto.keys.keystore.KeyStore`, checks the actor's role (:data:`Action.MANAGE_KEYS`
changes keys, :data:`Action.READ_CONFIGURATION` lists them), changes the key folder and records
the act in the audit trail as done by the context's actor. ``gateway keys``, the local API's
``/api/v1/keys/…`` and ``/api/v1/kek/…`` routes and the console's ``/admin/acts`` forms are thin
adapters over them (:data:`gateway.app.acts.ADMIN_ACTS` lists which reaches which). Destroying a
KEK from afar (the API, the console) must echo what :func:`destruction_notice` warned of
(docs/administration.md).

Audit events written here::

    key.rotated                subjects key; details role, generation, location,
                               certificate_sha256, demo_ca
    key.certificate.imported   subjects key; details role, generation, certificate_sha256
    key.activated              subjects key; details role, generation, at, directory_version
                               (and forced)
    key.revoked                subjects key; details role, generation, reason, at, crl_serial
    key.publication.exported   subjects body_id; details certificates, sha256
    kek.rotated                subjects kek_id; details previous, active_from, location
    kek.rewrap.finished        subjects kek_id; details rewrapped, complete
    kek.destroyed              subjects kek_id; details location
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from gateway.app.context import AppContext, require
from gateway.config import NodeConfig
from gateway.crashpoints import crash_point
from gateway.crypto import algorithms, certificates
from gateway.crypto.algorithms import KeySpec
from gateway.crypto.certificates import CertificateProfile
from gateway.crypto.demo_ca import DemoCA
from gateway.crypto.keys.generations import (
    Activation,
    KeyGenerations,
    PublishedCertificate,
    RevocationReason,
    RotationError,
    publication,
    read_generations,
    update_generations,
)
from gateway.crypto.keys.kek_ring import (
    DESTROY_GRACE,
    KekRotationError,
    RingEntry,
    RotatedKek,
    destroy_kek,
    load_kek_ring,
    read_ring,
    ring_entries,
    rotate_kek,
)
from gateway.crypto.keys.keystore import KeyEntry, KeyRole, KeyStore, KeyStoreError, key_stem
from gateway.exchange.service import Action
from gateway.store import audit
from gateway.store.keys import (
    RewrapProgress,
    RewrapResult,
    kek_usage,
    rewrap_all,
    under_kek,
)

__all__ = [
    "DESTROY_GRACE",
    "MAX_CERTIFICATE_BYTES",
    "REFUSALS",
    "Activated",
    "DestructionNotice",
    "DestructionUnconfirmed",
    "Imported",
    "KeyListing",
    "KeyRefused",
    "Revoked",
    "Rewrapped",
    "Rotated",
    "RotatedKek",
    "activate",
    "destroy",
    "destruction_notice",
    "import_certificate",
    "list_keys",
    "parse_key",
    "parse_time",
    "publish",
    "read_certificates",
    "revoke",
    "rewrap",
    "rotate",
    "rotate_kek_ring",
]


class KeyRefused(KeyStoreError):
    """The act was refused as asked; nothing changed. ``code`` names the rule for adapters."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


REFUSALS: tuple[type[Exception], ...] = (KeyStoreError, KekRotationError, RotationError)
"""What the acts here raise when they refuse what was asked (an unknown generation, a rule of
the manifest or the ring): nothing changed, and the message names the rule, never a secret.
Every adapter answers them as a refusal (the API's 422 KEY_REFUSED), never as the node's fault."""


_DIRECTORY_ROLE = {
    KeyRole.SEAL: "seal",
    KeyRole.TLS: "tls",
    KeyRole.ENCRYPTION: "encryption",
    KeyRole.OFFICIAL: "officials-ca",
}


@dataclass(frozen=True, slots=True)
class Rotated:
    role: KeyRole
    name: str
    generation: int
    stem: str
    algorithm: str
    """The new key in words (``EC P-256``)."""
    demo_ca: bool
    """True: certified by the demo CA; False: a certificate request waits for a real CA."""


@dataclass(frozen=True, slots=True)
class Activated:
    stem: str
    at: datetime
    directory_version: int
    notes: list[str] = field(default_factory=list)
    """What the operator should know (publication not checked, or forced)."""


@dataclass(frozen=True, slots=True)
class Revoked:
    stem: str
    at: datetime
    reason: RevocationReason
    stranded: int
    """Documents signed by the generation still waiting in the outbox."""
    crl_serial: str
    """Hex serial put on the demo CA's CRL; empty when another CA issued the certificate."""
    crl_file: Path | None
    still_active: bool
    """It was the generation in force: signing is refused until another is active."""
    next_generation: int


@dataclass(frozen=True, slots=True)
class Rewrapped:
    result: RewrapResult
    retired: list[str]
    """KEKs nothing uses any more: candidates for :func:`destroy`."""


def _record(ctx: AppContext, kind: str, subjects: dict[str, str], details: dict[str, Any]) -> None:
    with ctx.store.transaction() as conn:
        ctx.audit(conn, kind, subjects=subjects, details=details)


def _config(ctx: AppContext) -> NodeConfig:
    if ctx.config is None:
        raise KeyStoreError("key administration needs the node's configuration (--config)")
    return ctx.config


def parse_key(spec: str, name: str = "") -> tuple[KeyRole, str]:
    """``ROLE[:NAME]`` (or the name given apart) as a role and a validated key name."""
    role_text, _, named = spec.partition(":")
    named = named or name
    try:
        role = KeyRole(role_text)
    except ValueError:
        raise KeyStoreError(
            f"{spec!r}: the role must be one of {', '.join(r.value for r in KeyRole)}"
        ) from None
    if role is KeyRole.OFFICIAL and not named:
        raise KeyStoreError("an official's key is named: official:NAME (or --name NAME)")
    key_stem(role, named)  # validates the name
    return role, named


def parse_time(text: str, now: datetime, field: str = "at") -> datetime:
    """``now`` or an ISO 8601 time with its zone, in UTC. A refusal names ``field`` (the
    command line's ``--at``), never the value: the API and the console echo nothing sent."""
    if text.strip().lower() == "now":
        return now
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise KeyStoreError(f"{field}: give 'now' or an ISO 8601 time") from None
    if value.tzinfo is None:
        raise KeyStoreError(f"{field}: add the time zone (e.g. 2026-12-01T03:00:00Z)")
    return value.astimezone(UTC)


def demo_ca_of(keys: KeyStore, directory: Path | None = None) -> DemoCA | None:
    """The demo CA in ``directory`` (refused if absent there) or in the key folder (if any)."""
    if directory is not None:
        if not (directory / DemoCA.CERT_FILE).exists():
            raise KeyStoreError(f"--demo-ca {directory}: no {DemoCA.CERT_FILE} there")
        return DemoCA.load(directory, keys.passphrase())
    if not (keys.demo_ca_dir / DemoCA.CERT_FILE).exists():
        return None
    return DemoCA.load(keys.demo_ca_dir, keys.passphrase())


# --- listing -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyListing:
    entries: list[KeyEntry]
    """Every generation of every key, the demo CA's certificate too (no KEK)."""
    ring: list[RingEntry]
    """The KEK ring, retired and destroyed members too (empty: no KEK yet)."""

    def all_entries(self) -> list[KeyEntry]:
        """The generations, then each KEK as one more entry (the console's keys page)."""
        return self.entries + [
            KeyEntry(
                role="kek",
                name=r.key_id,
                location=r.location,
                algorithm="AES-256",
                status=r.status,
                activation_at=r.active_from,
            )
            for r in self.ring
        ]


def list_keys(ctx: AppContext, keys: KeyStore) -> KeyListing:
    """Every key generation and every KEK of the ring: ``gateway keys list`` and the
    console's keys page."""
    require(ctx, Action.READ_CONFIGURATION)
    now = ctx.clock()
    entries = [e for e in keys.entries(now) if e.role != "kek"]
    try:
        ring = ring_entries(keys, now)
    except KekRotationError:
        ring = []  # no KEK yet (or a ring to repair: `gateway keys rewrap` says what is wrong)
    return KeyListing(entries, ring)


# --- key generations ---------------------------------------------------------------------------


def _profile_like(
    cert: x509.Certificate, role: KeyRole, body_id: str, *, demo: bool
) -> CertificateProfile:
    """The profile of the new generation: the subject and names of the one it replaces."""
    from cryptography.x509.oid import NameOID

    organization = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    if role is KeyRole.TLS:
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns = tuple(san.get_values_for_type(x509.DNSName))
            ips = tuple(str(a) for a in san.get_values_for_type(x509.IPAddress))
        except x509.ExtensionNotFound:
            pass
    return CertificateProfile(
        role=str(role),
        body_id=body_id,
        common_name=certificates.common_name_of(cert) if role is KeyRole.OFFICIAL else "",
        title=certificates.title_of(cert) if role is KeyRole.OFFICIAL else "",
        organization=str(organization[0].value) if organization else "",
        demo=demo,
        dns_names=dns,
        ip_addresses=ips,
    )


def rotate(
    ctx: AppContext,
    keys: KeyStore,
    role: KeyRole,
    name: str = "",
    *,
    algorithm: KeySpec = algorithms.DEFAULT_KEY_SPEC,
    where: str | None = None,
    demo_ca: Path | None = None,
) -> Rotated:
    """A new PENDING generation of a key, with the subject of the one in force: certified by
    the demo CA if there is one, else with a certificate request written beside it.
    ``where``: ``file`` or ``token`` (default: where the active generation lives)."""
    require(ctx, Action.MANAGE_KEYS, key_stem(role, name))
    if role is KeyRole.KEK:
        raise KeyStoreError("the KEK is rotated by rotate_kek_ring (`gateway keys rotate kek`)")
    config, now = _config(ctx), ctx.clock()
    active = keys.active_generation(role, name, now)
    current_path = keys.cert_path(role, name, active)
    current = certificates.load_pem_certificates(current_path.read_bytes())
    if not current:
        raise KeyStoreError(f"{current_path}: no certificate to take the subject from")
    ca = demo_ca_of(keys, demo_ca)
    profile = _profile_like(current[0], role, config.node.body_id, demo=ca is not None)
    where = where or (
        "token" if keys.location(role, name, active).startswith("pkcs11:") else "file"
    )
    if where == "token" and not keys.uses_token:
        raise KeyStoreError("--store token: set [keys] pkcs11_module and pkcs11_token_label")
    killed = _unaudited_generation(ctx, keys, role, name)
    if killed is not None:
        return killed
    made: dict[str, Any] = {}

    def add_generation(manifest: KeyGenerations) -> KeyGenerations:
        updated, number = manifest.with_new_generation(now)
        stem = keys.stem(role, name, number)
        key: Any
        if where == "file":
            key = algorithms.generate_private_key(algorithm)
            certificates.write_private_key(
                keys.key_path(role, name, number), key, keys.passphrase()
            )
        else:
            key = keys.token().generate(stem, algorithm)
        if ca is not None:
            cert = ca.issue(key.public_key(), profile, now=now)
            keys.cert_path(role, name, number).write_bytes(
                certificates.pem_bundle([cert, ca.certificate])
            )
            made["sha256"] = cert.fingerprint(hashes.SHA256()).hex()
        else:
            csr = certificates.build_csr(key, profile)
            keys.csr_path(role, name, number).write_bytes(
                csr.public_bytes(serialization.Encoding.PEM)
            )
        made.update(number=number, stem=stem, algorithm=algorithms.describe_key(key.public_key()))
        return updated

    update_generations(keys.directory, key_stem(role, name), add_generation)
    crash_point("rotation.generated")
    _record_rotation(ctx, role, made["number"], made["stem"], where, made.get("sha256"))
    return Rotated(role, name, made["number"], made["stem"], made["algorithm"], ca is not None)


def _record_rotation(
    ctx: AppContext, role: KeyRole, number: int, stem: str, where: str, sha256: str | None
) -> None:
    _record(
        ctx,
        "key.rotated",
        {"key": stem},
        {
            "role": str(role),
            "generation": number,
            "location": "token" if where == "token" else "file",
            "certificate_sha256": sha256,
            "demo_ca": sha256 is not None,
        },
    )


def _audited(ctx: AppContext, kind: str, stem: str, **details: Any) -> bool:
    """Whether the trail holds a ``kind`` event about key ``stem`` with these details."""
    with ctx.store.read() as conn:
        after = 0
        while found := audit.events(conn, after, kinds=(kind,)):
            for event in found:
                if event.subjects.get("key") == stem and all(
                    event.details.get(k) == v for k, v in details.items()
                ):
                    return True
            after = found[-1].seq
    return False


def _unaudited_generation(
    ctx: AppContext, keys: KeyStore, role: KeyRole, name: str
) -> Rotated | None:
    """The generation a killed rotation left (its files and manifest written, its key.rotated
    event not: crash point ``rotation.generated``). Rotating again records that event, once,
    and hands back that generation instead of making a second one."""
    manifest = read_generations(keys.directory, key_stem(role, name))
    newest = max(g.number for g in manifest.generations)
    if (
        newest == 1
        or manifest.generation(newest).revoked_at is not None
        or any(a.generation == newest for a in manifest.activations)
    ):
        return None
    stem = keys.stem(role, name, newest)
    if _audited(ctx, "key.rotated", stem):
        return None
    cert_path = keys.cert_path(role, name, newest)
    public_key: Any
    sha256 = None
    if cert_path.exists():
        cert = certificates.load_pem_certificates(cert_path.read_bytes())[0]
        sha256, public_key = cert.fingerprint(hashes.SHA256()).hex(), cert.public_key()
    else:
        csr = x509.load_pem_x509_csr(keys.csr_path(role, name, newest).read_bytes())
        public_key = csr.public_key()
    where = "token" if keys.location(role, name, newest).startswith("pkcs11:") else "file"
    _record_rotation(ctx, role, newest, stem, where, sha256)
    return Rotated(
        role, name, newest, stem, algorithms.describe_key(public_key), sha256 is not None
    )


@dataclass(frozen=True, slots=True)
class Imported:
    stem: str
    certificate: x509.Certificate
    chain_length: int
    """Certificates in the file: 1 means no issuer certificates came with it."""

    @property
    def sha256(self) -> str:
        """The certificate's SHA-256 (hex), as ``key.certificate.imported`` records it."""
        return self.certificate.fingerprint(hashes.SHA256()).hex()


MAX_CERTIFICATE_BYTES = 256 * 1024
"""The largest certificate file :func:`import_certificate` takes: a certificate and its issuers
are a few KiB each (the local API refuses a larger body before reading it, the console reads
no more than a byte past it)."""


def read_certificates(data: bytes, source: str) -> list[x509.Certificate]:
    """The certificates of a CA's answer: PEM (the certificate, then its issuers) or one DER
    certificate. Refused, naming ``source``, when it is neither or too large."""
    if len(data) > MAX_CERTIFICATE_BYTES:
        raise KeyStoreError(
            f"{source}: {len(data)} bytes, over the {MAX_CERTIFICATE_BYTES} a certificate file "
            "may have; send the certificate the CA issued (then its issuers), nothing else"
        )
    try:
        certs = certificates.load_pem_certificates(data)
        if not certs and data:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        certs = []
    if not certs:
        raise KeyStoreError(
            f"{source}: no certificate in it (neither PEM nor DER); send the certificate the CA "
            "issued for this key's request: PEM (the certificate, then its issuers) or DER"
        )
    return certs


def import_certificate(
    ctx: AppContext,
    keys: KeyStore,
    role: KeyRole,
    name: str,
    generation: int,
    data: bytes,
    *,
    source: str = "the certificate",
) -> Imported:
    """Install a CA's certificate (PEM, leaf first, then its issuers; or one DER certificate)
    for a key of this node: it must certify that key, name this body, serve the role and not
    have expired. A rotated generation's import is audited (``key.certificate.imported``); the
    first generation's is the node's set-up (``gateway keys import``)."""
    require(ctx, Action.MANAGE_KEYS, key_stem(role, name))
    config = _config(ctx)
    certs = read_certificates(data, source)
    leaf = certs[0]
    if generation != 1:
        keys.generations(role, name).generation(generation)  # refuses an unknown generation
    stem = keys.stem(role, name, generation)
    key_path = keys.key_path(role, name, generation)
    if key_path.exists():
        key = keys.read_private_key_file(key_path, stem)
    elif keys.uses_token:
        key = keys.token().private_key(stem)
    else:
        raise KeyStoreError(f"no {role} key to match: {key_path} does not exist")
    if not certificates.same_public_key(key.public_key(), certificates.public_key_of(leaf)):
        raise KeyStoreError(
            f"{source} was issued for another key than {keys.location(role, name, generation)}"
        )
    if certificates.body_id_of(leaf) != config.node.body_id:
        raise KeyStoreError(
            f"{source}: organizationIdentifier {certificates.body_id_of(leaf)!r} is not this "
            f"node's body id {config.node.body_id!r}"
        )
    mismatch = certificates.role_mismatch(leaf, str(role))
    if mismatch:
        raise KeyStoreError(f"{source} cannot serve as {role}: {mismatch}")
    if leaf.not_valid_after_utc < ctx.clock():
        raise KeyStoreError(f"{source} expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    keys.cert_path(role, name, generation).write_bytes(certificates.pem_bundle(certs))
    if generation != 1:  # a rotation step: recorded like the others
        _record(
            ctx,
            "key.certificate.imported",
            {"key": stem},
            {
                "role": str(role),
                "generation": generation,
                "certificate_sha256": leaf.fingerprint(hashes.SHA256()).hex(),
            },
        )
    return Imported(stem, leaf, len(certs))


def _check_published(
    config: NodeConfig, stem: str, role: KeyRole, certificate: x509.Certificate, force: str | None
) -> tuple[int, list[str]]:
    """Publish first, switch after: the directory version in force on this node must carry
    the new certificate (peers pin it; what it signs before they have it is refused). Returns
    that version and notes. ``force`` (a reason) switches anyway, audited (an emergency with
    no standby)."""
    from gateway.exchange.directory import unpublished
    from gateway.exchange.node import load_directory
    from gateway.model.directory import CertificateRole

    if config.trust.directory_file is None:
        # Such a node exchanges nothing (the node refuses to start without a directory): there
        # are no peers to wait for.
        return 0, [f"NOTE: {config.path}: no [trust] directory_file; publication not checked"]
    directory = load_directory(config, at=datetime.now(UTC))
    why = unpublished(
        directory, config.node.body_id, CertificateRole(_DIRECTORY_ROLE[role]), certificate
    )
    if not why:
        return directory.version, []
    if force:
        return directory.version, [
            f"WARNING: {stem}: {why}; activated anyway (--force: {force})",
            "peers refuse what it signs until they have a directory version listing it",
        ]
    raise KeyRefused(
        f"{stem} is not published: {why}. Publish first, switch after: "
        f"`gateway keys publish --config {config.path}` to the depositary, "
        "`gateway directory import` of the version that lists it on this node and on every "
        "peer (check with `gateway directory show` there, or gateway_directory_version in "
        "/metrics), then activate. To switch anyway (peers will refuse it until then): "
        "--force REASON",
        "KEY_NOT_PUBLISHED",
    )


def activate(
    ctx: AppContext,
    keys: KeyStore,
    role: KeyRole,
    name: str,
    generation: int,
    at: datetime,
    *,
    force: str | None = None,
) -> Activated:
    """Schedule the switch to ``generation`` at ``at``, once the directory in force lists its
    certificate (or ``force`` says why not)."""
    require(ctx, Action.MANAGE_KEYS, key_stem(role, name))
    if role is KeyRole.KEK:
        raise KeyStoreError("a KEK is activated by `gateway keys rotate kek --at TIME`")
    config, now = _config(ctx), ctx.clock()
    stem = keys.stem(role, name, generation)
    # The generation must be usable before anyone is told to switch to it.
    key = keys.load(role, name, generation=generation, at=max(at, now))
    cert = key.certificate
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise KeyStoreError(
            f"{stem}: its certificate is valid "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M}.."
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M}, not at {at.isoformat()}"
        )
    version, notes = _check_published(config, stem, role, cert, force)
    at = certificates.utc(at)
    planned = (
        Activation(generation, at)
        in read_generations(keys.directory, key_stem(role, name)).activations
    )
    if planned and _audited(ctx, "key.activated", stem, at=at.isoformat()):
        return Activated(stem, at, version, notes)  # a repeat: nothing to change or record
    if not planned:  # else a killed activation (rotation.activated): only its event is missing
        update_generations(
            keys.directory,
            key_stem(role, name),
            lambda m: m.with_activation(generation, at, now=now),
        )
        crash_point("rotation.activated")
    details: dict[str, Any] = {
        "role": str(role),
        "generation": generation,
        "at": at.isoformat(),
        "directory_version": version,
    }
    if force:
        details["forced"] = force[:200]
    _record(ctx, "key.activated", {"key": stem}, details)
    return Activated(stem, at, version, notes)


def _pending_signed_by(ctx: AppContext, keys: KeyStore, role: KeyRole, name: str, n: int) -> int:
    """Documents in the node's outbox signed by this generation (TLS and encryption sign
    none)."""
    from gateway.exchange.existence import pending_signed_by
    from gateway.store import outbox

    if role in (KeyRole.TLS, KeyRole.ENCRYPTION):
        return 0
    certs = certificates.load_pem_certificates(keys.cert_path(role, name, n).read_bytes())
    if not certs:
        return 0
    with ctx.store.read() as conn:
        if not outbox.pending_message_ids(conn):
            return 0  # nothing waits: the stored documents need not be opened
        return pending_signed_by(
            conn, certs[0].public_bytes(serialization.Encoding.DER), load_kek_ring(keys)
        )


def revoke(
    ctx: AppContext,
    keys: KeyStore,
    role: KeyRole,
    name: str,
    generation: int,
    reason: RevocationReason,
    at: datetime,
    *,
    demo_ca: Path | None = None,
    confirm: str | None = None,
) -> Revoked:
    """Stop a generation at once (``at`` may be earlier, never later) and put it on the demo
    CA's CRL when that CA issued it. A routine reason (superseded, cessation) is refused
    while documents it signed still wait in the outbox. ``confirm``: the remote surfaces (the
    local API, the console) pass what the administrator typed, which must name the generation
    (``seal.2``), so that a mistaken or replayed request revokes nothing — a revocation cannot
    be undone, and one for key compromise voids what that key's statements alone prove; the
    command line, run at the node's host, passes None."""
    require(ctx, Action.MANAGE_KEYS, key_stem(role, name))
    if role is KeyRole.KEK:
        raise KeyStoreError(
            "a KEK is not revoked: rotate it (gateway keys rotate kek), re-wrap, then destroy it"
        )
    now = ctx.clock()
    if at > now:
        raise KeyStoreError("--at: a revocation takes effect now or earlier, not later")
    stem = keys.stem(role, name, generation)
    if confirm is not None and confirm.strip() != stem:
        raise KeyRefused(
            f"confirm: type the generation's name ({stem}) to revoke it; a revocation cannot "
            "be undone",
            "CONFIRMATION_MISMATCH",
        )
    stranded = _pending_signed_by(ctx, keys, role, name, generation)
    if stranded and reason in (
        RevocationReason.SUPERSEDED,
        RevocationReason.CESSATION_OF_OPERATION,
    ):
        # Nothing is compromised: no reason to strand documents no receipt covers yet.
        raise KeyRefused(
            f"{stem}: {stranded} document(s) signed by it still wait in the outbox; revoked now, "
            "peers could not tell when they were signed (INDETERMINATE / REVOKED_NO_POE) and "
            f"would refuse them. Run this command again once they are delivered (the peers' "
            "receipts then prove when they were signed); a compromised key is revoked at once "
            "with --reason keyCompromise.",
            "KEY_STILL_IN_USE",
        )
    update_generations(
        keys.directory,
        key_stem(role, name),
        lambda m: m.with_revocation(generation, at, reason, now=now),
    )
    serial = ""
    ca = demo_ca_of(keys, demo_ca)
    if ca is not None:
        certs = certificates.load_pem_certificates(
            keys.cert_path(role, name, generation).read_bytes()
        )
        if certs and certs[0].issuer == ca.certificate.subject:
            ca.revoke(certs[0], at=at, reason=x509.ReasonFlags(reason.value))
            ca.save(keys.passphrase(), now=now)
            serial = f"{certs[0].serial_number:x}"
    _record(
        ctx,
        "key.revoked",
        {"key": stem},
        {
            "role": str(role),
            "generation": generation,
            "reason": reason.value,
            "at": at.isoformat(),
            "crl_serial": serial or None,
        },
    )
    try:
        still = keys.active_generation(role, name, now) == generation
    except KeyStoreError:
        still = True
    crl_file = ca.directory / DemoCA.CRL_FILE if serial and ca and ca.directory else None
    return Revoked(
        stem,
        at,
        reason,
        stranded,
        serial,
        crl_file,
        still,
        keys.generations(role, name).next_number,
    )


def publish(ctx: AppContext, keys: KeyStore) -> list[PublishedCertificate]:
    """The certificates the depositary must list in the next directory version."""
    require(ctx, Action.MANAGE_KEYS)
    config = _config(ctx)
    published = publication(keys, ctx.clock())
    _record(
        ctx,
        "key.publication.exported",
        {"body_id": config.node.body_id},
        {"certificates": len(published), "sha256": ",".join(p.sha256[:16] for p in published)},
    )
    return published


# --- the KEK ring ------------------------------------------------------------------------------


def rotate_kek_ring(
    ctx: AppContext,
    keys: KeyStore,
    *,
    at: datetime | None = None,
    where: str | None = None,
    confirm: str | None = None,
) -> RotatedKek:
    """A new KEK, active from ``at`` (default now); stored data keys move to it by
    :func:`rewrap`. ``where``: ``file`` or ``token`` (default: where the active one lives).
    ``confirm``: the remote surfaces (the local API, the console) pass what the administrator
    typed, which must name the KEK in force, so that a replayed or mistaken request does not
    rotate the ring; the command line, run at the node's host, passes None."""
    require(ctx, Action.MANAGE_KEYS, "kek")
    now = ctx.clock()
    ring = read_ring(keys.directory)
    active = ring.member(ring.active_at(now) or ring.members[-1].key_id)
    if confirm is not None and confirm != active.key_id:
        raise KeyRefused(
            f"confirm: type the id of the KEK in force ({active.key_id}) to replace it",
            "CONFIRMATION_MISMATCH",
        )
    on_token = (where == "token") if where else active.token_label is not None
    if on_token and not keys.uses_token:
        raise KeyStoreError("--store token: set [keys] pkcs11_module and pkcs11_token_label")
    rotated = rotate_kek(keys, now=now, at=at or now, on_token=on_token)
    _record(
        ctx,
        "kek.rotated",
        {"kek_id": rotated.key_id},
        {
            "previous": rotated.previous,
            "active_from": rotated.active_from.isoformat(),
            "location": "token" if on_token else "file",
        },
    )
    return rotated


def rewrap(
    ctx: AppContext,
    keys: KeyStore,
    *,
    batch_size: int | None = None,
    pause: float = 0.0,
    progress: Callable[[RewrapProgress], None] | None = None,
) -> Rewrapped:
    """Re-wrap every stored data key under the active KEK (resumable: run it again after a
    crash); the run's end is recorded."""
    require(ctx, Action.MANAGE_KEYS, "kek")
    ring = load_kek_ring(keys)
    result = rewrap_all(
        ctx.store,
        ring,
        clock=lambda: datetime.now(UTC),
        batch_size=batch_size,
        pause=pause,
        progress=progress,
    )
    _record(
        ctx,
        "kek.rewrap.finished",
        {"kek_id": result.active},
        {"rewrapped": result.rewrapped, "complete": result.complete},
    )
    return Rewrapped(result, sorted(k for k in ring.key_ids if k != result.active))


@dataclass(frozen=True, slots=True)
class DestructionNotice:
    """What destroying a KEK does, told before it is done: ``gateway keys destroy-kek`` prints
    the warnings, the local API answers them (``GET /api/v1/kek/{kek_id}/destruction``), the
    console shows them above its form."""

    key_id: str
    warnings: tuple[str, ...]
    """What it still wraps (destroying is refused then), what becomes unreadable."""
    acknowledge: str
    """A digest of the KEK's id and the warnings: a remote caller sends it back to destroy,
    so a request made without having read the warnings — or after they changed — is refused."""


ACKNOWLEDGE_FORMAT = "gateway-kek-destruction/1"


def destruction_notice(ctx: AppContext, keys: KeyStore, key_id: str) -> DestructionNotice:
    """The warnings of what destroying ``key_id`` ends, and the value that acknowledges them."""
    require(ctx, Action.MANAGE_KEYS, f"kek:{key_id}"[:64])
    member = read_ring(keys.directory).member(key_id)  # refuses a KEK not in the ring
    if member.destroyed_at is not None:
        raise KekRotationError(f"KEK {key_id} was destroyed at {member.destroyed_at.isoformat()}")
    with ctx.store.read() as conn:
        under = under_kek(conn, key_id)  # what it still wraps or sealed
    config = ctx.config.path if ctx.config is not None else "NODE.toml"
    warnings = []
    if under.wrapped:
        warnings.append(
            f"KEK {key_id} still wraps {under.describe()}: destroying it is refused until "
            f"`gateway keys rewrap --config {config}` has moved them"
        )
    if under.audit_purposes:
        warnings.append(
            f"the read purposes of {under.audit_purposes} audit event(s) are sealed under KEK "
            f"{key_id}: once it is destroyed they can no longer be read (their SHA-256 still can "
            f"be compared); export them first with `gateway audit export --config {config} "
            "--purposes --out FILE` if they must stay readable"
        )
    warnings.append(
        f"destroying KEK {key_id} cannot be undone: backups made under it can no longer be "
        "read, nor the retention period keys they hold"
    )
    digest = hashlib.sha256(
        json.dumps([ACKNOWLEDGE_FORMAT, key_id, warnings], ensure_ascii=False).encode()
    ).hexdigest()
    return DestructionNotice(key_id, tuple(warnings), digest[:32])


class DestructionUnconfirmed(KeyRefused):
    """A remote destruction that did not name the KEK or acknowledge the warnings as they are
    now; ``notice`` holds them (the refusal shows them)."""

    def __init__(self, message: str, notice: DestructionNotice) -> None:
        super().__init__(message, "CONFIRMATION_MISMATCH")
        self.notice = notice


def destroy(
    ctx: AppContext,
    keys: KeyStore,
    key_id: str,
    *,
    confirm: str | None = None,
    acknowledge: str | None = None,
) -> str:
    """Destroy a retired KEK once no stored key is wrapped under it; return where it was.
    Audit purposes sealed under it become unreadable: the ``kek.destroyed`` event counts them
    (``purposes_unreadable``). The KEK in force, or one scheduled, is never destroyed.

    ``confirm`` and ``acknowledge``: the remote surfaces (the local API, the console) pass what
    the administrator sent — the KEK's id again, and :attr:`DestructionNotice.acknowledge` of
    the warnings they were shown — and a mismatch (CONFIRMATION_MISMATCH) changes nothing; the
    command line, whose operator reads the warnings on the node's host, passes None."""
    require(ctx, Action.MANAGE_KEYS, f"kek:{key_id}"[:64])
    if confirm is not None or acknowledge is not None:
        notice = destruction_notice(ctx, keys, key_id)
        if confirm != key_id:
            raise DestructionUnconfirmed(
                f"confirm: type the id of the KEK to destroy ({key_id}) to destroy it", notice
            )
        if acknowledge != notice.acknowledge:
            raise DestructionUnconfirmed(
                f"acknowledge: read the warnings of what KEK {key_id} still seals (they are "
                "here, or changed since they were read) and send back their acknowledge value",
                notice,
            )
    with ctx.store.read() as conn:
        usage = kek_usage(conn)
        under = under_kek(conn, key_id)
    member = destroy_kek(keys, key_id, now=ctx.clock(), usage=usage, usage_detail=under.describe())
    details: dict[str, object] = {"location": "token" if member.token_label else "file"}
    if under.audit_purposes:
        details["purposes_unreadable"] = under.audit_purposes
    _record(ctx, "kek.destroyed", {"kek_id": member.key_id}, details)
    return member.key_id
