"""``gateway keys`` handlers (the parser is :mod:`gateway.cli.keys`, which stays light)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from gateway.cli.errors import CommandError, ExitCode, fail
from gateway.config import NodeConfig
from gateway.crypto import algorithms, certificates
from gateway.crypto.algorithms import KeySpec
from gateway.crypto.certificates import DEMO_LABEL, CertificateProfile, DemoCA
from gateway.crypto.keystore import (
    KeyRole,
    KeyStore,
    KeyStoreError,
    key_stem,
)

EXIT_OK = ExitCode.OK
EXIT_FAILED = ExitCode.REFUSED
EXIT_CONFIG = ExitCode.USAGE


def run(handler: Any, args: argparse.Namespace) -> int:
    """Run ``handler`` with the options in their types and the clock read once; a bad value
    (a time, a key name) is a usage error, the rest reaches :func:`gateway.cli.main`."""
    if getattr(args, "algorithm", None) is not None:
        args.algorithm = KeySpec(args.algorithm)
    try:
        return int(handler(args, now=datetime.now(UTC)))
    except ValueError as exc:
        raise CommandError(str(exc), "INVALID_ARGUMENT", ExitCode.USAGE) from exc


def _store(args: argparse.Namespace) -> tuple[NodeConfig, KeyStore]:
    config = NodeConfig.from_toml(args.config)
    return config, KeyStore.from_config(config)


def _demo_ca(store: KeyStore) -> DemoCA | None:
    if not (store.demo_ca_dir / DemoCA.CERT_FILE).exists():
        return None
    return DemoCA.load(store.demo_ca_dir, store.passphrase())


def _profile(args: argparse.Namespace, config: NodeConfig, *, demo: bool) -> CertificateProfile:
    role = args.role
    if role == "official" and not (args.name and args.person and args.title):
        raise KeyStoreError(
            "an official's key needs --name (key name), --person (full name) and --title "
            "(position): they go into the certificate (docs/architecture.md)"
        )
    dns = tuple(args.dns) + (certificates.DEMO_TLS_DNS_NAMES if demo else ())
    ips = tuple(args.ip) + (certificates.DEMO_TLS_IP_ADDRESSES if demo else ())
    return CertificateProfile(
        role=role,
        body_id=config.node.body_id,
        common_name=args.person if role == "official" else "",
        title=args.title if role == "official" else "",
        demo=demo,
        dns_names=tuple(dict.fromkeys(dns)) if role == "tls" else (),
        ip_addresses=tuple(dict.fromkeys(ips)) if role == "tls" else (),
    )


def cmd_init_ca(args: argparse.Namespace, *, now: datetime) -> int:
    _, store = _store(args)
    if (store.demo_ca_dir / DemoCA.KEY_FILE).exists():
        raise KeyStoreError(f"{store.demo_ca_dir}: a demo CA already exists")
    store.demo_ca_dir.mkdir(parents=True, exist_ok=True)
    ca = DemoCA.create(now=now, name=args.name, spec=args.algorithm, directory=store.demo_ca_dir)
    ca.save(store.passphrase(), now=now)
    print(f"*** {DEMO_LABEL} ***")
    print(f"demo CA: {ca.certificate.subject.rfc4514_string()}")
    print(f"certificate: {store.demo_ca_dir / DemoCA.CERT_FILE}")
    print(f"CRL: {store.demo_ca_dir / DemoCA.CRL_FILE}")
    print('trust it on every demo node:  [trust] ca_file = ".../demo-ca/ca.crt.pem"')
    print('                              crl_files = [".../demo-ca/crl.pem"]')
    return EXIT_OK


def _where(args: argparse.Namespace, store: KeyStore, role: str) -> str:
    if args.store:
        if args.store == "token" and not store.uses_token:
            raise KeyStoreError("--store token: set [keys] pkcs11_module and pkcs11_token_label")
        return str(args.store)
    return "token" if store.uses_token and role != "tls" else "file"


def _new_key(args: argparse.Namespace, store: KeyStore, *, force: bool) -> Any:
    """Generate the private key in the file or on the token; return it."""
    role, name = KeyRole(args.role), args.name if args.role == "official" else ""
    stem = key_stem(role, name)
    where = _where(args, store, role)
    key_path = store.key_path(role, name)
    if where == "file":
        if key_path.exists() and not force:
            raise KeyStoreError(
                f"{key_path} exists; pass --force to replace it (old signatures "
                "stay verifiable with the old certificate)"
            )
        key = algorithms.generate_private_key(args.algorithm)
        certificates.write_private_key(key_path, key, store.passphrase())
        return key
    token = store.token()
    if token.has_key(stem):
        raise KeyStoreError(f"token {store.keys.pkcs11_token_label!r} already holds {stem!r}")
    return token.generate(stem, args.algorithm)


def cmd_generate(args: argparse.Namespace, *, now: datetime) -> int:
    config, store = _store(args)
    if args.role == "kek":
        return _generate_kek(store, force=args.force)
    role, name = KeyRole(args.role), args.name if args.role == "official" else ""
    ca = _demo_ca(store)
    profile = _profile(args, config, demo=ca is not None)
    key = _new_key(args, store, force=args.force)
    if ca is None:
        csr = certificates.build_csr(key, profile)
        store.csr_path(role, name).write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        print(
            f"key generated ({store.location(role, name)}); no demo CA here, so a request was "
            f"written: {store.csr_path(role, name)}"
        )
        print(
            "have it certified by your national CA, then run: gateway keys import "
            f"{role} CERT.pem --config {args.config}" + (f" --name {name}" if name else "")
        )
        return EXIT_OK
    cert = ca.issue(key.public_key(), profile, now=now)
    store.cert_path(role, name).write_bytes(certificates.pem_bundle([cert, ca.certificate]))
    print(f"*** {DEMO_LABEL} *** certificate from the demo CA")
    print(
        f"{role}{' ' + name if name else ''}: {algorithms.describe_key(key.public_key())}, "
        f"{cert.subject.rfc4514_string()}"
    )
    print(f"key: {store.location(role, name)}  certificate: {store.cert_path(role, name)}")
    return EXIT_OK


def _generate_kek(store: KeyStore, *, force: bool) -> int:
    # Imported here: the at-rest layer is needed only by this command.
    from gateway.crypto.at_rest import generate_file_kek
    from gateway.crypto.kek_rotation import ring_manifest_path

    if ring_manifest_path(store.directory).exists():
        raise KeyStoreError(
            f"{ring_manifest_path(store.directory)} exists: this node's KEKs were rotated; "
            "make a new one with `gateway keys rotate kek`"
        )
    if store.kek_path.exists():
        raise KeyStoreError(
            f"{store.kek_path} exists; replacing it would make stored data "
            "unreadable (rotation re-wraps data keys; --force does not apply)"
        )
    store.directory.mkdir(parents=True, exist_ok=True)
    key_id = generate_file_kek(store.kek_path, store.passphrase())
    print(f"kek {key_id}: {store.kek_path}")
    return EXIT_OK


def cmd_csr(args: argparse.Namespace, *, now: datetime) -> int:
    config, store = _store(args)
    role, name = KeyRole(args.role), args.name if args.role == "official" else ""
    profile = _profile(args, config, demo=False)
    if store.key_path(role, name).exists():
        key = store.read_private_key_file(store.key_path(role, name), key_stem(role, name))
    elif store.uses_token and store.token().has_key(key_stem(role, name)):
        key = store.token().private_key(key_stem(role, name))
    else:
        key = _new_key(args, store, force=False)
    csr = certificates.build_csr(key, profile)
    path = store.csr_path(role, name)
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    print(f"certificate request: {path}")
    print(f"subject: {csr.subject.rfc4514_string()}")
    print(
        f"then: gateway keys import {role} CERT.pem --config {args.config}"
        + (f" --name {name}" if name else "")
    )
    return EXIT_OK


def cmd_import(args: argparse.Namespace, *, now: datetime) -> int:
    config, store = _store(args)
    role, name = KeyRole(args.role), args.name if args.role == "official" else ""
    generation = args.generation
    certs = certificates.load_pem_certificates(args.certificate.read_bytes())
    if not certs:
        raise KeyStoreError(f"{args.certificate}: no PEM certificate in it")
    leaf = certs[0]
    if generation != 1:
        store.generations(role, name).generation(generation)  # refuses an unknown generation
    stem = store.stem(role, name, generation)
    key_path = store.key_path(role, name, generation)
    if key_path.exists():
        key = store.read_private_key_file(key_path, stem)
    elif store.uses_token:
        key = store.token().private_key(stem)
    else:
        raise KeyStoreError(f"no {role} key to match: {key_path} does not exist")
    if not certificates.same_public_key(key.public_key(), leaf.public_key()):
        raise KeyStoreError(
            f"{args.certificate} was issued for another key than "
            f"{store.location(role, name, generation)}"
        )
    if certificates.body_id_of(leaf) != config.node.body_id:
        raise KeyStoreError(
            f"{args.certificate}: organizationIdentifier "
            f"{certificates.body_id_of(leaf)!r} is not this node's body id "
            f"{config.node.body_id!r}"
        )
    mismatch = certificates.role_mismatch(leaf, str(role))
    if mismatch:
        raise KeyStoreError(f"{args.certificate} cannot serve as {role}: {mismatch}")
    if leaf.not_valid_after_utc < now:
        raise KeyStoreError(f"{args.certificate} expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    store.cert_path(role, name, generation).write_bytes(certificates.pem_bundle(certs))
    if generation != 1:  # a rotation step: recorded like the others
        _audit(
            config,
            now,
            "key.certificate.imported",
            {"key": stem},
            {
                "role": str(role),
                "generation": generation,
                "certificate_sha256": leaf.fingerprint(hashes.SHA256()).hex(),
            },
        )
    print(
        f"imported {stem}: {leaf.subject.rfc4514_string()} "
        f"(valid to {leaf.not_valid_after_utc:%Y-%m-%d})"
    )
    if len(certs) == 1:
        print(
            "note: the file held no issuer certificates; signatures will carry only the "
            "signer's certificate (peers must know the issuing CA)"
        )
    return EXIT_OK


def cmd_list(args: argparse.Namespace, *, now: datetime) -> int:
    from gateway.crypto.kek_rotation import KekRotationError, ring_entries

    _, store = _store(args)
    entries = [e for e in store.entries(now) if e.role != "kek"]
    try:
        ring = ring_entries(store, now)
    except KekRotationError:
        ring = []  # no KEK yet (or a ring to repair: `gateway keys rewrap` says what is wrong)
    if args.json:
        listing = [e.to_json(now) for e in entries] + [r.to_json() for r in ring]
        print(json.dumps(listing, ensure_ascii=False, indent=2))
        return EXIT_OK
    if not entries and not ring:
        print(f"no keys in {store.directory}")
        return EXIT_OK
    for e in entries:
        days = e.days_to_expiry(now)
        validity = (
            f"{e.not_before:%Y-%m-%d}..{e.not_after:%Y-%m-%d} ({days} days left)"
            if e.not_after and e.not_before
            else "-"
        )
        label = f"{e.role}{' ' + e.name if e.name else ''}"
        if e.role != "demo-ca":
            label += f" #{e.generation}"
        status = f" [{e.status}]" if e.status else ""
        print(f"{label:<24} {e.algorithm or '-':<12} {validity}{status}")
        if e.activation_at is not None:
            print(f"{'':<24} active from: {e.activation_at.isoformat()}")
        if e.revoked_at is not None:
            reason = f" ({e.revocation_reason})" if e.revocation_reason else ""
            print(f"{'':<24} revoked at: {e.revoked_at.isoformat()}{reason}")
        if e.expiring:
            print(
                f"{'':<24} WARNING: expires in {days} days; rotate it: gateway keys rotate "
                f"{e.role}{':' + e.name if e.name else ''} --config {args.config}"
            )
        if e.subject:
            print(f"{'':<24} subject: {e.subject}")
        print(f"{'':<24} key: {e.location}")
    for r in ring:
        print(f"{'kek ' + r.key_id:<24} {'AES-256':<12} [{r.status}]")
        print(f"{'':<24} key: {r.location}")
    return EXIT_OK


def cmd_crl(args: argparse.Namespace, *, now: datetime) -> int:
    _, store = _store(args)
    ca = _demo_ca(store)
    if ca is None:
        raise KeyStoreError(f"no demo CA in {store.demo_ca_dir}; only the demo CA issues CRLs here")
    for spec in args.revoke:
        # One path with `keys revoke`: the generation in force is revoked in the manifest too
        # (the node stops signing with it at once), audited, and put on the CRL.
        role, name = _parse_key(argparse.Namespace(key=spec, name=""))
        number = store.active_generation(role, name, now)
        revoke = argparse.Namespace(
            config=args.config,
            key=spec,
            name="",
            generation=number,
            reason="keyCompromise",
            at="now",
            demo_ca=store.demo_ca_dir,
        )
        cmd_revoke(revoke, now=now)
        ca = _demo_ca(store)
        assert ca is not None
    ca.save(store.passphrase(), now=now)
    crl = x509.load_pem_x509_crl((store.demo_ca_dir / DemoCA.CRL_FILE).read_bytes())
    print(
        f"CRL: {store.demo_ca_dir / DemoCA.CRL_FILE} ({len(list(crl))} revoked, next update "
        f"{crl.next_update_utc:%Y-%m-%d})"
    )
    return EXIT_OK


# --- rotation -------------------------------------------------------------------------------------

AUDIT_ACTOR_PREFIX = "cli:"
PROGRESS_WIDTH = 40
"""Characters of the re-wrap progress bar: fits an 80-column terminal with the counts beside."""


def _parse_key(args: argparse.Namespace) -> tuple[KeyRole, str]:
    role_text, _, name = str(args.key).partition(":")
    name = name or getattr(args, "name", "")
    try:
        role = KeyRole(role_text)
    except ValueError:
        raise KeyStoreError(
            f"{args.key!r}: the role must be one of {', '.join(r.value for r in KeyRole)}"
        ) from None
    if role is KeyRole.OFFICIAL and not name:
        raise KeyStoreError("an official's key is named: official:NAME (or --name NAME)")
    key_stem(role, name)  # validates the name
    return role, name


def _parse_time(text: str, now: datetime) -> datetime:
    if text.strip().lower() == "now":
        return now
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise KeyStoreError(f"--at {text!r}: give 'now' or an ISO 8601 time") from None
    if value.tzinfo is None:
        raise KeyStoreError(f"--at {text!r}: add the time zone (e.g. 2026-12-01T03:00:00Z)")
    return value.astimezone(UTC)


def _actor() -> str:
    import getpass
    import os

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        user = f"uid-{os.getuid()}"
    return f"{AUDIT_ACTOR_PREFIX}{user}"[:64]


def _open_node_store(config: NodeConfig) -> Any:
    from gateway.app.context import AppContext

    config.node.data_dir.mkdir(parents=True, exist_ok=True)
    return AppContext.from_config(config).store


def _audit(
    config: NodeConfig,
    now: datetime,
    kind: str,
    subjects: dict[str, str],
    details: dict[str, Any],
    store: Any = None,
) -> None:
    """Record a key event in the node's audit trail (the same chain the node writes)."""
    from gateway.store import audit

    own = store is None
    store = store or _open_node_store(config)
    try:
        with store.transaction() as conn:
            audit.append(
                conn, now=now, actor=_actor(), kind=kind, subjects=subjects, details=details
            )
    finally:
        if own:
            store.dispose()


def _ca_for(store: KeyStore, demo_ca: Path | None) -> DemoCA | None:
    if demo_ca is not None:
        if not (demo_ca / DemoCA.CERT_FILE).exists():
            raise KeyStoreError(f"--demo-ca {demo_ca}: no {DemoCA.CERT_FILE} there")
        return DemoCA.load(demo_ca, store.passphrase())
    return _demo_ca(store)


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


def cmd_rotate(args: argparse.Namespace, *, now: datetime) -> int:
    from gateway.crypto.rotation import update_generations

    config, store = _store(args)
    role, name = _parse_key(args)
    if role is KeyRole.KEK:
        return _rotate_kek(args, config, store, now)
    if args.at is not None:
        raise KeyStoreError(
            "--at applies to `rotate kek`; a new key generation waits as pending until "
            "`gateway keys activate ROLE --generation N --at TIME`"
        )
    active = store.active_generation(role, name, now)
    current_path = store.cert_path(role, name, active)
    current = certificates.load_pem_certificates(current_path.read_bytes())
    if not current:
        raise KeyStoreError(f"{current_path}: no certificate to take the subject from")
    ca = _ca_for(store, args.demo_ca)
    profile = _profile_like(current[0], role, config.node.body_id, demo=ca is not None)
    where = args.store or (
        "token" if store.location(role, name, active).startswith("pkcs11:") else "file"
    )
    if where == "token" and not store.uses_token:
        raise KeyStoreError("--store token: set [keys] pkcs11_module and pkcs11_token_label")
    made: dict[str, Any] = {}

    def add_generation(manifest: Any) -> Any:
        updated, number = manifest.with_new_generation(now)
        stem = store.stem(role, name, number)
        if where == "file":
            key = algorithms.generate_private_key(args.algorithm)
            certificates.write_private_key(
                store.key_path(role, name, number), key, store.passphrase()
            )
        else:
            key = store.token().generate(stem, args.algorithm)
        if ca is not None:
            cert = ca.issue(key.public_key(), profile, now=now)
            store.cert_path(role, name, number).write_bytes(
                certificates.pem_bundle([cert, ca.certificate])
            )
            made["sha256"] = cert.fingerprint(hashes.SHA256()).hex()
        else:
            csr = certificates.build_csr(key, profile)
            store.csr_path(role, name, number).write_bytes(
                csr.public_bytes(serialization.Encoding.PEM)
            )
        made.update(number=number, stem=stem, algorithm=algorithms.describe_key(key.public_key()))
        return updated

    update_generations(store.directory, key_stem(role, name), add_generation)
    number, stem = made["number"], made["stem"]
    _audit(
        config,
        now,
        "key.rotated",
        {"key": stem},
        {
            "role": str(role),
            "generation": number,
            "location": "token" if where == "token" else "file",
            "certificate_sha256": made.get("sha256"),
            "demo_ca": ca is not None,
        },
    )
    spec = f"{role}{':' + name if name else ''}"
    print(f"{stem}: new {made['algorithm']} key, generation {number}, PENDING (not in use yet)")
    print(f"key: {store.location(role, name, number)}")
    if ca is not None:
        print(f"*** {DEMO_LABEL} *** certificate: {store.cert_path(role, name, number)}")
    else:
        print(f"certificate request: {store.csr_path(role, name, number)}")
        print(
            f"have it certified, then: gateway keys import {role} CERT.pem --generation {number}"
            f"{' --name ' + name if name else ''} --config {args.config}"
        )
    print("next: publish the new certificate through the depositary (gateway keys publish), then")
    print(
        f"      gateway keys activate {spec} --generation {number} --at TIME --config {args.config}"
    )
    return EXIT_OK


def _rotate_kek(
    args: argparse.Namespace, config: NodeConfig, store: KeyStore, now: datetime
) -> int:
    from gateway.crypto.kek_rotation import read_ring, rotate_kek

    ring = read_ring(store.directory)
    active = ring.member(ring.active_at(now) or ring.members[-1].key_id)
    on_token = (args.store == "token") if args.store else active.token_label is not None
    if on_token and not store.uses_token:
        raise KeyStoreError("--store token: set [keys] pkcs11_module and pkcs11_token_label")
    at = _parse_time(args.at or "now", now)
    rotated = rotate_kek(store, now=now, at=at, on_token=on_token)
    _audit(
        config,
        now,
        "kek.rotated",
        {"kek_id": rotated.key_id},
        {
            "previous": rotated.previous,
            "active_from": rotated.active_from.isoformat(),
            "location": "token" if on_token else "file",
        },
    )
    print(f"kek {rotated.key_id}: {rotated.location}")
    print(f"active from {rotated.active_from.isoformat()} (previous: {rotated.previous})")
    print(f"next: gateway keys rewrap --config {args.config}")
    return EXIT_OK


def cmd_activate(args: argparse.Namespace, *, now: datetime) -> int:
    from gateway.crypto.rotation import update_generations

    config, store = _store(args)
    role, name = _parse_key(args)
    if role is KeyRole.KEK:
        raise KeyStoreError("a KEK is activated by `gateway keys rotate kek --at TIME`")
    at = _parse_time(args.at, now)
    number = args.generation
    # The generation must be usable before anyone is told to switch to it.
    key = store.load(role, name, generation=number, at=max(at, now))
    if not key.certificate.not_valid_before_utc <= at <= key.certificate.not_valid_after_utc:
        raise KeyStoreError(
            f"{store.stem(role, name, number)}: its certificate is valid "
            f"{key.certificate.not_valid_before_utc:%Y-%m-%d %H:%M}.."
            f"{key.certificate.not_valid_after_utc:%Y-%m-%d %H:%M}, not at {at.isoformat()}"
        )
    version = _check_published(config, store.stem(role, name, number), role, key, args.force)
    update_generations(
        store.directory,
        key_stem(role, name),
        lambda m: m.with_activation(number, at, now=now),
    )
    details: dict[str, Any] = {
        "role": str(role),
        "generation": number,
        "at": at.isoformat(),
        "directory_version": version,
    }
    if args.force:
        details["forced"] = args.force[:200]
    _audit(config, now, "key.activated", {"key": store.stem(role, name, number)}, details)
    print(f"{store.stem(role, name, number)} becomes active at {at.isoformat()}")
    print("every process of the node switches then, without restart")
    if role is KeyRole.TLS:
        print("the peer link takes the new TLS certificate for new connections at that time")
    return EXIT_OK


_DIRECTORY_ROLE = {
    KeyRole.SEAL: "seal",
    KeyRole.TLS: "tls",
    KeyRole.ENCRYPTION: "encryption",
    KeyRole.OFFICIAL: "officials-ca",
}


def _check_published(
    config: NodeConfig, stem: str, role: KeyRole, key: Any, force: str | None
) -> int:
    """Publish first, switch after: the directory version in force on this node must carry
    the new certificate (peers pin it; what it signs before they have it is refused). Returns
    that version. ``--force REASON`` switches anyway, audited (an emergency with no standby)."""
    from gateway.exchange.directory import unpublished
    from gateway.exchange.node import load_directory
    from gateway.model.directory import CertificateRole

    if config.trust.directory_file is None:
        # Such a node exchanges nothing (the node refuses to start without a directory): there
        # are no peers to wait for.
        print(f"NOTE: {config.path}: no [trust] directory_file; publication not checked")
        return 0
    directory = load_directory(config, at=datetime.now(UTC))
    why = unpublished(
        directory, config.node.body_id, CertificateRole(_DIRECTORY_ROLE[role]), key.certificate
    )
    if not why:
        return directory.version
    if force:
        print(f"WARNING: {stem}: {why}; activated anyway (--force: {force})")
        print("peers refuse what it signs until they have a directory version listing it")
        return directory.version
    raise CommandError(
        f"{stem} is not published: {why}. Publish first, switch after: "
        f"`gateway keys publish --config {config.path}` to the depositary, "
        "`gateway directory import` of the version that lists it on this node and on every "
        "peer (check with `gateway directory show` there, or gateway_directory_version in "
        "/metrics), then activate. To switch anyway (peers will refuse it until then): "
        "--force REASON",
        "KEY_NOT_PUBLISHED",
        ExitCode.REFUSED,
    )


def _pending_signed_by(
    config: NodeConfig, store: KeyStore, role: KeyRole, name: str, number: int
) -> int:
    """Documents in the node's outbox signed by this generation (TLS and encryption sign
    none); 0 when the node has no store yet."""
    from gateway.crypto.kek_rotation import load_kek_ring
    from gateway.exchange.existence import pending_signed_by
    from gateway.store import outbox

    if role in (KeyRole.TLS, KeyRole.ENCRYPTION):
        return 0
    if config.database_url.startswith("sqlite") and not config.node.data_dir.is_dir():
        return 0
    certs = certificates.load_pem_certificates(store.cert_path(role, name, number).read_bytes())
    if not certs:
        return 0
    node_store = _open_node_store(config)
    try:
        with node_store.read() as conn:
            if not outbox.pending_message_ids(conn):
                return 0  # nothing waits: the stored documents need not be opened
            return pending_signed_by(
                conn, certs[0].public_bytes(serialization.Encoding.DER), load_kek_ring(store)
            )
    finally:
        node_store.dispose()


def cmd_revoke(args: argparse.Namespace, *, now: datetime) -> int:
    from gateway.crypto.rotation import RevocationReason, update_generations

    config, store = _store(args)
    role, name = _parse_key(args)
    if role is KeyRole.KEK:
        raise KeyStoreError(
            "a KEK is not revoked: rotate it (gateway keys rotate kek), re-wrap, then destroy it"
        )
    at = _parse_time(args.at, now)
    if at > now:
        raise KeyStoreError("--at: a revocation takes effect now or earlier, not later")
    number = args.generation
    reason = RevocationReason(args.reason)
    stem = store.stem(role, name, number)
    stranded = _pending_signed_by(config, store, role, name, number)
    if stranded and reason in (
        RevocationReason.SUPERSEDED,
        RevocationReason.CESSATION_OF_OPERATION,
    ):
        # Nothing is compromised: no reason to strand documents no receipt covers yet.
        raise CommandError(
            f"{stem}: {stranded} document(s) signed by it still wait in the outbox; revoked now, "
            "peers could not tell when they were signed (INDETERMINATE / REVOKED_NO_POE) and "
            f"would refuse them. Run this command again once they are delivered (the peers' "
            "receipts then prove when they were signed); a compromised key is revoked at once "
            "with --reason keyCompromise.",
            "KEY_STILL_IN_USE",
            ExitCode.REFUSED,
        )
    update_generations(
        store.directory,
        key_stem(role, name),
        lambda m: m.with_revocation(number, at, reason, now=now),
    )
    serial = ""
    ca = _ca_for(store, args.demo_ca)
    if ca is not None:
        certs = certificates.load_pem_certificates(store.cert_path(role, name, number).read_bytes())
        if certs and certs[0].issuer == ca.certificate.subject:
            ca.revoke(certs[0], at=at)
            ca.save(store.passphrase(), now=now)
            serial = f"{certs[0].serial_number:x}"
    _audit(
        config,
        now,
        "key.revoked",
        {"key": stem},
        {
            "role": str(role),
            "generation": number,
            "reason": reason.value,
            "at": at.isoformat(),
            "crl_serial": serial or None,
        },
    )
    print(f"{stem} REVOKED at {at.isoformat()} ({reason.value}); nothing signs with it any more")
    if role is not KeyRole.TLS:
        print(
            "documents it signed stay valid where a proof of existence is held (the exchange's "
            "signed receipt on this node, an RFC 3161 timestamp); others turn INDETERMINATE"
        )
    if stranded:
        print(
            f"WARNING: {stranded} document(s) signed by it still wait in the outbox: peers "
            "will refuse them; submit them again once a new generation is active"
        )
    if serial and ca is not None and ca.directory is not None:
        print(f"demo CA CRL updated: {ca.directory / DemoCA.CRL_FILE} (serial {serial})")
        print("give the new CRL to every peer ([trust] crl_files)")
    elif role is not KeyRole.KEK:
        print("ask the issuing CA to revoke the certificate and to publish its CRL")
    try:
        still = store.active_generation(role, name, now) == number
    except KeyStoreError:
        still = True
    if still:
        spec = f"{role}{':' + name if name else ''}"
        following = store.generations(role, name).next_number
        demo_ca = f" --demo-ca {args.demo_ca}" if args.demo_ca else ""
        print(
            f"WARNING: it was the active generation: signing with {spec} is refused until a new "
            "generation is active:\n"
            f"  gateway keys rotate {spec}{demo_ca} --config {args.config}\n"
            f"  gateway keys activate {spec} --generation {following} --at now "
            f"--config {args.config}"
        )
    print(
        "publish the change (the depositary drops the revoked certificate):\n"
        f"  gateway keys publish --config {args.config}"
    )
    return EXIT_OK


def cmd_publish(args: argparse.Namespace, *, now: datetime) -> int:
    from gateway.crypto.rotation import publication

    config, store = _store(args)
    published = publication(store, now)
    _audit(
        config,
        now,
        "key.publication.exported",
        {"body_id": config.node.body_id},
        {"certificates": len(published), "sha256": ",".join(p.sha256[:16] for p in published)},
    )
    if args.json:
        doc = {
            "body_id": config.node.body_id,
            "at": now.isoformat(),
            "certificates": [p.to_json() for p in published],
        }
        print(json.dumps(doc, ensure_ascii=False, indent=2))
        return EXIT_OK
    print(f"# {config.node.body_id}: certificates for the next directory version ({now:%Y-%m-%d})")
    for p in published:
        print(f"# role={p.role.value} key={p.key} status={p.status.value} sha256={p.sha256}")
        print(p.pem, end="")
    return EXIT_OK


class _RewrapPrinter:
    """A bar redrawn in place on a terminal; a line per tenth of the work otherwise."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last = -1

    def __call__(self, p: Any) -> None:
        share = 1.0 if p.total == 0 else min(p.done / p.total, 1.0)
        if self.tty:
            filled = int(share * PROGRESS_WIDTH)
            bar = "#" * filled + "-" * (PROGRESS_WIDTH - filled)
            self.stream.write(f"\r[{bar}] {share:6.1%}  {p.done}/{p.total} keys re-wrapped")
            self.stream.flush()
            return
        step = int(share * 10)
        if step != self.last:
            self.last = step
            print(
                f"rewrap: {p.done}/{p.total} ({share:.0%}) under {p.active}",
                file=self.stream,
                flush=True,
            )

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")


def cmd_rewrap(args: argparse.Namespace, *, now: datetime) -> int:
    from gateway.crypto.kek_rotation import DESTROY_GRACE, load_kek_ring
    from gateway.store.keys import rewrap_all

    config, store = _store(args)
    ring = load_kek_ring(store)
    node_store = _open_node_store(config)
    printer = _RewrapPrinter(sys.stdout)
    try:
        result = rewrap_all(
            node_store,
            ring,
            clock=lambda: datetime.now(UTC),
            batch_size=args.batch_size,
            pause=args.pause,
            progress=printer,
        )
        printer.done()
        _audit(
            config,
            datetime.now(UTC),
            "kek.rewrap.finished",
            {"kek_id": result.active},
            {"rewrapped": result.rewrapped, "complete": result.complete},
            store=node_store,
        )
    finally:
        node_store.dispose()
    usage = ", ".join(f"{k}: {n}" for k, n in sorted(result.usage.items())) or "none"
    print(f"re-wrapped {result.rewrapped} keys in {result.seconds:.1f} s; keys per KEK: {usage}")
    if not result.complete:
        return fail(
            "часть ключей данных ещё под прежним KEK: повторите gateway keys rewrap",
            "REWRAP_INCOMPLETE",
            ExitCode.REFUSED,
        )
    old = [k for k in ring.key_ids if k != result.active]
    for key_id in sorted(old):
        print(
            f"nothing uses {key_id} now; from {DESTROY_GRACE} after the switch on: "
            f"gateway keys destroy-kek {key_id} --config {args.config}"
        )
    return EXIT_OK


def cmd_destroy_kek(args: argparse.Namespace, *, now: datetime) -> int:
    from gateway.crypto.kek_rotation import destroy_kek
    from gateway.store.keys import kek_usage

    config, store = _store(args)
    node_store = _open_node_store(config)
    try:
        with node_store.read() as conn:
            usage = kek_usage(conn)
        member = destroy_kek(store, args.key_id, now=now, usage=usage)
        _audit(
            config,
            now,
            "kek.destroyed",
            {"kek_id": member.key_id},
            {"location": "token" if member.token_label else "file"},
            store=node_store,
        )
    finally:
        node_store.dispose()
    print(f"KEK {member.key_id} destroyed; backups made under it can no longer be read")
    return EXIT_OK
